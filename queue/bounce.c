/*
 * The queue's own notifications (see bounce.h).  Each request goes through
 * three steps: the DSN message is written into a new incoming file, policy
 * resolves its recipient, and the message is committed with the next group
 * sync.  A notification whose recipient is refused goes to the postmaster
 * instead, once; a bounce of a bounce that fails too is logged and dropped,
 * which is what keeps bounces from looping.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "bounce.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "stats.h"
#include "util.h"

#define RETRY_SECS	30

extern const struct queue_backend	*queue_backend;

struct bounce {
	TAILQ_ENTRY(bounce)	 entry;
	uint32_t		 id;		/* policy request id */
	char			 orig[MSGID_SIZE];	/* the message reported */
	enum dsn_kind		 kind;
	uint32_t		*idx;
	size_t			 n;
	char			 msgid[MSGID_SIZE];	/* the DSN itself */
	uint64_t		 size;
	char			 rcpt[ADDR_MAX];
	int			 to_postmaster;
	int			 asked;		/* a policy question is out */
};

static TAILQ_HEAD(, bounce)	 bounces = TAILQ_HEAD_INITIALIZER(bounces);
static struct channel		*policy;
static struct config		*conf;
static struct event		*retry_ev;
static uint32_t			 next_id = 1;
static int			 nbounces;

static void	bounce_ask(struct bounce *);

static void
bounce_free(struct bounce *b)
{
	TAILQ_REMOVE(&bounces, b, entry);
	nbounces--;
	free(b->idx);
	free(b);
}

/* Ends a request: tells the scheduler, drops the file when not queued. */
static void
bounce_finish(struct bounce *b, int ok, int keep_file)
{
	if (!keep_file && b->msgid[0] &&
	    queue_backend->message_abort(b->msgid) == -1)
		log_warn("%s: cannot remove the notification file", b->msgid);
	scheduler_reported(b->orig, b->kind, b->idx, b->n, ok);
	bounce_free(b);
}

static void
retry_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct bounce	*b;

	TAILQ_FOREACH(b, &bounces, entry)
		if (!b->asked)
			bounce_ask(b);
}

void
bounce_init(struct event_base *base, struct config *c)
{
	conf = c;
	if ((retry_ev = evtimer_new(base, retry_cb, NULL)) == NULL)
		fatalx("evtimer_new");
}

void
bounce_set_policy(struct channel *c)
{
	struct bounce	*b;
	struct timeval	 tv = { 0, 0 };

	policy = c;
	/* Questions out on a lost channel are asked again. */
	TAILQ_FOREACH(b, &bounces, entry)
		b->asked = 0;
	if (c != NULL)
		evtimer_add(retry_ev, &tv);
}

static void
bounce_ask(struct bounce *b)
{
	struct timeval	 tv = { RETRY_SECS, 0 };
	struct mbuf	 m;

	if (policy == NULL || policy->dead) {
		evtimer_add(retry_ev, &tv);
		return;
	}
	b->id = next_id++;
	m_init(&m);
	m_add_str(&m, "local");
	m_add_u32(&m, 1);
	m_add_str(&m, conf->hostname);
	m_add_str(&m, "");
	m_add_str(&m, "");		/* a notification has the null sender */
	m_add_str(&m, b->rcpt);
	channel_send_m(policy, IMSG_POLICY_RCPT, b->id, -1, &m);
	m_free(&m);
	b->asked = 1;
}

/* The status code a recipient's last error starts with, else a default. */
static const char *
status_of(const char *err, enum dsn_kind kind, char *buf, size_t len)
{
	size_t	 n = strspn(err, "0123456789.");

	if (n >= 5 && n < len && (err[0] == '2' || err[0] == '4' ||
	    err[0] == '5') && err[1] == '.' && (err[n] == ' ' || !err[n])) {
		memcpy(buf, err, n);
		buf[n] = '\0';
		/* A failure reported from a temporary code: it expired. */
		if (kind == DSN_FAILED && buf[0] == '4')
			strlcpy(buf, "4.4.7", len);
		return buf;
	}
	return kind == DSN_FAILED ? "5.0.0" : kind == DSN_DELAYED ? "4.0.0" :
	    "2.0.0";
}

/* The remote host named in a relay error ("host NAME [addr] said:"). */
static int
remote_mta_of(const char *err, char *buf, size_t len)
{
	const char	*p = strstr(err, " host "), *end;
	size_t		 n;

	if (p == NULL || strstr(p, " said: ") == NULL)
		return 0;
	p += 6;
	if ((end = strchr(p, ' ')) == NULL || (n = (size_t)(end - p)) == 0 ||
	    n >= len)
		return 0;
	memcpy(buf, p, n);
	buf[n] = '\0';
	return 1;
}

/* Writes the DSN into a new incoming file. */
static int
bounce_write(struct bounce *b, struct qmsg *m)
{
	struct dsn_info	 info;
	struct dsn_rcpt	*r = NULL;
	struct stat	 st;
	char		(*status)[16] = NULL;
	char		(*remote)[256] = NULL;
	size_t		 i;
	int		 fd, msgfd, ret = -1;

	if ((r = calloc(b->n, sizeof(*r))) == NULL ||
	    (status = calloc(b->n, sizeof(*status))) == NULL ||
	    (remote = calloc(b->n, sizeof(*remote))) == NULL) {
		free(r);
		free(status);
		return -1;
	}
	for (i = 0; i < b->n; i++) {
		struct qrcpt	*q = &m->rcpts[b->idx[i]];

		r[i].final_rcpt = q->dlv.rcpt;
		r[i].orig_rcpt = q->dlv.orcpt[0] ? q->dlv.orcpt : NULL;
		/* RFC 3461 6.3(d): Original-Recipient only from an ORCPT. */
		r[i].client_rcpt = NULL;
		r[i].status = status_of(q->last_error, b->kind, status[i],
		    sizeof(status[i]));
		r[i].diagnostic = q->last_error[0] ? q->last_error : NULL;
		r[i].diag_type = "x-unix";
		r[i].remote_mta = NULL;
		/* A remote reply: "x.y.z host NAME [addr] said: ..." */
		if (remote_mta_of(q->last_error, remote[i], sizeof(remote[i]))) {
			r[i].remote_mta = remote[i];
			r[i].diag_type = "smtp";
		}
		r[i].last_attempt = q->last_try;
		r[i].will_retry_until = m->created + conf->queue_lifetime;
	}
	memset(&info, 0, sizeof(info));
	info.kind = b->kind;
	info.reporting_mta = conf->hostname;
	info.queue_id = m->msgid;
	info.sender = m->sender[0] ? m->sender : "postmaster";
	info.envid = m->envid[0] ? m->envid : NULL;
	/* RET concerns failure reports only (RFC 3461 4.3). */
	info.ret_full = b->kind == DSN_FAILED && m->ret == DSN_RET_FULL;
	info.received_from = m->helo[0] ? m->helo : NULL;
	info.arrival = m->created;
	info.now = time(NULL);
	info.max_full_size = conf->max_message_size / 2;

	if ((fd = queue_backend->message_create(b->msgid)) == -1)
		goto done;
	if ((msgfd = queue_backend->message_fd(m->msgid)) == -1) {
		close(fd);
		goto done;
	}
	if (dsn_write(fd, msgfd, &info, r, b->n) == 0 && fstat(fd, &st) == 0) {
		b->size = (uint64_t)st.st_size;
		ret = 0;
	}
	close(msgfd);
	close(fd);
done:
	if (ret == -1 && b->msgid[0]) {
		queue_backend->message_abort(b->msgid);
		b->msgid[0] = '\0';
	}
	free(remote);
	free(status);
	free(r);
	return ret;
}

int
bounce_report(struct qmsg *m, enum dsn_kind kind, const uint32_t *idx,
    size_t n)
{
	struct bounce	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->idx = calloc(n, sizeof(*idx))) == NULL) {
		free(b);
		return -1;
	}
	memcpy(b->idx, idx, n * sizeof(*idx));
	b->n = n;
	b->kind = kind;
	strlcpy(b->orig, m->msgid, sizeof(b->orig));
	TAILQ_INSERT_TAIL(&bounces, b, entry);
	nbounces++;

	/* Nothing is ever reported to the null sender but failures. */
	if (m->sender[0] == '\0' && kind != DSN_FAILED) {
		bounce_finish(b, 1, 0);
		return 0;
	}
	if (m->flags & MSG_F_DOUBLE) {
		log_warnx("%s: a notification to the postmaster failed too: "
		    "dropped", m->msgid);
		stat_increment("queue.bounce.dropped", 1);
		bounce_finish(b, 1, 0);
		return 0;
	}
	if (m->sender[0] == '\0') {
		b->to_postmaster = 1;
		strlcpy(b->rcpt, "postmaster", sizeof(b->rcpt));
	} else
		strlcpy(b->rcpt, m->sender, sizeof(b->rcpt));
	if (bounce_write(b, m) == -1) {
		log_warn("%s: cannot write a notification", m->msgid);
		free(b->idx);
		TAILQ_REMOVE(&bounces, b, entry);
		nbounces--;
		free(b);
		return -1;
	}
	log_info("%s: %s notification %s to <%s> for %zu recipient%s",
	    m->msgid, kind == DSN_FAILED ? "failure" : kind == DSN_DELAYED ?
	    "delay" : "success", b->msgid, b->rcpt, n, n == 1 ? "" : "s");
	bounce_ask(b);
	return 0;
}

static void
bounce_committed(void *arg, int ok)
{
	struct bounce	*b = arg;

	if (ok)
		stat_increment("queue.bounce", 1);
	/* The file is the queued message now, or gone with the failed sync. */
	b->msgid[0] = '\0';
	bounce_finish(b, ok, 1);
}

static void
bounce_queue(struct bounce *b, struct dlv *dlv, size_t n)
{
	struct qmsg	*m;
	size_t		 i;

	if ((m = qmsg_new()) == NULL)
		goto fail;
	strlcpy(m->msgid, b->msgid, sizeof(m->msgid));
	m->created = time(NULL);
	m->size = b->size;
	strlcpy(m->helo, conf->hostname, sizeof(m->helo));
	strlcpy(m->client_addr, "local", sizeof(m->client_addr));
	strlcpy(m->proto, "DSN", sizeof(m->proto));
	m->flags = MSG_F_DSN | (b->to_postmaster ? MSG_F_DOUBLE : 0);
	for (i = 0; i < n; i++)
		if (qmsg_add_rcpt(m, &dlv[i]) == -1) {
			qmsg_free(m);
			goto fail;
		}
	if (queue_commit_local(m, bounce_committed, b) == 0)
		return;
	qmsg_free(m);
fail:
	log_warnx("%s: cannot queue the notification", b->msgid);
	bounce_finish(b, 0, 0);
}

void
bounce_policy_reply(struct channel *chan, struct imsg *imsg)
{
	struct bounce	*b;
	struct mreader	 r;
	struct dlv	*dlv = NULL;
	char		 text[TEXT_MAX];
	uint32_t	 code, n, i;

	TAILQ_FOREACH(b, &bounces, entry)
		if (b->asked && b->id == imsg->hdr.peerid)
			break;
	m_reader(&r, imsg);
	code = m_get_u32(&r);
	m_get_str(&r, text, sizeof(text));
	n = m_get_u32(&r);
	if (r.err || n > IMSG_MAX_PAYLOAD / 24 || (n > 0 &&
	    (dlv = calloc(n, sizeof(*dlv))) == NULL)) {
		channel_malformed(chan, imsg);
		return;
	}
	for (i = 0; i < n; i++)
		dlv_get(&r, &dlv[i]);
	if (m_end(&r) == -1) {
		free(dlv);
		channel_malformed(chan, imsg);
		return;
	}
	if (b == NULL) {
		free(dlv);
		return;
	}
	b->asked = 0;
	if (code / 100 == 2 && n > 0)
		bounce_queue(b, dlv, n);
	else if (code / 100 == 4) {
		/* Policy could not decide now: ask again later. */
		struct timeval	 tv = { RETRY_SECS, 0 };

		evtimer_add(retry_ev, &tv);
	} else if (!b->to_postmaster) {
		log_info("%s: notification recipient <%s> refused (%u %s): "
		    "sending it to the postmaster", b->msgid, b->rcpt, code,
		    text);
		b->to_postmaster = 1;
		strlcpy(b->rcpt, "postmaster", sizeof(b->rcpt));
		bounce_ask(b);
	} else {
		log_warnx("%s: the postmaster cannot receive notifications "
		    "(%u %s): dropped", b->msgid, code, text);
		stat_increment("queue.bounce.dropped", 1);
		bounce_finish(b, 1, 0);
	}
	free(dlv);
}
