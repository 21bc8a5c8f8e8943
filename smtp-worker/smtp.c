/*
 * The smtp-worker process: accepts connections on the listeners inherited
 * from the master, keeps the sessions, and carries their questions to policy
 * and queue.  Replies are matched to sessions by id (the imsg peerid); a reply
 * for a session that is gone is dropped, or undone for a message file.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "proc.h"
#include "sandbox.h"
#include "smtp.h"
#include "stats.h"
#include "util.h"

#define OLD_POLICY_MAX	4

struct config		*smtp_conf;
struct event_base	*smtp_base;

static struct channel	*master_chan;
static struct channel	*policy_chan;
static struct channel	*old_policy[OLD_POLICY_MAX];	/* replaced by a reload */
static struct channel	*queue_chan;
static struct session_tree sessions = RB_INITIALIZER(&sessions);
static uint32_t		 next_session_id = 1;
static int		 nsessions;
static int		 shutting_down;
static int		 paused;

struct accepter {
	struct event	*ev;
	struct listener	*listener;
	struct event	*pause_ev;
};
static struct accepter	*accepters;
static int		 naccepters;

static int
session_cmp(struct smtp_session *a, struct smtp_session *b)
{
	return a->id < b->id ? -1 : a->id > b->id;
}
RB_GENERATE(session_tree, smtp_session, entry, session_cmp);

static struct smtp_session *
session_find(uint32_t id)
{
	struct smtp_session	 key;

	key.id = id;
	return RB_FIND(session_tree, &sessions, &key);
}

static void
maybe_exit(void)
{
	if (shutting_down && nsessions == 0) {
		log_debug("no sessions left: exiting");
		exit(0);
	}
}

void
smtp_session_register(struct smtp_session *s)
{
	do {
		s->id = next_session_id++;
	} while (s->id == 0 || session_find(s->id) != NULL);
	RB_INSERT(session_tree, &sessions, s);
	nsessions++;
	stat_set("smtp.connections.active", nsessions);
}

void
smtp_session_unregister(struct smtp_session *s)
{
	RB_REMOVE(session_tree, &sessions, s);
	nsessions--;
	stat_set("smtp.connections.active", nsessions);
	maybe_exit();
}

int
smtp_accepting(void)
{
	return !shutting_down;
}

/* ---- questions from sessions ------------------------------------------- */

static void
add_client(struct mbuf *m, struct smtp_session *s)
{
	m_add_str(m, s->client_addr);
	m_add_u32(m, (uint32_t)s->client_local);
	m_add_str(m, s->helo);
	m_add_str(m, s->auth_user);
}

int
smtp_policy_connect(struct smtp_session *s)
{
	struct mbuf	 m;

	if (policy_chan == NULL || policy_chan->dead)
		return -1;
	m_init(&m);
	m_add_str(&m, s->client_addr);
	channel_send_m(policy_chan, IMSG_POLICY_CONNECT, s->id, -1, &m);
	m_free(&m);
	s->policy_connected = 1;
	return 0;
}

void
smtp_policy_disconnect(struct smtp_session *s)
{
	if (!s->policy_connected)
		return;
	s->policy_connected = 0;
	if (policy_chan != NULL && !policy_chan->dead)
		channel_send(policy_chan, IMSG_POLICY_DISCONNECT, s->id, -1,
		    NULL, 0);
}

int
smtp_policy_auth(struct smtp_session *s, const char *user, const char *pass)
{
	struct mbuf	 m;

	if (policy_chan == NULL || policy_chan->dead ||
	    s->listener->auth == NULL)
		return -1;
	m_init(&m);
	m_add_str(&m, s->client_addr);
	m_add_str(&m, s->listener->auth->name);
	m_add_str(&m, user);
	m_add_str(&m, pass);
	if (!m.err)
		channel_send_m(policy_chan, IMSG_POLICY_AUTH, s->id, -1, &m);
	explicit_bzero(m.data, m.len);
	m_free(&m);
	return 0;
}

int
smtp_policy_mail(struct smtp_session *s)
{
	struct mbuf	 m;

	if (policy_chan == NULL || policy_chan->dead)
		return -1;
	m_init(&m);
	add_client(&m, s);
	m_add_str(&m, s->sender);
	channel_send_m(policy_chan, IMSG_POLICY_MAIL, s->id, -1, &m);
	m_free(&m);
	return 0;
}

int
smtp_policy_rcpt(struct smtp_session *s)
{
	struct mbuf	 m;

	if (policy_chan == NULL || policy_chan->dead)
		return -1;
	m_init(&m);
	add_client(&m, s);
	m_add_str(&m, s->sender);
	m_add_str(&m, s->rcpt);
	channel_send_m(policy_chan, IMSG_POLICY_RCPT, s->id, -1, &m);
	m_free(&m);
	return 0;
}

int
smtp_queue_create(struct smtp_session *s)
{
	if (queue_chan == NULL || queue_chan->dead)
		return -1;
	channel_send(queue_chan, IMSG_QUEUE_CREATE, s->id, -1, NULL, 0);
	return 0;
}

/* Deliveries go ahead of the commit, as many per frame as fit. */
static int
send_rcpts(struct smtp_session *s)
{
	struct mbuf	 m, one;
	size_t		 i = 0, n;

	while (i < s->ndlvs) {
		m_init(&m);
		for (n = 0; i + n < s->ndlvs; n++) {
			m_init(&one);
			dlv_add(&one, &s->dlvs[i + n]);
			if (one.err || m.len + one.len > IMSG_MAX_PAYLOAD - 64) {
				m_free(&one);
				break;
			}
			m_add_data(&m, one.data, one.len);
			m_free(&one);
		}
		if (n == 0 || m.err) {
			m_free(&m);
			return -1;
		}
		{
			struct mbuf	 frame;

			m_init(&frame);
			m_add_str(&frame, s->msgid);
			m_add_u32(&frame, (uint32_t)n);
			m_add_data(&frame, m.data, m.len);
			channel_send_m(queue_chan, IMSG_QUEUE_RCPTS, s->id, -1,
			    &frame);
			m_free(&frame);
		}
		m_free(&m);
		i += n;
	}
	return 0;
}

int
smtp_queue_commit(struct smtp_session *s, uint64_t size)
{
	struct mbuf	 m;

	if (queue_chan == NULL || queue_chan->dead)
		return -1;
	if (send_rcpts(s) == -1)
		return -1;
	m_init(&m);
	m_add_str(&m, s->msgid);
	m_add_u64(&m, size);
	m_add_str(&m, s->sender);
	m_add_str(&m, s->helo);
	m_add_str(&m, s->client_addr);
	m_add_str(&m, "");	/* client name: no reverse DNS */
	m_add_str(&m, s->auth_user);
	m_add_str(&m, smtp_session_proto(s));
	m_add_str(&m, s->envid);
	m_add_u32(&m, s->ret);
	m_add_u32(&m, (uint32_t)s->ndlvs);
	if (m.err) {
		m_free(&m);
		return -1;
	}
	channel_send_m(queue_chan, IMSG_QUEUE_COMMIT, s->id, -1, &m);
	m_free(&m);
	return 0;
}

void
smtp_queue_abort(const char *msgid)
{
	struct mbuf	 m;

	if (queue_chan == NULL || queue_chan->dead)
		return;
	m_init(&m);
	m_add_str(&m, msgid);
	channel_send_m(queue_chan, IMSG_QUEUE_ABORT, 0, -1, &m);
	m_free(&m);
}

/* ---- answers ------------------------------------------------------------ */

static void
dispatch_policy_rcpt(struct channel *chan, struct imsg *imsg)
{
	struct smtp_session	*s;
	struct mreader		 r;
	struct dlv		*dlv = NULL;
	char			 text[TEXT_MAX];
	uint32_t		 code, n, i;

	m_reader(&r, imsg);
	code = m_get_u32(&r);
	m_get_str(&r, text, sizeof(text));
	n = m_get_u32(&r);
	if (r.err || code < 200 || code > 599 || n > IMSG_MAX_PAYLOAD / 24 ||
	    (n > 0 && code / 100 != 2)) {
		channel_malformed(chan, imsg);
		return;
	}
	if (n > 0 && (dlv = calloc(n, sizeof(*dlv))) == NULL) {
		code = 451;
		strlcpy(text, "4.3.0 Out of memory", sizeof(text));
		n = 0;
	}
	for (i = 0; i < n; i++)
		dlv_get(&r, &dlv[i]);
	if (dlv != NULL && m_end(&r) == -1) {
		free(dlv);
		channel_malformed(chan, imsg);
		return;
	}
	if ((s = session_find(imsg->hdr.peerid)) != NULL &&
	    s->state == S_WAIT_RCPT)
		smtp_reply_rcpt(s, (int)code, text, dlv, n);
	free(dlv);
}

/* MAIL_RES, CONNECT_RES and AUTH_RES: a code and a text. */
static void
dispatch_policy_answer(struct channel *chan, struct imsg *imsg)
{
	struct smtp_session	*s;
	struct mreader		 r;
	char			 text[TEXT_MAX];
	uint32_t		 code;

	m_reader(&r, imsg);
	code = m_get_u32(&r);
	m_get_str(&r, text, sizeof(text));
	if (m_end(&r) == -1 || code < 200 || code > 599) {
		channel_malformed(chan, imsg);
		return;
	}
	if ((s = session_find(imsg->hdr.peerid)) == NULL)
		return;
	if (imsg->hdr.type == IMSG_POLICY_MAIL_RES && s->state == S_WAIT_MAIL)
		smtp_reply_mail(s, (int)code, text);
	else if (imsg->hdr.type == IMSG_POLICY_CONNECT_RES &&
	    s->state == S_WAIT_CONNECT)
		smtp_reply_connect(s, (int)code, text);
	else if (imsg->hdr.type == IMSG_POLICY_AUTH_RES &&
	    s->state == S_WAIT_AUTH)
		smtp_reply_auth(s, (int)code, text);
}

static void
dispatch_queue_create(struct channel *chan, struct imsg *imsg)
{
	struct smtp_session	*s;
	struct mreader		 r;
	char			 msgid[MSGID_SIZE];
	uint32_t		 ok;

	m_reader(&r, imsg);
	ok = m_get_u32(&r);
	m_get_str(&r, msgid, sizeof(msgid));
	if (m_end(&r) == -1 || ok > QUEUE_NOSPACE || (ok == QUEUE_OK &&
	    (!msgid_is_valid(msgid) || imsg->fd == -1))) {
		channel_malformed(chan, imsg);
		return;
	}
	s = session_find(imsg->hdr.peerid);
	if (s == NULL || s->state != S_WAIT_DATAFILE) {
		/* The client left meanwhile: drop the file. */
		if (ok == QUEUE_OK)
			smtp_queue_abort(msgid);
		return;
	}
	smtp_reply_create(s, (int)ok, msgid, imsg->fd);
	imsg->fd = -1;
}

static void
dispatch_queue_commit(struct channel *chan, struct imsg *imsg)
{
	struct smtp_session	*s;
	struct mreader		 r;
	char			 msgid[MSGID_SIZE], text[TEXT_MAX];
	uint32_t		 ok;

	m_reader(&r, imsg);
	ok = m_get_u32(&r);
	m_get_str(&r, msgid, sizeof(msgid));
	m_get_str(&r, text, sizeof(text));
	if (m_end(&r) == -1) {
		channel_malformed(chan, imsg);
		return;
	}
	if ((s = session_find(imsg->hdr.peerid)) != NULL &&
	    s->state == S_WAIT_COMMIT && strcmp(s->msgid, msgid) == 0)
		smtp_reply_commit(s, (int)ok, text);
}

static void
peer_dispatch(struct channel *chan, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_POLICY_RCPT_RES:
		dispatch_policy_rcpt(chan, imsg);
		break;
	case IMSG_POLICY_MAIL_RES:
	case IMSG_POLICY_CONNECT_RES:
	case IMSG_POLICY_AUTH_RES:
		dispatch_policy_answer(chan, imsg);
		break;
	case IMSG_QUEUE_CREATE_RES:
		dispatch_queue_create(chan, imsg);
		break;
	case IMSG_QUEUE_COMMIT_RES:
		dispatch_queue_commit(chan, imsg);
		break;
	default:
		channel_malformed(chan, imsg);
	}
}

/* Sessions waiting on a vanished peer get a temporary failure. */
static void
fail_waiting_sessions(enum proc_kind kind)
{
	struct smtp_session	*s, *next;

	RB_FOREACH_SAFE(s, session_tree, &sessions, next)
		smtp_session_peer_lost(s, kind);
}

static void
peer_closed(struct channel *chan, int malformed)
{
	int	 i, current = 0;

	if (malformed)
		proc_report_bad_peer(master_chan, chan);
	if (chan == policy_chan) {
		policy_chan = NULL;
		current = 1;
	} else if (chan == queue_chan) {
		queue_chan = NULL;
		current = 1;
	}
	for (i = 0; i < OLD_POLICY_MAX; i++)
		if (old_policy[i] == chan)
			old_policy[i] = NULL;
	/*
	 * A retired policy closing is normal; the current one or the queue
	 * closing leaves waiting sessions without an answer.
	 */
	if (current) {
		log_warnx("lost the %s process", proc_name(chan->peer));
		fail_waiting_sessions(chan->peer);
	}
	channel_free(chan);
}

static void
add_peer(enum proc_kind kind, int slot, int fd)
{
	struct channel	*c;
	int		 i;

	c = channel_new(smtp_base, fd, kind, slot, peer_dispatch, peer_closed,
	    NULL);
	if (c == NULL)
		fatalx("channel_new");
	if (kind == PROC_QUEUE) {
		if (queue_chan)
			channel_free(queue_chan);
		queue_chan = c;
		return;
	}
	if (policy_chan) {
		/* A reload: answers still due come on the old channel. */
		for (i = 0; i < OLD_POLICY_MAX && old_policy[i]; i++)
			;
		if (i < OLD_POLICY_MAX)
			old_policy[i] = policy_chan;
		else
			channel_free(policy_chan);
	}
	policy_chan = c;
}

/* ---- listeners ---------------------------------------------------------- */

static void
accept_resume(evutil_socket_t fd, short ev, void *arg)
{
	struct accepter	*a = arg;

	if (!shutting_down && !paused)
		event_add(a->ev, NULL);
}

static void
smtp_accept(evutil_socket_t fd, short ev, void *arg)
{
	struct accepter		*a = arg;
	struct sockaddr_storage	 ss;
	struct timeval		 tv = { 1, 0 };
	socklen_t		 len;
	int			 s, i;

	/* A few per wakeup: the other workers share the listener. */
	for (i = 0; i < 16; i++) {
		len = sizeof(ss);
		s = accept4(fd, (struct sockaddr *)&ss, &len,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (s == -1) {
			if (errno == EMFILE || errno == ENFILE) {
				log_warnx("accept: out of descriptors, "
				    "pausing for a second");
				stat_increment("smtp.accept.error.fd", 1);
				event_del(a->ev);
				evtimer_add(a->pause_ev, &tv);
			} else if (errno == ENOBUFS || errno == ENOMEM) {
				log_warn("accept");
				stat_increment("smtp.accept.error.memory", 1);
			} else if (errno == ECONNABORTED) {
				stat_increment("smtp.accept.error.aborted", 1);
			} else if (errno != EAGAIN && errno != EINTR) {
				log_warn("accept");
				stat_increment("smtp.accept.error.other", 1);
			}
			return;
		}
		stat_increment("smtp.connections", 1);
		if (nsessions >= smtp_conf->sessions_per_worker) {
			/* Refused here, not queued in the kernel: the client
			 * hears why and may try another worker or MX. */
			static const char busy[] = "421 4.7.0 Too many "
			    "sessions, try again later\r\n";

			stat_increment("smtp.accept.error.sessions", 1);
			(void)write(s, busy, sizeof(busy) - 1);
			close(s);
			continue;
		}
		smtp_session_new(s, a->listener, (struct sockaddr *)&ss, len);
	}
}

static void
listeners_start(struct config *conf)
{
	struct listener	*l;
	int		 i = 0;

	TAILQ_FOREACH(l, &conf->listeners, entry)
		naccepters++;
	if (naccepters == 0)
		return;
	if ((accepters = calloc((size_t)naccepters, sizeof(*accepters))) == NULL)
		fatal("calloc");
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		accepters[i].listener = l;
		accepters[i].ev = event_new(smtp_base, l->fd,
		    EV_READ | EV_PERSIST, smtp_accept, &accepters[i]);
		accepters[i].pause_ev = evtimer_new(smtp_base, accept_resume,
		    &accepters[i]);
		if (accepters[i].ev == NULL || accepters[i].pause_ev == NULL ||
		    event_add(accepters[i].ev, NULL) == -1)
			fatalx("listener events");
		i++;
	}
}

/* mtactl pause smtp: the listeners stay open, only accepting stops. */
static void
listeners_pause(int on)
{
	int	 i;

	paused = on;
	for (i = 0; i < naccepters; i++) {
		if (on) {
			event_del(accepters[i].ev);
			event_del(accepters[i].pause_ev);
		} else if (!shutting_down && event_add(accepters[i].ev,
		    NULL) == -1)
			fatalx("event_add");
	}
}

static void
listeners_stop(void)
{
	int	 i;

	for (i = 0; i < naccepters; i++) {
		event_del(accepters[i].ev);
		event_del(accepters[i].pause_ev);
		close(accepters[i].listener->fd);
	}
}

/* ---- master ------------------------------------------------------------- */

static void
master_dispatch_smtp(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	enum proc_kind	 kind;
	int		 slot;
	uint32_t	 what, on;

	if (proc_master_common(chan, imsg))
		return;
	switch (imsg->hdr.type) {
	case IMSG_PEER_CONNECT:
		if (proc_peer_connect(chan, imsg, P(PROC_POLICY) | P(PROC_QUEUE),
		    &kind, &slot) == -1)
			return;
		add_peer(kind, slot, imsg->fd);
		imsg->fd = -1;
		break;
	case IMSG_CTL_PAUSE:
		m_reader(&r, imsg);
		what = m_get_u32(&r);
		on = m_get_u32(&r);
		if (m_end(&r) == -1 || what != CTL_PAUSE_SMTP) {
			channel_malformed(chan, imsg);
			return;
		}
		listeners_pause((int)on);
		break;
	case IMSG_SHUTDOWN:
		/* Stop accepting; finish the sessions we have. */
		shutting_down = 1;
		listeners_stop();
		log_info("shutting down: %d sessions left", nsessions);
		{
			struct smtp_session	*s, *next;

			RB_FOREACH_SAFE(s, session_tree, &sessions, next)
				smtp_session_shutdown(s);
		}
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
smtp_main(struct config *conf, struct proc_env *env)
{
	int	 i;

	smtp_conf = conf;
	proc_init(env, "smtp-worker");
	/* Certificates and keys are read before the chroot. */
	if (smtp_tls_init(conf) == -1)
		fatalx("cannot set up TLS");
	sandbox_drop(conf->chroot_path, env->user, env->uid, env->gid);
	if ((smtp_base = event_base_new()) == NULL)
		fatalx("event_base_new");
	master_chan = channel_new(smtp_base, env->master_fd, PROC_MASTER, 0,
	    master_dispatch_smtp, master_closed, NULL);
	if (master_chan == NULL)
		fatalx("channel_new");
	for (i = 0; i < env->npeers; i++)
		add_peer(env->peers[i].kind, env->peers[i].slot,
		    env->peers[i].fd);
	listeners_start(conf);
	if (conf->sandbox)
		sandbox_seccomp(PROC_SMTP);
	event_base_dispatch(smtp_base);
	exit(0);
}
