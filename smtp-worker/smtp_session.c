/*
 * One SMTP server session (RFC 5321), as an explicit state machine.  Commands
 * are read from the input buffer one at a time; while a question is out to
 * policy or queue the session stops reading, so pipelined commands wait in
 * the buffer (bounded by a read watermark) and are answered in order.
 *
 * Before the first command: [S_PROXY] -> S_WAIT_CONNECT (policy's connection
 * limits) -> [S_HANDSHAKE for smtps] -> [S_GREETING delay] -> 220 -> S_CMD.
 * STARTTLS goes S_CMD -> S_HANDSHAKE -> S_CMD with the session forgotten;
 * AUTH goes S_CMD -> [S_AUTH] -> S_WAIT_AUTH -> S_CMD; BDAT reads its chunk
 * in S_BDAT; XCLIENT starts again at S_WAIT_CONNECT.
 */
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "log.h"
#include "smtp.h"
#include "smtp_parse.h"
#include "smtp_proxy.h"
#include "smtp_xclient.h"
#include "stats.h"
#include "util.h"

#define DATA_CHUNK	16384
#define INPUT_HIGHWAT	(64 * 1024)

static void	session_read(struct bufferevent *, void *);
static void	session_write(struct bufferevent *, void *);
static void	session_event(struct bufferevent *, short, void *);
static void	session_process(struct smtp_session *);
static void	tx_reset(struct smtp_session *);

static void	cmd_helo(struct smtp_session *, struct smtp_cmd *);
static void	cmd_ehlo(struct smtp_session *, struct smtp_cmd *);
static void	cmd_mail(struct smtp_session *, struct smtp_cmd *);
static void	cmd_rcpt(struct smtp_session *, struct smtp_cmd *);
static void	cmd_data(struct smtp_session *, struct smtp_cmd *);
static void	cmd_rset(struct smtp_session *, struct smtp_cmd *);
static void	cmd_noop(struct smtp_session *, struct smtp_cmd *);
static void	cmd_quit(struct smtp_session *, struct smtp_cmd *);
static void	cmd_vrfy(struct smtp_session *, struct smtp_cmd *);
static void	cmd_help(struct smtp_session *, struct smtp_cmd *);
static void	cmd_unimplemented(struct smtp_session *, struct smtp_cmd *);
static void	cmd_starttls(struct smtp_session *, struct smtp_cmd *);
static void	cmd_auth(struct smtp_session *, struct smtp_cmd *);
static void	cmd_bdat(struct smtp_session *, struct smtp_cmd *);
static void	cmd_xclient(struct smtp_session *, struct smtp_cmd *);
static void	session_greet(struct smtp_session *);
static void	session_begin(struct smtp_session *);
static void	session_set_timeout(struct smtp_session *, time_t);
static void	session_setup_bev(struct smtp_session *);
static void	data_finish(struct smtp_session *);
static void	session_linger_or_free(struct smtp_session *);

/* Table-driven dispatch: what each verb needs first, and who handles it. */
#define NEED_HELO	0x1
#define NEED_MAIL	0x2
#define NEED_RCPT	0x4
#define NO_ARGS		0x8

static const struct {
	enum smtp_verb	 verb;
	int		 needs;
	void		(*handler)(struct smtp_session *, struct smtp_cmd *);
} commands[] = {
	{ VERB_HELO,	0,			cmd_helo },
	{ VERB_EHLO,	0,			cmd_ehlo },
	{ VERB_MAIL,	NEED_HELO,		cmd_mail },
	{ VERB_RCPT,	NEED_HELO | NEED_MAIL,	cmd_rcpt },
	{ VERB_DATA,	NEED_HELO | NEED_MAIL | NEED_RCPT | NO_ARGS, cmd_data },
	{ VERB_RSET,	NO_ARGS,		cmd_rset },
	{ VERB_NOOP,	0,			cmd_noop },
	{ VERB_QUIT,	NO_ARGS,		cmd_quit },
	{ VERB_VRFY,	0,			cmd_vrfy },
	{ VERB_EXPN,	0,			cmd_unimplemented },
	{ VERB_HELP,	0,			cmd_help },
	{ VERB_STARTTLS, NO_ARGS,		cmd_starttls },
	{ VERB_AUTH,	NEED_HELO,		cmd_auth },
	{ VERB_BDAT,	0,			cmd_bdat },	/* checks its own */
	{ VERB_XCLIENT,	0,			cmd_xclient },
};

static void __attribute__((format(printf, 2, 3)))
reply(struct smtp_session *s, const char *fmt, ...)
{
	struct evbuffer	*out = bufferevent_get_output(s->bev);
	char		 buf[1024];
	va_list		 ap;
	int		 n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	log_trace(TRACE_SMTP, "%08x: >>> %s", s->id, buf);
	if (evbuffer_add(out, buf, (size_t)n) == -1 ||
	    evbuffer_add(out, "\r\n", 2) == -1)
		log_warnx("%08x: cannot queue reply", s->id);
	if (buf[0] == '5' || buf[0] == '4')
		stat_increment(buf[0] == '5' ? "smtp.reply.5xx" :
		    "smtp.reply.4xx", 1);
}

/* A refused command counts toward `limit errors`. */
static void __attribute__((format(printf, 2, 3)))
refuse(struct smtp_session *s, const char *fmt, ...)
{
	char	 buf[1024];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	reply(s, "%s", buf);
	s->errors++;
}

static void
session_close_after_reply(struct smtp_session *s)
{
	/*
	 * Always called right after a reply, so the output is not empty and
	 * session_write frees the session once it is flushed; freeing here
	 * would pull the session from under the caller.  A transaction in
	 * progress is dropped: its incoming file goes back to the queue.
	 */
	tx_reset(s);
	s->state = S_QUIT;
	bufferevent_disable(s->bev, EV_READ);
}

/* Bytes in and out, counted where libevent moves them. */
static void
count_in(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	if (info->n_added > 0)
		stat_increment("smtp.bytes.in", (int64_t)info->n_added);
}

static void
count_out(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	if (info->n_deleted > 0)
		stat_increment("smtp.bytes.out", (int64_t)info->n_deleted);
}

static void
session_setup_bev(struct smtp_session *s)
{
	bufferevent_setcb(s->bev, session_read, session_write, session_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGHWAT);
	session_set_timeout(s, smtp_conf->smtp_timeout);
	/* Bytes on the wire: under TLS the connection's buffers, set already,
	 * count them (ciphertext), not the filter's. */
	if (bufferevent_get_underlying(s->bev) == NULL &&
	    (evbuffer_add_cb(bufferevent_get_input(s->bev), count_in, s) ==
	    NULL || evbuffer_add_cb(bufferevent_get_output(s->bev), count_out,
	    s) == NULL))
		log_warnx("%08x: cannot count bytes", s->id);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
}

static void
session_set_timeout(struct smtp_session *s, time_t secs)
{
	struct timeval	 tv = { secs, 0 };

	bufferevent_set_timeouts(s->bev, &tv, &tv);
}

void
smtp_session_new(int fd, struct listener *l, struct sockaddr *sa,
    socklen_t salen)
{
	struct smtp_session	*s;

	if (!smtp_accepting() || (s = calloc(1, sizeof(*s))) == NULL) {
		close(fd);
		return;
	}
	s->listener = l;
	memcpy(&s->ss, sa, salen < sizeof(s->ss) ? salen : sizeof(s->ss));
	sockaddr_text(sa, s->client_addr, sizeof(s->client_addr));
	s->client_local = sockaddr_is_local(sa);
	s->client_uid = -1;
	if (sa->sa_family == AF_UNIX) {
		struct ucred	 cred;
		socklen_t	 len = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			s->client_uid = (long)cred.uid;
	}
	s->bev = bufferevent_socket_new(smtp_base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (s->bev == NULL) {
		close(fd);
		free(s);
		return;
	}
	smtp_session_register(s);
	session_setup_bev(s);
	s->xclient = l->xclient != NULL &&
	    table_match_addr(l->xclient, s->client_addr);
	if (s->client_uid != -1) {
		log_info("%08x: local submission from uid %ld", s->id,
		    s->client_uid);
		s->state = S_CMD;
		reply(s, "220 %s ESMTP mtad", smtp_conf->hostname);
		return;
	}
	if (l->flags & LISTEN_PROXY) {
		/* The balancer's header first: who the client really is. */
		s->state = S_PROXY;
		session_set_timeout(s, SMTP_PROXY_TIMEOUT);
		return;
	}
	log_info("%08x: connect from %s on %s port %d", s->id, s->client_addr,
	    l->addr, l->port);
	session_begin(s);
}

/* Asks policy whether this client may talk (connection limits). */
static void
session_begin(struct smtp_session *s)
{
	s->state = S_WAIT_CONNECT;
	if (smtp_policy_connect(s) == -1) {
		/* No policy now: limits cannot be counted, MAIL will fail. */
		smtp_reply_connect(s, 220, "");
	}
}

static void
greeting_timer(evutil_socket_t fd, short ev, void *arg)
{
	session_greet(arg);
}

void
smtp_reply_connect(struct smtp_session *s, int code, const char *text)
{
	struct timeval	 tv = { smtp_conf->greeting_delay, 0 };

	if (code != 220) {
		stat_increment("smtp.connections.refused", 1);
		reply(s, "%d %s", code, text);
		session_close_after_reply(s);
		return;
	}
	if ((s->listener->flags & LISTEN_SMTPS) && !s->tls) {
		if (smtp_tls_start(s, 0) == -1) {
			log_warnx("%08x: cannot start TLS", s->id);
			stat_increment("smtp.tls.failed", 1);
			smtp_session_free(s);
			return;
		}
		session_setup_bev(s);
		s->state = S_HANDSHAKE;
		return;
	}
	if (smtp_conf->greeting_delay > 0 && !s->xclient) {
		if (s->timer == NULL && (s->timer = evtimer_new(smtp_base,
		    greeting_timer, s)) == NULL) {
			session_greet(s);
			return;
		}
		s->state = S_GREETING;
		evtimer_add(s->timer, &tv);
		return;
	}
	session_greet(s);
}

/*
 * The 220.  A client that spoke before it is no SMTP client that waits
 * for its turn (RFC 5321 4.3.1): typically a spam engine.  Refused.
 */
static void
session_greet(struct smtp_session *s)
{
	if (evbuffer_get_length(bufferevent_get_input(s->bev)) > 0 &&
	    !s->xclient) {
		log_info("%08x: %s talked before the greeting", s->id,
		    s->client_addr);
		stat_increment("smtp.dialog.error.early_talker", 1);
		reply(s, "554 5.5.1 %s Error: talking before the greeting "
		    "is not allowed", smtp_conf->hostname);
		session_close_after_reply(s);
		return;
	}
	s->state = S_CMD;
	reply(s, "220 %s ESMTP mtad", smtp_conf->hostname);
	session_process(s);
}

static void
tx_reset(struct smtp_session *s)
{
	if (s->datafp) {
		fclose(s->datafp);
		s->datafp = NULL;
	}
	/* Until COMMIT the file is ours (between BDAT chunks too). */
	if (s->msgid[0] && s->state != S_WAIT_COMMIT)
		smtp_queue_abort(s->msgid);
	s->msgid[0] = '\0';
	s->mail_seen = 0;
	s->sender[0] = '\0';
	s->envid[0] = '\0';
	s->ret = 0;
	s->rcpt_notify = 0;
	s->rcpt_orcpt[0] = '\0';
	s->rcpt[0] = '\0';
	free(s->dlvs);
	s->dlvs = NULL;
	s->ndlvs = 0;
	s->nrcpt = 0;
	s->utf8 = 0;
	s->data_toobig = 0;
	s->data_ioerr = 0;
	s->bdat = 0;
	s->bdat_last = 0;
}

static void
sasl_end(struct smtp_session *s)
{
	if (s->sasl != NULL) {
		sasl_clear(s->sasl);
		free(s->sasl);
		s->sasl = NULL;
	}
}

void
smtp_session_free(struct smtp_session *s)
{
	log_info("%08x: disconnect from %s", s->id, s->client_addr);
	tx_reset(s);
	sasl_end(s);
	smtp_policy_disconnect(s);
	if (s->timer != NULL)
		event_free(s->timer);
	bufferevent_free(s->bev);
	smtp_session_unregister(s);
	free(s);
}

/* ---- commands ----------------------------------------------------------- */

static void
cmd_helo_common(struct smtp_session *s, struct smtp_cmd *cmd, int esmtp)
{
	if (cmd->args[0] == '\0' || strchr(cmd->args, ' ') != NULL ||
	    strlen(cmd->args) >= sizeof(s->helo)) {
		reply(s, "501 5.5.4 Syntax: %s hostname", cmd->name);
		s->errors++;
		return;
	}
	tx_reset(s);
	strlcpy(s->helo, cmd->args, sizeof(s->helo));
	s->helo_seen = 1;
	s->esmtp = esmtp;
}

static void
cmd_helo(struct smtp_session *s, struct smtp_cmd *cmd)
{
	cmd_helo_common(s, cmd, 0);
	if (s->helo_seen && !s->esmtp)
		reply(s, "250 %s Hello %s [%s]", smtp_conf->hostname, s->helo,
		    s->client_addr);
}

/* AUTH is offered on auth listeners, under TLS unless auth-plaintext. */
static int
auth_offered(const struct smtp_session *s)
{
	int	 f = s->listener->flags;

	if (!(f & (LISTEN_AUTH | LISTEN_AUTH_OPTIONAL)) ||
	    s->listener->auth == NULL || s->auth_user[0] != '\0')
		return 0;
	return s->tls || (f & LISTEN_AUTH_PLAINTEXT);
}

const char *
smtp_session_proto(const struct smtp_session *s)
{
	static const char *names[2][2][2] = {
		/* [utf8][tls][auth] (RFC 3848, RFC 6531) */
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
		{ { "UTF8SMTP", "UTF8SMTPA" }, { "UTF8SMTPS", "UTF8SMTPSA" } },
	};

	if (!s->esmtp)
		return "SMTP";
	return names[s->utf8 != 0][s->tls != 0][s->auth_user[0] != '\0'];
}

static void
cmd_ehlo(struct smtp_session *s, struct smtp_cmd *cmd)
{
	cmd_helo_common(s, cmd, 1);
	if (!s->helo_seen || !s->esmtp)
		return;
	reply(s, "250-%s Hello %s [%s]", smtp_conf->hostname, s->helo,
	    s->client_addr);
	reply(s, "250-PIPELINING");
	reply(s, "250-SIZE %zu", smtp_conf->max_message_size);
	reply(s, "250-8BITMIME");
	reply(s, "250-SMTPUTF8");
	reply(s, "250-CHUNKING");
	reply(s, "250-DSN");
	reply(s, "250-ENHANCEDSTATUSCODES");
	if ((s->listener->flags & LISTEN_TLS) && !s->tls &&
	    s->listener->ssl_ctx != NULL)
		reply(s, "250-STARTTLS");
	if (auth_offered(s))
		reply(s, "250-AUTH PLAIN LOGIN");
	if (s->xclient)
		reply(s, "250-XCLIENT %s", XCLIENT_ATTRIBUTES);
	reply(s, "250 HELP");
}

/* RFC 3461 xtext: printable ASCII but "+" and "=", and "+HH" escapes. */
static int
xtext_valid(const char *s, size_t max)
{
	size_t	 n = 0;

	for (; *s; s++, n++) {
		if (*s == '+') {
			if (!isxdigit((unsigned char)s[1]) ||
			    !isxdigit((unsigned char)s[2]) ||
			    islower((unsigned char)s[1]) ||
			    islower((unsigned char)s[2]))
				return 0;
			s += 2;
		} else if (*s < '!' || *s > '~' || *s == '=')
			return 0;
	}
	return n > 0 && n <= max;
}

/* NOTIFY=NEVER or a list of SUCCESS, FAILURE, DELAY (RFC 3461 4.1). */
static int
parse_notify(const char *v, uint32_t *out)
{
	char	 buf[64], *p, *tok;

	if (strlcpy(buf, v, sizeof(buf)) >= sizeof(buf))
		return -1;
	*out = 0;
	for (p = buf; (tok = strsep(&p, ",")) != NULL; ) {
		uint32_t	 bit;

		if (strcasecmp(tok, "NEVER") == 0)
			bit = DSN_NOTIFY_NEVER;
		else if (strcasecmp(tok, "SUCCESS") == 0)
			bit = DSN_NOTIFY_SUCCESS;
		else if (strcasecmp(tok, "FAILURE") == 0)
			bit = DSN_NOTIFY_FAILURE;
		else if (strcasecmp(tok, "DELAY") == 0)
			bit = DSN_NOTIFY_DELAY;
		else
			return -1;
		if (*out & bit)
			return -1;
		*out |= bit;
	}
	if ((*out & DSN_NOTIFY_NEVER) && *out != DSN_NOTIFY_NEVER)
		return -1;
	return 0;
}

/* ORCPT=addr-type;xtext, where addr-type is an atom (rfc822, utf-8). */
static int
orcpt_valid(const char *v)
{
	const char	*semi = strchr(v, ';');
	const char	*p;

	if (semi == NULL || semi == v || strlen(v) >= ORCPT_MAX)
		return 0;
	for (p = v; p < semi; p++)
		if (!isalnum((unsigned char)*p) && *p != '-')
			return 0;
	return xtext_valid(semi + 1, 500);
}

/* The RCPT parameters: DSN's NOTIFY and ORCPT. */
static int
check_rcpt_params(struct smtp_session *s, struct smtp_path *path)
{
	int	 i;

	s->rcpt_notify = 0;
	s->rcpt_orcpt[0] = '\0';
	for (i = 0; i < path->nparams; i++) {
		const char	*k = path->params[i].key;
		const char	*v = path->params[i].value;

		if (strcmp(k, "NOTIFY") == 0 && s->esmtp) {
			if (parse_notify(v, &s->rcpt_notify) == -1) {
				reply(s, "501 5.5.4 Bad NOTIFY parameter");
				return -1;
			}
		} else if (strcmp(k, "ORCPT") == 0 && s->esmtp) {
			if (!orcpt_valid(v)) {
				reply(s, "501 5.5.4 Bad ORCPT parameter");
				return -1;
			}
			strlcpy(s->rcpt_orcpt, v, sizeof(s->rcpt_orcpt));
		} else {
			reply(s, "555 5.5.4 Unsupported parameter %s", k);
			return -1;
		}
	}
	return 0;
}

/* The MAIL parameters this server knows; anything else is refused. */
static int
check_mail_params(struct smtp_session *s, struct smtp_path *path)
{
	const char		*v;
	unsigned long long	 size;
	char			*end;
	int			 i;

	for (i = 0; i < path->nparams; i++) {
		const char	*k = path->params[i].key;

		v = path->params[i].value;
		if (strcmp(k, "SIZE") == 0 && s->esmtp) {
			errno = 0;
			size = strtoull(v, &end, 10);
			if (*v == '\0' || *end != '\0' || errno) {
				reply(s, "501 5.5.4 Bad SIZE parameter");
				return -1;
			}
			if (size > smtp_conf->max_message_size) {
				reply(s, "552 5.3.4 Message size exceeds fixed "
				    "maximum message size");
				return -1;
			}
		} else if (strcmp(k, "BODY") == 0 && s->esmtp) {
			if (strcasecmp(v, "7BIT") != 0 &&
			    strcasecmp(v, "8BITMIME") != 0) {
				reply(s, "501 5.5.4 Bad BODY parameter");
				return -1;
			}
		} else if (strcmp(k, "RET") == 0 && s->esmtp) {
			if (strcasecmp(v, "FULL") == 0)
				s->ret = DSN_RET_FULL;
			else if (strcasecmp(v, "HDRS") == 0)
				s->ret = DSN_RET_HDRS;
			else {
				reply(s, "501 5.5.4 Bad RET parameter");
				return -1;
			}
		} else if (strcmp(k, "ENVID") == 0 && s->esmtp) {
			if (!xtext_valid(v, 100)) {
				reply(s, "501 5.5.4 Bad ENVID parameter");
				return -1;
			}
			strlcpy(s->envid, v, sizeof(s->envid));
		} else if (strcmp(k, "SMTPUTF8") == 0 && s->esmtp) {
			if (*v != '\0') {
				reply(s, "501 5.5.4 SMTPUTF8 takes no value");
				return -1;
			}
			s->utf8 = 1;
		} else if (strcmp(k, "AUTH") == 0 && s->esmtp &&
		    (s->listener->flags & (LISTEN_AUTH |
		    LISTEN_AUTH_OPTIONAL))) {
			/* RFC 4954 5: the original submitter, informative;
			 * the identity that counts is our own AUTH. */
			if (strcmp(v, "<>") != 0 && !xtext_valid(v, 500)) {
				reply(s, "501 5.5.4 Bad AUTH parameter");
				return -1;
			}
		} else {
			reply(s, "555 5.5.4 Unsupported parameter %s", k);
			return -1;
		}
	}
	return 0;
}

static void
cmd_mail(struct smtp_session *s, struct smtp_cmd *cmd)
{
	struct smtp_path	 path;
	char			 err[256];

	if (s->mail_seen) {
		refuse(s, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if ((s->listener->flags & LISTEN_TLS_REQUIRE) && !s->tls) {
		refuse(s, "530 5.7.0 Must issue a STARTTLS command first");
		return;
	}
	if ((s->listener->flags & LISTEN_AUTH) && s->auth_user[0] == '\0') {
		refuse(s, "530 5.7.0 Authentication required");
		return;
	}
	/* UTF-8 is allowed only with SMTPUTF8, which follows the address. */
	if (smtp_parse_path(cmd->args, "FROM:", 1, 1, &path, err,
	    sizeof(err)) == -1 || (smtp_path_param(&path, "SMTPUTF8") == NULL &&
	    smtp_parse_path(cmd->args, "FROM:", 1, 0, &path, err,
	    sizeof(err)) == -1)) {
		refuse(s, "%s", err);
		return;
	}
	if (check_mail_params(s, &path) == -1) {
		s->utf8 = 0;
		s->ret = 0;
		s->envid[0] = '\0';
		s->errors++;
		return;
	}
	strlcpy(s->sender, path.addr, sizeof(s->sender));
	if (smtp_policy_mail(s) == -1) {
		reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	s->state = S_WAIT_MAIL;
}

/* "smtp.rcpt.refused" and "smtp.rcpt.refused.5.7.1": by enhanced code. */
static void
count_refusal(const char *what, const char *text)
{
	char	 name[64];
	size_t	 n = strspn(text, "0123456789.");

	stat_increment(what, 1);
	if (n >= 5 && n <= 12 && snprintf(name, sizeof(name), "%s.%.*s", what,
	    (int)n, text) < (int)sizeof(name))
		stat_increment(name, 1);
}

void
smtp_reply_mail(struct smtp_session *s, int code, const char *text)
{
	s->state = S_CMD;
	if (code / 100 == 2) {
		s->mail_seen = 1;
		log_info("%08x: from=<%s>", s->id, s->sender);
	} else {
		s->sender[0] = '\0';
		s->utf8 = 0;
		count_refusal("smtp.mail.refused", text);
	}
	reply(s, "%d %s", code, text);
	session_process(s);
}

static void
cmd_rcpt(struct smtp_session *s, struct smtp_cmd *cmd)
{
	struct smtp_path	 path;
	char			 err[256];

	if (smtp_parse_path(cmd->args, "TO:", 0, s->utf8, &path, err,
	    sizeof(err)) == -1) {
		refuse(s, "%s", err);
		return;
	}
	if (check_rcpt_params(s, &path) == -1) {
		s->errors++;
		return;
	}
	if (s->nrcpt >= smtp_conf->max_rcpt) {
		reply(s, "452 4.5.3 Too many recipients");
		return;
	}
	strlcpy(s->rcpt, path.addr, sizeof(s->rcpt));
	if (smtp_policy_rcpt(s) == -1) {
		reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	s->state = S_WAIT_RCPT;
}

/*
 * One copy per destination and message: a local user reached directly and
 * through aliases (root, postmaster -> root) gets the message once.
 */
static int
dlv_seen(const struct smtp_session *s, const struct dlv *d)
{
	const struct dlv	*o;
	size_t			 i;

	for (i = 0; i < s->ndlvs; i++) {
		o = &s->dlvs[i];
		if (o->kind != d->kind || strcmp(o->action, d->action) != 0)
			continue;
		if (d->kind == DLV_MBOX || d->kind == DLV_MAILDIR) {
			if (strcmp(o->user, d->user) == 0)
				return 1;
		} else if (strcmp(o->rcpt, d->rcpt) == 0)
			return 1;
	}
	return 0;
}

void
smtp_reply_rcpt(struct smtp_session *s, int code, const char *text,
    struct dlv *dlv, size_t n)
{
	struct dlv	*nd;
	size_t		 i, added = 0;

	s->state = S_CMD;
	if (code / 100 == 2 && s->ndlvs + n > SMTP_DLVS_MAX) {
		code = 452;
		text = "4.5.3 Too many recipients";
	} else if (code / 100 == 2 && n > 0) {
		nd = reallocarray(s->dlvs, s->ndlvs + n, sizeof(*nd));
		if (nd == NULL) {
			reply(s, "451 4.3.0 Out of memory");
			session_process(s);
			return;
		}
		s->dlvs = nd;
		for (i = 0; i < n; i++) {
			/* What the client asked for this RCPT applies to all it
			 * expanded to. */
			dlv[i].notify = s->rcpt_notify;
			strlcpy(dlv[i].orcpt, s->rcpt_orcpt, sizeof(dlv[i].orcpt));
			if (dlv_seen(s, &dlv[i]))
				continue;
			s->dlvs[s->ndlvs++] = dlv[i];
			added++;
		}
		s->nrcpt++;
		log_info("%08x: to=<%s>, %zu deliveries%s", s->id, s->rcpt,
		    added, added < n ? " (duplicates dropped)" : "");
	} else if (code / 100 == 2) {
		/* Accepted but nothing to deliver: policy must not do that. */
		code = 451;
		text = "4.3.0 Temporary failure, try again later";
	}
	if (code / 100 != 2)
		count_refusal("smtp.rcpt.refused", text);
	reply(s, "%d %s", code, text);
	session_process(s);
}

static void
cmd_data(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (s->bdat) {
		refuse(s, "503 5.5.1 Error: DATA after BDAT in one transaction");
		return;
	}
	if (smtp_queue_create(s) == -1) {
		reply(s, "451 4.3.0 Temporary failure, try again later");
		return;
	}
	s->state = S_WAIT_DATAFILE;
}

static int
write_received(struct smtp_session *s)
{
	char	 date[64];

	time_rfc5322(time(NULL), date, sizeof(date));
	if (s->client_uid != -1)
		fprintf(s->datafp, "Received: from %s (local uid %ld)\r\n\tby "
		    "%s (mtad) with %s id %s", s->helo, s->client_uid,
		    smtp_conf->hostname, smtp_session_proto(s), s->msgid);
	else
		fprintf(s->datafp, "Received: from %s ([%s])\r\n\tby %s "
		    "(mtad) with %s id %s", s->helo, s->client_addr,
		    smtp_conf->hostname, smtp_session_proto(s), s->msgid);
	if (s->tls && s->tls_info[0] != '\0')
		fprintf(s->datafp, "\r\n\t(%s)", s->tls_info);
	if (s->auth_user[0] != '\0')
		fprintf(s->datafp, "\r\n\t(authenticated as %s)", s->auth_user);
	if (s->nrcpt == 1 && s->ndlvs > 0)
		fprintf(s->datafp, "\r\n\tfor <%s>", s->dlvs[0].orig);
	fprintf(s->datafp, ";\r\n\t%s\r\n", date);
	return ferror(s->datafp) ? -1 : 0;
}

/* A write to the message file failed: remember whether the disk is full. */
static void
note_ioerr(struct smtp_session *s)
{
	if (s->data_ioerr == 0)
		s->data_ioerr = (errno == ENOSPC || errno == EDQUOT) ?
		    IOERR_NOSPACE : IOERR_OTHER;
}

static enum data_mode
data_mode(const struct smtp_session *s)
{
	int	 norm = s->listener->flags & LISTEN_NORMALIZE;

	if (s->bdat)
		return norm ? DM_RAW_NORMALIZE : DM_RAW;
	return norm ? DM_DATA_NORMALIZE : DM_DATA;
}

void
smtp_reply_create(struct smtp_session *s, int status, const char *msgid,
    int fd)
{
	s->state = S_CMD;
	if (status != QUEUE_OK) {
		if (s->bdat) {
			/* The chunk is on its way: read it, then answer. */
			s->bdat_failed = status == QUEUE_NOSPACE ?
			    IOERR_NOSPACE : IOERR_OTHER;
			s->state = S_BDAT;
			session_process(s);
			return;
		}
		if (status == QUEUE_NOSPACE)
			reply(s, "452 4.3.1 Insufficient system storage");
		else
			reply(s, "451 4.3.0 Error: queue file write error");
		session_process(s);
		return;
	}
	strlcpy(s->msgid, msgid, sizeof(s->msgid));
	if ((s->datafp = fdopen(fd, "w")) == NULL) {
		close(fd);
		s->state = S_DATA;	/* so that tx_reset aborts the file */
		tx_reset(s);
		s->state = S_CMD;
		reply(s, "451 4.3.0 Error: queue file write error");
		session_process(s);
		return;
	}
	setvbuf(s->datafp, NULL, _IOFBF, 65536);
	data_parser_init(&s->dp, data_mode(s));
	if (write_received(s) == -1)
		note_ioerr(s);
	session_set_timeout(s, smtp_conf->data_timeout != 0 ?
	    smtp_conf->data_timeout : smtp_conf->smtp_timeout);
	if (s->bdat) {
		s->state = S_BDAT;
		session_process(s);
		return;
	}
	s->state = S_DATA;
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	session_process(s);
}

static void
data_finish(struct smtp_session *s)
{
	char	 tail[2];
	size_t	 n;
	long	 size;

	session_set_timeout(s, smtp_conf->smtp_timeout);
	/* BDAT: a CR held back at the end of the last chunk. */
	n = data_parser_finish(&s->dp, tail);
	if (n > 0 && !s->data_toobig && !s->data_ioerr &&
	    fwrite(tail, 1, n, s->datafp) != n)
		note_ioerr(s);
	if (s->dp.size > smtp_conf->max_message_size)
		s->data_toobig = 1;
	if (fflush(s->datafp) == EOF || ferror(s->datafp))
		note_ioerr(s);
	size = ftell(s->datafp);
	fclose(s->datafp);
	s->datafp = NULL;

	if (s->data_toobig || s->data_ioerr || size < 0 ||
	    (!(s->listener->flags & LISTEN_NORMALIZE) &&
	    (s->dp.bare_lf || s->dp.bare_cr))) {
		smtp_queue_abort(s->msgid);
		s->msgid[0] = '\0';
		if (s->data_toobig)
			reply(s, "552 5.3.4 Message size exceeds fixed maximum "
			    "message size");
		else if (s->data_ioerr == IOERR_NOSPACE)
			reply(s, "452 4.3.1 Insufficient system storage");
		else if (s->data_ioerr || size < 0)
			reply(s, "451 4.3.0 Error: queue file write error");
		else
			reply(s, "550 5.6.0 Message contains bare <CR> or <LF> "
			    "characters; lines must end with <CR><LF> "
			    "(RFC 5321 2.3.8)");
		stat_increment("smtp.message.refused", 1);
		stat_increment(s->data_toobig ? "smtp.message.refused.size" :
		    s->data_ioerr == IOERR_NOSPACE ?
		    "smtp.message.refused.nospace" : s->data_ioerr ||
		    size < 0 ? "smtp.message.refused.io" :
		    "smtp.message.refused.bare_line_end", 1);
		tx_reset(s);
		s->state = S_CMD;
		return;
	}
	if (smtp_queue_commit(s, (uint64_t)size) == -1) {
		smtp_queue_abort(s->msgid);
		s->msgid[0] = '\0';
		reply(s, "451 4.3.0 Temporary failure, try again later");
		tx_reset(s);
		s->state = S_CMD;
		return;
	}
	s->state = S_WAIT_COMMIT;
}

void
smtp_reply_commit(struct smtp_session *s, int status, const char *text)
{
	if (status == QUEUE_OK) {
		reply(s, "250 2.0.0 Ok: queued as %s", s->msgid);
		log_info("%08x: %s: accepted, %zu deliveries", s->id,
		    s->msgid, s->ndlvs);
		stat_increment("smtp.message.accepted", 1);
		stat_increment("smtp.rcpt.accepted", s->nrcpt);
	} else if (status == QUEUE_NOSPACE) {
		reply(s, "452 4.3.1 Insufficient system storage");
		stat_increment("smtp.message.failed", 1);
	} else {
		reply(s, "451 4.3.0 Error: %s", text[0] ? text :
		    "queue commit failed");
		stat_increment("smtp.message.failed", 1);
	}
	s->msgid[0] = '\0';	/* committed or dropped by the queue */
	tx_reset(s);
	s->state = S_CMD;
	session_process(s);
}

static void
cmd_rset(struct smtp_session *s, struct smtp_cmd *cmd)
{
	tx_reset(s);
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_noop(struct smtp_session *s, struct smtp_cmd *cmd)
{
	reply(s, "250 2.0.0 Ok");
}

static void
cmd_quit(struct smtp_session *s, struct smtp_cmd *cmd)
{
	reply(s, "221 2.0.0 Bye");
	session_close_after_reply(s);
}

static void
cmd_vrfy(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (cmd->args[0] == '\0') {
		refuse(s, "501 5.5.4 Syntax: VRFY address");
		return;
	}
	reply(s, "252 2.0.0 Cannot VRFY user, but will accept message and "
	    "attempt delivery");
}

static void
cmd_help(struct smtp_session *s, struct smtp_cmd *cmd)
{
	reply(s, "214-2.0.0 mtad: commands supported:");
	reply(s, "214 2.0.0 HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
}

static void
cmd_unimplemented(struct smtp_session *s, struct smtp_cmd *cmd)
{
	refuse(s, "502 5.5.1 Error: command not implemented");
}

/* ---- STARTTLS (RFC 3207) ------------------------------------------------ */

static void
cmd_starttls(struct smtp_session *s, struct smtp_cmd *cmd)
{
	if (!(s->listener->flags & LISTEN_TLS) || s->listener->ssl_ctx == NULL) {
		refuse(s, "502 5.5.1 Error: command not implemented");
		return;
	}
	if (s->tls) {
		refuse(s, "503 5.5.1 Error: TLS already active");
		return;
	}
	if (s->mail_seen) {
		refuse(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	reply(s, "220 2.0.0 Ready to start TLS");
	if (smtp_tls_start(s, 1) == -1) {
		log_warnx("%08x: cannot start TLS", s->id);
		stat_increment("smtp.tls.failed", 1);
		reply(s, "454 4.7.0 TLS not available due to temporary reason");
		return;
	}
	session_setup_bev(s);
	s->state = S_HANDSHAKE;
}

/* The handshake is over: RFC 3207 4.2, forget what the client said. */
static void
tls_established(struct smtp_session *s)
{
	s->tls = 1;
	smtp_tls_describe(s);
	stat_increment("smtp.tls.handshakes", 1);
	log_info("%08x: TLS established with %s: %s", s->id, s->client_addr,
	    s->tls_info);
	if (s->listener->flags & LISTEN_SMTPS) {
		s->state = S_WAIT_CONNECT;
		smtp_reply_connect(s, 220, "");
		return;
	}
	tx_reset(s);
	s->helo_seen = 0;
	s->esmtp = 0;
	s->helo[0] = '\0';
	s->state = S_CMD;
	session_process(s);
}

/* ---- AUTH (RFC 4954) ---------------------------------------------------- */

static void
auth_answer(struct smtp_session *s, enum sasl_status st, const char *chal)
{
	switch (st) {
	case SASL_CONTINUE:
		reply(s, "334 %s", chal);
		s->state = S_AUTH;
		return;
	case SASL_DONE:
		if (smtp_policy_auth(s, s->sasl->user, s->sasl->pass) == -1) {
			sasl_end(s);
			reply(s, "454 4.7.0 Temporary authentication failure");
			return;
		}
		/* The password has left; the name stays for the answer. */
		explicit_bzero(s->sasl->pass, sizeof(s->sasl->pass));
		s->state = S_WAIT_AUTH;
		return;
	case SASL_BADMECH:
		reply(s, "504 5.5.4 Unrecognized authentication type");
		break;
	case SASL_CANCEL:
		reply(s, "501 5.7.0 Authentication cancelled");
		break;
	default:
		reply(s, "501 5.5.2 Cannot decode response");
		break;
	}
	s->errors++;
	sasl_end(s);
	s->state = S_CMD;
}

static void
cmd_auth(struct smtp_session *s, struct smtp_cmd *cmd)
{
	char	 args[SASL_LINE_MAX], chal[SASL_CHALLENGE_MAX];
	char	*mech, *initial;
	int	 f = s->listener->flags;

	if (s->auth_user[0] != '\0') {
		refuse(s, "503 5.5.1 Error: already authenticated");
		return;
	}
	if (!(f & (LISTEN_AUTH | LISTEN_AUTH_OPTIONAL))) {
		refuse(s, "503 5.5.1 Error: authentication not enabled");
		return;
	}
	if (!auth_offered(s)) {
		reply(s, "538 5.7.11 Encryption required for requested "
		    "authentication mechanism");
		s->errors++;
		return;
	}
	if (s->mail_seen) {
		refuse(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (strlcpy(args, cmd->args, sizeof(args)) >= sizeof(args)) {
		refuse(s, "501 5.5.2 Cannot decode response");
		return;
	}
	initial = args;
	mech = strsep(&initial, " ");
	if (mech == NULL || *mech == '\0' ||
	    (initial != NULL && strchr(initial, ' ') != NULL)) {
		refuse(s, "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
		return;
	}
	if ((s->sasl = calloc(1, sizeof(*s->sasl))) == NULL) {
		reply(s, "454 4.7.0 Temporary authentication failure");
		return;
	}
	auth_answer(s, sasl_start(s->sasl, mech, initial, chal, sizeof(chal)),
	    chal);
	explicit_bzero(args, sizeof(args));
}

static void
auth_line(struct smtp_session *s, char *line)
{
	char	 chal[SASL_CHALLENGE_MAX];

	auth_answer(s, sasl_step(s->sasl, line, chal, sizeof(chal)), chal);
}

void
smtp_reply_auth(struct smtp_session *s, int code, const char *text)
{
	s->state = S_CMD;
	if (code == 235) {
		(void)strlcpy(s->auth_user, s->sasl->user,
		    sizeof(s->auth_user));
		stat_increment("smtp.auth.success", 1);
		log_info("%08x: authenticated as %s", s->id, s->auth_user);
		reply(s, "%d %s", code, text);
	} else {
		stat_increment("smtp.auth.failure", 1);
		reply(s, "%d %s", code, text);
		if (code / 100 == 5 &&
		    ++s->auth_failures >= SMTP_AUTH_TRIES_MAX) {
			sasl_end(s);
			reply(s, "421 4.7.0 %s Error: too many failed "
			    "authentication attempts", smtp_conf->hostname);
			session_close_after_reply(s);
			return;
		}
	}
	sasl_end(s);
	session_process(s);
}

/* ---- BDAT (RFC 3030) ---------------------------------------------------- */

/*
 * "BDAT size [LAST]".  Whatever is wrong with the transaction, a chunk
 * with a readable size is read and thrown away before the answer, so
 * that its bytes are never taken as commands.
 */
static void
cmd_bdat(struct smtp_session *s, struct smtp_cmd *cmd)
{
	char			 buf[64], *p = NULL, *end;
	unsigned long long	 n;
	const char		*why = NULL;
	int			 bad;

	bad = strlcpy(buf, cmd->args, sizeof(buf)) >= sizeof(buf);
	if (!bad && (p = strchr(buf, ' ')) != NULL) {
		*p++ = '\0';
		bad = strcasecmp(p, "LAST") != 0;
	}
	if (bad) {
		refuse(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	errno = 0;
	n = strtoull(buf, &end, 10);
	if (buf[0] < '0' || buf[0] > '9' || *end != '\0' || errno != 0 ||
	    n > INT64_MAX) {
		refuse(s, "501 5.5.4 Syntax: BDAT size [LAST]");
		return;
	}
	if (!s->helo_seen)
		why = "503 5.5.1 Error: send HELO/EHLO first";
	else if (!s->mail_seen)
		why = "503 5.5.1 Error: need MAIL command";
	else if (s->nrcpt == 0)
		why = "503 5.5.1 Error: need RCPT command";
	s->bdat_left = n;
	s->bdat_last = p != NULL;
	if (why != NULL) {
		s->bdat_failed = -1;
		s->bdat_why = why;
		s->errors++;
		tx_reset(s);
		s->state = S_BDAT;
		return;
	}
	if (s->bdat && s->msgid[0] != '\0') {
		s->state = S_BDAT;
		return;
	}
	s->bdat = 1;
	if (smtp_queue_create(s) == -1) {
		s->bdat_failed = IOERR_OTHER;
		s->state = S_BDAT;
		return;
	}
	s->state = S_WAIT_DATAFILE;
}

/* The chunk has been read: answer it. */
static void
bdat_chunk_done(struct smtp_session *s)
{
	s->state = S_CMD;
	if (s->bdat_failed != 0) {
		if (s->bdat_failed == -1)
			reply(s, "%s", s->bdat_why);
		else if (s->bdat_failed == IOERR_NOSPACE)
			reply(s, "452 4.3.1 Insufficient system storage");
		else
			reply(s, "451 4.3.0 Error: queue file write error");
		s->bdat_failed = 0;
		tx_reset(s);
		session_set_timeout(s, smtp_conf->smtp_timeout);
		return;
	}
	if (s->bdat_last) {
		data_finish(s);
		return;
	}
	reply(s, "250 2.0.0 %llu octets received",
	    (unsigned long long)s->dp.size);
}

/* Feeds up to bdat_left buffered bytes to the parser; 1 at chunk end. */
static int
bdat_consume(struct smtp_session *s, struct evbuffer *in)
{
	char	 buf[DATA_CHUNK], out[2 * DATA_CHUNK + 2];
	size_t	 n, outlen;
	ev_ssize_t got;

	while (s->bdat_left > 0) {
		n = s->bdat_left < sizeof(buf) ? (size_t)s->bdat_left :
		    sizeof(buf);
		if ((got = evbuffer_remove(in, buf, n)) <= 0)
			return 0;
		s->bdat_left -= (uint64_t)got;
		if (s->bdat_failed != 0 || s->datafp == NULL)
			continue;
		(void)data_parser_feed(&s->dp, buf, (size_t)got, out, &outlen);
		if (s->dp.size > smtp_conf->max_message_size)
			s->data_toobig = 1;
		if (!s->data_toobig && !s->data_ioerr && outlen > 0 &&
		    fwrite(out, 1, outlen, s->datafp) != outlen)
			note_ioerr(s);
	}
	return 1;
}

/* ---- XCLIENT (Postfix's, as nginx's mail proxy speaks it) -------------- */

static void
cmd_xclient(struct smtp_session *s, struct smtp_cmd *cmd)
{
	struct xclient	 xc;
	char		 err[256];

	if (!s->xclient) {
		refuse(s, "550 5.7.0 Error: insufficient authorization");
		return;
	}
	if (s->mail_seen) {
		refuse(s, "503 5.5.1 Error: MAIL transaction in progress");
		return;
	}
	if (xclient_parse(cmd->args, &xc, err, sizeof(err)) == -1) {
		refuse(s, "%s", err);
		return;
	}
	if (xc.has_addr && xc.addr[0] != '\0') {
		(void)strlcpy(s->client_addr, xc.addr, sizeof(s->client_addr));
		s->client_local = 0;
	}
	if (xc.has_login)
		(void)strlcpy(s->auth_user, xc.login, sizeof(s->auth_user));
	if (xc.has_helo)
		(void)strlcpy(s->helo, xc.helo, sizeof(s->helo));
	log_info("%08x: XCLIENT: client %s%s%s", s->id, s->client_addr,
	    s->auth_user[0] ? ", login " : "", s->auth_user);
	/* A new client as far as limits and the dialogue go. */
	tx_reset(s);
	s->helo_seen = 0;
	s->esmtp = 0;
	smtp_policy_disconnect(s);
	session_begin(s);
}

/* ---- PROXY protocol ----------------------------------------------------- */

static void
proxy_header(struct smtp_session *s, struct evbuffer *in)
{
	struct proxy_result	 pr;
	size_t			 len = evbuffer_get_length(in);
	unsigned char		*p;

	if (len > PROXY_HDR_MAX)
		len = PROXY_HDR_MAX;
	if ((p = evbuffer_pullup(in, (ev_ssize_t)len)) == NULL)
		return;
	switch (proxy_v2_parse(p, len, &pr)) {
	case PROXY_NEED_MORE:
		if (len < PROXY_HDR_MAX)
			return;
		/* FALLTHROUGH */
	case PROXY_BAD:
		log_info("%08x: bad PROXY header from %s", s->id,
		    s->client_addr);
		stat_increment("smtp.dialog.error.proxy", 1);
		smtp_session_free(s);
		return;
	case PROXY_DONE:
		break;
	}
	evbuffer_drain(in, pr.consumed);
	if (!pr.local) {
		memcpy(&s->ss, &pr.src, sizeof(s->ss));
		sockaddr_text((struct sockaddr *)&pr.src, s->client_addr,
		    sizeof(s->client_addr));
		s->client_local = sockaddr_is_local((struct sockaddr *)&pr.src);
	}
	log_info("%08x: connect from %s (proxied) on %s port %d", s->id,
	    s->client_addr, s->listener->addr, s->listener->port);
	session_set_timeout(s, smtp_conf->smtp_timeout);
	session_begin(s);
}

/* ---- input -------------------------------------------------------------- */

static void
handle_command(struct smtp_session *s, char *line)
{
	struct smtp_cmd	 cmd;
	size_t		 i;

	log_trace(TRACE_SMTP, "%08x: <<< %s", s->id, line);
	if (smtp_parse_command(line, &cmd) == -1) {
		refuse(s, "500 5.5.2 Error: bad syntax");
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].verb == cmd.verb)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		refuse(s, "500 5.5.2 Error: command not recognized");
		return;
	}
	if ((commands[i].needs & NO_ARGS) && cmd.args[0] != '\0') {
		reply(s, "501 5.5.4 Syntax: %s", cmd.name);
		s->errors++;
		return;
	}
	if ((commands[i].needs & NEED_HELO) && !s->helo_seen) {
		refuse(s, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if ((commands[i].needs & NEED_MAIL) && !s->mail_seen) {
		refuse(s, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if ((commands[i].needs & NEED_RCPT) && s->nrcpt == 0) {
		refuse(s, "503 5.5.1 Error: need RCPT command");
		return;
	}
	commands[i].handler(s, &cmd);
}

/* Feeds buffered input to the DATA parser; 1 when the data ended. */
static int
data_consume(struct smtp_session *s, struct evbuffer *in)
{
	char	 buf[DATA_CHUNK], out[2 * DATA_CHUNK + 2];
	size_t	 n, used, outlen;

	while ((n = evbuffer_copyout(in, buf, sizeof(buf))) > 0 &&
	    n != (size_t)-1) {
		used = data_parser_feed(&s->dp, buf, n, out, &outlen);
		evbuffer_drain(in, used);
		if (s->dp.size > smtp_conf->max_message_size)
			s->data_toobig = 1;
		if (!s->data_toobig && !s->data_ioerr && outlen > 0 &&
		    fwrite(out, 1, outlen, s->datafp) != outlen)
			note_ioerr(s);
		if (s->dp.state == DS_DONE)
			return 1;
	}
	return 0;
}

/*
 * Shutting down: no new transaction starts.  A client that just finished
 * one gets a short grace to say QUIT (221); anything else, or silence, gets
 * 421.  Returns 1 when the session must not process input now.
 */
static int
shutdown_check(struct smtp_session *s, struct evbuffer *in)
{
	struct timeval	 grace = { SMTP_SHUTDOWN_GRACE_SECS, 0 };
	struct evbuffer_ptr p;
	char		 verb[6];
	size_t		 len;

	p = evbuffer_search_eol(in, NULL, &len, EVBUFFER_EOL_CRLF);
	if (p.pos == -1) {
		bufferevent_set_timeouts(s->bev, &grace, &grace);
		return 1;
	}
	memset(verb, 0, sizeof(verb));
	evbuffer_copyout(in, verb, p.pos < 5 ? (size_t)p.pos : 5);
	if (p.pos == 4 && strncasecmp(verb, "QUIT", 4) == 0)
		return 0;
	reply(s, "421 4.3.2 %s Service shutting down", smtp_conf->hostname);
	session_close_after_reply(s);
	return 1;
}

/* Handles what the input buffer holds, as far as the state allows. */
static void
session_process(struct smtp_session *s)
{
	struct evbuffer	*in = bufferevent_get_input(s->bev);
	struct evbuffer_ptr p;
	size_t		 len;
	char		*line;

	for (;;) {
		if (s->state == S_CMD && !smtp_accepting() &&
		    shutdown_check(s, in))
			return;
		if (s->errors >= smtp_conf->max_errors) {
			reply(s, "421 4.7.0 %s Error: too many errors",
			    smtp_conf->hostname);
			stat_increment("smtp.dialog.error.too_many_errors", 1);
			session_close_after_reply(s);
			return;
		}
		if (s->state == S_PROXY) {
			proxy_header(s, in);
			return;
		}
		if (s->state == S_DATA) {
			if (!data_consume(s, in))
				return;
			data_finish(s);
			continue;
		}
		if (s->state == S_BDAT) {
			if (!bdat_consume(s, in))
				return;
			bdat_chunk_done(s);
			continue;
		}
		if (s->state != S_CMD && s->state != S_AUTH)
			return;		/* waiting for an answer */
		p = evbuffer_search_eol(in, NULL, &len, EVBUFFER_EOL_CRLF);
		if (p.pos == -1) {
			if (evbuffer_get_length(in) >= smtp_conf->max_line) {
				reply(s, "500 5.5.2 Error: line too long");
				stat_increment("smtp.dialog.error.line_too_long", 1);
				session_close_after_reply(s);
			}
			return;
		}
		if ((size_t)p.pos + len > smtp_conf->max_line) {
			reply(s, "500 5.5.2 Error: line too long");
			stat_increment("smtp.dialog.error.line_too_long", 1);
			session_close_after_reply(s);
			return;
		}
		line = evbuffer_readln(in, NULL, EVBUFFER_EOL_CRLF);
		if (line == NULL)
			return;
		/* A NUL inside the line makes it shorter than found: refuse. */
		if (strlen(line) != (size_t)p.pos) {
			free(line);
			refuse(s, "500 5.5.2 Error: bad syntax");
			continue;
		}
		if (s->state == S_AUTH)
			auth_line(s, line);
		else
			handle_command(s, line);
		explicit_bzero(line, strlen(line));
		free(line);
		if (s->state == S_QUIT)
			return;
	}
}

static void
session_read(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	if (s->state == S_QUIT)
		return;
	session_process(s);
}

static void
linger_done(evutil_socket_t fd, short ev, void *arg)
{
	smtp_session_free(arg);
}

/* Only arms a timer: the session is not freed from inside its buffer. */
static void
linger_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct smtp_session	*s = arg;
	struct timeval		 now = { 0, 0 };

	if (evbuffer_get_length(buf) == 0 && s->timer != NULL)
		evtimer_add(s->timer, &now);
}

static void
session_write(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	if (s->state != S_QUIT || s->lingering)
		return;
	session_linger_or_free(s);
}

/*
 * Under TLS the last reply (or a handshake's alert) has left the TLS layer
 * but maybe not the socket: freeing now would drop it.  The session then
 * lingers until the connection's own buffer is empty (or the timeout).
 */
static void
session_linger_or_free(struct smtp_session *s)
{
	struct bufferevent	*under;

	if ((under = bufferevent_get_underlying(s->bev)) != NULL &&
	    evbuffer_get_length(bufferevent_get_output(under)) > 0) {
		if (s->timer != NULL)
			event_free(s->timer);
		if ((s->timer = evtimer_new(smtp_base, linger_done, s)) !=
		    NULL && evbuffer_add_cb(bufferevent_get_output(under),
		    linger_drained, s) != NULL) {
			s->lingering = 1;
			return;
		}
	}
	smtp_session_free(s);
}

static void
session_event(struct bufferevent *bev, short what, void *arg)
{
	struct smtp_session	*s = arg;

	if (what & BEV_EVENT_TIMEOUT) {
		if (s->state == S_QUIT) {
			smtp_session_free(s);
			return;
		}
		/* Answering needs the write side to be enabled again. */
		bufferevent_enable(bev, EV_WRITE);
		if (!smtp_accepting() && s->state == S_CMD) {
			reply(s, "421 4.3.2 %s Service shutting down",
			    smtp_conf->hostname);
			session_close_after_reply(s);
			return;
		}
		log_info("%08x: timeout from %s in state %d", s->id,
		    s->client_addr, s->state);
		if (s->state == S_PROXY || s->state == S_HANDSHAKE) {
			stat_increment("smtp.dialog.error.timeout", 1);
			smtp_session_free(s);
			return;
		}
		stat_increment("smtp.dialog.error.timeout", 1);
		reply(s, "421 4.4.2 %s Error: timeout exceeded",
		    smtp_conf->hostname);
		session_close_after_reply(s);
		return;
	}
	if ((what & BEV_EVENT_CONNECTED) && s->state == S_HANDSHAKE) {
		tls_established(s);
		return;
	}
	if ((what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) &&
	    s->state == S_HANDSHAKE) {
		char	 err[256];

		smtp_tls_error(s, err, sizeof(err));
		log_info("%08x: TLS handshake with %s failed: %s", s->id,
		    s->client_addr, err);
		stat_increment("smtp.tls.failed", 1);
		/* The alert that says why goes out first. */
		s->state = S_QUIT;
		session_linger_or_free(s);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		if (s->state != S_QUIT && s->state != S_CMD)
			log_info("%08x: lost connection from %s in state %d",
			    s->id, s->client_addr, s->state);
		smtp_session_free(s);
	}
}

/* Shutdown: a session between commands is closed now, others when done. */
void
smtp_session_shutdown(struct smtp_session *s)
{
	if (s->state == S_CMD)
		session_process(s);
}

void
smtp_session_peer_lost(struct smtp_session *s, enum proc_kind kind)
{
	int	 waiting;

	if (kind == PROC_POLICY && s->state == S_WAIT_CONNECT) {
		s->policy_connected = 0;
		smtp_reply_connect(s, 220, "");
		return;
	}
	if (kind == PROC_POLICY && s->state == S_WAIT_AUTH) {
		sasl_end(s);
		s->state = S_CMD;
		reply(s, "454 4.7.0 Temporary authentication failure");
		session_process(s);
		return;
	}
	if (kind == PROC_POLICY)
		waiting = s->state == S_WAIT_MAIL || s->state == S_WAIT_RCPT;
	else
		waiting = s->state == S_WAIT_DATAFILE || s->state == S_DATA ||
		    s->state == S_WAIT_COMMIT || (s->state == S_BDAT &&
		    s->msgid[0] != '\0');
	if (!waiting)
		return;
	switch (s->state) {
	case S_DATA:
		/* The rest of the data is read and dropped, then 451. */
		s->data_ioerr = 1;
		return;
	case S_BDAT:
		s->msgid[0] = '\0';
		s->bdat_failed = IOERR_OTHER;
		return;
	case S_WAIT_MAIL:
		s->sender[0] = '\0';
		break;
	case S_WAIT_RCPT:
		/* Only this recipient fails; the transaction goes on. */
		break;
	default:
		/* The queue drops what it had for the session. */
		s->msgid[0] = '\0';
		tx_reset(s);
	}
	s->state = S_CMD;
	reply(s, "451 4.3.0 Temporary failure, try again later");
	session_process(s);
}
