/*
 * sendmail -bs while mtad is not running.  Programs that speak SMTP to
 * `sendmail -bs` (Symfony Mailer, SwiftMailer...) expect a server; with
 * mtad down this minimal one takes their messages into offline/, exactly
 * as plain sendmail does, and the master submits them when it runs.  It
 * checks the syntax only: the rules are applied at pickup, where refused
 * recipients are logged.
 */
#include "autoconf.h"

#include <sys/mman.h>

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "dropfile.h"
#include "sendmail.h"
#include "submit.h"

#define CMD_MAX		1000	/* RFC 5321 4.5.3.1.4, CRLF included */
#define ERRORS_MAX	20

struct smtpd {
	const struct config	*conf;
	int			 verbose;
	int			 helo;
	int			 mail;		/* MAIL was given */
	struct submit_env	 env;
	int			 errors;
};

static void __attribute__((format(printf, 2, 3)))
reply(struct smtpd *sd, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	if (sd->verbose) {
		va_list	 ap2;

		va_copy(ap2, ap);
		fprintf(stderr, "<<< ");
		vfprintf(stderr, fmt, ap2);
		fprintf(stderr, "\n");
		va_end(ap2);
	}
	vprintf(fmt, ap);
	va_end(ap);
	printf("\r\n");
	(void)fflush(stdout);
}

/* A command line, line end removed: 1, 0 at EOF, -1 if it was too long. */
static int
read_cmd(char *buf, size_t bufsz)
{
	size_t	 n = 0;
	int	 c, toolong = 0;

	while ((c = getchar()) != EOF && c != '\n') {
		if (n + 1 < bufsz)
			buf[n++] = (char)c;
		else
			toolong = 1;
	}
	if (c == EOF && n == 0)
		return 0;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return toolong ? -1 : 1;
}

static void
transaction_reset(struct smtpd *sd)
{
	submit_env_free(&sd->env);
	memset(&sd->env, 0, sizeof(sd->env));
	sd->mail = 0;
}

/*
 * "<address> params" after "FROM:" or "TO:": the address into out (empty
 * allowed for the sender), *params at what follows.  -1 if malformed.
 */
static int
parse_path(const char *s, char *out, size_t outsz, int sender,
    const char **params)
{
	struct mailaddr	 ma;
	const char	*p;
	int		 quoted = 0;
	size_t		 len;

	while (*s == ' ')
		s++;
	if (*s++ != '<')
		return -1;
	for (p = s; *p != '\0'; p++) {
		if (*p == '\\' && quoted && p[1] != '\0')
			p++;
		else if (*p == '"')
			quoted = !quoted;
		else if (*p == '>' && !quoted)
			break;
	}
	if (*p != '>' || (len = (size_t)(p - s)) >= outsz)
		return -1;
	memcpy(out, s, len);
	out[len] = '\0';
	*params = p + 1;
	if (len == 0)
		return sender ? 0 : -1;
	return mailaddr_parse(&ma, out, 0);
}

/* MAIL and RCPT parameters: the DSN ones are kept, others refused. */
static int
parse_params(struct smtpd *sd, char *params, int rcpt)
{
	char			*w, *last, *v, envid[SUBMIT_ENVID_MAX + 1];
	unsigned long long	 size;

	for (w = strtok_r(params, " ", &last); w != NULL;
	    w = strtok_r(NULL, " ", &last)) {
		if ((v = strchr(w, '=')) != NULL)
			*v++ = '\0';
		if (!rcpt && strcasecmp(w, "BODY") == 0 && v != NULL)
			continue;
		if (!rcpt && strcasecmp(w, "SIZE") == 0 && v != NULL) {
			size = strtoull(v, NULL, 10);
			if (size > sd->conf->max_message_size) {
				reply(sd, "552 5.3.4 Message size exceeds "
				    "fixed maximum message size");
				return -1;
			}
			continue;
		}
		if (!rcpt && strcasecmp(w, "RET") == 0 && v != NULL &&
		    submit_set_ret(&sd->env, v) == 0)
			continue;
		if (!rcpt && strcasecmp(w, "ENVID") == 0 && v != NULL &&
		    xtext_decode(v, envid, sizeof(envid)) == 0 &&
		    submit_set_envid(&sd->env, envid) == 0)
			continue;
		/* one NOTIFY for the message: the first recipient's */
		if (rcpt && strcasecmp(w, "NOTIFY") == 0 && v != NULL) {
			if (sd->env.notify[0] != '\0' ||
			    submit_set_notify(&sd->env, v) == 0)
				continue;
		}
		if (rcpt && strcasecmp(w, "ORCPT") == 0 && v != NULL)
			continue;
		reply(sd, "555 5.5.4 Unsupported parameter %s", w);
		return -1;
	}
	return 0;
}

static void
cmd_mail(struct smtpd *sd, const char *args)
{
	char		 params[CMD_MAX];
	const char	*p;

	if (!sd->helo) {
		reply(sd, "503 5.5.1 Error: send HELO/EHLO first");
		return;
	}
	if (sd->mail) {
		reply(sd, "503 5.5.1 Error: nested MAIL command");
		return;
	}
	if (parse_path(args, sd->env.sender, sizeof(sd->env.sender), 1,
	    &p) == -1) {
		reply(sd, "501 5.1.7 Bad sender address syntax");
		return;
	}
	(void)strlcpy(params, p, sizeof(params));
	if (parse_params(sd, params, 0) == -1)
		return;
	sd->mail = 1;
	reply(sd, "250 2.1.0 Ok");
}

static void
cmd_rcpt(struct smtpd *sd, const char *args)
{
	char		 addr[ADDR_MAX], params[CMD_MAX];
	const char	*p;

	if (!sd->mail) {
		reply(sd, "503 5.5.1 Error: need MAIL command");
		return;
	}
	if (parse_path(args, addr, sizeof(addr), 0, &p) == -1) {
		reply(sd, "501 5.1.3 Bad recipient address syntax");
		return;
	}
	if (sd->env.nrcpts >= (size_t)sd->conf->max_rcpt) {
		reply(sd, "452 4.5.3 Too many recipients");
		return;
	}
	(void)strlcpy(params, p, sizeof(params));
	if (parse_params(sd, params, 1) == -1)
		return;
	if (submit_env_add(&sd->env, addr) == -1) {
		reply(sd, "451 4.3.0 Out of memory");
		return;
	}
	reply(sd, "250 2.1.5 Ok");
}

/*
 * The rest of a refused message, up to its final dot; bol: the input is at
 * a line start.  1 when the dot was read, 0 at the end of input.
 */
static int
drain_data(int bol)
{
	int	 c, dot = 0;

	while ((c = getchar()) != EOF) {
		if (c == '\r')
			continue;
		if (c == '\n') {
			if (dot)
				return 1;
			bol = 1;
			continue;
		}
		dot = bol && c == '.' && !dot;
		bol = 0;
	}
	return 0;
}

/* DATA: the message into offline/.  -1 when the input ended inside it. */
static int
cmd_data(struct smtpd *sd)
{
	struct msg_opts	 mo;
	struct msg_info	 info;
	char		 dir[PATH_MAX], name[128], err[PATH_MAX + 128];
	int		 fd, r;

	if (sd->env.nrcpts == 0) {
		reply(sd, "503 5.5.1 Error: need RCPT command");
		return 0;
	}
	if ((fd = memfd_create("sendmail", MFD_CLOEXEC)) == -1) {
		reply(sd, "451 4.3.0 Temporary failure: %s", strerror(errno));
		return 0;
	}
	reply(sd, "354 End data with <CR><LF>.<CR><LF>");
	memset(&mo, 0, sizeof(mo));
	mo.dot_ends = 1;
	mo.unstuff = 1;
	mo.sender = sd->env.sender;
	mo.hostname = sd->conf->hostname;
	mo.max_size = sd->conf->max_message_size;
	mo.max_rcpts = (size_t)sd->conf->max_rcpt;
	r = msg_read(stdin, fd, &mo, &info);
	msg_info_free(&info);
	if (r == 0 && !info.dot_seen) {
		(void)close(fd);
		return -1;	/* nobody is left to answer */
	}
	if (r != 0) {
		(void)close(fd);
		if (r == EX_IOERR || (!info.dot_seen &&
		    drain_data(info.bol) == 0))
			return -1;
		reply(sd, "%s: %s", r == EX_DATAERR ? "552 5.3.4 Error" :
		    "451 4.3.0 Error", info.err);
		transaction_reset(sd);
		return 0;
	}
	if ((size_t)snprintf(dir, sizeof(dir), "%s/offline",
	    sd->conf->queue_path) >= sizeof(dir) ||
	    dropfile_write(dir, &sd->env, fd, info.size, name, sizeof(name),
	    err, sizeof(err)) == -1) {
		fprintf(stderr, "sendmail: %s\n", err);
		reply(sd, "451 4.3.0 Temporary failure, try again later");
	} else
		reply(sd, "250 2.0.0 Ok: kept as %s for delivery when mtad "
		    "runs", name);
	(void)close(fd);
	transaction_reset(sd);
	return 0;
}

int
smtpd_offline(const struct config *conf, int verbose)
{
	struct smtpd	 sd;
	char		 line[CMD_MAX + 1], *args;
	int		 r;

	memset(&sd, 0, sizeof(sd));
	sd.conf = conf;
	sd.verbose = verbose;
	reply(&sd, "220 %s ESMTP mtad (not running: mail is kept for later)",
	    conf->hostname);
	while (sd.errors < ERRORS_MAX) {
		if ((r = read_cmd(line, sizeof(line))) == 0)
			break;
		if (verbose)
			fprintf(stderr, ">>> %s\n", line);
		if (r == -1) {
			reply(&sd, "500 5.5.2 Error: line too long");
			sd.errors++;
			continue;
		}
		args = line + strcspn(line, " ");
		if (*args == ' ')
			*args++ = '\0';
		if (strcasecmp(line, "EHLO") == 0 || strcasecmp(line, "HELO") ==
		    0) {
			transaction_reset(&sd);
			sd.helo = 1;
			if (strcasecmp(line, "HELO") == 0)
				reply(&sd, "250 %s", conf->hostname);
			else {
				reply(&sd, "250-%s", conf->hostname);
				reply(&sd, "250-PIPELINING");
				reply(&sd, "250-SIZE %zu",
				    conf->max_message_size);
				reply(&sd, "250-8BITMIME");
				reply(&sd, "250-DSN");
				reply(&sd, "250 ENHANCEDSTATUSCODES");
			}
		} else if (strcasecmp(line, "MAIL") == 0 &&
		    strncasecmp(args, "FROM:", 5) == 0)
			cmd_mail(&sd, args + 5);
		else if (strcasecmp(line, "RCPT") == 0 &&
		    strncasecmp(args, "TO:", 3) == 0)
			cmd_rcpt(&sd, args + 3);
		else if (strcasecmp(line, "DATA") == 0) {
			if (cmd_data(&sd) == -1)
				break;
		} else if (strcasecmp(line, "RSET") == 0) {
			transaction_reset(&sd);
			reply(&sd, "250 2.0.0 Ok");
		} else if (strcasecmp(line, "NOOP") == 0)
			reply(&sd, "250 2.0.0 Ok");
		else if (strcasecmp(line, "VRFY") == 0)
			reply(&sd, "252 2.0.0 Cannot VRFY user");
		else if (strcasecmp(line, "QUIT") == 0) {
			reply(&sd, "221 2.0.0 Bye");
			break;
		} else {
			reply(&sd, "502 5.5.1 Error: command not recognized");
			sd.errors++;
		}
	}
	transaction_reset(&sd);
	return EX_OK;
}
