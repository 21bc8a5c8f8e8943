/*
 * The queue process: runs chrooted in the spool as its own user.  It hands
 * smtp-workers new message files, commits them in groups (everything that
 * arrived while the previous sync ran is made durable by the next single
 * sync, and only then does any of those clients hear 250), and feeds the
 * scheduler.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/statvfs.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bounce.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "proc.h"
#include "queue.h"
#include "sandbox.h"
#include "stats.h"
#include "util.h"

#define SMTP_CHANNELS_MAX	128
#define INCOMING_MAX		100000	/* message files open at once */

const struct queue_backend	*queue_backend = &queue_backend_fs;

/* A message file handed to an smtp-worker and not yet committed. */
struct incoming {
	TAILQ_ENTRY(incoming)	 entry;
	char			 msgid[MSGID_SIZE];
	struct channel		*chan;
	struct qmsg		*msg;		/* deliveries so far (RCPTS) */
	int			 failed;	/* too many deliveries */
};

/* A commit staged, waiting for the group sync. */
struct pending {
	TAILQ_ENTRY(pending)	 entry;
	struct qmsg		*msg;
	struct channel		*chan;		/* NULL if the worker died */
	uint32_t		 session;
	void			(*done)(void *, int);	/* a local commit */
	void			*arg;
};

static struct config		*conf;
static struct event_base	*base;
static struct channel		*master_chan;
static struct channel		*smtp_chans[SMTP_CHANNELS_MAX];
static struct channel		*policy_chan;
static TAILQ_HEAD(, incoming)	 incoming = TAILQ_HEAD_INITIALIZER(incoming);
static int			 nincoming;
static TAILQ_HEAD(, pending)	 pending = TAILQ_HEAD_INITIALIZER(pending);
static struct event		*sync_ev;
static int			 shutting_down;

static void	queue_smtp_dispatch(struct channel *, struct imsg *);
static void	queue_deliver_dispatch(struct channel *, struct imsg *);

/*
 * Refuse new mail before the disk is full: what is queued must still be
 * able to update its envelopes and make its notifications.
 */
static int
spool_full(void)
{
	struct statvfs	 st;

	if (conf->queue_min_free == 0 || statvfs("/", &st) == -1)
		return 0;
	return (uint64_t)st.f_bavail * st.f_frsize < conf->queue_min_free;
}

static struct incoming *
incoming_find(const char *msgid)
{
	struct incoming	*in;

	TAILQ_FOREACH(in, &incoming, entry)
		if (strcmp(in->msgid, msgid) == 0)
			return in;
	return NULL;
}

static void
incoming_drop(struct incoming *in, int abort_file)
{
	if (abort_file && queue_backend->message_abort(in->msgid) == -1)
		log_warn("%s: cannot remove incoming file", in->msgid);
	TAILQ_REMOVE(&incoming, in, entry);
	nincoming--;
	if (in->msg)
		qmsg_free(in->msg);
	free(in);
}

static void
reply_create(struct channel *chan, uint32_t session, int ok,
    const char *msgid, int fd)
{
	struct mbuf	 m;

	m_init(&m);
	m_add_u32(&m, (uint32_t)ok);
	m_add_str(&m, msgid);
	channel_send_m(chan, IMSG_QUEUE_CREATE_RES, session, fd, &m);
	m_free(&m);
}

static void
queue_create(struct channel *chan, struct imsg *imsg)
{
	struct incoming	*in;
	char		 msgid[MSGID_SIZE];
	int		 fd;

	if (shutting_down || nincoming >= INCOMING_MAX) {
		reply_create(chan, imsg->hdr.peerid, QUEUE_FAIL, "", -1);
		return;
	}
	if (spool_full()) {
		stat_increment("queue.create.nospace", 1);
		reply_create(chan, imsg->hdr.peerid, QUEUE_NOSPACE, "", -1);
		return;
	}
	if ((in = calloc(1, sizeof(*in))) == NULL) {
		reply_create(chan, imsg->hdr.peerid, QUEUE_FAIL, "", -1);
		return;
	}
	if ((fd = queue_backend->message_create(msgid)) == -1) {
		int	 nospace = errno == ENOSPC || errno == EDQUOT;

		log_warn("cannot create a message file");
		stat_increment("queue.create.error", 1);
		free(in);
		reply_create(chan, imsg->hdr.peerid, nospace ? QUEUE_NOSPACE :
		    QUEUE_FAIL, "", -1);
		return;
	}
	strlcpy(in->msgid, msgid, sizeof(in->msgid));
	in->chan = chan;
	TAILQ_INSERT_TAIL(&incoming, in, entry);
	nincoming++;
	reply_create(chan, imsg->hdr.peerid, QUEUE_OK, msgid, fd);
}

static void
reply_commit(struct channel *chan, uint32_t session, int ok,
    const char *msgid, const char *text)
{
	struct mbuf	 m;

	if (chan == NULL)
		return;
	m_init(&m);
	m_add_u32(&m, (uint32_t)ok);
	m_add_str(&m, msgid);
	m_add_str(&m, text);
	channel_send_m(chan, IMSG_QUEUE_COMMIT_RES, session, -1, &m);
	m_free(&m);
}

/* The incoming message `msgid` of this worker, or NULL (then malformed). */
static struct incoming *
incoming_of(struct channel *chan, const char *msgid)
{
	struct incoming	*in;

	if ((in = incoming_find(msgid)) == NULL || in->chan != chan) {
		log_warnx("message %s is not being received by smtp-worker #%d",
		    msgid, chan->slot);
		return NULL;
	}
	return in;
}

/* Deliveries of a message arrive ahead of its commit. */
static void
queue_rcpts(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	struct incoming	*in;
	struct dlv	 dlv;
	char		 msgid[MSGID_SIZE];
	uint32_t	 n, i;

	m_reader(&r, imsg);
	m_get_str(&r, msgid, sizeof(msgid));
	n = m_get_u32(&r);
	if (r.err || n == 0 || (in = incoming_of(chan, msgid)) == NULL) {
		channel_malformed(chan, imsg);
		return;
	}
	if (in->msg == NULL && (in->msg = qmsg_new()) == NULL)
		in->failed = 1;
	for (i = 0; i < n && !r.err; i++) {
		dlv_get(&r, &dlv);
		if (!r.err && !in->failed && qmsg_add_rcpt(in->msg, &dlv) == -1)
			in->failed = 1;
	}
	if (m_end(&r) == -1)
		channel_malformed(chan, imsg);
}

/* Reads the COMMIT payload into the incoming qmsg; -1 if malformed. */
static int
commit_parse(struct imsg *imsg, struct channel *chan, struct incoming **inp)
{
	struct mreader	 r;
	struct incoming	*in;
	struct qmsg	*m;
	char		 msgid[MSGID_SIZE];
	uint32_t	 n;

	m_reader(&r, imsg);
	m_get_str(&r, msgid, sizeof(msgid));
	if (r.err || (in = incoming_of(chan, msgid)) == NULL || in->msg == NULL)
		return -1;
	m = in->msg;
	strlcpy(m->msgid, msgid, sizeof(m->msgid));
	m->size = m_get_u64(&r);
	m_get_str(&r, m->sender, sizeof(m->sender));
	m_get_str(&r, m->helo, sizeof(m->helo));
	m_get_str(&r, m->client_addr, sizeof(m->client_addr));
	m_get_str(&r, m->client_name, sizeof(m->client_name));
	m_get_str(&r, m->auth_user, sizeof(m->auth_user));
	m_get_str(&r, m->proto, sizeof(m->proto));
	m_get_str(&r, m->envid, sizeof(m->envid));
	m->ret = m_get_u32(&r);
	n = m_get_u32(&r);
	if (m_end(&r) == -1 || m->ret > DSN_RET_HDRS ||
	    (!in->failed && n != m->nrcpts))
		return -1;
	m->created = time(NULL);
	*inp = in;
	return 0;
}

static void
queue_commit(struct channel *chan, struct imsg *imsg)
{
	struct incoming	*in;
	struct pending	*p;
	struct qmsg	*m;

	if (commit_parse(imsg, chan, &in) == -1) {
		channel_malformed(chan, imsg);
		return;
	}
	m = in->msg;
	in->msg = NULL;
	if (in->failed) {
		incoming_drop(in, 1);
		reply_commit(chan, imsg->hdr.peerid, 0, m->msgid,
		    "too many recipients");
		qmsg_free(m);
		return;
	}
	incoming_drop(in, 0);
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    queue_backend->commit_stage(m) == -1) {
		int	 nospace = errno == ENOSPC || errno == EDQUOT;

		log_warn("%s: commit failed", m->msgid);
		stat_increment("queue.commit.error", 1);
		queue_backend->message_abort(m->msgid);
		reply_commit(chan, imsg->hdr.peerid, nospace ? QUEUE_NOSPACE :
		    QUEUE_FAIL, m->msgid, "queue file write error");
		qmsg_free(m);
		free(p);
		return;
	}
	p->msg = m;
	p->chan = chan;
	p->session = imsg->hdr.peerid;
	TAILQ_INSERT_TAIL(&pending, p, entry);
	/*
	 * The sync runs once the loop has read everything that is waiting:
	 * every commit that arrives meanwhile joins the same group.
	 */
	event_active(sync_ev, EV_TIMEOUT, 0);
}

static void
group_sync(evutil_socket_t fd, short ev, void *arg)
{
	struct pending	*p;
	int		 ok, n = 0;

	if (TAILQ_EMPTY(&pending))
		return;
	ok = queue_backend->sync() == 0;
	if (!ok)
		log_warn("spool sync failed: refusing the group");
	while ((p = TAILQ_FIRST(&pending)) != NULL) {
		TAILQ_REMOVE(&pending, p, entry);
		n++;
		if (ok) {
			log_info("%s: queued, from=<%s>, size=%llu, nrcpt=%u, "
			    "client=%s", p->msg->msgid, p->msg->sender,
			    (unsigned long long)p->msg->size, p->msg->nrcpts,
			    p->msg->client_addr);
			reply_commit(p->chan, p->session, QUEUE_OK,
			    p->msg->msgid, "");
			stat_increment("queue.commit", 1);
			scheduler_add(p->msg);
			if (p->done)
				p->done(p->arg, 1);
		} else {
			/* Not acknowledged: it must not be delivered either. */
			queue_backend->message_delete(p->msg->msgid,
			    p->msg->nrcpts);
			reply_commit(p->chan, p->session, QUEUE_FAIL,
			    p->msg->msgid, "queue sync failed");
			qmsg_free(p->msg);
			if (p->done)
				p->done(p->arg, 0);
		}
		free(p);
	}
	stat_increment("queue.sync", 1);
	log_trace(TRACE_QUEUE, "group sync: %d messages", n);
	if (shutting_down)
		exit(0);
}

int
queue_commit_local(struct qmsg *m, void (*done)(void *, int), void *arg)
{
	struct pending	*p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return -1;
	if (queue_backend->commit_stage(m) == -1) {
		log_warn("%s: commit failed", m->msgid);
		free(p);
		return -1;
	}
	p->msg = m;
	p->done = done;
	p->arg = arg;
	TAILQ_INSERT_TAIL(&pending, p, entry);
	event_active(sync_ev, EV_TIMEOUT, 0);
	return 0;
}

static void
queue_abort(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	struct incoming	*in;
	char		 msgid[MSGID_SIZE];

	m_reader(&r, imsg);
	m_get_str(&r, msgid, sizeof(msgid));
	if (m_end(&r) == -1) {
		channel_malformed(chan, imsg);
		return;
	}
	if ((in = incoming_find(msgid)) != NULL && in->chan == chan)
		incoming_drop(in, 1);
}

static void
queue_smtp_dispatch(struct channel *chan, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_QUEUE_CREATE:
		queue_create(chan, imsg);
		break;
	case IMSG_QUEUE_RCPTS:
		queue_rcpts(chan, imsg);
		break;
	case IMSG_QUEUE_COMMIT:
		queue_commit(chan, imsg);
		break;
	case IMSG_QUEUE_ABORT:
		queue_abort(chan, imsg);
		break;
	default:
		channel_malformed(chan, imsg);
	}
}

static void
smtp_closed(struct channel *chan, int malformed)
{
	struct incoming	*in, *next;
	struct pending	*p;
	int		 i;

	if (malformed)
		proc_report_bad_peer(master_chan, chan);
	/* Its sessions are gone: their files will never be committed. */
	for (in = TAILQ_FIRST(&incoming); in; in = next) {
		next = TAILQ_NEXT(in, entry);
		if (in->chan == chan)
			incoming_drop(in, 1);
	}
	TAILQ_FOREACH(p, &pending, entry)
		if (p->chan == chan)
			p->chan = NULL;
	for (i = 0; i < SMTP_CHANNELS_MAX; i++)
		if (smtp_chans[i] == chan)
			smtp_chans[i] = NULL;
	channel_free(chan);
}

static void
deliver_closed(struct channel *chan, int malformed)
{
	if (malformed)
		proc_report_bad_peer(master_chan, chan);
	scheduler_worker_lost(chan);
	channel_free(chan);
}

static void
queue_deliver_dispatch(struct channel *chan, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_DELIVER_RESULT:
		scheduler_result(chan, imsg);
		break;
	case IMSG_DELIVER_DONE:
		scheduler_done(chan, imsg);
		break;
	default:
		channel_malformed(chan, imsg);
	}
}

static void
policy_dispatch(struct channel *chan, struct imsg *imsg)
{
	if (imsg->hdr.type == IMSG_POLICY_RCPT_RES)
		bounce_policy_reply(chan, imsg);
	else
		channel_malformed(chan, imsg);
}

static void
policy_closed(struct channel *chan, int malformed)
{
	if (malformed)
		proc_report_bad_peer(master_chan, chan);
	if (chan == policy_chan) {
		policy_chan = NULL;
		bounce_set_policy(NULL);
	}
	channel_free(chan);
}

static void
add_peer(enum proc_kind kind, int slot, int fd)
{
	struct channel	*c;
	int		 i;

	if (kind == PROC_POLICY) {
		c = channel_new(base, fd, kind, slot, policy_dispatch,
		    policy_closed, NULL);
		if (c == NULL)
			fatalx("channel_new");
		/* A reload replaces policy: the old one finishes on its own. */
		policy_chan = c;
		bounce_set_policy(c);
		return;
	}
	if (kind == PROC_DELIVER) {
		c = channel_new(base, fd, kind, slot, queue_deliver_dispatch,
		    deliver_closed, NULL);
		if (c == NULL)
			fatalx("channel_new");
		scheduler_worker_add(c);
		return;
	}
	for (i = 0; i < SMTP_CHANNELS_MAX && smtp_chans[i]; i++)
		;
	if (i == SMTP_CHANNELS_MAX) {
		log_warnx("too many smtp-worker channels");
		close(fd);
		return;
	}
	smtp_chans[i] = channel_new(base, fd, kind, slot, queue_smtp_dispatch,
	    smtp_closed, NULL);
	if (smtp_chans[i] == NULL)
		fatalx("channel_new");
}

static void
ctl_result(struct channel *chan, uint32_t id, int ok, const char *text)
{
	struct mbuf	 m;

	m_init(&m);
	m_add_u32(&m, (uint32_t)ok);
	m_add_str(&m, text);
	channel_send_m(chan, IMSG_CTL_RESULT, id, -1, &m);
	m_free(&m);
}

static void
ctl_msg_op(struct channel *chan, struct imsg *imsg)
{
	static const char *const done[CTL_OP_MAX] = {
		[CTL_OP_FLUSH] = "recipients scheduled",
		[CTL_OP_SCHEDULE] = "recipients scheduled",
		[CTL_OP_HOLD] = "messages held",
		[CTL_OP_RELEASE] = "messages released",
		[CTL_OP_REMOVE] = "messages removed",
	};
	struct mreader	 r;
	char		 target[256], text[300];
	uint32_t	 op;
	int		 n;

	m_reader(&r, imsg);
	op = m_get_u32(&r);
	m_get_str(&r, target, sizeof(target));
	if (m_end(&r) == -1 || op == 0 || op >= CTL_OP_MAX) {
		channel_malformed(chan, imsg);
		return;
	}
	n = scheduler_op((int)op, target);
	if (n == -1)
		ctl_result(chan, imsg->hdr.peerid, 0, "no such message");
	else if (n == -2)
		ctl_result(chan, imsg->hdr.peerid, 0, "message busy (being "
		    "delivered): try again in a moment");
	else {
		snprintf(text, sizeof(text), "%d %s", n, done[op]);
		ctl_result(chan, imsg->hdr.peerid, 1, text);
	}
}

static void
queue_master_dispatch(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	enum proc_kind	 kind;
	int		 slot;
	char		 target[MSGID_SIZE + 8];
	uint32_t	 what, on;

	if (proc_master_common(chan, imsg))
		return;
	switch (imsg->hdr.type) {
	case IMSG_PEER_CONNECT:
		if (proc_peer_connect(chan, imsg, P(PROC_SMTP) | P(PROC_DELIVER) |
		    P(PROC_POLICY), &kind, &slot) == -1)
			return;
		add_peer(kind, slot, imsg->fd);
		imsg->fd = -1;
		break;
	case IMSG_SHUTDOWN:
		shutting_down = 1;
		scheduler_stop();
		if (TAILQ_EMPTY(&pending))
			exit(0);
		break;
	case IMSG_CTL_SHOW_QUEUE:
		scheduler_show_queue(chan, imsg->hdr.peerid);
		break;
	case IMSG_CTL_MSG_OP:
		ctl_msg_op(chan, imsg);
		break;
	case IMSG_CTL_SHOW_MESSAGE:
		m_reader(&r, imsg);
		m_get_str(&r, target, sizeof(target));
		if (m_end(&r) == -1) {
			channel_malformed(chan, imsg);
			return;
		}
		if (scheduler_show_message(chan, imsg->hdr.peerid, target) == -1)
			ctl_result(chan, imsg->hdr.peerid, 0, "no such message");
		else
			channel_send(chan, IMSG_CTL_END, imsg->hdr.peerid, -1,
			    NULL, 0);
		break;
	case IMSG_CTL_PAUSE:
		m_reader(&r, imsg);
		what = m_get_u32(&r);
		on = m_get_u32(&r);
		if (m_end(&r) == -1 || what != CTL_PAUSE_DELIVERY) {
			channel_malformed(chan, imsg);
			return;
		}
		scheduler_pause((int)on);
		break;
	default:
		channel_malformed(chan, imsg);
	}
}

static void
master_closed(struct channel *chan, int malformed)
{
	exit(0);
}

static void
load_one(struct qmsg *m, void *arg)
{
	scheduler_add(m);
}

void
queue_main(struct config *c, struct proc_env *env)
{
	int	 i, n;

	conf = c;
	proc_init(env, "queue");
	sandbox_drop(conf->queue_path, env->user, env->uid, env->gid);
	if (queue_backend->init("/") == -1)
		fatal("cannot open the spool %s", conf->queue_path);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new");
	/*
	 * The group sync has the lowest priority: it runs only once every
	 * channel with input has been read, so all commits waiting join it.
	 */
	if (event_base_priority_init(base, 3) == -1 ||
	    (sync_ev = event_new(base, -1, 0, group_sync, NULL)) == NULL ||
	    event_priority_set(sync_ev, 2) == -1)
		fatalx("event_new");
	scheduler_init(base, conf);
	bounce_init(base, conf);
	master_chan = channel_new(base, env->master_fd, PROC_MASTER, 0,
	    queue_master_dispatch, master_closed, NULL);
	if (master_chan == NULL)
		fatalx("channel_new");
	for (i = 0; i < env->npeers; i++)
		add_peer(env->peers[i].kind, env->peers[i].slot,
		    env->peers[i].fd);
	if ((n = queue_backend->load(load_one, NULL)) == -1)
		fatal("cannot load the spool");
	log_info("spool %s: %d messages loaded", conf->queue_path, n);
	if (conf->sandbox)
		sandbox_seccomp(PROC_QUEUE);
	event_base_dispatch(base);
	exit(0);
}
