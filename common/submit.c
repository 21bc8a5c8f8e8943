/*
 * The blocking SMTP client of local submission (see submit.h).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "submit.h"

#define LINE_MAX_SMTP	1000	/* RFC 5321 4.5.3.1.5, CRLF included */
#define CHUNK		8192
#define QUIT_TIMEOUT	10

static int	 wait_fd(struct submit_client *, short, time_t);
static int	 write_all(struct submit_client *, const char *, size_t);
static int	 read_line(struct submit_client *, char *, size_t, time_t);
static int	 read_reply(struct submit_client *, int);
static int	 command(struct submit_client *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 fail(struct submit_client *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 status_of(int);
static int	 send_data(struct submit_client *, int, off_t, uint64_t);
static int	 scan_data(int, off_t, uint64_t, uint64_t *, int *);

/* ---- envelope ------------------------------------------------------------ */

int
submit_env_add(struct submit_env *env, const char *addr)
{
	struct submit_rcpt	*n;
	size_t			 i, cap;

	for (i = 0; i < env->nrcpts; i++)
		if (strcasecmp(env->rcpts[i].addr, addr) == 0)
			return 0;
	if (strlen(addr) >= ADDR_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (env->nrcpts == env->cap) {
		cap = env->cap ? env->cap * 2 : 8;
		if ((n = reallocarray(env->rcpts, cap, sizeof(*n))) == NULL)
			return -1;
		env->rcpts = n;
		env->cap = cap;
	}
	memset(&env->rcpts[env->nrcpts], 0, sizeof(env->rcpts[0]));
	(void)strlcpy(env->rcpts[env->nrcpts].addr, addr, ADDR_MAX);
	env->nrcpts++;
	return 0;
}

void
submit_env_free(struct submit_env *env)
{
	free(env->rcpts);
	env->rcpts = NULL;
	env->nrcpts = env->cap = 0;
}

int
submit_set_notify(struct submit_env *env, const char *s)
{
	static const char	*words[] = { "SUCCESS", "FAILURE", "DELAY" };
	char			 buf[64], *w, *last;
	int			 seen[3] = { 0, 0, 0 }, never = 0, any = 0, i;

	if (strlcpy(buf, s, sizeof(buf)) >= sizeof(buf))
		return -1;
	for (w = strtok_r(buf, ",", &last); w != NULL;
	    w = strtok_r(NULL, ",", &last)) {
		if (strcasecmp(w, "NEVER") == 0) {
			never = 1;
			continue;
		}
		for (i = 0; i < 3; i++)
			if (strcasecmp(w, words[i]) == 0)
				break;
		if (i == 3 || seen[i])
			return -1;
		seen[i] = any = 1;
	}
	if (never == any)	/* nothing, or NEVER with something else */
		return -1;
	env->notify[0] = '\0';
	if (never) {
		(void)strlcpy(env->notify, "NEVER", sizeof(env->notify));
		return 0;
	}
	for (i = 0; i < 3; i++) {
		if (!seen[i])
			continue;
		if (env->notify[0] != '\0')
			(void)strlcat(env->notify, ",", sizeof(env->notify));
		(void)strlcat(env->notify, words[i], sizeof(env->notify));
	}
	return 0;
}

int
submit_set_ret(struct submit_env *env, const char *s)
{
	if (strcasecmp(s, "FULL") == 0)
		(void)strlcpy(env->ret, "FULL", sizeof(env->ret));
	else if (strcasecmp(s, "HDRS") == 0)
		(void)strlcpy(env->ret, "HDRS", sizeof(env->ret));
	else
		return -1;
	return 0;
}

int
submit_set_envid(struct submit_env *env, const char *s)
{
	const char	*p;

	if (*s == '\0' || strlen(s) > SUBMIT_ENVID_MAX)
		return -1;
	for (p = s; *p != '\0'; p++)
		if (*p < 0x20 || *p > 0x7e)
			return -1;
	(void)strlcpy(env->envid, s, sizeof(env->envid));
	return 0;
}

int
xtext_encode(const char *in, char *out, size_t outsz)
{
	static const char	 hex[] = "0123456789ABCDEF";
	size_t			 o = 0;
	unsigned char		 c;

	for (; *in != '\0'; in++) {
		c = (unsigned char)*in;
		if (c >= 0x21 && c <= 0x7e && c != '+' && c != '=') {
			if (o + 1 >= outsz)
				return -1;
			out[o++] = (char)c;
		} else {
			if (o + 3 >= outsz)
				return -1;
			out[o++] = '+';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0xf];
		}
	}
	if (o >= outsz)
		return -1;
	out[o] = '\0';
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
xtext_decode(const char *in, char *out, size_t outsz)
{
	size_t	o = 0;
	int	hi, lo;

	for (; *in != '\0'; in++) {
		if (o + 1 >= outsz)
			return -1;
		if (*in == '+') {
			if ((hi = hexval(in[1])) == -1 ||
			    (lo = hexval(in[2])) == -1 || (hi == 0 && lo == 0))
				return -1;
			out[o++] = (char)(hi << 4 | lo);
			in += 2;
		} else if (*in >= 0x21 && *in <= 0x7e && *in != '=')
			out[o++] = *in;
		else
			return -1;
	}
	if (o >= outsz)
		return -1;
	out[o] = '\0';
	return 0;
}

/* ---- connection ---------------------------------------------------------- */

void
submit_init(struct submit_client *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->timeout = SUBMIT_TIMEOUT_REPLY;
}

static void
fail(struct submit_client *c, const char *fmt, ...)
{
	va_list	 ap;

	c->code = 0;
	va_start(ap, fmt);
	(void)vsnprintf(c->reply, sizeof(c->reply), fmt, ap);
	va_end(ap);
}

int
submit_connect(struct submit_client *c, const char *path)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { SUBMIT_TIMEOUT_CONNECT, 0 };
	int			 fd, saved, fl;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		fail(c, "%s: %s", path, strerror(errno));
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		fail(c, "socket: %s", strerror(errno));
		return -1;
	}
	/* A blocking AF_UNIX connect waits at most SO_SNDTIMEO on a full backlog. */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    (fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1) {
		saved = errno;
		fail(c, "cannot connect to %s: %s", path, strerror(saved));
		(void)close(fd);
		errno = saved;
		return -1;
	}
	c->fd = fd;
	c->rlen = 0;
	return 0;
}

/* 0 when fd is ready for ev before the deadline, else -1 (c->reply set). */
static int
wait_fd(struct submit_client *c, short ev, time_t deadline)
{
	struct pollfd	 pfd;
	time_t		 now;
	int		 r;

	for (;;) {
		now = time(NULL);
		if (now >= deadline) {
			fail(c, "timeout talking to the server");
			return -1;
		}
		pfd.fd = c->fd;
		pfd.events = ev;
		pfd.revents = 0;
		r = poll(&pfd, 1, (int)(deadline - now) * 1000);
		if (r > 0)
			return 0;
		if (r == -1 && errno != EINTR) {
			fail(c, "poll: %s", strerror(errno));
			return -1;
		}
	}
}

static int
write_all(struct submit_client *c, const char *buf, size_t len)
{
	time_t	 deadline = time(NULL) + SUBMIT_TIMEOUT_REPLY;
	ssize_t	 n;

	while (len > 0) {
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			deadline = time(NULL) + SUBMIT_TIMEOUT_REPLY;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			if (wait_fd(c, POLLOUT, deadline) == -1)
				return -1;
			continue;
		}
		fail(c, "write to the server: %s", n == -1 ? strerror(errno) :
		    "nothing written");
		return -1;
	}
	return 0;
}

/* One reply line without its line end; -1 on error (c->reply set). */
static int
read_line(struct submit_client *c, char *line, size_t linesz, time_t deadline)
{
	char	*nl;
	size_t	 len;
	ssize_t	 n;

	for (;;) {
		if ((nl = memchr(c->rbuf, '\n', c->rlen)) != NULL) {
			len = (size_t)(nl - c->rbuf);
			if (len > 0 && c->rbuf[len - 1] == '\r')
				len--;
			if (len >= linesz || memchr(c->rbuf, '\0', len)) {
				fail(c, "malformed reply from the server");
				return -1;
			}
			memcpy(line, c->rbuf, len);
			line[len] = '\0';
			len = (size_t)(nl - c->rbuf) + 1;
			memmove(c->rbuf, c->rbuf + len, c->rlen - len);
			c->rlen -= len;
			return 0;
		}
		if (c->rlen == sizeof(c->rbuf)) {
			fail(c, "reply line too long from the server");
			return -1;
		}
		n = read(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - c->rlen);
		if (n > 0) {
			c->rlen += (size_t)n;
			continue;
		}
		if (n == 0) {
			fail(c, "the server closed the connection");
			return -1;
		}
		if (errno != EAGAIN && errno != EINTR) {
			fail(c, "read from the server: %s", strerror(errno));
			return -1;
		}
		if (wait_fd(c, POLLIN, deadline) == -1)
			return -1;
	}
}

static void
ehlo_keyword(struct submit_client *c, const char *text)
{
	char	 kw[32];
	size_t	 n = strcspn(text, " ");

	if (n >= sizeof(kw))
		return;
	memcpy(kw, text, n);
	kw[n] = '\0';
	if (strcasecmp(kw, "DSN") == 0)
		c->ext_dsn = 1;
	else if (strcasecmp(kw, "8BITMIME") == 0)
		c->ext_8bitmime = 1;
	else if (strcasecmp(kw, "SIZE") == 0)
		c->ext_size = 1;
}

/*
 * Reads a possibly multi-line reply: its code, or -1 (c->code 0).  The
 * text of its lines is kept, joined by spaces; ehlo: record extensions.
 */
static int
read_reply(struct submit_client *c, int ehlo)
{
	char	 line[LINE_MAX_SMTP + 1];
	time_t	 deadline = time(NULL) + c->timeout;
	int	 code = 0, nlines = 0;

	c->reply[0] = '\0';
	for (;;) {
		if (read_line(c, line, sizeof(line), deadline) == -1)
			return -1;
		if (c->trace)
			c->trace(c->trace_arg, "<<<", line);
		if (!isdigit((unsigned char)line[0]) ||
		    !isdigit((unsigned char)line[1]) ||
		    !isdigit((unsigned char)line[2]) || line[0] < '2' ||
		    line[0] > '5' || (line[3] != '\0' && line[3] != ' ' &&
		    line[3] != '-') || (nlines > 0 && code != atoi(line)) ||
		    ++nlines > 100) {
			fail(c, "malformed reply from the server: %.200s", line);
			return -1;
		}
		code = (line[0] - '0') * 100 + (line[1] - '0') * 10 +
		    (line[2] - '0');
		if (c->reply[0] != '\0')
			(void)strlcat(c->reply, " ", sizeof(c->reply));
		(void)strlcat(c->reply, line, sizeof(c->reply));
		if (ehlo && nlines > 1 && line[3] != '\0')
			ehlo_keyword(c, line + 4);
		if (line[3] != '-')
			break;
	}
	c->code = code;
	return code;
}

/* Sends one command line; its reply code, or -1 (c->code 0). */
static int
command(struct submit_client *c, const char *fmt, ...)
{
	char	 line[LINE_MAX_SMTP + 1];
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) - 2) {
		fail(c, "command too long");
		return -1;
	}
	if (c->trace)
		c->trace(c->trace_arg, ">>>", line);
	line[n++] = '\r';
	line[n++] = '\n';
	if (write_all(c, line, (size_t)n) == -1)
		return -1;
	return read_reply(c, 0);
}

static int
status_of(int code)
{
	if (code >= 200 && code < 300)
		return SUBMIT_OK;
	if (code >= 500)
		return SUBMIT_PERMFAIL;
	return SUBMIT_TEMPFAIL;	/* 4xx, an unexpected 3xx, I/O errors (0) */
}

int
submit_hello(struct submit_client *c, const char *helo)
{
	char	 line[LINE_MAX_SMTP];
	int	 r;

	/* mtad greets at once unless it is paused or stuck: do not wait long */
	c->timeout = SUBMIT_TIMEOUT_GREETING;
	r = read_reply(c, 0);
	c->timeout = SUBMIT_TIMEOUT_REPLY;
	if (r == -1)
		return SUBMIT_TEMPFAIL;
	if (r != 220)
		return r >= 500 ? SUBMIT_PERMFAIL : SUBMIT_TEMPFAIL;
	if ((size_t)snprintf(line, sizeof(line), "EHLO %s", helo) >=
	    sizeof(line)) {
		fail(c, "hostname too long");
		return SUBMIT_PERMFAIL;
	}
	if (c->trace)
		c->trace(c->trace_arg, ">>>", line);
	(void)strlcat(line, "\r\n", sizeof(line));
	if (write_all(c, line, strlen(line)) == -1 ||
	    (r = read_reply(c, 1)) == -1)
		return SUBMIT_TEMPFAIL;
	if (r == 250) {
		c->esmtp = 1;
		return SUBMIT_OK;
	}
	c->ext_dsn = c->ext_8bitmime = c->ext_size = 0;
	if (r >= 400 && r < 500)
		return SUBMIT_TEMPFAIL;
	r = command(c, "HELO %s", helo);
	return r == 250 ? SUBMIT_OK : status_of(r == -1 ? 0 : r);
}

/* ---- the message --------------------------------------------------------- */

/* The size on the wire (CRLF, no stuffing) and whether any byte is 8-bit. */
static int
scan_data(int fd, off_t off, uint64_t size, uint64_t *wire, int *eightbit)
{
	char		 buf[CHUNK];
	uint64_t	 done = 0;
	ssize_t		 n;
	size_t		 i, want;

	*wire = size;
	*eightbit = 0;
	while (done < size) {
		want = size - done < sizeof(buf) ? (size_t)(size - done) :
		    sizeof(buf);
		n = pread(fd, buf, want, off + (off_t)done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		for (i = 0; i < (size_t)n; i++) {
			if ((unsigned char)buf[i] >= 0x80)
				*eightbit = 1;
			else if (buf[i] == '\n')
				(*wire)++;
		}
		done += (uint64_t)n;
	}
	return 0;
}

/*
 * The data in CRLF form, dot-stuffed, then the final dot.  A CR before LF
 * belongs to the line end; a bare CR ends a line too.
 */
static int
send_data(struct submit_client *c, int fd, off_t off, uint64_t size)
{
	char		 in[CHUNK], out[CHUNK * 3 + 8];
	uint64_t	 done = 0;
	size_t		 i, o, want;
	ssize_t		 n;
	int		 bol = 1, cr = 0;
	unsigned char	 b;

	while (done < size) {
		want = size - done < sizeof(in) ? (size_t)(size - done) :
		    sizeof(in);
		n = pread(fd, in, want, off + (off_t)done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			fail(c, "cannot read the message: %s", n == 0 ?
			    "unexpected end of file" : strerror(errno));
			return -1;
		}
		done += (uint64_t)n;
		for (i = 0, o = 0; i < (size_t)n; i++) {
			b = (unsigned char)in[i];
			if (cr) {
				cr = 0;
				out[o++] = '\r';
				out[o++] = '\n';
				bol = 1;
				if (b == '\n')
					continue;
			}
			if (b == '\r') {
				cr = 1;
				continue;
			}
			if (b == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				bol = 1;
				continue;
			}
			if (bol && b == '.')
				out[o++] = '.';
			out[o++] = (char)b;
			bol = 0;
		}
		if (write_all(c, out, o) == -1)
			return -1;
	}
	if (cr || !bol) {
		if (write_all(c, "\r\n", 2) == -1)
			return -1;
	}
	if (c->trace)
		c->trace(c->trace_arg, ">>>", ".");
	return write_all(c, ".\r\n", 3);
}

/* After a failed transaction: back to a clean state (best effort). */
static void
reset(struct submit_client *c)
{
	int	 code = c->code;
	char	 reply[sizeof(c->reply)];

	if (code == 0)
		return;		/* the connection is broken anyway */
	memcpy(reply, c->reply, sizeof(reply));
	(void)command(c, "RSET");
	c->code = code;
	memcpy(c->reply, reply, sizeof(reply));
}

int
submit_transaction(struct submit_client *c, struct submit_env *env,
    int msgfd, off_t off, uint64_t size)
{
	char		 params[512], envid[SUBMIT_ENVID_MAX * 3 + 1];
	char		 tmp[64], first_temp[SUBMIT_TEXT_MAX];
	uint64_t	 wire;
	size_t		 i, accepted = 0, temp = 0;
	int		 eightbit, r, temp_code = 0;

	c->timeout = SUBMIT_TIMEOUT_REPLY;
	if (scan_data(msgfd, off, size, &wire, &eightbit) == -1) {
		fail(c, "cannot read the message: %s", strerror(errno));
		return SUBMIT_TEMPFAIL;
	}
	params[0] = '\0';
	if (c->ext_size) {
		(void)snprintf(tmp, sizeof(tmp), " SIZE=%llu",
		    (unsigned long long)wire);
		(void)strlcat(params, tmp, sizeof(params));
	}
	if (c->ext_8bitmime && eightbit)
		(void)strlcat(params, " BODY=8BITMIME", sizeof(params));
	if (c->ext_dsn && env->ret[0] != '\0') {
		(void)strlcat(params, " RET=", sizeof(params));
		(void)strlcat(params, env->ret, sizeof(params));
	}
	if (c->ext_dsn && env->envid[0] != '\0' &&
	    xtext_encode(env->envid, envid, sizeof(envid)) == 0) {
		(void)strlcat(params, " ENVID=", sizeof(params));
		(void)strlcat(params, envid, sizeof(params));
	}
	r = command(c, "MAIL FROM:<%s>%s", env->sender, params);
	if (r != 250) {
		reset(c);
		return status_of(r == -1 ? 0 : r);
	}

	for (i = 0; i < env->nrcpts; i++) {
		struct submit_rcpt	*rc = &env->rcpts[i];
		int			 dsn = c->ext_dsn && env->notify[0];

		r = command(c, "RCPT TO:<%s>%s%s", rc->addr,
		    dsn ? " NOTIFY=" : "", dsn ? env->notify : "");
		if (r == -1)
			return SUBMIT_TEMPFAIL;
		rc->code = r;
		(void)strlcpy(rc->reply, c->reply, sizeof(rc->reply));
		if (r / 100 == 2)
			accepted++;
		else if (r / 100 != 5 && temp++ == 0) {
			temp_code = r;
			(void)strlcpy(first_temp, c->reply, sizeof(first_temp));
		}
	}
	if (temp > 0 || accepted == 0) {
		if (temp > 0) {
			c->code = temp_code;
			(void)strlcpy(c->reply, first_temp, sizeof(c->reply));
		}
		reset(c);
		return temp > 0 ? SUBMIT_TEMPFAIL : SUBMIT_PERMFAIL;
	}

	if ((r = command(c, "DATA")) != 354) {
		reset(c);
		return status_of(r == -1 ? 0 : r);
	}
	if (c->trace) {
		(void)snprintf(tmp, sizeof(tmp), "(message, %llu bytes)",
		    (unsigned long long)wire);
		c->trace(c->trace_arg, ">>>", tmp);
	}
	if (send_data(c, msgfd, off, size) == -1)
		return SUBMIT_TEMPFAIL;
	c->timeout = SUBMIT_TIMEOUT_FINAL;
	r = read_reply(c, 0);
	c->timeout = SUBMIT_TIMEOUT_REPLY;
	if (r == -1)
		return SUBMIT_TEMPFAIL;
	return status_of(r);
}

void
submit_close(struct submit_client *c)
{
	if (c->fd == -1)
		return;
	if (c->code != 0) {
		c->timeout = QUIT_TIMEOUT;
		(void)command(c, "QUIT");
	}
	(void)close(c->fd);
	c->fd = -1;
}
