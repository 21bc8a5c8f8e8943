/*
 * The policy process: answers the smtp-workers' MAIL and RCPT questions from
 * the rules, tables and local accounts.  It holds no per-session state, so a
 * reload simply replaces it with a new process.
 */
#include "autoconf.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "channel.h"
#include "log.h"
#include "policy.h"
#include "ratelimit.h"
#include "ruleset.h"
#include "store_policy.h"
#include "sandbox.h"
#include "stats.h"
#include "util.h"

#define CLIENT_CHANNELS_MAX	128
#define AUTH_FIELD_MAX		256	/* a user name or password, NUL included */

static struct config		*conf;
static struct event_base	*base;
static struct channel		*master_chan;
static struct channel		*client_chans[CLIENT_CHANNELS_MAX];
static int			 shutting_down;

static void	policy_client_dispatch(struct channel *, struct imsg *);

/* Windows of the limits: a clock that does not jump with the date. */
static time_t
mono_now(void)
{
	struct timespec	 ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return time(NULL);
	return ts.tv_sec;
}

static void
reply(struct channel *chan, uint32_t type, uint32_t id, int code,
    const char *text, const struct dlv *dlv, size_t ndlv)
{
	struct mbuf	 m;
	size_t		 i;

	m_init(&m);
	m_add_u32(&m, (uint32_t)code);
	m_add_str(&m, text);
	if (type == IMSG_POLICY_RCPT_RES) {
		m_add_u32(&m, (uint32_t)ndlv);
		for (i = 0; i < ndlv; i++)
			dlv_add(&m, &dlv[i]);
	}
	if (m.err) {
		/* An alias list too large for one message. */
		m_free(&m);
		reply(chan, type, id, 452, "4.5.3 Too many recipients from "
		    "alias expansion", NULL, 0);
		return;
	}
	channel_send_m(chan, type, id, -1, &m);
	m_free(&m);
}

static void
policy_mail(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	char		 addr[64], helo[HELO_MAX], auth[USER_MAX * 4];
	char		 sender[ADDR_MAX];
	uint32_t	 local;

	m_reader(&r, imsg);
	m_get_str(&r, addr, sizeof(addr));
	local = m_get_u32(&r);
	m_get_str(&r, helo, sizeof(helo));
	m_get_str(&r, auth, sizeof(auth));
	m_get_str(&r, sender, sizeof(sender));
	if (m_end(&r) == -1) {
		channel_malformed(chan, imsg);
		return;
	}
	(void)local;
	stat_increment("policy.mail", 1);
	reply(chan, IMSG_POLICY_MAIL_RES, imsg->hdr.peerid, 250, "2.1.0 Ok",
	    NULL, 0);
}

/*
 * A full mailbox of the store refuses the recipient now (RFC 3463 4.2.2:
 * temporary, the owner may make room), not after the queue took it.
 */
static void
check_quotas(struct rcpt_result *res)
{
	size_t	 i;
	int	 full;

	for (i = 0; i < res->ndlv; i++) {
		if (res->dlv[i].kind != DLV_MONGO)
			continue;
		if ((full = store_mailbox_full(res->dlv[i].rcpt)) == 0)
			continue;
		res->code = full == 1 ? 452 : 451;
		(void)snprintf(res->text, sizeof(res->text), full == 1 ?
		    "4.2.2 <%s>: Mailbox full" : "4.3.0 <%s>: Temporary "
		    "lookup failure, try again later", res->dlv[i].rcpt);
		res->ndlv = 0;
		return;
	}
}

static void
policy_rcpt(struct channel *chan, struct imsg *imsg)
{
	struct rcpt_query	 q;
	struct rcpt_result	 res;
	struct mreader		 r;
	char			 addr[64], helo[HELO_MAX], auth[USER_MAX * 4];
	char			 sender[ADDR_MAX], rcpt[ADDR_MAX];

	m_reader(&r, imsg);
	m_get_str(&r, addr, sizeof(addr));
	q.client_local = (int)m_get_u32(&r);
	m_get_str(&r, helo, sizeof(helo));
	m_get_str(&r, auth, sizeof(auth));
	m_get_str(&r, sender, sizeof(sender));
	m_get_str(&r, rcpt, sizeof(rcpt));
	if (m_end(&r) == -1 || rcpt[0] == '\0') {
		channel_malformed(chan, imsg);
		return;
	}
	q.client_addr = addr;
	q.helo = helo;
	q.auth_user = auth;
	q.sender = sender;
	q.rcpt = rcpt;
	memset(&res, 0, sizeof(res));
	if (ruleset_eval(conf, &q, &res) == -1) {
		res.code = 451;
		strlcpy(res.text, "4.3.0 Temporary policy failure",
		    sizeof(res.text));
		res.ndlv = 0;
	}
	if (res.code / 100 == 2)
		check_quotas(&res);
	if (res.code / 100 == 2)
		stat_increment("policy.rcpt.accepted", 1);
	else {
		stat_increment("policy.rcpt.refused", 1);
		log_info("refused: client=%s, from=<%s>, to=<%s>: %d %s",
		    addr, sender, rcpt, res.code, res.text);
	}
	log_trace(TRACE_POLICY, "rcpt <%s> from %s: %d %s, %zu deliveries",
	    rcpt, addr, res.code, res.text, res.ndlv);
	reply(chan, IMSG_POLICY_RCPT_RES, imsg->hdr.peerid, res.code,
	    res.text, res.dlv, res.ndlv);
	rcpt_result_clear(&res);
}

/* Before the greeting: may this client connect now? */
static void
policy_connect(struct channel *chan, struct imsg *imsg)
{
	struct mreader		 r;
	char			 addr[64], text[TEXT_MAX];
	enum limit_verdict	 v;

	m_reader(&r, imsg);
	m_get_str(&r, addr, sizeof(addr));
	if (m_end(&r) == -1) {
		channel_malformed(chan, imsg);
		return;
	}
	v = limits_connect((uint64_t)(uintptr_t)chan, imsg->hdr.peerid, addr,
	    mono_now());
	stat_set("policy.connections", limits_connections());
	if (v == LIMIT_OK) {
		reply(chan, IMSG_POLICY_CONNECT_RES, imsg->hdr.peerid, 220, "",
		    NULL, 0);
		return;
	}
	(void)snprintf(text, sizeof(text), "4.7.0 %s Error: %s",
	    conf->hostname, limit_verdict_text(v));
	log_info("refused connection from %s: %s", addr, limit_verdict_text(v));
	stat_increment("policy.connect.refused", 1);
	reply(chan, IMSG_POLICY_CONNECT_RES, imsg->hdr.peerid, 421, text, NULL,
	    0);
}

static void
policy_disconnect(struct channel *chan, struct imsg *imsg)
{
	limits_disconnect((uint64_t)(uintptr_t)chan, imsg->hdr.peerid);
	stat_set("policy.connections", limits_connections());
}

/*
 * AUTH: the credentials table holds crypt(3) hashes.  The check is
 * synchronous and costs a hash computation (tens of milliseconds for
 * yescrypt): it is the price of not keeping weak hashes.
 */
static void
policy_auth(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	struct table	*t;
	char		 addr[64], tname[TABLE_NAME_MAX], user[AUTH_FIELD_MAX];
	char		 pass[AUTH_FIELD_MAX];
	enum auth_result res;
	time_t		 now = mono_now();

	m_reader(&r, imsg);
	m_get_str(&r, addr, sizeof(addr));
	m_get_str(&r, tname, sizeof(tname));
	m_get_str(&r, user, sizeof(user));
	m_get_str(&r, pass, sizeof(pass));
	if (m_end(&r) == -1) {
		explicit_bzero(pass, sizeof(pass));
		channel_malformed(chan, imsg);
		return;
	}
	if (limits_auth_blocked(addr, now)) {
		explicit_bzero(pass, sizeof(pass));
		log_info("auth: client=%s, user=%s: refused, too many failures",
		    addr, user);
		stat_increment("policy.auth.blocked", 1);
		reply(chan, IMSG_POLICY_AUTH_RES, imsg->hdr.peerid, 454,
		    "4.7.0 Too many authentication failures, try again later",
		    NULL, 0);
		return;
	}
	if ((t = config_table(conf, tname)) == NULL)
		res = AUTH_TEMPFAIL;
	else
		res = auth_verify(t, user, pass);
	explicit_bzero(pass, sizeof(pass));
	switch (res) {
	case AUTH_OK:
		log_info("auth: client=%s, user=%s: ok", addr, user);
		reply(chan, IMSG_POLICY_AUTH_RES, imsg->hdr.peerid, 235,
		    "2.7.0 Authentication successful", NULL, 0);
		break;
	case AUTH_FAIL:
		limits_auth_failed(addr, now);
		log_info("auth: client=%s, user=%s: failed", addr, user);
		reply(chan, IMSG_POLICY_AUTH_RES, imsg->hdr.peerid, 535,
		    "5.7.8 Authentication credentials invalid", NULL, 0);
		break;
	default:
		log_warnx("auth: client=%s, user=%s: cannot check the "
		    "credentials table <%s> now", addr, user, tname);
		reply(chan, IMSG_POLICY_AUTH_RES, imsg->hdr.peerid, 454,
		    "4.7.0 Temporary authentication failure", NULL, 0);
	}
}

static void
client_closed(struct channel *chan, int malformed)
{
	limits_owner_gone((uint64_t)(uintptr_t)chan);
	if (malformed)
		proc_report_bad_peer(master_chan, chan);
	for (int i = 0; i < CLIENT_CHANNELS_MAX; i++)
		if (client_chans[i] == chan)
			client_chans[i] = NULL;
	channel_free(chan);
}

/* smtp-workers and the queue ask the same questions. */
static void
add_client_channel(enum proc_kind kind, int fd, int slot)
{
	int	 i;

	for (i = 0; i < CLIENT_CHANNELS_MAX && client_chans[i]; i++)
		;
	if (i == CLIENT_CHANNELS_MAX) {
		log_warnx("too many smtp-worker channels");
		close(fd);
		return;
	}
	client_chans[i] = channel_new(base, fd, kind, slot,
	    policy_client_dispatch, client_closed, NULL);
	if (client_chans[i] == NULL)
		fatalx("channel_new");
}

static void
policy_client_dispatch(struct channel *chan, struct imsg *imsg)
{
	if (chan->peer == PROC_QUEUE && imsg->hdr.type != IMSG_POLICY_RCPT) {
		channel_malformed(chan, imsg);
		return;
	}
	switch (imsg->hdr.type) {
	case IMSG_POLICY_MAIL:
		policy_mail(chan, imsg);
		break;
	case IMSG_POLICY_RCPT:
		policy_rcpt(chan, imsg);
		break;
	case IMSG_POLICY_CONNECT:
		policy_connect(chan, imsg);
		break;
	case IMSG_POLICY_DISCONNECT:
		policy_disconnect(chan, imsg);
		break;
	case IMSG_POLICY_AUTH:
		policy_auth(chan, imsg);
		break;
	default:
		channel_malformed(chan, imsg);
	}
}

/* Answers already queued are flushed before a retiring policy exits. */
static void __attribute__((noreturn))
policy_exit(void)
{
	for (int i = 0; i < CLIENT_CHANNELS_MAX; i++)
		if (client_chans[i] && !client_chans[i]->dead)
			imsg_flush_blocking(&client_chans[i]->ibuf);
	exit(0);
}

static void
policy_master_dispatch(struct channel *chan, struct imsg *imsg)
{
	enum proc_kind	 kind;
	int		 slot;

	if (proc_master_common(chan, imsg))
		return;
	switch (imsg->hdr.type) {
	case IMSG_PEER_CONNECT:
		if (proc_peer_connect(chan, imsg, P(PROC_SMTP) | P(PROC_QUEUE),
		    &kind, &slot) == -1)
			return;
		add_client_channel(kind, imsg->fd, slot);
		imsg->fd = -1;
		break;
	case IMSG_SHUTDOWN:
		shutting_down = 1;
		policy_exit();
	default:
		channel_malformed(chan, imsg);
	}
}

static void
master_closed(struct channel *chan, int malformed)
{
	/* The master is gone: nothing to serve for. */
	exit(0);
}

void
policy_main(struct config *c, struct proc_env *env)
{
	int	 i;

	struct limits_conf	 lc;

	conf = c;
	proc_init(env, "policy");
	memset(&lc, 0, sizeof(lc));
	lc.conn_total = conf->max_conn;
	lc.conn_per_ip = conf->max_conn_per_ip;
	lc.conn_rate = conf->conn_rate;
	lc.rate_window = 60;
	lc.auth_failures = conf->auth_failures;
	lc.auth_window = 300;
	limits_init(&lc);
	if (users_load() == -1)
		fatalx("cannot read the local accounts");
	/* The store's client is made before the chroot, used after. */
	if (policy_store_init(conf) == -1)
		fatalx("cannot set up the MongoDB store client");
	table_set_remote(store_table_lookup);
	sandbox_drop(conf->chroot_path, env->user, env->uid, env->gid);
	if ((base = event_base_new()) == NULL)
		fatalx("event_base_new");
	master_chan = channel_new(base, env->master_fd, PROC_MASTER, 0,
	    policy_master_dispatch, master_closed, NULL);
	if (master_chan == NULL)
		fatalx("channel_new");
	for (i = 0; i < env->npeers; i++)
		add_client_channel(env->peers[i].kind, env->peers[i].fd,
		    env->peers[i].slot);
	if (conf->sandbox)
		sandbox_seccomp(PROC_POLICY);
	event_base_dispatch(base);
	exit(0);
}
