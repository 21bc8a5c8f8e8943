/*
 * Offline drop files (see dropfile.h).
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "addr.h"
#include "dropfile.h"

static int	 copy_fd(int, int, uint64_t);
static int	 write_envelope(int, const struct submit_env *, uint64_t);
static int	 parse_line(struct submit_env *, char *, size_t, int *,
		    uint64_t *, char *, size_t);
static int	 parse_addr(const char *, char *, size_t, int);
static int	 seterr(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static int
seterr(char *err, size_t errsz, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -1;
}

/* ---- writing ------------------------------------------------------------- */

static int
write_all(int fd, const char *buf, size_t len)
{
	ssize_t	 n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int
write_envelope(int fd, const struct submit_env *env, uint64_t size)
{
	char	 line[DROPFILE_LINE_MAX], envid[SUBMIT_ENVID_MAX * 3 + 1];
	size_t	 i;
	int	 n;

#define PUT(...) do {							\
	n = snprintf(line, sizeof(line), __VA_ARGS__);			\
	if (n < 0 || (size_t)n >= sizeof(line)) {			\
		errno = ENAMETOOLONG;					\
		return -1;						\
	}								\
	if (write_all(fd, line, (size_t)n) == -1)			\
		return -1;						\
} while (0)
	PUT("%s\n", DROPFILE_MAGIC);
	PUT("sender <%s>\n", env->sender);
	for (i = 0; i < env->nrcpts; i++)
		PUT("rcpt <%s>\n", env->rcpts[i].addr);
	if (env->notify[0] != '\0')
		PUT("notify %s\n", env->notify);
	if (env->ret[0] != '\0')
		PUT("ret %s\n", env->ret);
	if (env->envid[0] != '\0') {
		if (xtext_encode(env->envid, envid, sizeof(envid)) == -1) {
			errno = EINVAL;
			return -1;
		}
		PUT("envid %s\n", envid);
	}
	PUT("size %llu\n\n", (unsigned long long)size);
#undef PUT
	return 0;
}

static int
copy_fd(int to, int from, uint64_t size)
{
	char		 buf[16384];
	uint64_t	 done = 0;
	size_t		 want;
	ssize_t		 n;

	while (done < size) {
		want = size - done < sizeof(buf) ? (size_t)(size - done) :
		    sizeof(buf);
		n = pread(from, buf, want, (off_t)done);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;	/* the message shrank */
			return -1;
		}
		if (write_all(to, buf, (size_t)n) == -1)
			return -1;
		done += (uint64_t)n;
	}
	return 0;
}

int
dropfile_write(const char *dir, const struct submit_env *env, int msgfd,
    uint64_t size, char *name, size_t namesz, char *err, size_t errsz)
{
	char		 tmp[PATH_MAX], final[PATH_MAX];
	uint64_t	 rnd;
	int		 fd, saved;

	arc4random_buf(&rnd, sizeof(rnd));
	if ((size_t)snprintf(name, namesz, "%lld.%ld.%016llx",
	    (long long)time(NULL), (long)getpid(),
	    (unsigned long long)rnd) >= namesz ||
	    (size_t)snprintf(tmp, sizeof(tmp), "%s/.%s", dir, name) >=
	    sizeof(tmp) ||
	    (size_t)snprintf(final, sizeof(final), "%s/%s", dir, name) >=
	    sizeof(final)) {
		errno = ENAMETOOLONG;
		return seterr(err, errsz, "%s: %s", dir, strerror(errno));
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0600);
	if (fd == -1) {
		saved = errno;
		(void)seterr(err, errsz, "cannot create %s: %s", tmp,
		    strerror(saved));
		errno = saved;
		return -1;
	}
	if (fchmod(fd, 0600) == -1 || write_envelope(fd, env, size) == -1 ||
	    copy_fd(fd, msgfd, size) == -1 || fsync(fd) == -1) {
		saved = errno;
		(void)close(fd);
		(void)unlink(tmp);
		(void)seterr(err, errsz, "cannot write %s: %s", tmp,
		    strerror(saved));
		errno = saved;
		return -1;
	}
	if (close(fd) == -1 || rename(tmp, final) == -1) {
		saved = errno;
		(void)unlink(tmp);
		(void)seterr(err, errsz, "cannot write %s: %s", final,
		    strerror(saved));
		errno = saved;
		return -1;
	}
	return 0;
}

/* ---- reading ------------------------------------------------------------- */

/* "<address>": the address, validated; empty only when allow_empty. */
static int
parse_addr(const char *v, char *out, size_t outsz, int allow_empty)
{
	struct mailaddr	 ma;
	size_t		 len = strlen(v);

	if (len < 2 || v[0] != '<' || v[len - 1] != '>' || len - 2 >= outsz)
		return -1;
	memcpy(out, v + 1, len - 2);
	out[len - 2] = '\0';
	if (out[0] == '\0')
		return allow_empty ? 0 : -1;
	return mailaddr_parse(&ma, out, 0);
}

/* One "key value" line of the envelope. */
static int
parse_line(struct submit_env *env, char *line, size_t max_rcpts, int *seen,
    uint64_t *size, char *err, size_t errsz)
{
	char			 addr[ADDR_MAX], envid[SUBMIT_ENVID_MAX + 1];
	char			*v, *end;
	unsigned long long	 n;
	enum { K_SENDER = 1, K_NOTIFY = 2, K_RET = 4, K_ENVID = 8,
	    K_SIZE = 16 };

	if ((v = strchr(line, ' ')) == NULL)
		return seterr(err, errsz, "bad line \"%.60s\"", line);
	*v++ = '\0';
	if (strcmp(line, "rcpt") == 0) {
		if (env->nrcpts >= max_rcpts)
			return seterr(err, errsz, "more than %zu recipients",
			    max_rcpts);
		if (parse_addr(v, addr, sizeof(addr), 0) == -1)
			return seterr(err, errsz, "bad recipient %.100s", v);
		if (submit_env_add(env, addr) == -1)
			return seterr(err, errsz, "%s", strerror(errno));
		return 0;
	}
#define ONCE(bit) do {							\
	if (*seen & (bit))						\
		return seterr(err, errsz, "duplicate %s line", line);	\
	*seen |= (bit);							\
} while (0)
	if (strcmp(line, "sender") == 0) {
		ONCE(K_SENDER);
		if (parse_addr(v, env->sender, sizeof(env->sender), 1) == -1)
			return seterr(err, errsz, "bad sender %.100s", v);
	} else if (strcmp(line, "notify") == 0) {
		ONCE(K_NOTIFY);
		if (submit_set_notify(env, v) == -1)
			return seterr(err, errsz, "bad notify %.60s", v);
	} else if (strcmp(line, "ret") == 0) {
		ONCE(K_RET);
		if (submit_set_ret(env, v) == -1)
			return seterr(err, errsz, "bad ret %.60s", v);
	} else if (strcmp(line, "envid") == 0) {
		ONCE(K_ENVID);
		if (xtext_decode(v, envid, sizeof(envid)) == -1 ||
		    submit_set_envid(env, envid) == -1)
			return seterr(err, errsz, "bad envid");
	} else if (strcmp(line, "size") == 0) {
		ONCE(K_SIZE);
		errno = 0;
		n = strtoull(v, &end, 10);
		if (*v < '0' || *v > '9' || *end != '\0' || errno != 0)
			return seterr(err, errsz, "bad size %.60s", v);
		*size = n;
	} else
		return seterr(err, errsz, "unknown line \"%.60s\"", line);
#undef ONCE
	return 0;
}

int
dropfile_parse(int fd, struct submit_env *env, size_t max_rcpts,
    uint64_t max_size, off_t *off, uint64_t *size, char *err, size_t errsz)
{
	char		 line[DROPFILE_LINE_MAX + 2];
	struct stat	 st;
	FILE		*fp;
	size_t		 len;
	int		 dupfd, seen = 0, first = 1, r = -1;
	off_t		 pos;

	*size = 0;
	if (fstat(fd, &st) == -1)
		return seterr(err, errsz, "fstat: %s", strerror(errno));
	if ((dupfd = dup(fd)) == -1 || lseek(dupfd, 0, SEEK_SET) == -1 ||
	    (fp = fdopen(dupfd, "r")) == NULL) {
		if (dupfd != -1)
			(void)close(dupfd);
		return seterr(err, errsz, "cannot read: %s", strerror(errno));
	}
	for (;;) {
		if (fgets(line, sizeof(line), fp) == NULL) {
			(void)seterr(err, errsz, ferror(fp) ? "read error" :
			    "no message (truncated file)");
			goto done;
		}
		len = strlen(line);
		if (len == 0 || line[len - 1] != '\n') {
			(void)seterr(err, errsz, "line too long or truncated");
			goto done;
		}
		line[--len] = '\0';
		if (memchr(line, '\r', len) != NULL) {
			(void)seterr(err, errsz, "CR in the envelope");
			goto done;
		}
		if (first) {
			if (strcmp(line, DROPFILE_MAGIC) != 0) {
				(void)seterr(err, errsz, "not an mtad offline "
				    "file (version line \"%.40s\")", line);
				goto done;
			}
			first = 0;
			continue;
		}
		if (len == 0)
			break;
		if (parse_line(env, line, max_rcpts, &seen, size, err,
		    errsz) == -1)
			goto done;
	}
	if ((pos = ftello(fp)) == -1) {
		(void)seterr(err, errsz, "ftello: %s", strerror(errno));
		goto done;
	}
	if (!(seen & 1) || env->nrcpts == 0 || !(seen & 16)) {
		(void)seterr(err, errsz, "missing %s line", !(seen & 1) ?
		    "sender" : env->nrcpts == 0 ? "rcpt" : "size");
		goto done;
	}
	if (*size > max_size) {
		(void)seterr(err, errsz, "message of %llu bytes is over the "
		    "%llu limit", (unsigned long long)*size,
		    (unsigned long long)max_size);
		goto done;
	}
	if ((uint64_t)(st.st_size - pos) != *size || st.st_size < pos) {
		(void)seterr(err, errsz, "size %llu announced, %lld present",
		    (unsigned long long)*size, (long long)(st.st_size - pos));
		goto done;
	}
	*off = pos;
	r = 0;
done:
	(void)fclose(fp);
	return r;
}
