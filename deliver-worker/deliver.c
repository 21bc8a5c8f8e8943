/*
 * The deliver-worker process: takes batches from the queue and delivers each
 * recipient.  Local mailboxes need the recipient's privileges, so those go to
 * the master (IMSG_MDA_DELIVER) with a copy of the message descriptor.
 * Remote SMTP runs here in the worker itself (mta.c): the recipients of a
 * batch that share a relay action become jobs of at most MTA_RCPTS_PER_TX.
 * Relay actions are looked up in the configuration the worker was started
 * with: a reload does not change them (a restart does).
 */
#include "autoconf.h"

#include <sys/queue.h>

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "config.h"
#include "deliver.h"
#include "log.h"
#include "mta.h"
#include "sandbox.h"
#include "stats.h"
#include "store.h"
#include "util.h"

struct batch {
	TAILQ_ENTRY(batch)	 entry;
	uint32_t		 id;		/* the queue's batch id */
	struct channel		*queue;
	char			 msgid[MSGID_SIZE];
	char			 sender[ADDR_MAX];
	char			 helo[HELO_MAX];
	char			 client_addr[64];
	char			 auth_user[256];
	char			 proto[16];
	time_t			 received;
	int			 fd;
	int			 outstanding;
};

struct request {
	TAILQ_ENTRY(request)	 entry;
	uint32_t		 id;
	struct batch		*batch;		/* NULL if the queue left */
	uint32_t		 index;
};

/* A relay job's tie to its batch. */
struct rjob {
	TAILQ_ENTRY(rjob)	 entry;
	struct batch		*batch;		/* NULL if the queue left */
};

static struct config		*conf;
static struct event_base	*base;
static struct channel		*master_chan;
static struct channel		*queue_chan;
static TAILQ_HEAD(, batch)	 batches = TAILQ_HEAD_INITIALIZER(batches);
static TAILQ_HEAD(, request)	 requests = TAILQ_HEAD_INITIALIZER(requests);
static TAILQ_HEAD(, rjob)	 rjobs = TAILQ_HEAD_INITIALIZER(rjobs);
static uint32_t			 next_request = 1;
static int			 shutting_down;

static void
maybe_exit(void)
{
	if (shutting_down && TAILQ_EMPTY(&requests) && mta_busy() == 0)
		exit(0);
}

static void
batch_free(struct batch *b)
{
	TAILQ_REMOVE(&batches, b, entry);
	if (b->fd != -1)
		close(b->fd);
	free(b);
}

static void	batch_unref(struct batch *);

static void
report(struct batch *b, uint32_t index, uint32_t status, const char *text)
{
	struct mbuf	 m;

	if (b->queue) {
		m_init(&m);
		m_add_u32(&m, index);
		m_add_u32(&m, status);
		m_add_str(&m, text);
		channel_send_m(b->queue, IMSG_DELIVER_RESULT, b->id, -1, &m);
		m_free(&m);
	}
	stat_increment(status == DLV_OK ? "deliver.ok" :
	    status == DLV_TEMPFAIL ? "deliver.tempfail" : "deliver.permfail", 1);
	batch_unref(b);
}

/* The batch is done when every recipient reported. */
static void
batch_unref(struct batch *b)
{
	if (--b->outstanding == 0) {
		if (b->queue)
			channel_send(b->queue, IMSG_DELIVER_DONE, b->id, -1,
			    NULL, 0);
		batch_free(b);
	}
}

static void
deliver_local(struct batch *b, uint32_t index, const struct dlv *dlv)
{
	struct request	*rq;
	struct mbuf	 m;
	int		 fd;

	if ((rq = calloc(1, sizeof(*rq))) == NULL ||
	    (fd = dup(b->fd)) == -1) {
		free(rq);
		report(b, index, DLV_TEMPFAIL, "4.3.0 out of resources");
		return;
	}
	rq->id = next_request++;
	rq->batch = b;
	rq->index = index;
	TAILQ_INSERT_TAIL(&requests, rq, entry);
	m_init(&m);
	m_add_str(&m, b->msgid);
	m_add_u32(&m, index);
	m_add_str(&m, b->sender);
	dlv_add(&m, dlv);
	channel_send_m(master_chan, IMSG_MDA_DELIVER, rq->id, fd, &m);
	m_free(&m);
}

static void
relay_result(void *arg, uint32_t index, int status, const char *text)
{
	struct rjob	*rj = arg;

	if (rj->batch != NULL)
		report(rj->batch, index, (uint32_t)status, text);
}

static void
relay_done(void *arg)
{
	struct rjob	*rj = arg;

	TAILQ_REMOVE(&rjobs, rj, entry);
	free(rj);
	maybe_exit();
}

/*
 * The relay recipients of a batch, dlvs[0..n) (all DLV_RELAY): one job per
 * action, of at most MTA_RCPTS_PER_TX recipients.  The queue groups a
 * batch by domain already.
 */
static void
deliver_relay(struct batch *b, const char *envid, uint32_t ret,
    struct dlv *dlvs, uint32_t *idx, size_t n)
{
	struct dlv	*grp;
	uint32_t	*gidx;
	struct rjob	*rj;
	size_t		 i, j, k, ng;
	int		 fd;

	if ((grp = calloc(n, sizeof(*grp))) == NULL ||
	    (gidx = calloc(n, sizeof(*gidx))) == NULL) {
		free(grp);
		for (i = 0; i < n; i++)
			report(b, idx[i], DLV_TEMPFAIL, "4.3.0 out of memory");
		return;
	}
	for (i = 0; i < n; i++) {
		if (dlvs[i].kind != DLV_RELAY)
			continue;	/* taken by an earlier group */
		ng = 0;
		for (j = i; j < n; j++)
			if (dlvs[j].kind == DLV_RELAY &&
			    strcmp(dlvs[j].action, dlvs[i].action) == 0) {
				grp[ng] = dlvs[j];
				gidx[ng++] = idx[j];
				if (j != i)
					dlvs[j].kind = DLV_NONE;
			}
		dlvs[i].kind = DLV_NONE;
		for (k = 0; k < ng; k += MTA_RCPTS_PER_TX) {
			size_t	m = ng - k < MTA_RCPTS_PER_TX ? ng - k :
				    MTA_RCPTS_PER_TX;

			rj = calloc(1, sizeof(*rj));
			fd = rj != NULL ? dup(b->fd) : -1;
			if (fd == -1 || mta_submit(grp[k].action, b->msgid,
			    b->sender, envid, ret, fd, &grp[k], &gidx[k], m,
			    relay_result, relay_done, rj) == -1) {
				if (fd != -1)
					close(fd);
				free(rj);
				for (j = 0; j < m; j++)
					report(b, gidx[k + j], DLV_TEMPFAIL,
					    "4.3.0 out of resources");
				continue;
			}
			rj->batch = b;
			TAILQ_INSERT_TAIL(&rjobs, rj, entry);
		}
	}
	free(grp);
	free(gidx);
}

/*
 * The store recipients of a batch, in one call: the message is parsed
 * once and the documents written together.  Synchronous, bounded by the
 * store's timeouts.
 */
static void
deliver_store(struct batch *b, const struct dlv *dlvs, const uint32_t *idx,
    uint32_t n)
{
	const struct dlv	**sel;
	uint32_t		 *sidx, *status, i, ns = 0;
	char			(*text)[TEXT_MAX];
	struct store_msg	  m;

	sel = calloc(n, sizeof(*sel));
	sidx = calloc(n, sizeof(*sidx));
	status = calloc(n, sizeof(*status));
	text = calloc(n, sizeof(*text));
	if (sel == NULL || sidx == NULL || status == NULL || text == NULL) {
		for (i = 0; i < n; i++)
			if (dlvs[i].kind == DLV_MONGO)
				report(b, idx[i], DLV_TEMPFAIL,
				    "4.3.0 out of memory");
		goto done;
	}
	for (i = 0; i < n; i++)
		if (dlvs[i].kind == DLV_MONGO) {
			sel[ns] = &dlvs[i];
			sidx[ns++] = idx[i];
		}
	memset(&m, 0, sizeof(m));
	m.msgid = b->msgid;
	m.sender = b->sender;
	m.helo = b->helo;
	m.client_addr = b->client_addr;
	m.auth_user = b->auth_user;
	m.proto = b->proto;
	m.received = b->received;
	m.fd = b->fd;
	store_deliver(&m, sel, ns, status, text);
	for (i = 0; i < ns; i++)
		report(b, sidx[i], status[i], text[i]);
done:
	free(sel);
	free(sidx);
	free(status);
	free(text);
}

static void
dispatch_batch(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	struct batch	*b;
	struct dlv	*dlvs = NULL, *relay = NULL;
	uint32_t	*idx = NULL, *relay_idx = NULL, n, i, nrelay = 0;
	char		 envid[ENVID_MAX] = "";
	uint32_t	 ret = DSN_RET_NONE;
	int64_t		 received;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		fatal("calloc");
	m_reader(&r, imsg);
	m_get_str(&r, b->msgid, sizeof(b->msgid));
	m_get_str(&r, b->sender, sizeof(b->sender));
	n = m_get_u32(&r);
	if (r.err || n == 0 || n > IMSG_MAX_PAYLOAD / 24 ||
	    (dlvs = calloc(n, sizeof(*dlvs))) == NULL ||
	    (idx = calloc(n, sizeof(*idx))) == NULL) {
		free(b);
		free(dlvs);
		channel_malformed(chan, imsg);
		return;
	}
	for (i = 0; i < n; i++) {
		idx[i] = m_get_u32(&r);
		dlv_get(&r, &dlvs[i]);
	}
	m_get_str(&r, envid, sizeof(envid));
	ret = m_get_u32(&r);
	m_get_str(&r, b->helo, sizeof(b->helo));
	m_get_str(&r, b->client_addr, sizeof(b->client_addr));
	m_get_str(&r, b->auth_user, sizeof(b->auth_user));
	m_get_str(&r, b->proto, sizeof(b->proto));
	received = m_get_i64(&r);
	b->received = (time_t)received;
	if (m_end(&r) == -1 || !msgid_is_valid(b->msgid) ||
	    ret > DSN_RET_HDRS) {
		free(b);
		free(dlvs);
		free(idx);
		channel_malformed(chan, imsg);
		return;
	}
	b->id = imsg->hdr.peerid;
	b->queue = chan;
	b->fd = imsg->fd;
	imsg->fd = -1;
	/* One more than the recipients: held while they are handed out. */
	b->outstanding = (int)n + 1;
	TAILQ_INSERT_TAIL(&batches, b, entry);
	log_trace(TRACE_DELIVER, "%s: batch %u, %u recipients", b->msgid,
	    b->id, n);
	if ((relay = calloc(n, sizeof(*relay))) == NULL ||
	    (relay_idx = calloc(n, sizeof(*relay_idx))) == NULL)
		fatal("calloc");
	/*
	 * The relay jobs go first: reports of local deliveries may end the
	 * batch, and none of them can come before this function returns.
	 */
	for (i = 0; i < n; i++)
		if (dlvs[i].kind == DLV_RELAY) {
			relay[nrelay] = dlvs[i];
			relay_idx[nrelay++] = idx[i];
		}
	if (nrelay > 0)
		deliver_relay(b, envid, ret, relay, relay_idx, nrelay);
	for (i = 0; i < n; i++)
		if (dlvs[i].kind == DLV_MONGO) {
			deliver_store(b, dlvs, idx, n);
			break;
		}
	for (i = 0; i < n; i++) {
		switch (dlvs[i].kind) {
		case DLV_MBOX:
		case DLV_MAILDIR:
			deliver_local(b, idx[i], &dlvs[i]);
			break;
		case DLV_RELAY:
		case DLV_MONGO:
			break;
		default:
			report(b, idx[i], DLV_PERMFAIL,
			    "5.3.5 delivery method not supported");
		}
	}
	free(relay);
	free(relay_idx);
	free(dlvs);
	free(idx);
	batch_unref(b);
}

static void
dispatch_mda_result(struct channel *chan, struct imsg *imsg)
{
	struct request	*rq;
	struct mreader	 r;
	char		 text[TEXT_MAX];
	uint32_t	 status;

	m_reader(&r, imsg);
	status = m_get_u32(&r);
	m_get_str(&r, text, sizeof(text));
	if (m_end(&r) == -1 || status > DLV_PERMFAIL) {
		channel_malformed(chan, imsg);
		return;
	}
	TAILQ_FOREACH(rq, &requests, entry)
		if (rq->id == imsg->hdr.peerid)
			break;
	if (rq == NULL)
		return;
	TAILQ_REMOVE(&requests, rq, entry);
	if (rq->batch)
		report(rq->batch, rq->index, status, text);
	free(rq);
	maybe_exit();
}

static void
queue_dispatch(struct channel *chan, struct imsg *imsg)
{
	if (imsg->hdr.type == IMSG_DELIVER_BATCH)
		dispatch_batch(chan, imsg);
	else
		channel_malformed(chan, imsg);
}

static void
queue_closed(struct channel *chan, int malformed)
{
	struct batch	*b, *next;
	struct request	*rq;
	struct rjob	*rj;

	if (malformed)
		proc_report_bad_peer(master_chan, chan);
	/* The queue will retry from its spool: results have nowhere to go. */
	for (b = TAILQ_FIRST(&batches); b; b = next) {
		next = TAILQ_NEXT(b, entry);
		if (b->queue != chan)
			continue;
		TAILQ_FOREACH(rq, &requests, entry)
			if (rq->batch == b)
				rq->batch = NULL;
		TAILQ_FOREACH(rj, &rjobs, entry)
			if (rj->batch == b) {
				rj->batch = NULL;
				mta_cancel(rj);
			}
		batch_free(b);
	}
	if (queue_chan == chan)
		queue_chan = NULL;
	channel_free(chan);
}

static void
add_queue(int fd, int slot)
{
	struct channel	*c;

	c = channel_new(base, fd, PROC_QUEUE, slot, queue_dispatch,
	    queue_closed, NULL);
	if (c == NULL)
		fatalx("channel_new");
	queue_chan = c;
}

static void
master_dispatch_deliver(struct channel *chan, struct imsg *imsg)
{
	enum proc_kind	 kind;
	int		 slot;

	if (proc_master_common(chan, imsg))
		return;
	switch (imsg->hdr.type) {
	case IMSG_PEER_CONNECT:
		if (proc_peer_connect(chan, imsg, P(PROC_QUEUE), &kind,
		    &slot) == -1)
			return;
		add_queue(imsg->fd, slot);
		imsg->fd = -1;
		break;
	case IMSG_MDA_RESULT:
		dispatch_mda_result(chan, imsg);
		break;
	case IMSG_SHUTDOWN:
		shutting_down = 1;
		mta_shutdown();
		maybe_exit();
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

void
deliver_main(struct config *c, struct proc_env *env)
{
	int	 i;

	conf = c;
	proc_init(env, "deliver-worker");
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new");
	/* Resolver configuration, CA files: read before the chroot. */
	if (mta_init(base, conf) == -1)
		log_warnx("remote delivery is not set up: relayed mail will "
		    "be deferred");
	if (store_init(conf) == -1)
		log_warnx("the MongoDB store is not set up: its mail will be "
		    "deferred");
	sandbox_drop(conf->chroot_path, env->user, env->uid, env->gid);
	master_chan = channel_new(base, env->master_fd, PROC_MASTER, 0,
	    master_dispatch_deliver, master_closed, NULL);
	if (master_chan == NULL)
		fatalx("channel_new");
	for (i = 0; i < env->npeers; i++)
		if (env->peers[i].kind == PROC_QUEUE)
			add_queue(env->peers[i].fd, env->peers[i].slot);
	if (conf->sandbox)
		sandbox_seccomp(PROC_DELIVER);
	event_base_dispatch(base);
	exit(0);
}
