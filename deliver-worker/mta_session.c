/*
 * The SMTP client session.  Replies drive it: each complete reply goes to
 * the handler of the current state, which sends what comes next.  A
 * transaction keeps a FIFO of the commands whose replies are due, so that
 * the same code serves PIPELINING (MAIL, every RCPT and DATA in one write,
 * RFC 2920) and the one-command-at-a-time dialogue.
 *
 * Failures are of two kinds.  A recipient's own (RCPT, or MAIL/DATA/dot
 * for the recipients of that transaction): 5xx is final, 4xx is noted and
 * the recipient tries the next MX.  The connection's (connect, greeting,
 * EHLO, TLS, AUTH, 421, timeout, lost connection): noted for every
 * pending recipient, and the job goes on to the next address or host.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "mta_session.h"
#include "relay.h"
#include "stats.h"
#include "table.h"

#define BODY_CHUNK	16384
#define BODY_HIGHWAT	65536	/* content queued in the output at most */
#define BODY_LOWAT	16384	/* refilled below this */
#define QUIT_SECS	5

static void	session_connect(struct mta_session *);
static void	session_next_addr(struct mta_session *);
static void	session_host_fail(struct mta_session *, int, const char *);
static void	session_destroy(struct mta_session *);
static void	session_read(struct bufferevent *, void *);
static void	session_write(struct bufferevent *, void *);
static void	session_event(struct bufferevent *, short, void *);
static void	session_timeouts(struct mta_session *, enum relay_timeout,
		    int);
static void	send_line(struct mta_session *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	send_ehlo(struct mta_session *);
static void	after_ehlo(struct mta_session *);
static void	tls_start(struct mta_session *, enum mta_state);
static void	auth_start(struct mta_session *);
static void	tx_begin(struct mta_session *);
static void	tx_end(struct mta_session *);
static void	body_fill(struct mta_session *);

/* ---- parsers -------------------------------------------------------------- */

void
mta_textf(char *out, size_t outsz, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(out, outsz, fmt, ap);
	va_end(ap);
}

void
mta_reply_init(struct mta_reply *r)
{
	memset(r, 0, sizeof(*r));
}

/* Appends text, controls and 8-bit bytes shown as '?'. */
static void
reply_append(struct mta_reply *r, const char *s, size_t n)
{
	size_t	len = strlen(r->text), i;

	for (i = 0; i < n && len + 1 < sizeof(r->text); i++) {
		unsigned char c = (unsigned char)s[i];

		r->text[len++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
	}
	r->text[len] = '\0';
}

int
mta_reply_line(struct mta_reply *r, const char *line, size_t len)
{
	int	code;

	if (len < 3 || !isdigit((unsigned char)line[0]) ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]) || line[0] < '2' ||
	    line[0] > '5')
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if ((r->nlines > 0 && code != r->code) ||
	    r->nlines >= MTA_REPLY_LINES_MAX)
		return -1;
	if (r->nlines == 0) {
		r->code = code;
		mta_textf(r->text, sizeof(r->text), "%d", code);
	}
	if (len > 4) {
		reply_append(r, " ", 1);
		reply_append(r, line + 4, len - 4);
	}
	r->nlines++;
	return (len == 3 || line[3] == ' ') ? 1 : 0;
}

/* "x.y.z" at s, class digit first: its length, or 0. */
static size_t
enhanced_len(const char *s)
{
	size_t	n = 0, part, parts;

	if (*s != '2' && *s != '4' && *s != '5')
		return 0;
	for (parts = 0; parts < 3; parts++) {
		if (parts > 0) {
			if (s[n] != '.')
				return 0;
			n++;
		}
		for (part = 0; isdigit((unsigned char)s[n]) && part < 3;
		    part++)
			n++;
		if (part == 0 || (parts == 0 && part != 1))
			return 0;
	}
	return (s[n] == ' ' || s[n] == '\0') ? n : 0;
}

void
mta_reply_status(const struct mta_reply *r, char *out, size_t outsz)
{
	const char	*t = r->text + 3;
	size_t		 n;

	if (*t == ' ')
		t++;
	if ((n = enhanced_len(t)) > 0 && t[0] == r->text[0] && n < outsz) {
		memcpy(out, t, n);
		out[n] = '\0';
		return;
	}
	mta_textf(out, outsz, "%c.0.0", r->text[0] ? r->text[0] : '4');
}

void
mta_caps_line(struct mta_caps *c, const char *line)
{
	char		 word[64], *end;
	const char	*p = line;
	size_t		 n;
	unsigned long long v;

	n = strcspn(p, " =");
	if (n == 0 || n >= sizeof(word))
		return;
	memcpy(word, p, n);
	word[n] = '\0';
	p += n;
	if (strcasecmp(word, "PIPELINING") == 0)
		c->pipelining = 1;
	else if (strcasecmp(word, "8BITMIME") == 0)
		c->eightbitmime = 1;
	else if (strcasecmp(word, "SMTPUTF8") == 0)
		c->smtputf8 = 1;
	else if (strcasecmp(word, "STARTTLS") == 0)
		c->starttls = 1;
	else if (strcasecmp(word, "DSN") == 0)
		c->dsn = 1;
	else if (strcasecmp(word, "ENHANCEDSTATUSCODES") == 0)
		c->enhanced = 1;
	else if (strcasecmp(word, "SIZE") == 0) {
		c->size_offered = 1;
		p += strspn(p, " ");
		errno = 0;
		v = strtoull(p, &end, 10);
		c->size = (errno == 0 && end != p && isdigit((unsigned char)*p)) ?
		    (uint64_t)v : 0;
	} else if (strcasecmp(word, "AUTH") == 0) {
		/* "AUTH PLAIN LOGIN", or the old "AUTH=PLAIN LOGIN" */
		while (*p != '\0') {
			p += strspn(p, " =");
			n = strcspn(p, " ");
			if (n == 5 && strncasecmp(p, "PLAIN", 5) == 0)
				c->auth |= MTA_AUTH_PLAIN;
			else if (n == 5 && strncasecmp(p, "LOGIN", 5) == 0)
				c->auth |= MTA_AUTH_LOGIN;
			else if (n == 8 && strncasecmp(p, "CRAM-MD5", 8) == 0)
				c->auth |= MTA_AUTH_CRAM_MD5;
			p += n;
		}
	}
}

size_t
mta_dotstuff(const char *in, size_t n, char *out, int *state)
{
	size_t	i, o = 0;
	int	bol = *state & 1, cr = (*state & 2) != 0;

	for (i = 0; i < n; i++) {
		char c = in[i];

		if (bol && c == '.')
			out[o++] = '.';
		if (c == '\n' && !cr)
			out[o++] = '\r';
		out[o++] = c;
		bol = c == '\n';
		cr = c == '\r';
	}
	*state = (bol ? 1 : 0) | (cr ? 2 : 0);
	return o;
}

const char *
mta_dot_end(int state)
{
	if (state & 1)
		return ".\r\n";
	return (state & 2) ? "\n.\r\n" : "\r\n.\r\n";
}

int
mta_base64(const char *in, size_t n, char *out, size_t outsz)
{
	if (n > (size_t)(INT32_MAX / 2) || outsz < 4 * ((n + 2) / 3) + 1)
		return -1;
	(void)EVP_EncodeBlock((unsigned char *)out, (const unsigned char *)in,
	    (int)n);
	return 0;
}

int
mta_auth_plain(const char *user, const char *pass, char *out, size_t outsz)
{
	char	buf[520];
	size_t	ulen = strlen(user), plen = strlen(pass);
	int	r;

	if (ulen + plen + 2 > sizeof(buf))
		return -1;
	buf[0] = '\0';
	memcpy(buf + 1, user, ulen);
	buf[1 + ulen] = '\0';
	memcpy(buf + 2 + ulen, pass, plen);
	r = mta_base64(buf, ulen + plen + 2, out, outsz);
	explicit_bzero(buf, sizeof(buf));
	return r;
}

int
mta_auth_cram_md5(const char *user, const char *pass, const char *chal_b64,
    char *out, size_t outsz)
{
	unsigned char	 chal[512], mac[EVP_MAX_MD_SIZE];
	char		 resp[600];
	size_t		 clen = strlen(chal_b64), i;
	unsigned int	 maclen = 0;
	int		 n, pad = 0;

	if (clen == 0 || clen % 4 != 0 || clen / 4 * 3 > sizeof(chal))
		return -1;
	if ((n = EVP_DecodeBlock(chal, (const unsigned char *)chal_b64,
	    (int)clen)) < 0)
		return -1;
	/* EVP_DecodeBlock counts the padding as zero bytes. */
	if (chal_b64[clen - 1] == '=')
		pad++;
	if (chal_b64[clen - 2] == '=')
		pad++;
	n -= pad;
	if (HMAC(EVP_md5(), pass, (int)strlen(pass), chal, (size_t)n, mac,
	    &maclen) == NULL || maclen != 16)
		return -1;
	if ((size_t)snprintf(resp, sizeof(resp), "%s ", user) >=
	    sizeof(resp) - 33)
		return -1;
	for (i = 0; i < maclen; i++)
		mta_textf(resp + strlen(resp), 3, "%02x", mac[i]);
	n = mta_base64(resp, strlen(resp), out, outsz);
	explicit_bzero(resp, sizeof(resp));
	return n;
}

/* ---- helpers -------------------------------------------------------------- */

static const struct mta_relay *
relay_of(const struct mta_session *s)
{
	return s->dest->relay;
}

static const struct relay_opts *
opts_of(const struct mta_session *s)
{
	return &s->dest->relay->action->relay;
}

void
mta_session_relay_text(const struct mta_session *s, char *out, size_t outsz)
{
	if (s == NULL)
		(void)strlcpy(out, "none", outsz);
	else
		mta_textf(out, outsz, "%s [%s]:%d", s->name, s->addrtext,
		    s->port);
}

static const char *
state_cmd(const struct mta_session *s)
{
	switch (s->state) {
	case MS_CONNECT:	return "connect";
	case MS_TLS_WRAP:	return "TLS handshake";
	case MS_GREETING:	return "the greeting";
	case MS_EHLO:		return "EHLO";
	case MS_HELO:		return "HELO";
	case MS_STARTTLS:	return "STARTTLS";
	case MS_TLS_HANDSHAKE:	return "TLS handshake";
	case MS_AUTH:		return "AUTH";
	case MS_IDLE:		return "idle";
	case MS_RSET:		return "RSET";
	case MS_TX:
		if (s->cmd_head == s->cmd_tail)
			return "MAIL FROM";
		return s->cmds[s->cmd_head] == MTA_CMD_MAIL ? "MAIL FROM" :
		    s->cmds[s->cmd_head] == MTA_CMD_DATA ? "DATA" : "RCPT TO";
	case MS_BODY:		return "message content";
	case MS_EOM:		return "end of data";
	case MS_QUIT:		return "QUIT";
	}
	return "?";
}

/*
 * "5.1.1 host mx1.test [127.0.0.2] said: 550 5.1.1 no such user (in reply
 * to RCPT TO)".  The leading code has the class of the outcome.
 */
static int
reply_outcome(struct mta_session *s, const struct mta_reply *r,
    const char *cmd, char *out, size_t outsz)
{
	char	 st[16];
	int	 status;

	status = r->code / 100 == 2 ? DLV_OK : r->code / 100 == 5 ?
	    DLV_PERMFAIL : DLV_TEMPFAIL;
	mta_reply_status(r, st, sizeof(st));
	st[0] = status == DLV_OK ? '2' : status == DLV_PERMFAIL ? '5' : '4';
	mta_textf(out, outsz, "%s host %s [%s] said: %s (in reply to %s)",
	    st, s->name, s->addrtext, r->text, cmd);
	return status;
}

/* A recipient's outcome in this transaction: final, or noted for later. */
static void
rcpt_outcome(struct mta_session *s, struct mta_rcpt *rc, int status,
    const char *text)
{
	if (rc->done)
		return;
	if (status == DLV_TEMPFAIL) {
		rc->status = DLV_TEMPFAIL;
		(void)strlcpy(rc->text, text, sizeof(rc->text));
		mta_rcpt_result(s->job, rc, s, -1, text);
	} else
		mta_rcpt_result(s->job, rc, s, status, text);
}

static void
send_line(struct mta_session *s, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	va_list		 ap;

	va_start(ap, fmt);
	if (evbuffer_add_vprintf(out, fmt, ap) < 0 ||
	    evbuffer_add(out, "\r\n", 2) == -1)
		log_warnx("mta: out of memory");
	va_end(ap);
}

static void
session_timeouts(struct mta_session *s, enum relay_timeout which, int reading)
{
	const struct config	*conf = mta_config();
	struct timeval		 tv = { conf->relay_timeout[which], 0 };
	struct timeval		 wtv = { conf->relay_timeout[RELAY_TO_COMMAND], 0 };

	if (which == RELAY_TO_CONNECT || which == RELAY_TO_DATA_BLOCK)
		wtv = tv;
	bufferevent_set_timeouts(s->bev, reading ? &tv : NULL, &wtv);
}

/* Waits for the next reply under the timeout of `which`. */
static void
expect_reply(struct mta_session *s, enum mta_state st, enum relay_timeout which)
{
	s->state = st;
	mta_reply_init(&s->reply);
	session_timeouts(s, which, 1);
}

/* ---- connection ----------------------------------------------------------- */

static void
session_close_conn(struct mta_session *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	s->ssl = NULL;		/* freed with its bufferevent */
	s->tls = 0;
	s->esmtp = 0;
	s->authed = 0;
	s->used = 0;
	s->nmsgs = 0;
	memset(&s->caps, 0, sizeof(s->caps));
	(void)strlcpy(s->tls_info, "none", sizeof(s->tls_info));
}

void
mta_session_start(struct mta_dest *d, struct mta_job *job)
{
	struct mta_session	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->idle_ev = evtimer_new(mta_base(), NULL, NULL)) == NULL) {
		free(s);
		log_warnx("mta: out of memory");
		mta_job_exhausted(job, NULL);
		return;
	}
	s->dest = d;
	s->job = job;
	s->host = job->min_host;
	s->addr = 0;
	d->nsessions++;
	stat_increment("deliver.relay.session", 1);
	(void)strlcpy(s->tls_info, "none", sizeof(s->tls_info));
	s->in_cb++;
	session_connect(s);
	s->in_cb--;
	if (s->dead)
		session_destroy(s);
}

/* Connects to route entry (host, addr), moving on while that fails at once. */
static void
session_connect(struct mta_session *s)
{
	struct mta_dest		*d = s->dest;
	const struct relay_opts	*o = opts_of(s);
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	const struct sockaddr	*src = NULL;
	socklen_t		 len;
	char			 text[TEXT_MAX];
	int			 fd;

	for (;;) {
		while (s->host < d->nhosts && s->addr >= d->hosts[s->host].naddrs) {
			s->host++;
			s->addr = 0;
		}
		if (s->host >= d->nhosts) {
			struct mta_job	*job = s->job;

			s->job = NULL;
			if (job != NULL)
				mta_job_exhausted(job, s);
			session_destroy(s);
			return;
		}
		ss = d->hosts[s->host].addrs[s->addr];
		(void)strlcpy(s->name, d->hosts[s->host].name, sizeof(s->name));
		s->port = d->port;
		if (ss.ss_family == AF_INET6) {
			sin6->sin6_port = htons((uint16_t)d->port);
			len = sizeof(*sin6);
			(void)inet_ntop(AF_INET6, &sin6->sin6_addr, s->addrtext,
			    sizeof(s->addrtext));
			if (o->has_src6)
				src = (const struct sockaddr *)&o->src6;
		} else {
			sin->sin_port = htons((uint16_t)d->port);
			len = sizeof(*sin);
			(void)inet_ntop(AF_INET, &sin->sin_addr, s->addrtext,
			    sizeof(s->addrtext));
			if (o->has_src4)
				src = (const struct sockaddr *)&o->src4;
		}
		log_trace(TRACE_DELIVER, "mta: connecting to %s [%s]:%d",
		    s->name, s->addrtext, s->port);
		fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (fd != -1 && src != NULL && bind(fd, src,
		    src->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) :
		    sizeof(struct sockaddr_in)) == -1) {
			mta_textf(text, sizeof(text), "4.4.1 cannot bind "
			    "the source address for %s [%s]: %s", s->name,
			    s->addrtext, strerror(errno));
			close(fd);
			session_host_fail(s, DLV_TEMPFAIL, text);
			s->addr++;
			continue;
		}
		if (fd == -1 || (s->bev = bufferevent_socket_new(mta_base(), fd,
		    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
			mta_textf(text, sizeof(text), "4.3.0 cannot "
			    "connect to %s [%s]: %s", s->name, s->addrtext,
			    strerror(errno));
			if (fd != -1)
				close(fd);
			session_host_fail(s, DLV_TEMPFAIL, text);
			s->addr++;
			continue;
		}
		bufferevent_setcb(s->bev, session_read, session_write,
		    session_event, s);
		s->state = MS_CONNECT;
		session_timeouts(s, RELAY_TO_CONNECT, 0);
		if (bufferevent_socket_connect(s->bev, (struct sockaddr *)&ss,
		    (int)len) == -1) {
			mta_textf(text, sizeof(text), "4.4.1 connect to "
			    "%s [%s]:%d: %s", s->name, s->addrtext, s->port,
			    strerror(errno));
			session_close_conn(s);
			session_host_fail(s, DLV_TEMPFAIL, text);
			s->addr++;
			continue;
		}
		bufferevent_enable(s->bev, EV_READ | EV_WRITE);
		return;
	}
}

/* This address is done with: the next one, for the same job. */
static void
session_next_addr(struct mta_session *s)
{
	session_close_conn(s);
	if (s->job == NULL) {
		session_destroy(s);
		return;
	}
	s->no_tls = 0;
	s->addr++;
	session_connect(s);
}

/*
 * The connection failed: every pending recipient of the job notes why,
 * and the job goes on to the next address.
 */
static void
session_host_fail(struct mta_session *s, int status, const char *text)
{
	struct mta_job	*job = s->job;
	size_t		 i;

	stat_increment("deliver.relay.host_fail", 1);
	if (job == NULL) {
		log_info("mta: %s", text);
		return;
	}
	for (i = 0; i < job->nrcpts; i++) {
		struct mta_rcpt	*rc = &job->rcpts[i];

		if (rc->done)
			continue;
		rc->status = status;
		rc->accepted = 0;
		(void)strlcpy(rc->text, text, sizeof(rc->text));
		mta_rcpt_result(job, rc, s, -1, text);
	}
}

/* A failure of the connection while it serves a job (or not). */
static void
session_fail(struct mta_session *s, int status, const char *text)
{
	if (s->job != NULL) {
		session_host_fail(s, status, text);
		session_next_addr(s);
	} else {
		log_trace(TRACE_DELIVER, "mta: idle connection: %s", text);
		session_close_conn(s);
		session_destroy(s);
	}
}

static void
session_reply_fail(struct mta_session *s, const char *cmd)
{
	char	text[TEXT_MAX];
	int	status;

	status = reply_outcome(s, &s->reply, cmd, text, sizeof(text));
	session_fail(s, status == DLV_OK ? DLV_TEMPFAIL : status, text);
}

static void
session_free_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct mta_session	*s = arg;

	event_free(s->idle_ev);
	free(s);
}

static void
session_destroy(struct mta_session *s)
{
	struct timeval	 now = { 0, 0 };

	if (s->in_cb > 0) {
		s->dead = 1;
		return;
	}
	if (s->idle_listed) {
		TAILQ_REMOVE(&s->dest->idle, s, entry);
		s->idle_listed = 0;
	}
	session_close_conn(s);
	s->state = MS_QUIT;
	/* Not a valid destination any more from here. */
	mta_session_gone(s);
	/* The idle event may be the caller: free from a fresh event. */
	evtimer_del(s->idle_ev);
	event_assign(s->idle_ev, mta_base(), -1, 0, session_free_cb, s);
	evtimer_add(s->idle_ev, &now);
}

/* ---- TLS -------------------------------------------------------------------- */

static void
tls_start(struct mta_session *s, enum mta_state st)
{
	const struct mta_relay	*rel = relay_of(s);
	const struct relay_opts	*o = opts_of(s);
	struct bufferevent	*bev;
	char			 text[TEXT_MAX];
	const char		*name = s->name;
	X509_VERIFY_PARAM	*vp;

	if (rel->ssl_ctx == NULL) {
		mta_textf(text, sizeof(text), "4.7.5 TLS is not usable: "
		    "%s", rel->tls_error);
		session_fail(s, DLV_TEMPFAIL, text);
		return;
	}
	if ((s->ssl = SSL_new(rel->ssl_ctx)) == NULL)
		goto fail;
	if (name[0] == '[') {
		/* An address literal: the certificate must name the address. */
		if (o->tls == RELAY_TLS_VERIFY &&
		    ((vp = SSL_get0_param(s->ssl)) == NULL ||
		    X509_VERIFY_PARAM_set1_ip_asc(vp, s->addrtext) != 1))
			goto fail;
	} else {
		if (SSL_set_tlsext_host_name(s->ssl, name) != 1)
			goto fail;
		if (o->tls == RELAY_TLS_VERIFY && SSL_set1_host(s->ssl, name) != 1)
			goto fail;
	}
	bev = bufferevent_openssl_filter_new(mta_base(), s->bev, s->ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		goto fail;
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	s->bev = bev;
	bufferevent_setcb(s->bev, session_read, session_write, session_event, s);
	s->state = st;
	session_timeouts(s, RELAY_TO_COMMAND, 1);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	return;
fail:
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	mta_textf(text, sizeof(text), "4.7.5 cannot start TLS with %s "
	    "[%s]", s->name, s->addrtext);
	session_fail(s, DLV_TEMPFAIL, text);
}

static void
tls_error_text(struct mta_session *s, char *out, size_t outsz)
{
	unsigned long	 e;
	char		 buf[256] = "handshake failed";
	long		 vr;

	while ((e = bufferevent_get_openssl_error(s->bev)) != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	if (s->ssl != NULL && opts_of(s)->tls == RELAY_TLS_VERIFY &&
	    (vr = SSL_get_verify_result(s->ssl)) != X509_V_OK)
		mta_textf(buf, sizeof(buf), "certificate verification "
		    "failed: %s", X509_verify_cert_error_string(vr));
	mta_textf(out, outsz, "4.7.5 TLS with %s [%s] failed: %s",
	    s->name, s->addrtext, buf);
}

static void
tls_up(struct mta_session *s)
{
	s->tls = 1;
	mta_textf(s->tls_info, sizeof(s->tls_info), "%s",
	    SSL_get_version(s->ssl));
	stat_increment("deliver.relay.tls", 1);
	log_trace(TRACE_DELIVER, "mta: TLS with %s [%s]: %s %s", s->name,
	    s->addrtext, SSL_get_version(s->ssl), SSL_get_cipher(s->ssl));
}

/* ---- the dialogue ------------------------------------------------------------ */

static const char *
helo_name(const struct mta_session *s)
{
	const struct relay_opts	*o = opts_of(s);

	return o->helo[0] != '\0' ? o->helo : mta_config()->hostname;
}

static void
send_ehlo(struct mta_session *s)
{
	memset(&s->caps, 0, sizeof(s->caps));
	send_line(s, "EHLO %s", helo_name(s));
	expect_reply(s, MS_EHLO, RELAY_TO_COMMAND);
}

static void
on_greeting(struct mta_session *s)
{
	if (s->reply.code != 220) {
		session_reply_fail(s, "the greeting");
		return;
	}
	send_ehlo(s);
}

static void
on_ehlo(struct mta_session *s)
{
	if (s->reply.code == 250) {
		s->esmtp = 1;
		after_ehlo(s);
		return;
	}
	/* RFC 5321 3.2: a server that does not know EHLO. */
	if (s->reply.code / 100 == 5 && !s->tls) {
		send_line(s, "HELO %s", helo_name(s));
		expect_reply(s, MS_HELO, RELAY_TO_COMMAND);
		return;
	}
	session_reply_fail(s, "EHLO");
}

static void
on_helo(struct mta_session *s)
{
	if (s->reply.code != 250) {
		session_reply_fail(s, "HELO");
		return;
	}
	after_ehlo(s);
}

/* Who we are is settled: TLS, then AUTH, then mail. */
static void
after_ehlo(struct mta_session *s)
{
	const struct relay_opts	*o = opts_of(s);
	char			 text[TEXT_MAX];
	int			 must = o->tls == RELAY_TLS_REQUIRED ||
				    o->tls == RELAY_TLS_VERIFY;

	/* Opportunistic TLS without a usable context: plain text. */
	if (o->tls == RELAY_TLS_MAY && relay_of(s)->ssl_ctx == NULL)
		s->no_tls = 1;
	if (!s->tls && o->tls != RELAY_TLS_NO && !s->no_tls &&
	    s->caps.starttls) {
		send_line(s, "STARTTLS");
		expect_reply(s, MS_STARTTLS, RELAY_TO_COMMAND);
		return;
	}
	if (!s->tls && must) {
		mta_textf(text, sizeof(text), "4.7.4 TLS is required but "
		    "host %s [%s] does not offer STARTTLS", s->name,
		    s->addrtext);
		session_fail(s, DLV_TEMPFAIL, text);
		return;
	}
	if (o->auth != NULL && !s->authed) {
		auth_start(s);
		return;
	}
	mta_session_ready(s);
}

static void
on_starttls(struct mta_session *s)
{
	const struct relay_opts	*o = opts_of(s);

	if (s->reply.code != 220) {
		if (o->tls == RELAY_TLS_MAY) {
			s->no_tls = 1;
			after_ehlo(s);
		} else
			session_reply_fail(s, "STARTTLS");
		return;
	}
	/* Anything sent before the handshake would be injected. */
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		char	text[TEXT_MAX];

		mta_textf(text, sizeof(text), "4.7.5 host %s [%s] sent "
		    "data after its reply to STARTTLS", s->name, s->addrtext);
		session_fail(s, DLV_TEMPFAIL, text);
		return;
	}
	tls_start(s, MS_TLS_HANDSHAKE);
}

/* ---- AUTH (smarthosts) ---------------------------------------------------------- */

static int
auth_credentials(struct mta_session *s, char *user, size_t usz, char *pass,
    size_t psz)
{
	const struct relay_opts		*o = opts_of(s);
	const struct table_entry	*e;

	if ((e = table_lookup(o->auth, o->host)) == NULL || e->value == NULL)
		return -1;
	return relay_secret_split(e->value, user, usz, pass, psz);
}

static void
auth_start(struct mta_session *s)
{
	char	user[256], pass[256], b64[1024], text[TEXT_MAX];

	if (s->caps.auth == 0) {
		/* Nothing offered: the server decides whether it relays. */
		log_info("mta: %s [%s] offers no AUTH: going on without",
		    s->name, s->addrtext);
		s->authed = 1;
		mta_session_ready(s);
		return;
	}
	if (auth_credentials(s, user, sizeof(user), pass, sizeof(pass)) == -1) {
		mta_textf(text, sizeof(text), "4.7.0 no credentials for "
		    "%s in table <%s>", opts_of(s)->host, opts_of(s)->auth->name);
		session_fail(s, DLV_TEMPFAIL, text);
		return;
	}
	s->auth_step = 0;
	if (s->caps.auth & MTA_AUTH_CRAM_MD5) {
		s->auth_mech = MTA_AUTH_CRAM_MD5;
		send_line(s, "AUTH CRAM-MD5");
	} else if (s->caps.auth & MTA_AUTH_PLAIN) {
		s->auth_mech = MTA_AUTH_PLAIN;
		if (mta_auth_plain(user, pass, b64, sizeof(b64)) == -1)
			goto toolong;
		send_line(s, "AUTH PLAIN %s", b64);
	} else if (s->caps.auth & MTA_AUTH_LOGIN) {
		s->auth_mech = MTA_AUTH_LOGIN;
		send_line(s, "AUTH LOGIN");
	} else {
		mta_textf(text, sizeof(text), "4.7.0 host %s [%s] offers "
		    "no AUTH mechanism we know (PLAIN, LOGIN, CRAM-MD5)",
		    s->name, s->addrtext);
		session_fail(s, DLV_TEMPFAIL, text);
		return;
	}
	explicit_bzero(pass, sizeof(pass));
	explicit_bzero(b64, sizeof(b64));
	expect_reply(s, MS_AUTH, RELAY_TO_COMMAND);
	return;
toolong:
	explicit_bzero(pass, sizeof(pass));
	mta_textf(text, sizeof(text), "4.7.0 credentials for %s too long",
	    opts_of(s)->host);
	session_fail(s, DLV_TEMPFAIL, text);
}

/* A 334 challenge: the next step of LOGIN or CRAM-MD5. */
static void
auth_continue(struct mta_session *s)
{
	char		 user[256], pass[256], b64[1024], text[TEXT_MAX];
	const char	*chal = s->reply.text + 3;
	int		 r = -1;

	chal += strspn(chal, " ");
	if (auth_credentials(s, user, sizeof(user), pass, sizeof(pass)) == -1)
		goto fail;
	if (s->auth_mech == MTA_AUTH_CRAM_MD5 && s->auth_step == 0)
		r = mta_auth_cram_md5(user, pass, chal, b64, sizeof(b64));
	else if (s->auth_mech == MTA_AUTH_PLAIN && s->auth_step == 0)
		r = mta_auth_plain(user, pass, b64, sizeof(b64));
	else if (s->auth_mech == MTA_AUTH_LOGIN && s->auth_step == 0)
		r = mta_base64(user, strlen(user), b64, sizeof(b64));
	else if (s->auth_mech == MTA_AUTH_LOGIN && s->auth_step == 1)
		r = mta_base64(pass, strlen(pass), b64, sizeof(b64));
	explicit_bzero(pass, sizeof(pass));
	if (r == -1)
		goto fail;
	s->auth_step++;
	send_line(s, "%s", b64);
	explicit_bzero(b64, sizeof(b64));
	expect_reply(s, MS_AUTH, RELAY_TO_COMMAND);
	return;
fail:
	/* An unexpected challenge: cancel the exchange (RFC 4954 4). */
	mta_textf(text, sizeof(text), "4.7.0 host %s [%s]: AUTH exchange "
	    "failed", s->name, s->addrtext);
	session_fail(s, DLV_TEMPFAIL, text);
}

static void
on_auth(struct mta_session *s)
{
	char	text[TEXT_MAX];

	if (s->reply.code == 334) {
		auth_continue(s);
		return;
	}
	if (s->reply.code == 235) {
		s->authed = 1;
		stat_increment("deliver.relay.auth", 1);
		log_trace(TRACE_DELIVER, "mta: authenticated to %s [%s]",
		    s->name, s->addrtext);
		mta_session_ready(s);
		return;
	}
	/*
	 * A refused login is a configuration problem that can be fixed:
	 * the mail waits (a soft bounce, as Postfix does by default).
	 */
	(void)reply_outcome(s, &s->reply, "AUTH", text, sizeof(text));
	text[0] = '4';
	session_fail(s, DLV_TEMPFAIL, text);
}

/* ---- transactions ---------------------------------------------------------------- */

static int
is_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 0;
	return 1;
}

/* Does the message hold 8-bit bytes?  Scanned once per job. */
static int
job_eightbit(struct mta_job *job)
{
	char	 buf[BODY_CHUNK];
	off_t	 off = 0;
	ssize_t	 n, i;

	if (job->eightbit != -1)
		return job->eightbit;
	job->eightbit = 0;
	while ((n = pread(job->fd, buf, sizeof(buf), off)) != 0) {
		if (n == -1) {
			if (errno == EINTR)
				continue;
			/* Unknown: declaring 8BITMIME is the safe side. */
			job->eightbit = 1;
			break;
		}
		for (i = 0; i < n; i++)
			if ((unsigned char)buf[i] >= 0x80)
				return job->eightbit = 1;
		off += n;
	}
	return job->eightbit;
}

/* Recipients the server cannot take (RFC 1870, 6152, 6531) fail here. */
static size_t
tx_precheck(struct mta_session *s, int *utf8)
{
	struct mta_job	*job = s->job;
	char		 text[TEXT_MAX];
	size_t		 i, pending = 0;
	int		 why = 0;	/* 1 size, 2 8bit, 3 utf8 sender */

	*utf8 = !is_ascii(job->sender);
	for (i = 0; i < job->nrcpts; i++)
		if (!job->rcpts[i].done && !is_ascii(job->rcpts[i].addr))
			*utf8 = 1;
	if (s->caps.size_offered && s->caps.size > 0 &&
	    job->size > s->caps.size)
		why = 1;
	else if (!s->caps.eightbitmime && job_eightbit(job))
		why = 2;
	else if (*utf8 && !s->caps.smtputf8 && !is_ascii(job->sender))
		why = 3;
	for (i = 0; i < job->nrcpts; i++) {
		struct mta_rcpt	*rc = &job->rcpts[i];

		if (rc->done)
			continue;
		if (why == 1)
			mta_textf(text, sizeof(text), "5.3.4 message size "
			    "%llu exceeds the limit %llu of host %s [%s]",
			    (unsigned long long)job->size,
			    (unsigned long long)s->caps.size, s->name,
			    s->addrtext);
		else if (why == 2)
			mta_textf(text, sizeof(text), "5.6.3 the message "
			    "has 8-bit content and host %s [%s] does not "
			    "support 8BITMIME", s->name, s->addrtext);
		else if ((why == 3 || !is_ascii(rc->addr)) &&
		    !s->caps.smtputf8)
			mta_textf(text, sizeof(text), "5.6.7 host %s [%s] "
			    "does not support SMTPUTF8, needed for a "
			    "non-ASCII address", s->name, s->addrtext);
		else {
			pending++;
			continue;
		}
		mta_rcpt_result(job, rc, s, DLV_PERMFAIL, text);
	}
	return pending;
}

static void
tx_send_mail(struct mta_session *s, int utf8)
{
	struct mta_job	*job = s->job;
	char		 params[256] = "";

	if (s->caps.size_offered)
		mta_textf(params + strlen(params),
		    sizeof(params) - strlen(params), " SIZE=%llu",
		    (unsigned long long)job->size);
	if (s->caps.eightbitmime && job_eightbit(job))
		(void)strlcat(params, " BODY=8BITMIME", sizeof(params));
	if (utf8 && s->caps.smtputf8)
		(void)strlcat(params, " SMTPUTF8", sizeof(params));
	if (s->caps.dsn && job->ret != DSN_RET_NONE)
		(void)strlcat(params, job->ret == DSN_RET_FULL ? " RET=FULL" :
		    " RET=HDRS", sizeof(params));
	if (s->caps.dsn && job->envid[0] != '\0') {
		(void)strlcat(params, " ENVID=", sizeof(params));
		(void)strlcat(params, job->envid, sizeof(params));
	}
	send_line(s, "MAIL FROM:<%s>%s", job->sender, params);
	s->cmds[s->cmd_tail++] = MTA_CMD_MAIL;
}

static void
tx_send_rcpt(struct mta_session *s, size_t i)
{
	struct mta_rcpt	*rc = &s->job->rcpts[i];
	char		 params[ORCPT_MAX + 64] = "";

	if (s->caps.dsn && rc->notify != 0) {
		if (rc->notify & DSN_NOTIFY_NEVER)
			(void)strlcpy(params, " NOTIFY=NEVER", sizeof(params));
		else {
			(void)strlcpy(params, " NOTIFY=", sizeof(params));
			if (rc->notify & DSN_NOTIFY_SUCCESS)
				(void)strlcat(params, "SUCCESS,", sizeof(params));
			if (rc->notify & DSN_NOTIFY_FAILURE)
				(void)strlcat(params, "FAILURE,", sizeof(params));
			if (rc->notify & DSN_NOTIFY_DELAY)
				(void)strlcat(params, "DELAY,", sizeof(params));
			params[strlen(params) - 1] = '\0';
		}
	}
	if (s->caps.dsn && rc->orcpt[0] != '\0') {
		(void)strlcat(params, " ORCPT=", sizeof(params));
		(void)strlcat(params, rc->orcpt, sizeof(params));
	}
	send_line(s, "RCPT TO:<%s>%s", rc->addr, params);
	s->cmds[s->cmd_tail++] = (int)i;
}

/* The next pending recipient from i on, or nrcpts. */
static size_t
next_pending(const struct mta_job *job, size_t i)
{
	while (i < job->nrcpts && job->rcpts[i].done)
		i++;
	return i;
}

static void
tx_begin(struct mta_session *s)
{
	struct mta_job	*job = s->job;
	size_t		 i;
	int		 utf8;

	s->cmd_head = s->cmd_tail = 0;
	s->tx_failed = 0;
	s->naccepted = 0;
	s->data_off = 0;
	s->dot_state = MTA_DOT_INIT;
	for (i = 0; i < job->nrcpts; i++)
		job->rcpts[i].accepted = 0;
	if (job->cancelled || tx_precheck(s, &utf8) == 0) {
		tx_end(s);
		return;
	}
	s->used = 1;
	s->pipelined = s->caps.pipelining;
	tx_send_mail(s, utf8);
	if (s->pipelined) {
		for (i = next_pending(job, 0); i < job->nrcpts;
		    i = next_pending(job, i + 1))
			tx_send_rcpt(s, i);
		send_line(s, "DATA");
		s->cmds[s->cmd_tail++] = MTA_CMD_DATA;
	}
	s->next_rcpt = next_pending(job, 0);
	expect_reply(s, MS_TX, RELAY_TO_COMMAND);
}

/* Without PIPELINING: the command after the one just answered. */
static void
tx_send_next(struct mta_session *s)
{
	if (s->next_rcpt < s->job->nrcpts) {
		tx_send_rcpt(s, s->next_rcpt);
		s->next_rcpt = next_pending(s->job, s->next_rcpt + 1);
	} else if (s->naccepted > 0) {
		send_line(s, "DATA");
		s->cmds[s->cmd_tail++] = MTA_CMD_DATA;
	}
}

/* The accepted recipients share the outcome of DATA or of the dot. */
static void
tx_accepted_outcome(struct mta_session *s, const char *cmd)
{
	struct mta_job	*job = s->job;
	char		 text[TEXT_MAX];
	size_t		 i;
	int		 status;

	status = reply_outcome(s, &s->reply, cmd, text, sizeof(text));
	for (i = 0; i < job->nrcpts; i++)
		if (job->rcpts[i].accepted && !job->rcpts[i].done)
			rcpt_outcome(s, &job->rcpts[i], status, text);
}

static void
on_tx_reply(struct mta_session *s)
{
	struct mta_job	*job = s->job;
	char		 text[TEXT_MAX];
	size_t		 i;
	int		 cmd, status;

	cmd = s->cmds[s->cmd_head++];
	if (cmd == MTA_CMD_MAIL) {
		if (s->reply.code / 100 != 2) {
			s->tx_failed = 1;
			status = reply_outcome(s, &s->reply, "MAIL FROM", text,
			    sizeof(text));
			for (i = 0; i < job->nrcpts; i++)
				rcpt_outcome(s, &job->rcpts[i], status, text);
		} else if (!s->pipelined)
			tx_send_next(s);
	} else if (cmd >= 0) {
		struct mta_rcpt	*rc = &job->rcpts[cmd];

		if (!s->tx_failed) {
			status = reply_outcome(s, &s->reply, "RCPT TO", text,
			    sizeof(text));
			if (status == DLV_OK) {
				rc->accepted = 1;
				s->naccepted++;
			} else
				rcpt_outcome(s, rc, status, text);
		}
		if (!s->pipelined)
			tx_send_next(s);
	} else {	/* DATA */
		if (s->reply.code == 354) {
			if (s->tx_failed || s->naccepted == 0) {
				/* RFC 2920 3.1: nothing to send. */
				bufferevent_write(s->bev, ".\r\n", 3);
				s->naccepted = 0;
				expect_reply(s, MS_EOM, RELAY_TO_DATA_END);
				return;
			}
			s->state = MS_BODY;
			session_timeouts(s, RELAY_TO_DATA_BLOCK, 0);
			bufferevent_setwatermark(s->bev, EV_WRITE, BODY_LOWAT, 0);
			body_fill(s);
			return;
		}
		if (!s->tx_failed)
			tx_accepted_outcome(s, "DATA");
	}
	if (s->cmd_head < s->cmd_tail) {
		/* More replies due (pipelined, or the next command sent). */
		mta_reply_init(&s->reply);
		session_timeouts(s, s->cmds[s->cmd_head] == MTA_CMD_DATA ?
		    RELAY_TO_DATA_INIT : RELAY_TO_COMMAND, 1);
		return;
	}
	tx_end(s);
}

static void
body_fill(struct mta_session *s)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	char		 buf[BODY_CHUNK], wire[2 * BODY_CHUNK], text[TEXT_MAX];
	ssize_t		 n;
	size_t		 w;

	while (evbuffer_get_length(out) < BODY_HIGHWAT) {
		n = pread(s->job->fd, buf, sizeof(buf), (off_t)s->data_off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			mta_textf(text, sizeof(text), "4.3.0 cannot read "
			    "the message: %s", strerror(errno));
			session_fail(s, DLV_TEMPFAIL, text);
			return;
		}
		if (n == 0) {
			const char *end = mta_dot_end(s->dot_state);

			if (evbuffer_add(out, end, strlen(end)) == -1)
				break;
			bufferevent_setwatermark(s->bev, EV_WRITE, 0, 0);
			expect_reply(s, MS_EOM, RELAY_TO_DATA_END);
			return;
		}
		w = mta_dotstuff(buf, (size_t)n, wire, &s->dot_state);
		if (evbuffer_add(out, wire, w) == -1)
			break;
		s->data_off += (uint64_t)n;
	}
	if (evbuffer_get_length(out) < BODY_HIGHWAT) {
		session_fail(s, DLV_TEMPFAIL, "4.3.0 out of memory");
		return;
	}
	session_timeouts(s, RELAY_TO_DATA_BLOCK, 0);
}

static void
on_eom(struct mta_session *s)
{
	if (s->naccepted > 0) {
		tx_accepted_outcome(s, "end of DATA");
		stat_increment("deliver.relay.message", 1);
	}
	s->nmsgs++;
	tx_end(s);
}

static void
tx_end(struct mta_session *s)
{
	struct mta_job	*job = s->job;

	s->job = NULL;
	s->state = MS_IDLE;
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	mta_job_release(job, s);
	mta_session_ready(s);
}

static void
on_rset(struct mta_session *s)
{
	if (s->reply.code / 100 != 2) {
		session_reply_fail(s, "RSET");
		return;
	}
	tx_begin(s);
}

void
mta_session_take(struct mta_session *s, struct mta_job *job)
{
	if (s->idle_listed) {
		TAILQ_REMOVE(&s->dest->idle, s, entry);
		s->idle_listed = 0;
	}
	evtimer_del(s->idle_ev);
	s->job = job;
	if (s->used) {
		/* A clean slate between messages on one connection. */
		send_line(s, "RSET");
		expect_reply(s, MS_RSET, RELAY_TO_COMMAND);
		return;
	}
	s->state = MS_TX;
	tx_begin(s);
}

static void
idle_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct mta_session	*s = arg;

	mta_session_quit(s);
}

void
mta_session_idle(struct mta_session *s)
{
	struct timeval	 tv = { MTA_IDLE_SECS, 0 };

	s->state = MS_IDLE;
	if (!s->idle_listed) {
		TAILQ_INSERT_TAIL(&s->dest->idle, s, entry);
		s->idle_listed = 1;
	}
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	evtimer_del(s->idle_ev);
	event_assign(s->idle_ev, mta_base(), -1, 0, idle_timeout, s);
	evtimer_add(s->idle_ev, &tv);
}

void
mta_session_quit(struct mta_session *s)
{
	struct timeval	 tv = { QUIT_SECS, 0 };

	if (s->idle_listed) {
		TAILQ_REMOVE(&s->dest->idle, s, entry);
		s->idle_listed = 0;
	}
	evtimer_del(s->idle_ev);
	if (s->bev == NULL) {
		s->state = MS_QUIT;
		session_destroy(s);
		return;
	}
	send_line(s, "QUIT");
	s->state = MS_QUIT;
	mta_reply_init(&s->reply);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

/* ---- events ------------------------------------------------------------------------ */

static void
dispatch_reply(struct mta_session *s)
{
	char	text[TEXT_MAX];

	log_trace(TRACE_DELIVER, "mta: %s [%s] <<< %s", s->name, s->addrtext,
	    s->reply.text);
	/* 421 at any point: the server is closing. */
	if (s->reply.code == 421 && s->state != MS_QUIT) {
		if (s->state == MS_TX || s->state == MS_EOM ||
		    s->state == MS_RSET) {
			(void)reply_outcome(s, &s->reply, state_cmd(s), text,
			    sizeof(text));
			session_fail(s, DLV_TEMPFAIL, text);
		} else
			session_reply_fail(s, state_cmd(s));
		return;
	}
	switch (s->state) {
	case MS_GREETING:	on_greeting(s); break;
	case MS_EHLO:		on_ehlo(s); break;
	case MS_HELO:		on_helo(s); break;
	case MS_STARTTLS:	on_starttls(s); break;
	case MS_AUTH:		on_auth(s); break;
	case MS_RSET:		on_rset(s); break;
	case MS_TX:		on_tx_reply(s); break;
	case MS_EOM:		on_eom(s); break;
	case MS_QUIT:
		session_close_conn(s);
		session_destroy(s);
		break;
	default:
		mta_textf(text, sizeof(text), "4.5.0 host %s [%s] sent an "
		    "unexpected reply: %s", s->name, s->addrtext,
		    s->reply.text);
		session_fail(s, DLV_TEMPFAIL, text);
		break;
	}
}

static void
session_read(struct bufferevent *bev, void *arg)
{
	struct mta_session	*s = arg;
	struct evbuffer		*in;
	char			*line, text[TEXT_MAX];
	size_t			 len;
	int			 r;

	s->in_cb++;
	/* The greeting may be read before the connection is reported. */
	if (s->state == MS_CONNECT && !(opts_of(s)->host[0] != '\0' &&
	    opts_of(s)->proto == RELAY_PROTO_SMTPS))
		expect_reply(s, MS_GREETING, RELAY_TO_GREETING);
	while (!s->dead && s->bev == bev) {
		in = bufferevent_get_input(bev);
		if ((line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) ==
		    NULL) {
			if (evbuffer_get_length(in) > MTA_LINE_MAX) {
				mta_textf(text, sizeof(text), "4.5.0 host "
				    "%s [%s] sent a line too long", s->name,
				    s->addrtext);
				session_fail(s, DLV_TEMPFAIL, text);
			}
			break;
		}
		if (s->state == MS_CONNECT || s->state == MS_BODY ||
		    s->state == MS_IDLE || s->state == MS_TLS_WRAP ||
		    s->state == MS_TLS_HANDSHAKE) {
			/* Nothing was asked: a broken or hostile server. */
			free(line);
			if (s->state == MS_IDLE) {
				session_close_conn(s);
				session_destroy(s);
				break;
			}
			mta_textf(text, sizeof(text), "4.5.0 host %s [%s] "
			    "spoke out of turn during %s", s->name,
			    s->addrtext, state_cmd(s));
			session_fail(s, DLV_TEMPFAIL, text);
			break;
		}
		r = len > MTA_LINE_MAX ? -1 : mta_reply_line(&s->reply, line,
		    len);
		if (r == 1 && s->state == MS_EHLO && s->reply.nlines > 1)
			mta_caps_line(&s->caps, line + 4);
		else if (r == 0 && s->state == MS_EHLO && s->reply.nlines > 1)
			mta_caps_line(&s->caps, line + 4);
		free(line);
		if (r == -1) {
			mta_textf(text, sizeof(text), "4.5.0 host %s [%s] "
			    "sent a malformed reply to %s", s->name,
			    s->addrtext, state_cmd(s));
			session_fail(s, DLV_TEMPFAIL, text);
			break;
		}
		if (r == 1)
			dispatch_reply(s);
	}
	s->in_cb--;
	if (s->dead)
		session_destroy(s);
}

static void
session_write(struct bufferevent *bev, void *arg)
{
	struct mta_session	*s = arg;

	s->in_cb++;
	if (s->state == MS_BODY && s->bev == bev)
		body_fill(s);
	s->in_cb--;
	if (s->dead)
		session_destroy(s);
}

static void
session_event(struct bufferevent *bev, short what, void *arg)
{
	struct mta_session	*s = arg;
	char			 text[TEXT_MAX];
	int			 err = EVUTIL_SOCKET_ERROR();

	s->in_cb++;
	if (what & BEV_EVENT_CONNECTED) {
		if (s->state == MS_CONNECT) {
			if (opts_of(s)->host[0] != '\0' &&
			    opts_of(s)->proto == RELAY_PROTO_SMTPS)
				tls_start(s, MS_TLS_WRAP);
			else
				expect_reply(s, MS_GREETING,
				    RELAY_TO_GREETING);
		} else if (s->state == MS_TLS_WRAP) {
			tls_up(s);
			expect_reply(s, MS_GREETING, RELAY_TO_GREETING);
		} else if (s->state == MS_TLS_HANDSHAKE) {
			tls_up(s);
			send_ehlo(s);
		}
		goto out;
	}
	if (s->state == MS_QUIT) {
		session_close_conn(s);
		session_destroy(s);
		goto out;
	}
	if (s->state == MS_IDLE) {
		/* The server closed an idle connection: no harm. */
		session_close_conn(s);
		session_destroy(s);
		goto out;
	}
	if (s->state == MS_CONNECT) {
		if (what & BEV_EVENT_TIMEOUT)
			mta_textf(text, sizeof(text), "4.4.1 connect to "
			    "%s [%s]:%d: timed out", s->name, s->addrtext,
			    s->port);
		else
			mta_textf(text, sizeof(text), "4.4.1 connect to "
			    "%s [%s]:%d: %s", s->name, s->addrtext, s->port,
			    err ? strerror(err) : "connection failed");
		session_fail(s, DLV_TEMPFAIL, text);
		goto out;
	}
	if ((s->state == MS_TLS_HANDSHAKE || s->state == MS_TLS_WRAP) &&
	    !(what & BEV_EVENT_TIMEOUT)) {
		tls_error_text(s, text, sizeof(text));
		if (s->state == MS_TLS_HANDSHAKE &&
		    opts_of(s)->tls == RELAY_TLS_MAY && s->job != NULL) {
			/* Opportunistic: this address again, in plain text. */
			log_info("mta: %s: trying again without TLS", text + 6);
			session_close_conn(s);
			s->no_tls = 1;
			session_connect(s);
			goto out;
		}
		session_fail(s, DLV_TEMPFAIL, text);
		goto out;
	}
	if (what & BEV_EVENT_TIMEOUT)
		mta_textf(text, sizeof(text), "4.4.2 timeout with host "
		    "%s [%s] (waiting for %s)", s->name, s->addrtext,
		    state_cmd(s));
	else
		mta_textf(text, sizeof(text), "4.4.2 lost connection "
		    "with host %s [%s] (during %s)", s->name, s->addrtext,
		    state_cmd(s));
	session_fail(s, DLV_TEMPFAIL, text);
out:
	s->in_cb--;
	if (s->dead)
		session_destroy(s);
}
