/*
 * One SMTP server session (RFC 5321), as an explicit state machine.  Commands
 * are read from the input buffer one at a time; while a question is out to
 * policy or queue the session stops reading, so pipelined commands wait in
 * the buffer (bounded by a read watermark) and are answered in order.
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
	{ VERB_STARTTLS, 0,			cmd_unimplemented },
	{ VERB_AUTH,	0,			cmd_unimplemented },
	{ VERB_BDAT,	0,			cmd_unimplemented },
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

void
smtp_session_new(int fd, struct listener *l, struct sockaddr *sa,
    socklen_t salen)
{
	struct smtp_session	*s;
	struct timeval		 tv = { smtp_conf->smtp_timeout, 0 };

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
	bufferevent_setcb(s->bev, session_read, session_write, session_event, s);
	bufferevent_setwatermark(s->bev, EV_READ, 0, INPUT_HIGHWAT);
	bufferevent_set_timeouts(s->bev, &tv, &tv);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	s->state = S_CMD;
	if (s->client_uid != -1)
		log_info("%08x: local submission from uid %ld", s->id,
		    s->client_uid);
	else
		log_info("%08x: connect from %s on %s port %d", s->id,
		    s->client_addr, l->addr, l->port);
	reply(s, "220 %s ESMTP mtad", smtp_conf->hostname);
}

static void
tx_reset(struct smtp_session *s)
{
	if (s->datafp) {
		fclose(s->datafp);
		s->datafp = NULL;
	}
	if (s->msgid[0] && (s->state == S_DATA || s->state == S_WAIT_DATAFILE))
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
	s->data_toobig = 0;
	s->data_ioerr = 0;
}

void
smtp_session_free(struct smtp_session *s)
{
	log_info("%08x: disconnect from %s", s->id, s->client_addr);
	tx_reset(s);
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
	reply(s, "250-DSN");
	reply(s, "250-ENHANCEDSTATUSCODES");
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
		reply(s, "503 5.5.1 Error: nested MAIL command");
		s->errors++;
		return;
	}
	if (smtp_parse_path(cmd->args, "FROM:", 1, 0, &path, err,
	    sizeof(err)) == -1) {
		reply(s, "%s", err);
		s->errors++;
		return;
	}
	if (check_mail_params(s, &path) == -1) {
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

void
smtp_reply_mail(struct smtp_session *s, int code, const char *text)
{
	s->state = S_CMD;
	if (code / 100 == 2) {
		s->mail_seen = 1;
		log_info("%08x: from=<%s>", s->id, s->sender);
	} else
		s->sender[0] = '\0';
	reply(s, "%d %s", code, text);
	session_process(s);
}

static void
cmd_rcpt(struct smtp_session *s, struct smtp_cmd *cmd)
{
	struct smtp_path	 path;
	char			 err[256];

	if (smtp_parse_path(cmd->args, "TO:", 0, 0, &path, err,
	    sizeof(err)) == -1) {
		reply(s, "%s", err);
		s->errors++;
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
	reply(s, "%d %s", code, text);
	session_process(s);
}

static void
cmd_data(struct smtp_session *s, struct smtp_cmd *cmd)
{
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
		    smtp_conf->hostname, s->esmtp ? "ESMTP" : "SMTP",
		    s->msgid);
	else
		fprintf(s->datafp, "Received: from %s ([%s])\r\n\tby %s "
		    "(mtad) with %s id %s", s->helo, s->client_addr,
		    smtp_conf->hostname, s->esmtp ? "ESMTP" : "SMTP",
		    s->msgid);
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

void
smtp_reply_create(struct smtp_session *s, int status, const char *msgid,
    int fd)
{
	s->state = S_CMD;
	if (status != QUEUE_OK) {
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
	data_parser_init(&s->dp);
	s->state = S_DATA;
	if (write_received(s) == -1)
		note_ioerr(s);
	reply(s, "354 End data with <CR><LF>.<CR><LF>");
	session_process(s);
}

static void
data_finish(struct smtp_session *s)
{
	long	 size;

	if (fflush(s->datafp) == EOF || ferror(s->datafp))
		note_ioerr(s);
	size = ftell(s->datafp);
	fclose(s->datafp);
	s->datafp = NULL;

	if (s->data_toobig || s->data_ioerr || s->dp.bare_lf || s->dp.bare_cr ||
	    size < 0) {
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
		reply(s, "501 5.5.4 Syntax: VRFY address");
		s->errors++;
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
	reply(s, "502 5.5.1 Error: command not implemented");
	s->errors++;
}

/* ---- input -------------------------------------------------------------- */

static void
handle_command(struct smtp_session *s, char *line)
{
	struct smtp_cmd	 cmd;
	size_t		 i;

	log_trace(TRACE_SMTP, "%08x: <<< %s", s->id, line);
	if (smtp_parse_command(line, &cmd) == -1) {
		reply(s, "500 5.5.2 Error: bad syntax");
		s->errors++;
		return;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (commands[i].verb == cmd.verb)
			break;
	if (i == sizeof(commands) / sizeof(commands[0])) {
		reply(s, "500 5.5.2 Error: command not recognized");
		s->errors++;
		return;
	}
	if ((commands[i].needs & NO_ARGS) && cmd.args[0] != '\0') {
		reply(s, "501 5.5.4 Syntax: %s", cmd.name);
		s->errors++;
		return;
	}
	if ((commands[i].needs & NEED_HELO) && !s->helo_seen) {
		reply(s, "503 5.5.1 Error: send HELO/EHLO first");
		s->errors++;
		return;
	}
	if ((commands[i].needs & NEED_MAIL) && !s->mail_seen) {
		reply(s, "503 5.5.1 Error: need MAIL command");
		s->errors++;
		return;
	}
	if ((commands[i].needs & NEED_RCPT) && s->nrcpt == 0) {
		reply(s, "503 5.5.1 Error: need RCPT command");
		s->errors++;
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
		if (s->errors >= SMTP_ERRORS_MAX) {
			reply(s, "421 4.7.0 %s Error: too many errors",
			    smtp_conf->hostname);
			stat_increment("smtp.dialog.error.too_many_errors", 1);
			session_close_after_reply(s);
			return;
		}
		if (s->state == S_DATA) {
			if (!data_consume(s, in))
				return;
			data_finish(s);
			continue;
		}
		if (s->state != S_CMD)
			return;		/* waiting for an answer */
		p = evbuffer_search_eol(in, NULL, &len, EVBUFFER_EOL_CRLF);
		if (p.pos == -1) {
			if (evbuffer_get_length(in) >= SMTP_LINE_MAX) {
				reply(s, "500 5.5.2 Error: line too long");
				stat_increment("smtp.dialog.error.line_too_long", 1);
				session_close_after_reply(s);
			}
			return;
		}
		if ((size_t)p.pos + len > SMTP_LINE_MAX) {
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
			reply(s, "500 5.5.2 Error: bad syntax");
			s->errors++;
			continue;
		}
		handle_command(s, line);
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
session_write(struct bufferevent *bev, void *arg)
{
	struct smtp_session	*s = arg;

	if (s->state == S_QUIT)
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
		stat_increment("smtp.dialog.error.timeout", 1);
		reply(s, "421 4.4.2 %s Error: timeout exceeded",
		    smtp_conf->hostname);
		session_close_after_reply(s);
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

	if (kind == PROC_POLICY)
		waiting = s->state == S_WAIT_MAIL || s->state == S_WAIT_RCPT;
	else
		waiting = s->state == S_WAIT_DATAFILE || s->state == S_DATA ||
		    s->state == S_WAIT_COMMIT;
	if (!waiting)
		return;
	switch (s->state) {
	case S_DATA:
		/* The rest of the data is read and dropped, then 451. */
		s->data_ioerr = 1;
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
