/*
 * The scheduler: every committed message is here with its recipients.  Due
 * recipients of a message go out as one batch to a deliver-worker; results
 * come back per recipient; the envelope on disk is updated when a batch is
 * done, and the message removed when no recipient is left to try.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/tree.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "backend.h"
#include "bounce.h"
#include "channel.h"
#include "config.h"
#include "log.h"
#include "queue.h"
#include "stats.h"

#define WORKERS_MAX		64
#define BATCHES_PER_WORKER	64
#define LOST_RETRY_SECS		5
/* room left in a DELIVER_BATCH frame for its recipients */
#define BATCH_PAYLOAD_MAX	(IMSG_MAX_PAYLOAD - 2 * ADDR_MAX - 101 - 72)

/*
 * A destination: where a delivery goes, for concurrency limits and for
 * retrying deferred mail early once one delivery there succeeded.  Local
 * deliveries go to one mailbox each; remote ones will go to a domain.
 */
struct dest {
	RB_ENTRY(dest)		 entry;
	char			 key[ADDR_MAX + 16];
	int			 inflight;	/* batches out */
	int			 deferred;	/* a recipient here is waiting */
};

struct batch {
	TAILQ_ENTRY(batch)	 entry;
	uint32_t		 id;
	struct qmsg		*msg;
	struct channel		*worker;
	struct dest		*dest;
	uint32_t		*idx;		/* the recipients it carries */
	uint32_t		 n;
};

static int
dest_cmp(struct dest *a, struct dest *b)
{
	return strcmp(a->key, b->key);
}
RB_HEAD(dest_tree, dest);
RB_PROTOTYPE(dest_tree, dest, entry, dest_cmp);
RB_GENERATE(dest_tree, dest, entry, dest_cmp);
static struct dest_tree		 dests = RB_INITIALIZER(&dests);
static int			 total_inflight;

static TAILQ_HEAD(, qmsg)	 messages = TAILQ_HEAD_INITIALIZER(messages);
static TAILQ_HEAD(, batch)	 batches = TAILQ_HEAD_INITIALIZER(batches);
static int			 nmessages;
static struct channel		*workers[WORKERS_MAX];
static int			 worker_load[WORKERS_MAX];
static int			 next_worker;
static uint32_t			 next_batch_id = 1;
static struct event		*timer;
static struct config		*conf;
static int			 stopped;
static int			 paused;	/* mtactl pause delivery */

extern const struct queue_backend	*queue_backend;

static void	scheduler_run(evutil_socket_t, short, void *);
static void	message_settle(struct qmsg *);
static struct qmsg *message_find(const char *);
static void	message_remove(struct qmsg *);
static void	dest_retry_soon(struct dest *);
static int	needs_report(const struct qmsg *);
static void	show_rows(struct channel *, uint32_t, const struct qmsg *, int);

void
scheduler_init(struct event_base *base, struct config *c)
{
	conf = c;
	if ((timer = evtimer_new(base, scheduler_run, NULL)) == NULL)
		fatalx("evtimer_new");
}

/* Arms the timer for the earliest due recipient. */
static void
scheduler_arm(void)
{
	struct qmsg	*m;
	struct timeval	 tv;
	time_t		 now = time(NULL), next = 0;
	uint32_t	 i;

	if (stopped)
		return;
	TAILQ_FOREACH(m, &messages, entry) {
		if (m->inflight)
			continue;
		if (m->flags & MSG_F_HELD) {
			if (next == 0 || m->created + conf->queue_lifetime < next)
				next = m->created + conf->queue_lifetime;
			continue;
		}
		for (i = 0; i < m->nrcpts; i++) {
			if (m->rcpts[i].state != RS_PENDING)
				continue;
			if (next == 0 || m->rcpts[i].next_try < next)
				next = m->rcpts[i].next_try;
		}
		if (needs_report(m) && (next == 0 || now + 30 < next))
			next = now + 30;
		/* Expiry and delay warnings are due times too. */
		if (next == 0 || m->created + conf->queue_lifetime < next)
			next = m->created + conf->queue_lifetime;
		if (conf->delay_warning && (next == 0 ||
		    m->created + conf->delay_warning < next))
			next = m->created + conf->delay_warning;
	}
	if (next == 0)
		return;
	tv.tv_sec = next > now ? next - now : 0;
	tv.tv_usec = tv.tv_sec ? 0 : 1000;
	evtimer_add(timer, &tv);
}

static int
pick_worker(void)
{
	int	 i, w;

	for (i = 0; i < WORKERS_MAX; i++) {
		w = (next_worker + i) % WORKERS_MAX;
		if (workers[w] && !workers[w]->dead &&
		    worker_load[w] < BATCHES_PER_WORKER) {
			next_worker = w + 1;
			return w;
		}
	}
	return -1;
}

static void
dest_key(const struct dlv *d, char *buf, size_t len)
{
	const char	*at;

	if (d->kind == DLV_MBOX || d->kind == DLV_MAILDIR)
		snprintf(buf, len, "local:%s:%s", d->action, d->user);
	else {
		at = strrchr(d->rcpt, '@');
		snprintf(buf, len, "domain:%s", at ? at + 1 : d->rcpt);
		str_lower(buf);
	}
}

/* The destination of a delivery; created on first use, NULL on ENOMEM. */
static struct dest *
dest_get(const struct dlv *d)
{
	struct dest	 key, *x;

	dest_key(d, key.key, sizeof(key.key));
	if ((x = RB_FIND(dest_tree, &dests, &key)) != NULL)
		return x;
	if ((x = calloc(1, sizeof(*x))) == NULL)
		return NULL;
	strlcpy(x->key, key.key, sizeof(x->key));
	RB_INSERT(dest_tree, &dests, x);
	return x;
}

/* Forget destinations that hold nothing: the tree stays small. */
static void
dest_release(struct dest *x)
{
	if (x->inflight == 0 && !x->deferred) {
		RB_REMOVE(dest_tree, &dests, x);
		free(x);
	}
}

/* Is recipient i due and its destination open for one more batch? */
static struct dest *
rcpt_ready(struct qmsg *m, uint32_t i, time_t now)
{
	struct dest	*x;

	if (m->rcpts[i].state != RS_PENDING || m->rcpts[i].next_try > now)
		return NULL;
	if ((x = dest_get(&m->rcpts[i].dlv)) == NULL)
		return NULL;
	if (x->inflight >= conf->dest_concurrency) {
		dest_release(x);
		return NULL;
	}
	return x;
}

/*
 * Sends one batch: due recipients of this message that share a destination,
 * as many as fit one frame.  Returns 1 if one went out, 0 if nothing is
 * ready, -1 if workers or the concurrency limit are exhausted.
 */
static int
dispatch_batch(struct qmsg *m, time_t now)
{
	struct batch	*b;
	struct dest	*x = NULL;
	struct mbuf	 mb, rcpts, one;
	char		 key[ADDR_MAX + 16];
	uint32_t	 i, first, n = 0;
	int		 w, fd;

	for (first = 0; first < m->nrcpts; first++)
		if ((x = rcpt_ready(m, first, now)) != NULL)
			break;
	if (x == NULL)
		return 0;
	if (total_inflight >= conf->queue_concurrency ||
	    (w = pick_worker()) == -1) {
		dest_release(x);
		return -1;
	}
	if ((fd = queue_backend->message_fd(m->msgid)) == -1) {
		log_warn("%s: cannot open the message", m->msgid);
		for (i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].state == RS_PENDING)
				m->rcpts[i].next_try = now + conf->retry_min;
		dest_release(x);
		return 0;
	}
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (b->idx = calloc(m->nrcpts, sizeof(*b->idx))) == NULL) {
		free(b);
		close(fd);
		dest_release(x);
		return -1;
	}
	b->id = next_batch_id++;
	b->msg = m;
	b->worker = workers[w];
	b->dest = x;
	m_init(&rcpts);
	for (i = first; i < m->nrcpts; i++) {
		if (m->rcpts[i].state != RS_PENDING ||
		    m->rcpts[i].next_try > now)
			continue;
		dest_key(&m->rcpts[i].dlv, key, sizeof(key));
		if (strcmp(key, x->key) != 0)
			continue;
		m_init(&one);
		m_add_u32(&one, i);
		dlv_add(&one, &m->rcpts[i].dlv);
		if (one.err || rcpts.len + one.len > BATCH_PAYLOAD_MAX) {
			m_free(&one);
			break;
		}
		m_add_data(&rcpts, one.data, one.len);
		m_free(&one);
		m->rcpts[i].state = RS_INFLIGHT;
		m->rcpts[i].last_try = now;
		b->idx[n++] = i;
	}
	b->n = n;
	m_init(&mb);
	m_add_str(&mb, m->msgid);
	m_add_str(&mb, m->sender);
	m_add_u32(&mb, n);
	m_add_data(&mb, rcpts.data, rcpts.len);
	m_add_str(&mb, m->envid);	/* DSN parameters passed on by relays */
	m_add_u32(&mb, m->ret);
	m_add_str(&mb, m->helo);	/* where it came from, for the store */
	m_add_str(&mb, m->client_addr);
	m_add_str(&mb, m->auth_user);
	m_add_str(&mb, m->proto);
	m_add_i64(&mb, (int64_t)m->created);
	channel_send_m(workers[w], IMSG_DELIVER_BATCH, b->id, fd, &mb);
	m_free(&mb);
	m_free(&rcpts);
	m->inflight++;
	x->inflight++;
	total_inflight++;
	worker_load[w]++;
	TAILQ_INSERT_TAIL(&batches, b, entry);
	log_trace(TRACE_QUEUE, "%s: batch %u of %u to %s via deliver-worker "
	    "#%d", m->msgid, b->id, n, x->key, workers[w]->slot);
	return 1;
}

/* Every destination of the message that is ready gets a batch. */
static int
dispatch_message(struct qmsg *m, time_t now)
{
	int	 r;

	while ((r = dispatch_batch(m, now)) == 1)
		;
	return r;
}

static void	message_expire(struct qmsg *, time_t);
static void	message_warn(struct qmsg *, time_t);

static void
scheduler_run(evutil_socket_t fd, short ev, void *arg)
{
	struct qmsg	*m, *next;
	time_t		 now = time(NULL);
	struct timeval	 tv = { 1, 0 };

	if (stopped)
		return;
	for (m = TAILQ_FIRST(&messages); m; m = next) {
		next = TAILQ_NEXT(m, entry);
		/* Held messages still expire (mtactl(8)). */
		if ((m->flags & MSG_F_HELD) && !m->inflight &&
		    now >= m->created + conf->queue_lifetime) {
			message_expire(m, now);	/* may free m */
			continue;
		}
		if (m->flags & MSG_F_HELD)
			continue;
		if (m->inflight) {
			/* Other destinations of it may go meanwhile. */
			if (!paused && dispatch_message(m, now) == -1) {
				evtimer_add(timer, &tv);
				return;
			}
			continue;
		}
		if (now >= m->created + conf->queue_lifetime) {
			message_expire(m, now);	/* may free m */
			continue;
		}
		if (needs_report(m)) {
			/* A notification that could not be made earlier. */
			message_settle(m);	/* may free m */
			continue;
		}
		if (conf->delay_warning && now >= m->created +
		    conf->delay_warning)
			message_warn(m, now);
		if (paused)
			continue;
		if (dispatch_message(m, now) == -1) {
			/* No worker free: look again shortly. */
			evtimer_add(timer, &tv);
			return;
		}
	}
	scheduler_arm();
}

static void
scheduler_kick(void)
{
	struct timeval	 tv = { 0, 0 };

	if (!stopped)
		evtimer_add(timer, &tv);
}

void
scheduler_add(struct qmsg *m)
{
	uint32_t	 i;

	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state == RS_INFLIGHT)
			m->rcpts[i].state = RS_PENDING;
	m->inflight = 0;
	TAILQ_INSERT_TAIL(&messages, m, entry);
	nmessages++;
	stat_set("queue.messages", nmessages);
	scheduler_kick();
}

static int
worker_index(struct channel *c)
{
	int	 i;

	for (i = 0; i < WORKERS_MAX; i++)
		if (workers[i] == c)
			return i;
	return -1;
}

void
scheduler_worker_add(struct channel *c)
{
	int	 i;

	for (i = 0; i < WORKERS_MAX && workers[i]; i++)
		;
	if (i == WORKERS_MAX) {
		log_warnx("too many deliver-workers");
		channel_free(c);
		return;
	}
	workers[i] = c;
	worker_load[i] = 0;
	scheduler_kick();
}

static struct batch *
batch_find(struct channel *c, uint32_t id)
{
	struct batch	*b;

	TAILQ_FOREACH(b, &batches, entry)
		if (b->id == id && b->worker == c)
			return b;
	return NULL;
}

static time_t
backoff(uint32_t attempts)
{
	time_t	 d = conf->retry_min;

	while (attempts-- > 1 && d < conf->retry_max)
		d *= 2;
	return d > conf->retry_max ? conf->retry_max : d;
}

void
scheduler_result(struct channel *c, struct imsg *imsg)
{
	struct batch	*b;
	struct qrcpt	*r;
	struct mreader	 rd;
	char		 text[TEXT_MAX];
	uint32_t	 index, status;

	m_reader(&rd, imsg);
	index = m_get_u32(&rd);
	status = m_get_u32(&rd);
	m_get_str(&rd, text, sizeof(text));
	if (m_end(&rd) == -1 || status > DLV_PERMFAIL ||
	    (b = batch_find(c, imsg->hdr.peerid)) == NULL ||
	    index >= b->msg->nrcpts ||
	    b->msg->rcpts[index].state != RS_INFLIGHT) {
		channel_malformed(c, imsg);
		return;
	}
	r = &b->msg->rcpts[index];
	r->attempts++;
	strlcpy(r->last_error, status == DLV_OK ? "" : text,
	    sizeof(r->last_error));
	switch (status) {
	case DLV_OK:
		r->state = RS_DELIVERED;
		stat_increment("queue.delivered", 1);
		/* The destination works again: what waits for it, soon. */
		if (b->dest->deferred)
			dest_retry_soon(b->dest);
		break;
	case DLV_TEMPFAIL:
		r->state = RS_PENDING;
		r->next_try = time(NULL) + backoff(r->attempts);
		b->dest->deferred = 1;
		stat_increment("queue.deferred", 1);
		break;
	case DLV_PERMFAIL:
		r->state = RS_FAILED;
		stat_increment("queue.failed", 1);
		break;
	}
	log_info("%s: to=<%s>, orig_to=<%s>, attempt=%u, status=%s (%s)",
	    b->msg->msgid, r->dlv.rcpt, r->dlv.orig, r->attempts,
	    dlv_status_name(status), text);
}

static void
message_remove(struct qmsg *m)
{
	TAILQ_REMOVE(&messages, m, entry);
	nmessages--;
	stat_set("queue.messages", nmessages);
	qmsg_free(m);
}

/* A recipient is done but its notification is not queued yet. */
static int
needs_report(const struct qmsg *m)
{
	uint32_t	 i;

	if (m->reporting || m->inflight)
		return 0;
	for (i = 0; i < m->nrcpts; i++)
		if ((m->rcpts[i].state == RS_FAILED ||
		    m->rcpts[i].state == RS_DELIVERED) &&
		    !(m->rcpts[i].dsn & RCPT_DSN_DONE))
			return 1;
	return 0;
}

/* Does this recipient want its final outcome reported (RFC 3461)? */
static int
wants_report(const struct qrcpt *r)
{
	if (r->dlv.notify & DSN_NOTIFY_NEVER)
		return 0;
	if (r->state == RS_FAILED)
		return r->dlv.notify == 0 || (r->dlv.notify & DSN_NOTIFY_FAILURE);
	return (r->dlv.notify & DSN_NOTIFY_SUCCESS) != 0;
}

/*
 * Starts the notifications a message owes: one for its failures, one for
 * successes that asked for one.  Recipients that want none are settled here.
 */
static void
message_report(struct qmsg *m)
{
	uint32_t	*fail, *ok, i, nfail = 0, nok = 0;

	if (m->reporting)
		return;
	if ((fail = calloc(m->nrcpts, sizeof(*fail))) == NULL ||
	    (ok = calloc(m->nrcpts, sizeof(*ok))) == NULL) {
		free(fail);
		return;
	}
	for (i = 0; i < m->nrcpts; i++) {
		struct qrcpt	*r = &m->rcpts[i];

		if ((r->state != RS_FAILED && r->state != RS_DELIVERED) ||
		    (r->dsn & RCPT_DSN_DONE))
			continue;
		if (!wants_report(r))
			r->dsn |= RCPT_DSN_DONE;
		else if (r->state == RS_FAILED)
			fail[nfail++] = i;
		else
			ok[nok++] = i;
	}
	if (nfail && bounce_report(m, DSN_FAILED, fail, nfail) == 0)
		m->reporting++;
	if (nok && bounce_report(m, DSN_DELIVERED, ok, nok) == 0)
		m->reporting++;
	free(fail);
	free(ok);
}

/* After a batch: drop the message if nothing is left, else persist states. */
static void
message_settle(struct qmsg *m)
{
	uint32_t	 i, open = 0;

	for (i = 0; i < m->nrcpts; i++) {
		if (m->rcpts[i].state == RS_INFLIGHT)
			m->rcpts[i].state = RS_PENDING;
		if (m->rcpts[i].state == RS_PENDING)
			open++;
	}
	message_report(m);
	for (i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].state != RS_PENDING &&
		    !(m->rcpts[i].dsn & RCPT_DSN_DONE))
			open++;		/* its notification is not queued yet */
	if (open == 0 && m->reporting == 0) {
		if (queue_backend->message_delete(m->msgid, m->nrcpts) == -1)
			log_warn("%s: cannot remove from the spool", m->msgid);
		else
			log_info("%s: removed", m->msgid);
		message_remove(m);
		return;
	}
	if (queue_backend->envelope_update(m) == -1)
		log_warn("%s: cannot update the envelope", m->msgid);
}

/* Past the queue lifetime: whatever is still pending fails now. */
static void
message_expire(struct qmsg *m, time_t now)
{
	char		 err[TEXT_MAX];
	uint32_t	 i;
	int		 n = 0;

	for (i = 0; i < m->nrcpts; i++) {
		struct qrcpt	*r = &m->rcpts[i];

		if (r->state != RS_PENDING)
			continue;
		/* The last error is cut to fit: the status code matters. */
		if (snprintf(err, sizeof(err), "4.4.7 delivery time expired "
		    "after %lld hours%s%.400s", (long long)(now - m->created) /
		    3600, r->last_error[0] ? "; last error: " : "",
		    r->last_error) < 0)
			err[0] = '\0';
		strlcpy(r->last_error, err, sizeof(r->last_error));
		r->state = RS_FAILED;
		n++;
		log_info("%s: to=<%s>, status=expired (%s)", m->msgid,
		    r->dlv.rcpt, err);
	}
	if (n)
		stat_increment("queue.expired", n);
	message_settle(m);
}

/* A delay warning, once per recipient, when configured and wanted. */
static void
message_warn(struct qmsg *m, time_t now)
{
	uint32_t	*idx, i, n = 0;

	if (m->reporting || m->sender[0] == '\0' ||
	    (idx = calloc(m->nrcpts, sizeof(*idx))) == NULL)
		return;
	for (i = 0; i < m->nrcpts; i++) {
		struct qrcpt	*r = &m->rcpts[i];

		if (r->state != RS_PENDING || r->attempts == 0 ||
		    (r->dsn & RCPT_DSN_WARNED))
			continue;
		if (r->dlv.notify != 0 && !(r->dlv.notify & DSN_NOTIFY_DELAY)) {
			r->dsn |= RCPT_DSN_WARNED;	/* not wanted */
			continue;
		}
		idx[n++] = i;
	}
	if (n && bounce_report(m, DSN_DELAYED, idx, n) == 0)
		m->reporting++;
	free(idx);
}

static struct qmsg *
message_find(const char *msgid)
{
	struct qmsg	*m;

	TAILQ_FOREACH(m, &messages, entry)
		if (strcmp(m->msgid, msgid) == 0)
			return m;
	return NULL;
}

void
scheduler_reported(const char *msgid, enum dsn_kind kind, const uint32_t *idx,
    size_t n, int ok)
{
	struct qmsg	*m;
	size_t		 i;

	if ((m = message_find(msgid)) == NULL)
		return;
	if (m->reporting > 0)
		m->reporting--;
	if (!ok) {
		/* Try again at the next scheduler pass that settles it. */
		scheduler_arm();
		return;
	}
	for (i = 0; i < n; i++)
		if (idx[i] < m->nrcpts)
			m->rcpts[idx[i]].dsn |= kind == DSN_DELAYED ?
			    RCPT_DSN_WARNED : RCPT_DSN_DONE;
	if (m->inflight)
		return;		/* settled when the batch ends */
	message_settle(m);
}

/*
 * After a batch: recipients it carried but got no result for are due
 * again (at `retry`); the message settles once no batch of it is out.
 */
static void
batch_end(struct batch *b, time_t retry)
{
	struct qmsg	*m = b->msg;
	uint32_t	 i;
	int		 w = worker_index(b->worker);

	if (w != -1)
		worker_load[w]--;
	for (i = 0; i < b->n; i++)
		if (m->rcpts[b->idx[i]].state == RS_INFLIGHT) {
			m->rcpts[b->idx[i]].state = RS_PENDING;
			m->rcpts[b->idx[i]].next_try = retry;
		}
	TAILQ_REMOVE(&batches, b, entry);
	b->dest->inflight--;
	total_inflight--;
	dest_release(b->dest);
	m->inflight--;
	free(b->idx);
	free(b);
	if (m->inflight == 0)
		message_settle(m);
	else if (queue_backend->envelope_update(m) == -1)
		log_warn("%s: cannot update the envelope", m->msgid);
}

/* Deferred recipients for a destination that delivers again: due now. */
static void
dest_retry_soon(struct dest *x)
{
	struct qmsg	*m;
	char		 key[ADDR_MAX + 16];
	time_t		 now = time(NULL);
	uint32_t	 i;
	int		 n = 0;

	x->deferred = 0;
	TAILQ_FOREACH(m, &messages, entry)
		for (i = 0; i < m->nrcpts; i++) {
			if (m->rcpts[i].state != RS_PENDING ||
			    m->rcpts[i].next_try <= now)
				continue;
			dest_key(&m->rcpts[i].dlv, key, sizeof(key));
			if (strcmp(key, x->key) == 0) {
				m->rcpts[i].next_try = now;
				n++;
			}
		}
	if (n)
		log_info("%s: delivers again: %d deferred recipients due now",
		    x->key, n);
	scheduler_kick();
}

void
scheduler_done(struct channel *c, struct imsg *imsg)
{
	struct batch	*b;

	if ((b = batch_find(c, imsg->hdr.peerid)) == NULL) {
		channel_malformed(c, imsg);
		return;
	}
	batch_end(b, time(NULL));
	scheduler_kick();
}

/* A deliver-worker died: what it held is tried again soon. */
void
scheduler_worker_lost(struct channel *c)
{
	struct batch	*b, *next;
	int		 w = worker_index(c);

	for (b = TAILQ_FIRST(&batches); b; b = next) {
		next = TAILQ_NEXT(b, entry);
		if (b->worker != c)
			continue;
		batch_end(b, time(NULL) + LOST_RETRY_SECS);
	}
	if (w != -1)
		workers[w] = NULL;
	scheduler_arm();
}

/* Does `target` ("" or "all": every message) name this message? */
static int
op_matches(const struct qmsg *m, enum ctl_op op, const char *target)
{
	const char	*at;
	uint32_t	 i;

	if (target[0] == '\0' || strcmp(target, "all") == 0)
		return 1;
	if (strcmp(target, m->msgid) == 0)
		return 1;
	if (op != CTL_OP_FLUSH)
		return 0;
	/* flush DOMAIN: messages with a recipient there */
	for (i = 0; i < m->nrcpts; i++)
		if ((at = strrchr(m->rcpts[i].dlv.rcpt, '@')) != NULL &&
		    strcasecmp(at + 1, target) == 0)
			return 1;
	return 0;
}

static int
op_one(struct qmsg *m, enum ctl_op op, time_t now)
{
	uint32_t	 i;
	int		 n = 0;

	switch (op) {
	case CTL_OP_FLUSH:
	case CTL_OP_SCHEDULE:
		for (i = 0; i < m->nrcpts; i++)
			if (m->rcpts[i].state == RS_PENDING) {
				m->rcpts[i].next_try = now;
				n++;
			}
		return n;
	case CTL_OP_HOLD:
	case CTL_OP_RELEASE:
		if ((op == CTL_OP_HOLD) == !!(m->flags & MSG_F_HELD))
			return 0;
		m->flags ^= MSG_F_HELD;
		if (queue_backend->envelope_update(m) == -1)
			log_warn("%s: cannot update the envelope", m->msgid);
		log_info("%s: %s by the operator", m->msgid,
		    op == CTL_OP_HOLD ? "held" : "released");
		return 1;
	case CTL_OP_REMOVE:
		if (m->inflight || m->reporting)
			return -1;	/* busy: the caller says so */
		if (queue_backend->message_delete(m->msgid, m->nrcpts) == -1) {
			log_warn("%s: cannot remove", m->msgid);
			return -1;
		}
		log_info("%s: removed by the operator", m->msgid);
		message_remove(m);
		return 1;
	default:
		return 0;
	}
}

/*
 * An operator's request on one message, every message or (flush) a domain.
 * Returns what it touched (recipients for flush/schedule, messages for the
 * others), -1 when a named message does not exist, -2 when it is busy.
 */
int
scheduler_op(int op, const char *target)
{
	struct qmsg	*m, *next;
	time_t		 now = time(NULL);
	int		 n = 0, r, found = 0, busy = 0;

	for (m = TAILQ_FIRST(&messages); m; m = next) {
		next = TAILQ_NEXT(m, entry);
		if (!op_matches(m, op, target))
			continue;
		found++;
		if ((r = op_one(m, op, now)) < 0)
			busy++;
		else
			n += r;
	}
	scheduler_kick();
	if (!found && target[0] && strcmp(target, "all") != 0)
		return -1;
	if (busy && n == 0)
		return -2;
	return n;
}

void
scheduler_pause(int on)
{
	paused = on;
	log_info("delivery %s", on ? "paused" : "resumed");
	if (!on)
		scheduler_kick();
}

/* `show message`: its recipients, then its header block. */
int
scheduler_show_message(struct channel *c, uint32_t id, const char *msgid)
{
	struct qmsg	*m = message_find(msgid);
	struct mbuf	 mb;
	char		 buf[8192];
	ssize_t		 n;
	size_t		 have = 0;
	off_t		 off = 0;
	int		 fd;
	char		*end;

	if (m == NULL)
		return -1;
	show_rows(c, id, m, 1);
	if ((fd = queue_backend->message_fd(msgid)) == -1)
		return 0;
	/* Headers only: up to the first empty line, 64 KiB at most. */
	while (off < 65536 && (n = pread(fd, buf + have, sizeof(buf) - 1 - have,
	    off)) > 0) {
		off += n;
		have += (size_t)n;
		buf[have] = '\0';
		if ((end = strstr(buf, "\r\n\r\n")) != NULL)
			have = (size_t)(end - buf) + 2;
		if (end != NULL || have == sizeof(buf) - 1) {
			buf[have] = '\0';
			m_init(&mb);
			m_add_str(&mb, buf);
			channel_send_m(c, IMSG_CTL_TEXT, id, -1, &mb);
			m_free(&mb);
			have = 0;
			if (end != NULL)
				break;
		}
	}
	close(fd);
	return 0;
}

static const char *
show_state(const struct qmsg *m, const struct qrcpt *r)
{
	switch (r->state) {
	case RS_INFLIGHT:
		return "delivering";
	case RS_DELIVERED:
		return "delivered";
	case RS_FAILED:
		return "failed";
	default:
		if (m->flags & MSG_F_HELD)
			return "held";
		return r->attempts ? "deferred" : "queued";
	}
}

/* One row per recipient still to do (or every one when `all`). */
static void
show_rows(struct channel *c, uint32_t id, const struct qmsg *m, int all)
{
	struct mbuf	 mb;
	uint32_t	 i;

	for (i = 0; i < m->nrcpts; i++) {
		const struct qrcpt	*r = &m->rcpts[i];

		if (!all && (r->state == RS_DELIVERED ||
		    r->state == RS_FAILED))
			continue;
		m_init(&mb);
		m_add_str(&mb, m->msgid);
		m_add_str(&mb, m->sender);
		m_add_str(&mb, r->dlv.rcpt);
		m_add_str(&mb, show_state(m, r));
		m_add_u32(&mb, r->attempts);
		m_add_i64(&mb, (int64_t)m->created);
		m_add_i64(&mb, (int64_t)r->next_try);
		m_add_str(&mb, r->last_error);
		channel_send_m(c, IMSG_CTL_QUEUE_ENTRY, id, -1, &mb);
		m_free(&mb);
	}
}

void
scheduler_show_queue(struct channel *c, uint32_t id)
{
	struct qmsg	*m;

	TAILQ_FOREACH(m, &messages, entry)
		show_rows(c, id, m, 0);
	channel_send(c, IMSG_CTL_END, id, -1, NULL, 0);
}

void
scheduler_stop(void)
{
	stopped = 1;
	event_del(timer);
}
