/*
 * The control socket: mtactl connects here (root or group mtactl, by the
 * socket's mode), sends one request and reads the answer.  Queue requests are
 * forwarded to the queue process; statistics are gathered from every child.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "offline.h"
#include "stats.h"
#include "util.h"

#define CONTROL_CLIENTS_MAX	64
#define STATS_WAIT_MSECS	2000

struct stat_sum {
	char		 name[48];
	uint64_t	 value;
};

struct control_conn {
	TAILQ_ENTRY(control_conn)	 entry;
	uint32_t			 id;
	struct channel			*chan;
	/* a `show stats` being gathered */
	int				 stats_wanted;
	struct stat_sum			*sums;
	size_t				 nsums;
	struct event			*stats_timer;
};

static TAILQ_HEAD(, control_conn)	 conns = TAILQ_HEAD_INITIALIZER(conns);
static int				 nconns;
static uint32_t				 next_id = 1;
static struct event			*accept_ev;
static int				 control_fd = -1;

static struct control_conn *
conn_find(uint32_t id)
{
	struct control_conn	*cc;

	TAILQ_FOREACH(cc, &conns, entry)
		if (cc->id == id)
			return cc;
	return NULL;
}

static void
conn_free(struct control_conn *cc)
{
	TAILQ_REMOVE(&conns, cc, entry);
	nconns--;
	if (cc->stats_timer)
		event_free(cc->stats_timer);
	free(cc->sums);
	channel_free(cc->chan);
	free(cc);
}

static void
conn_closed(struct channel *chan, int malformed)
{
	conn_free(chan->arg);
}

static void
stats_add(struct control_conn *cc, const char *name, uint64_t value)
{
	struct stat_sum	*n;
	size_t		 i;

	for (i = 0; i < cc->nsums; i++)
		if (strcmp(cc->sums[i].name, name) == 0) {
			cc->sums[i].value += value;
			return;
		}
	if (cc->nsums >= STATS_MAX * 4)
		return;
	if ((n = reallocarray(cc->sums, cc->nsums + 1, sizeof(*n))) == NULL)
		return;
	cc->sums = n;
	strlcpy(n[cc->nsums].name, name, sizeof(n[0].name));
	n[cc->nsums].value = value;
	cc->nsums++;
}

static int
cmp_sum(const void *a, const void *b)
{
	return strcmp(((const struct stat_sum *)a)->name,
	    ((const struct stat_sum *)b)->name);
}

static void
stats_send(struct control_conn *cc)
{
	struct mbuf	 m;
	size_t		 i;

	cc->stats_wanted = 0;
	event_del(cc->stats_timer);
	stats_add(cc, "master.uptime", (uint64_t)(time(NULL) - master->started));
	stats_add(cc, "master.restart", (uint64_t)stat_get("master.restart"));
	stats_add(cc, "master.children", (uint64_t)supervise_count());
	stats_add(cc, "mda.delivered", (uint64_t)stat_get("mda.delivered"));
	stats_add(cc, "mda.failed", (uint64_t)stat_get("mda.failed"));
	qsort(cc->sums, cc->nsums, sizeof(*cc->sums), cmp_sum);
	for (i = 0; i < cc->nsums; i++) {
		m_init(&m);
		m_add_str(&m, cc->sums[i].name);
		m_add_u64(&m, cc->sums[i].value);
		channel_send_m(cc->chan, IMSG_CTL_STAT, 0, -1, &m);
		m_free(&m);
	}
	channel_send(cc->chan, IMSG_CTL_END, 0, -1, NULL, 0);
}

static void
stats_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct control_conn	*cc = arg;

	log_warnx("show stats: not every process answered in time");
	stats_send(cc);
}

void
control_stats_reply(uint32_t id, struct imsg *imsg)
{
	struct control_conn	*cc = conn_find(id);
	struct mreader		 r;
	char			 name[48];
	uint64_t		 value;
	uint32_t		 n, i;

	if (cc == NULL || cc->stats_wanted == 0)
		return;
	m_reader(&r, imsg);
	n = m_get_u32(&r);
	for (i = 0; i < n && i < STATS_MAX && !r.err; i++) {
		m_get_str(&r, name, sizeof(name));
		value = m_get_u64(&r);
		if (!r.err)
			stats_add(cc, name, value);
	}
	if (--cc->stats_wanted == 0)
		stats_send(cc);
}

static void
ctl_result(struct control_conn *cc, int ok, const char *text)
{
	struct mbuf	 m;

	m_init(&m);
	m_add_u32(&m, (uint32_t)ok);
	m_add_str(&m, text);
	channel_send_m(cc->chan, IMSG_CTL_RESULT, 0, -1, &m);
	m_free(&m);
}

static void
forward_to_queue(struct control_conn *cc, struct imsg *imsg)
{
	if (master->queue.chan == NULL) {
		ctl_result(cc, 0, "the queue process is not running");
		return;
	}
	channel_send(master->queue.chan, imsg->hdr.type, cc->id, -1,
	    imsg->data, imsg->hdr.len);
}

static void
status_one(struct child *c, void *arg)
{
	struct control_conn	*cc = arg;
	struct mbuf		 m;

	m_init(&m);
	m_add_str(&m, proc_name(c->kind));
	m_add_u32(&m, (uint32_t)c->slot);
	m_add_u32(&m, (uint32_t)c->pid);
	m_add_str(&m, master->conf->user[c->kind]);
	m_add_i64(&m, (int64_t)c->started);
	m_add_u32(&m, (uint32_t)c->restarts);
	channel_send_m(cc->chan, IMSG_CTL_PROC, 0, -1, &m);
	m_free(&m);
}

/* `mtactl status`: the master, then every child. */
static void
ctl_status(struct control_conn *cc)
{
	struct mbuf	 m;

	m_init(&m);
	m_add_str(&m, "master");
	m_add_u32(&m, 0);
	m_add_u32(&m, (uint32_t)getpid());
	m_add_str(&m, "root");
	m_add_i64(&m, (int64_t)master->started);
	m_add_u32(&m, 0);
	channel_send_m(cc->chan, IMSG_CTL_PROC, 0, -1, &m);
	m_free(&m);
	supervise_foreach(status_one, cc);
	channel_send(cc->chan, IMSG_CTL_END, 0, -1, NULL, 0);
}

static int
ctl_pause(struct control_conn *cc, struct imsg *imsg)
{
	struct mreader	 r;
	uint32_t	 what, on;

	m_reader(&r, imsg);
	what = m_get_u32(&r);
	on = m_get_u32(&r);
	if (m_end(&r) == -1 || on > 1 ||
	    (what != CTL_PAUSE_SMTP && what != CTL_PAUSE_DELIVERY))
		return -1;
	supervise_pause(what, (int)on);
	ctl_result(cc, 1, what == CTL_PAUSE_SMTP ?
	    (on ? "smtp paused: no new connections" : "smtp resumed") :
	    (on ? "delivery paused" : "delivery resumed"));
	return 0;
}

static void
control_dispatch(struct channel *chan, struct imsg *imsg)
{
	struct control_conn	*cc = chan->arg;
	struct timeval		 tv = { 0, STATS_WAIT_MSECS * 1000 };
	struct mreader		 r;
	uint32_t		 verbose, trace;

	switch (imsg->hdr.type) {
	case IMSG_CTL_MSG_OP:
		/* A flush also submits what waits in offline/. */
		if (imsg->hdr.len >= 4 &&
		    *(const uint32_t *)imsg->data == CTL_OP_FLUSH)
			offline_scan_now();
		forward_to_queue(cc, imsg);
		break;
	case IMSG_CTL_SHOW_QUEUE:
	case IMSG_CTL_SHOW_MESSAGE:
		forward_to_queue(cc, imsg);
		break;
	case IMSG_CTL_PAUSE:
		if (ctl_pause(cc, imsg) == -1) {
			channel_malformed(chan, imsg);
			return;
		}
		break;
	case IMSG_CTL_STATUS:
		ctl_status(cc);
		break;
	case IMSG_CTL_SHOW_STATS:
		if (cc->stats_wanted)
			break;
		cc->stats_wanted = supervise_count();
		supervise_broadcast(IMSG_STATS_REQ, cc->id, NULL, 0);
		if (cc->stats_wanted == 0)
			stats_send(cc);
		else
			evtimer_add(cc->stats_timer, &tv);
		break;
	case IMSG_CTL_RELOAD:
		if (master_reload() == 0)
			ctl_result(cc, 1, "configuration reloaded");
		else
			ctl_result(cc, 0, "configuration has errors or a reload "
			    "is still finishing: the running one is kept (see "
			    "the log)");
		break;
	case IMSG_LOG_VERBOSE:
		m_reader(&r, imsg);
		verbose = m_get_u32(&r);
		trace = m_get_u32(&r);
		if (m_end(&r) == -1) {
			channel_malformed(chan, imsg);
			return;
		}
		log_setverbose((int)verbose);
		log_settrace((int)trace);
		supervise_broadcast(IMSG_LOG_VERBOSE, 0, imsg->data,
		    imsg->hdr.len);
		ctl_result(cc, 1, "logging changed");
		break;
	default:
		channel_malformed(chan, imsg);
	}
}

void
control_relay(uint32_t id, struct imsg *imsg)
{
	struct control_conn	*cc = conn_find(id);

	if (cc == NULL)
		return;		/* mtactl went away */
	channel_send(cc->chan, imsg->hdr.type, 0, -1, imsg->data,
	    imsg->hdr.len);
}

static void
control_accept(evutil_socket_t fd, short ev, void *arg)
{
	struct control_conn	*cc;
	int			 s;

	if ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) == -1) {
		if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
			log_warn("control: accept");
		return;
	}
	if (nconns >= CONTROL_CLIENTS_MAX || (cc = calloc(1, sizeof(*cc))) == NULL) {
		log_warnx("control: too many clients");
		close(s);
		return;
	}
	cc->id = next_id++;
	cc->chan = channel_new(master->base, s, PROC_CONTROL, 0,
	    control_dispatch, conn_closed, cc);
	cc->stats_timer = evtimer_new(master->base, stats_timeout, cc);
	if (cc->chan == NULL || cc->stats_timer == NULL) {
		if (cc->chan)
			channel_free(cc->chan);
		else
			close(s);
		if (cc->stats_timer)
			event_free(cc->stats_timer);
		free(cc);
		return;
	}
	TAILQ_INSERT_TAIL(&conns, cc, entry);
	nconns++;
}

int
control_init(void)
{
	struct sockaddr_un	 sun;
	struct group		*gr;
	char			 dir[PATH_MAX], *slash;
	const char		*path = master->conf->control_path;
	mode_t			 old;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		log_warnx("control socket path too long: %s", path);
		return -1;
	}
	strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir_owned(dir, 0755, (uid_t)-1, (gid_t)-1) == -1) {
			log_warn("cannot create %s", dir);
			return -1;
		}
	}
	if ((control_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("control: socket");
		return -1;
	}
	if (unlink(path) == -1 && errno != ENOENT) {
		log_warn("control: unlink %s", path);
		return -1;
	}
	old = umask(0117);
	if (bind(control_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		umask(old);
		log_warn("control: bind %s", path);
		return -1;
	}
	umask(old);
	gr = getgrnam(master->conf->control_group);
	if (chown(path, 0, gr ? gr->gr_gid : 0) == -1 ||
	    chmod(path, gr ? 0660 : 0600) == -1) {
		log_warn("control: chown/chmod %s", path);
		return -1;
	}
	if (listen(control_fd, 16) == -1) {
		log_warn("control: listen");
		return -1;
	}
	accept_ev = event_new(master->base, control_fd, EV_READ | EV_PERSIST,
	    control_accept, NULL);
	if (accept_ev == NULL || event_add(accept_ev, NULL) == -1)
		return -1;
	return 0;
}

void
control_close(void)
{
	if (accept_ev) {
		event_free(accept_ev);
		accept_ev = NULL;
	}
	if (control_fd != -1) {
		close(control_fd);
		control_fd = -1;
		unlink(master->conf->control_path);
	}
}
