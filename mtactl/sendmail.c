/*
 * sendmail(8), mailq(1), newaliases(1): the local submission interface that
 * cron, mail(1), PHP's mail() and friends expect at /usr/sbin/sendmail.
 *
 * Not set-id: the message goes to mtad as SMTP over the submit socket (mode
 * 0666; mtad learns the caller's uid from the socket).  When mtad is not
 * running, or answers with a temporary failure, the message is left in the
 * spool's offline/ directory as the caller, and the master submits it later
 * with the caller's identity (master/offline.c).  mailq, newaliases and -q
 * speak the control socket like mtactl.
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "ctlclient.h"
#include "dropfile.h"
#include "log.h"
#include "marshal.h"
#include "proto.h"
#include "rfc5322.h"
#include "sendmail.h"
#include "submit.h"

#define CTL_TIMEOUT	60
#define RELAY_LINGER	30	/* -bs: after the end of input */

enum mode {
	MODE_SEND,		/* -bm, the default */
	MODE_SMTP,		/* -bs */
	MODE_MAILQ,		/* -bp, mailq */
	MODE_NEWALIASES,	/* -bi, -I, newaliases */
	MODE_FLUSH		/* -q */
};

static const char	*progname = "sendmail";
static int		 verbose;
static struct config	*conf;
static const char	*conffile;
static int		 conffile_explicit;

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: sendmail [-itv] [-f sender] [-F name] [-C file] "
	    "[-N dsn] [-R ret] [-V envid] [recipient ...]\n"
	    "       sendmail -bs | -bp | -bi | -q\n"
	    "       mailq\n"
	    "       newaliases\n");
	exit(EX_USAGE);
}

static void __attribute__((format(printf, 1, 2)))
warnmsg(const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void __attribute__((format(printf, 2, 3), noreturn))
die(int code, const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static void
trace(void *arg, const char *dir, const char *line)
{
	fprintf(stderr, "%s %s\n", dir, line);
}

/* ---- configuration ------------------------------------------------------- */

/*
 * The paths and names sendmail needs, without table files: an unprivileged
 * caller may not be able to read them, and they are of no use here.
 */
static void
load_config(void)
{
	if (!conffile_explicit && access(conffile, F_OK) == -1 &&
	    errno == ENOENT)
		conf = config_parse_flags("(embedded defaults)",
		    config_embedded_text(), NULL, CONFIG_SKIP_TABLE_FILES);
	else
		conf = config_parse_flags(conffile, NULL, NULL,
		    CONFIG_SKIP_TABLE_FILES);
	if (conf == NULL)
		die(EX_CONFIG, "%s: configuration has errors", conffile);
}

/* ---- addresses ----------------------------------------------------------- */

/* Is there an '@' outside quoted strings? */
static int
has_domain(const char *a)
{
	int	 quoted = 0;

	for (; *a != '\0'; a++) {
		if (*a == '\\' && quoted && a[1] != '\0')
			a++;
		else if (*a == '"')
			quoted = !quoted;
		else if (*a == '@' && !quoted)
			return 1;
	}
	return 0;
}

/* An address as given, qualified with the hostname and checked. */
static int
address_check(const char *in, char *out, size_t outsz)
{
	struct mailaddr	 ma;
	int		 n;

	if (has_domain(in))
		n = snprintf(out, outsz, "%s", in);
	else
		n = snprintf(out, outsz, "%s@%s", in, conf->hostname);
	if (n < 0 || (size_t)n >= outsz)
		return -1;
	return mailaddr_parse(&ma, out, 0);
}

struct rcpt_ctx {
	struct submit_env	*env;
	int			 bad;
	int			 nomem;
};

static int
add_rcpt(void *arg, int ok, const char *addr)
{
	struct rcpt_ctx	*rc = arg;
	char		 q[ADDR_MAX];

	if (!ok || address_check(addr, q, sizeof(q)) == -1) {
		warnmsg("%s: bad recipient address", addr);
		rc->bad++;
		return 0;
	}
	if (rc->env->nrcpts >= (size_t)conf->max_rcpt) {
		warnmsg("too many recipients (limit recipients %d)",
		    conf->max_rcpt);
		rc->nomem = EX_DATAERR;
		return 1;
	}
	if (submit_env_add(rc->env, q) == -1) {
		rc->nomem = EX_OSERR;
		return 1;
	}
	return 0;
}

static void
set_sender(struct submit_env *env, const char *f, const char *login)
{
	char	 buf[ADDR_MAX];
	size_t	 len;

	if (f == NULL) {
		if (address_check(login, env->sender, sizeof(env->sender)) ==
		    -1)
			die(EX_DATAERR, "cannot make a sender address from "
			    "the user name \"%s\" (use -f)", login);
		return;
	}
	len = strlen(f);
	if (len >= 2 && f[0] == '<' && f[len - 1] == '>') {
		if (len - 1 > sizeof(buf))
			die(EX_USAGE, "sender address too long");
		memcpy(buf, f + 1, len - 2);
		buf[len - 2] = '\0';
	} else if (strlcpy(buf, f, sizeof(buf)) >= sizeof(buf))
		die(EX_USAGE, "sender address too long");
	if (buf[0] == '\0') {
		env->sender[0] = '\0';	/* the null sender */
		return;
	}
	if (address_check(buf, env->sender, sizeof(env->sender)) == -1)
		die(EX_USAGE, "%s: bad sender address", f);
}

/* The full name in the password file: up to the first comma, & = login. */
static void
gecos_name(const struct passwd *pw, char *out, size_t outsz)
{
	const char	*g = pw->pw_gecos;
	size_t		 o = 0, i;

	out[0] = '\0';
	if (g == NULL)
		return;
	for (; *g != '\0' && *g != ',' && o + 1 < outsz; g++) {
		if (*g != '&') {
			out[o++] = *g;
			continue;
		}
		for (i = 0; pw->pw_name[i] != '\0' && o + 1 < outsz; i++)
			out[o++] = i == 0 && pw->pw_name[i] >= 'a' &&
			    pw->pw_name[i] <= 'z' ? (char)(pw->pw_name[i] - 32) :
			    pw->pw_name[i];
	}
	out[o] = '\0';
}

/* ---- sending ------------------------------------------------------------- */

static int
temp_fd(void)
{
	FILE	*fp;
	int	 fd;

	if ((fd = memfd_create("sendmail", MFD_CLOEXEC)) != -1)
		return fd;
	/* no memfd: an unlinked file in TMPDIR */
	if ((fp = tmpfile()) == NULL || (fd = dup(fileno(fp))) == -1)
		die(EX_OSERR, "cannot create a temporary file: %s",
		    strerror(errno));
	(void)fclose(fp);
	return fd;
}

/*
 * mtad is not running or asked to try later: leave the message in offline/
 * for the master to submit when it runs.  why: what happened, for -v.
 */
static int
drop_offline(struct submit_env *env, int msgfd, uint64_t size,
    const char *why)
{
	char	 dir[PATH_MAX], name[128], err[PATH_MAX + 128];

	if ((size_t)snprintf(dir, sizeof(dir), "%s/offline",
	    conf->queue_path) >= sizeof(dir))
		die(EX_SOFTWARE, "queue path too long");
	if (dropfile_write(dir, env, msgfd, size, name, sizeof(name), err,
	    sizeof(err)) == -1) {
		warnmsg("%s; and the message cannot be kept for later: %s",
		    why, err);
		return EX_TEMPFAIL;
	}
	if (verbose)
		warnmsg("%s: message kept as %s/%s, mtad will deliver it when "
		    "it runs", why, dir, name);
	return EX_OK;
}

/* Reports the recipients the server refused; EX_NOUSER if there were any. */
static int
report_refused(const struct submit_env *env)
{
	size_t	 i;
	int	 r = EX_OK;

	for (i = 0; i < env->nrcpts; i++)
		if (env->rcpts[i].code >= 500) {
			warnmsg("<%s>: %s", env->rcpts[i].addr,
			    env->rcpts[i].reply);
			r = EX_NOUSER;
		}
	return r;
}

static int
submit_online(struct submit_env *env, int msgfd, uint64_t size, int dsn)
{
	struct submit_client	 c;
	char			 why[SUBMIT_TEXT_MAX + 64];
	int			 s, r;

	submit_init(&c);
	if (verbose) {
		c.trace = trace;
		c.trace_arg = NULL;
	}
	if (submit_connect(&c, conf->submit_path) == -1) {
		(void)snprintf(why, sizeof(why), "mtad is not running (%s)",
		    c.reply);
		return drop_offline(env, msgfd, size, why);
	}
	if ((s = submit_hello(&c, conf->hostname)) != SUBMIT_OK) {
		(void)snprintf(why, sizeof(why), "%s", c.reply);
		submit_close(&c);
		if (s == SUBMIT_TEMPFAIL)
			return drop_offline(env, msgfd, size, why);
		die(EX_UNAVAILABLE, "mtad refused the connection: %s", why);
	}
	if (dsn && !c.ext_dsn && verbose)
		warnmsg("the server does not offer DSN: -N, -R and -V are "
		    "ignored");
	s = submit_transaction(&c, env, msgfd, 0, size);
	(void)snprintf(why, sizeof(why), "%s", c.reply);
	r = c.code;
	submit_close(&c);
	switch (s) {
	case SUBMIT_OK:
		return report_refused(env);
	case SUBMIT_TEMPFAIL:
		if (r == 0 && verbose)
			warnmsg("no clear answer from mtad: the message may "
			    "arrive twice");
		return drop_offline(env, msgfd, size, why);
	default:
		if (report_refused(env) == EX_NOUSER)
			return EX_NOUSER;
		warnmsg("mtad refused the message: %s", why);
		return EX_UNAVAILABLE;
	}
}

struct send_opts {
	int		 extract;
	int		 dot_ends;
	const char	*sender;	/* -f, -r */
	const char	*fullname;	/* -F */
	int		 dsn;		/* -N, -R or -V given */
	struct submit_env env;		/* DSN options already in */
};

static int
send_mail(struct send_opts *so, int argc, char *argv[])
{
	struct passwd		*pw;
	struct msg_opts		 mo;
	struct msg_info		 info;
	struct rcpt_ctx		 rc;
	const struct addr_list	*hl;
	char			 gecos[256];
	const char		*fullname = so->fullname;
	size_t			 i;
	int			 fd, r, ex;

	errno = 0;
	if ((pw = getpwuid(getuid())) == NULL)
		die(EX_OSERR, "cannot find the name of uid %ld",
		    (long)getuid());
	set_sender(&so->env, so->sender, pw->pw_name);
	if (fullname == NULL && (fullname = getenv("NAME")) == NULL) {
		gecos_name(pw, gecos, sizeof(gecos));
		fullname = gecos;
	}

	memset(&rc, 0, sizeof(rc));
	rc.env = &so->env;
	for (i = 0; i < (size_t)argc; i++) {
		if (argv[i][0] == '-')
			die(EX_USAGE, "%s: a recipient address must not start "
			    "with '-'", argv[i]);
		(void)rfc5322_addrlist(argv[i], add_rcpt, &rc);
		if (rc.nomem)
			exit(rc.nomem);
	}
	if (so->env.nrcpts == 0 && rc.bad == 0 && !so->extract)
		die(EX_USAGE, "no recipient addresses (give them as arguments "
		    "or use -t)");

	fd = temp_fd();
	memset(&mo, 0, sizeof(mo));
	mo.dot_ends = so->dot_ends;
	mo.extract = so->extract;
	mo.sender = so->env.sender;
	mo.fullname = fullname;
	mo.hostname = conf->hostname;
	mo.max_size = conf->max_message_size;
	mo.max_rcpts = (size_t)conf->max_rcpt;
	if ((r = msg_read(stdin, fd, &mo, &info)) != 0)
		die(r, "%s", info.err);
	if (so->extract) {
		hl = msg_header_rcpts(&info);
		for (i = 0; i < hl->n; i++) {
			(void)add_rcpt(&rc, hl->v[i].ok, hl->v[i].addr);
			if (rc.nomem)
				exit(rc.nomem);
		}
	}
	msg_info_free(&info);
	if (so->env.nrcpts == 0) {
		if (rc.bad)
			exit(EX_NOUSER);
		die(EX_USAGE, "no recipient addresses found in the message "
		    "header");
	}
	ex = submit_online(&so->env, fd, info.size, so->dsn);
	(void)close(fd);
	if (ex == EX_OK && rc.bad)
		ex = EX_NOUSER;
	return ex;
}

/* ---- -bs: SMTP on standard input and output ------------------------------ */

/* Copies what can be read from `from` to `to`; 0 at EOF, -1 on error. */
static int
relay_chunk(int from, int to, int crlf, int *lastcr, const char *dir)
{
	char	 in[4096], out[8192];
	size_t	 i, o = 0;
	ssize_t	 n, w;
	size_t	 off;

	if ((n = read(from, in, sizeof(in))) == -1)
		return errno == EINTR || errno == EAGAIN ? 1 : -1;
	if (n == 0)
		return 0;
	for (i = 0; i < (size_t)n; i++) {
		/* local clients often end lines with a bare LF */
		if (crlf && in[i] == '\n' && !*lastcr)
			out[o++] = '\r';
		*lastcr = in[i] == '\r';
		out[o++] = in[i];
	}
	if (verbose)
		fprintf(stderr, "%s %.*s", dir, (int)o, out);
	for (off = 0; off < o; off += (size_t)w) {
		if ((w = write(to, out + off, o - off)) != -1)
			continue;
		w = 0;
		if (errno == EAGAIN) {	/* the socket is non-blocking */
			struct pollfd	 pfd = { to, POLLOUT, 0 };
			int		 r;

			r = poll(&pfd, 1, SUBMIT_TIMEOUT_REPLY * 1000);
			if (r == 0 || (r == -1 && errno != EINTR))
				return -1;
		} else if (errno != EINTR)
			return -1;
	}
	return 1;
}

/*
 * A byte relay between stdio and the submit socket; the server answers, so
 * the dialogue is exactly mtad's (when mtad is not running, a stand-in
 * keeps the messages in offline/: sendmail_smtpd.c).  The end of input does not end the
 * session: what the client sent (often all at once, QUIT last) is still
 * being answered; the relay ends when mtad closes, or when it has been
 * quiet for a while after the input ended.
 */
static int
smtp_relay(void)
{
	struct submit_client	 c;
	struct pollfd		 pfd[2];
	int			 in_open = 1, lastcr = 0, r, wait;

	submit_init(&c);
	if (submit_connect(&c, conf->submit_path) == -1) {
		if (verbose)
			warnmsg("mtad is not running (%s): messages are kept "
			    "in %s/offline", c.reply, conf->queue_path);
		return smtpd_offline(conf, verbose);
	}
	for (;;) {
		pfd[0].fd = in_open ? STDIN_FILENO : -1;
		pfd[0].events = POLLIN;
		pfd[1].fd = c.fd;
		pfd[1].events = POLLIN;
		wait = in_open ? SUBMIT_TIMEOUT_FINAL : RELAY_LINGER;
		if ((r = poll(pfd, 2, wait * 1000)) <= 0) {
			if (r == -1 && errno == EINTR)
				continue;
			if (in_open)
				warnmsg("-bs: no traffic for %d seconds", wait);
			break;
		}
		if (pfd[1].revents) {
			int	 dummy = 1;

			r = relay_chunk(c.fd, STDOUT_FILENO, 0, &dummy, "<<<");
			if (r <= 0)
				break;		/* the server is done */
		}
		if (in_open && pfd[0].revents) {
			r = relay_chunk(STDIN_FILENO, c.fd, 1, &lastcr, ">>>");
			if (r == -1)
				break;
			if (r == 0)
				in_open = 0;
		}
	}
	(void)close(c.fd);
	return EX_OK;
}

/* ---- the control socket: mailq, newaliases, -q --------------------------- */

static void
ctl_connect(struct imsgbuf *ib, const char *what)
{
	if (ctlclient_connect(ib, conf->control_path, CTL_TIMEOUT) == 0)
		return;
	if (errno == EACCES || errno == EPERM)
		die(EX_NOPERM, "permission denied: only root and members of "
		    "group %s may %s (%s)", conf->control_group, what,
		    conf->control_path);
	if (errno == ENOENT || errno == ECONNREFUSED)
		die(EX_UNAVAILABLE, "mtad is not running (%s: %s)",
		    conf->control_path, strerror(errno));
	die(EX_UNAVAILABLE, "cannot connect to %s: %s", conf->control_path,
	    strerror(errno));
}

static void
ctl_next(struct imsgbuf *ib, struct imsg *imsg)
{
	int	 r;

	if ((r = ctlclient_next(ib, imsg)) == 1)
		return;
	if (r == 0)
		die(EX_UNAVAILABLE, "mtad closed the connection");
	die(EX_PROTOCOL, "reading from mtad: %s", strerror(errno));
}

/* A result frame: ok, and its text. */
static int
ctl_result(struct imsg *imsg, char *text, size_t textsz)
{
	struct mreader	 r;
	uint32_t	 ok;

	m_reader(&r, imsg);
	ok = m_get_u32(&r);
	m_get_str(&r, text, textsz);
	if (m_end(&r) == -1)
		die(EX_PROTOCOL, "malformed answer from mtad");
	return ok != 0;
}

/* The one result frame that answers a request. */
static int
ctl_answer(struct imsgbuf *ib, char *text, size_t textsz)
{
	struct imsg	 imsg;
	int		 ok;

	ctl_next(ib, &imsg);
	if (imsg.hdr.type != IMSG_CTL_RESULT)
		die(EX_PROTOCOL, "unexpected answer from mtad");
	ok = ctl_result(&imsg, text, textsz);
	imsg_free(&imsg);
	ctlclient_close(ib);
	return ok;
}

/* As `mtactl flush`: every deferred recipient is due now. */
static int
flush_queue(void)
{
	struct imsgbuf	 ib;
	struct mbuf	 m;
	char		 text[TEXT_MAX];

	ctl_connect(&ib, "flush the mail queue");
	m_init(&m);
	m_add_u32(&m, CTL_OP_FLUSH);
	m_add_str(&m, "");
	if (m.err || ctlclient_send(&ib, IMSG_CTL_MSG_OP, m.data, m.len) == -1)
		die(EX_IOERR, "writing to mtad: %s", strerror(errno));
	m_free(&m);
	if (!ctl_answer(&ib, text, sizeof(text)))
		die(EX_UNAVAILABLE, "%s", text);
	if (verbose)
		warnmsg("%s", text);
	return EX_OK;
}

/*
 * mtad reads /etc/aliases itself (at start and on reload); newaliases asks
 * for a reload.  When mtad is not running there is nothing to do: it reads
 * the aliases when it starts.
 */
static int
newaliases(void)
{
	struct imsgbuf	 ib;
	struct config	*full;
	char		 text[TEXT_MAX];

	if (ctlclient_connect(&ib, conf->control_path, CTL_TIMEOUT) == -1) {
		if (errno == ENOENT || errno == ECONNREFUSED) {
			warnmsg("mtad is not running: it reads the aliases "
			    "when it starts");
			return EX_OK;
		}
		ctl_connect(&ib, "rebuild the aliases");	/* dies */
	}
	if (ctlclient_send(&ib, IMSG_CTL_RELOAD, NULL, 0) == -1)
		die(EX_IOERR, "writing to mtad: %s", strerror(errno));
	if (ctl_answer(&ib, text, sizeof(text))) {
		if (verbose)
			warnmsg("%s", text);
		return EX_OK;
	}
	warnmsg("%s", text);
	/* Show what is wrong: parse it again here, tables included. */
	full = config_parse(conf->file, conffile_explicit ||
	    access(conffile, F_OK) == 0 ? NULL : config_embedded_text(), NULL);
	config_free(full);
	return EX_CONFIG;
}

static void
format_time(time_t t, char *buf, size_t len)
{
	struct tm	 tm;

	if (t == 0 || localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		(void)strlcpy(buf, "-", len);
}

/* Drops in offline/ (readable by root only): how many wait for pickup. */
static int
offline_count(void)
{
	char		 dir[PATH_MAX];
	DIR		*d;
	struct dirent	*e;
	int		 n = 0;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/offline",
	    conf->queue_path) >= sizeof(dir) || (d = opendir(dir)) == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	(void)closedir(d);
	return n;
}

static int
mailq(void)
{
	struct imsgbuf	 ib;
	struct imsg	 imsg;
	struct mreader	 r;
	char		 id[32], sender[ADDR_MAX], rcpt[ADDR_MAX], state[32];
	char		 err[TEXT_MAX], last[32] = "", created[32], next[32];
	uint32_t	 attempts;
	int64_t		 tcreated, tnext;
	int		 nmsg = 0, nrcpt = 0, off;

	ctl_connect(&ib, "read the mail queue");
	if (ctlclient_send(&ib, IMSG_CTL_SHOW_QUEUE, NULL, 0) == -1)
		die(EX_IOERR, "writing to mtad: %s", strerror(errno));
	for (;;) {
		ctl_next(&ib, &imsg);
		if (imsg.hdr.type == IMSG_CTL_END) {
			imsg_free(&imsg);
			break;
		}
		if (imsg.hdr.type == IMSG_CTL_RESULT) {
			(void)ctl_result(&imsg, err, sizeof(err));
			die(EX_UNAVAILABLE, "%s", err);
		}
		if (imsg.hdr.type != IMSG_CTL_QUEUE_ENTRY)
			die(EX_PROTOCOL, "unexpected answer from mtad");
		m_reader(&r, &imsg);
		m_get_str(&r, id, sizeof(id));
		m_get_str(&r, sender, sizeof(sender));
		m_get_str(&r, rcpt, sizeof(rcpt));
		m_get_str(&r, state, sizeof(state));
		attempts = m_get_u32(&r);
		tcreated = m_get_i64(&r);
		tnext = m_get_i64(&r);
		m_get_str(&r, err, sizeof(err));
		imsg_free(&imsg);
		if (m_end(&r) == -1)
			die(EX_PROTOCOL, "malformed queue entry from mtad");
		if (nrcpt == 0)
			printf("%-16s  %-19s  %s\n", "QUEUE ID",
			    "ARRIVAL", "SENDER / RECIPIENTS");
		if (strcmp(id, last) != 0) {
			format_time((time_t)tcreated, created, sizeof(created));
			printf("%-16s  %-19s  <%s>\n", id, created, sender);
			(void)strlcpy(last, id, sizeof(last));
			nmsg++;
		}
		format_time((time_t)tnext, next, sizeof(next));
		printf("%-16s  %-19s    <%s> %s, %u attempt%s, next %s\n", "",
		    "", rcpt, state, attempts, attempts == 1 ? "" : "s", next);
		if (err[0] != '\0')
			printf("%-16s  %-19s      %s\n", "", "", err);
		nrcpt++;
	}
	ctlclient_close(&ib);
	if (nrcpt == 0)
		printf("Mail queue is empty\n");
	else
		printf("-- %d message%s, %d recipient%s\n", nmsg,
		    nmsg == 1 ? "" : "s", nrcpt, nrcpt == 1 ? "" : "s");
	if ((off = offline_count()) > 0)
		printf("-- %d message%s in %s/offline waiting for pickup\n",
		    off, off == 1 ? "" : "s", conf->queue_path);
	return EX_OK;
}

/* ---- main ---------------------------------------------------------------- */

int
main(int argc, char *argv[])
{
	struct send_opts	 so;
	enum mode		 mode = MODE_SEND;
	char			*base, *env;
	int			 ch;

	if (argc > 0 && argv[0] != NULL &&
	    (base = strrchr(argv[0], '/')) != NULL)
		base++;
	else
		base = argc > 0 && argv[0] != NULL ? argv[0] : "sendmail";
	if (strcmp(base, "mailq") == 0) {
		mode = MODE_MAILQ;
		progname = "mailq";
	} else if (strcmp(base, "newaliases") == 0) {
		mode = MODE_NEWALIASES;
		progname = "newaliases";
	}
	signal(SIGPIPE, SIG_IGN);
	log_init(1, LOG_MAIL);
	log_setplain(1);
	conffile = MTAD_CONFFILE;
	if ((env = getenv("MTAD_CONF")) != NULL && env[0] != '\0')
		conffile = env;

	memset(&so, 0, sizeof(so));
	so.dot_ends = 1;
	/* '+': options end at the first recipient, as in every sendmail */
	while ((ch = getopt(argc, argv,
	    "+B:b:C:cd:F:f:Gh:IiL:mN:nO:o:p:q::R:r:tUV:vX:")) != -1) {
		switch (ch) {
		case 'b':
			if (strcmp(optarg, "m") == 0)
				mode = MODE_SEND;
			else if (strcmp(optarg, "s") == 0)
				mode = MODE_SMTP;
			else if (strcmp(optarg, "p") == 0)
				mode = MODE_MAILQ;
			else if (strcmp(optarg, "i") == 0)
				mode = MODE_NEWALIASES;
			else
				die(EX_USAGE, "-b%s is not supported", optarg);
			break;
		case 'C':
			conffile = optarg;
			conffile_explicit = 1;
			break;
		case 'F':
			so.fullname = optarg;
			break;
		case 'f':
		case 'r':
			so.sender = optarg;
			break;
		case 'I':
			mode = MODE_NEWALIASES;
			break;
		case 'i':
			so.dot_ends = 0;
			break;
		case 'N':
			if (submit_set_notify(&so.env, optarg) == -1)
				die(EX_USAGE, "-N %s: use never, or a list of "
				    "success, failure, delay", optarg);
			so.dsn = 1;
			break;
		case 'o':
			if (strcmp(optarg, "i") == 0)
				so.dot_ends = 0;
			break;		/* -oem, -odb, -oQ... mean nothing here */
		case 'q':
			mode = MODE_FLUSH;
			break;
		case 'R':
			if (submit_set_ret(&so.env, optarg) == -1)
				die(EX_USAGE, "-R %s: use full or hdrs", optarg);
			so.dsn = 1;
			break;
		case 't':
			so.extract = 1;
			break;
		case 'V':
			if (submit_set_envid(&so.env, optarg) == -1)
				die(EX_USAGE, "-V: an envelope id is 1 to %d "
				    "printable characters", SUBMIT_ENVID_MAX);
			so.dsn = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'B': case 'c': case 'd': case 'G': case 'h': case 'L':
		case 'm': case 'n': case 'O': case 'p': case 'U': case 'X':
			break;		/* accepted for compatibility */
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;

	load_config();
	switch (mode) {
	case MODE_MAILQ:
		return mailq();
	case MODE_NEWALIASES:
		return newaliases();
	case MODE_FLUSH:
		return flush_queue();
	case MODE_SMTP:
		return smtp_relay();
	case MODE_SEND:
		break;
	}
	return send_mail(&so, argc, argv);
}
