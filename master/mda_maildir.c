/*
 * Delivery to a maildir (D. J. Bernstein's maildir(5) protocol), in the
 * helper the master forks for one delivery.
 *
 * Nothing here needs root: a maildir belongs to its user, so the whole
 * delivery runs in a child that has dropped to the user (setgroups,
 * setresgid, setresuid) and the helper only waits for it and relays its
 * status and reason through a pipe.  Files the user could not create
 * himself are never created, and a symlink planted by the user can only
 * lead where the user could write anyway; a maildir that is itself a
 * symlink is still refused, as the spec's readers expect real directories.
 *
 * Steps: create PATH/{tmp,new,cur} (0700) if missing; write the message with
 * Return-Path and Delivered-To prepended and CRLF turned into LF to
 * tmp/UNIQUE, fsync it, link it into new/ (rename where hard links are not
 * supported), remove the tmp/ name, fsync new/.  A failure removes what was
 * written, so the maildir is left as it was.
 */
#include "autoconf.h"

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mda.h"

#define MD_IOBUF	65536
#define MD_HOST_MAX	256

struct md_out {
	int		 fd;
	int		 err;		/* errno of the first failed write */
	size_t		 len;
	char		 buf[MD_IOBUF];
};

struct md_result {
	int		 status;
	char		 err[TEXT_MAX];
};

static int
md_fail(int status, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
md_fail(int status, char *err, size_t errsz, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return status;
}

/* RFC 3463 codes for an I/O error in the maildir: all temporary. */
static int
md_io_fail(int errnum, const char *what, const char *path, char *err,
    size_t errsz)
{
	switch (errnum) {
	case EDQUOT:
	case EFBIG:
		return md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.2.2 maildir %s is full: %s", path, strerror(errnum));
	case ENOSPC:
		return md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.1 mail system full: %s: %s", path, strerror(errnum));
	default:
		return md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 %s %s: %s", what, path, strerror(errnum));
	}
}

/* Makes a new directory entry durable. */
static int
md_sync_parent(const char *path)
{
	char		 dir[PATH_MAX];
	char		*slash;
	int		 fd, rv;

	if (strlcpy(dir, path, sizeof(dir)) >= sizeof(dir) ||
	    (slash = strrchr(dir, '/')) == NULL) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if (slash == dir)
		slash++;
	*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	rv = fsync(fd);
	close(fd);
	return rv;
}

/* mkdir -p, 0700, as the user: his maildir may sit in a new folder. */
static int
md_mkdirs(const char *path)
{
	char	 buf[PATH_MAX];
	char	*p, c;

	if (strlcpy(buf, path, sizeof(buf)) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(buf, 0700) == 0) {
			if (md_sync_parent(buf) == -1)
				return -1;
		} else if (errno != EEXIST)
			return -1;
		*p = c;
		if (c == '\0')
			return 0;
	}
}

/* Opens (creating it if missing) the maildir, which must not be a symlink. */
static int
md_open(const char *path, int *dfd, char *err, size_t errsz)
{
	struct stat	 st;

	if (lstat(path, &st) == -1) {
		if (errno != ENOENT)
			return md_io_fail(errno, "cannot stat maildir", path,
			    err, errsz);
		if (md_mkdirs(path) == -1)
			return md_io_fail(errno, "cannot create maildir", path,
			    err, errsz);
	} else if (S_ISLNK(st.st_mode))
		return md_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 maildir %s is a symlink", path);
	else if (!S_ISDIR(st.st_mode))
		return md_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 maildir %s is not a directory", path);
	if ((*dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		if (errno == ELOOP)
			return md_fail(DLV_PERMFAIL, err, errsz,
			    "5.2.0 maildir %s is a symlink", path);
		if (errno == ENOTDIR)
			return md_fail(DLV_PERMFAIL, err, errsz,
			    "5.2.0 maildir %s is not a directory", path);
		return md_io_fail(errno, "cannot open maildir", path, err,
		    errsz);
	}
	return DLV_OK;
}

/* tmp, new or cur: created if missing, a real directory; fd if asked. */
static int
md_subdir(int dfd, const char *path, const char *name, int *fdp,
    int *created, char *err, size_t errsz)
{
	int	 fd;

	if (mkdirat(dfd, name, 0700) == 0)
		*created = 1;
	else if (errno != EEXIST)
		return md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 cannot create %s/%s: %s", path, name,
		    strerror(errno));
	if ((fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		if (errno == ELOOP || errno == ENOTDIR)
			return md_fail(DLV_PERMFAIL, err, errsz,
			    "5.2.0 %s/%s is not a directory", path, name);
		return md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 cannot open %s/%s: %s", path, name,
		    strerror(errno));
	}
	if (fdp != NULL)
		*fdp = fd;
	else
		close(fd);
	return DLV_OK;
}

/*
 * TIME.MusecPpid_Qmsgid.HOST: unique because one process makes one delivery
 * and pids are not reused within a microsecond.  '/' and ':' in the host
 * name are written \057 and \072, as the spec says.  The message id comes
 * from a worker: only its alphanumerics are used.
 */
static int
md_unique_name(const struct mda_request *req, char *name, size_t namesz)
{
	char		 host[MD_HOST_MAX], ehost[MD_HOST_MAX * 4 + 1];
	char		 msgid[MSGID_SIZE];
	struct timespec	 ts;
	size_t		 i, j = 0;
	int		 n;

	if (gethostname(host, sizeof(host)) == -1)
		strlcpy(host, "localhost", sizeof(host));
	host[sizeof(host) - 1] = '\0';
	for (i = 0; host[i] != '\0'; i++) {
		if (host[i] == '/' || host[i] == ':') {
			snprintf(ehost + j, sizeof(ehost) - j, "\\%03o",
			    (unsigned char)host[i]);
			j += 4;
		} else
			ehost[j++] = host[i];
	}
	ehost[j] = '\0';
	for (i = j = 0; i < sizeof(req->msgid) - 1 &&
	    req->msgid[i] != '\0'; i++)
		if (isalnum((unsigned char)req->msgid[i]))
			msgid[j++] = req->msgid[i];
	msgid[j] = '\0';
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return -1;
	n = snprintf(name, namesz, "%lld.M%06ldP%ld_Q%s.%s",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(), msgid,
	    ehost);
	if (n < 0 || (size_t)n >= namesz) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* ---- output: buffered writes, CRLF -> LF ---- */

static void
out_flush(struct md_out *o)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (o->err == 0 && off < o->len) {
		n = write(o->fd, o->buf + off, o->len - off);
		if (n == -1) {
			if (errno != EINTR)
				o->err = errno;
			continue;
		}
		off += (size_t)n;
	}
	o->len = 0;
}

static void
out_putc(struct md_out *o, int c)
{
	if (o->len == sizeof(o->buf))
		out_flush(o);
	o->buf[o->len++] = (char)c;
}

static void
out_puts(struct md_out *o, const char *s)
{
	while (*s != '\0')
		out_putc(o, (unsigned char)*s++);
}

/* An envelope address in a header: no controls, no line breaks. */
static void
out_addr(struct md_out *o, const char *s)
{
	unsigned char	 c;

	for (; (c = (unsigned char)*s) != '\0'; s++)
		out_putc(o, (c < 0x20 || c == 0x7f) ? '_' : c);
}

/* Writes the message to fd (in tmp/) and fsyncs it. */
static int
md_write(int fd, const struct mda_request *req, const char *tmppath,
    char *err, size_t errsz)
{
	struct md_out	*o;
	char		 rbuf[MD_IOBUF];
	off_t		 off = 0;
	ssize_t		 n, i;
	int		 cr = 0, rerr = 0, status = DLV_OK;

	/* In the child only, which exits soon: the buffer is 64 KiB. */
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return md_io_fail(errno, "no memory for", tmppath, err, errsz);
	o->fd = fd;
	out_puts(o, "Return-Path: <");
	out_addr(o, req->sender);
	out_puts(o, ">\nDelivered-To: ");
	out_addr(o, req->dlv.rcpt);
	out_putc(o, '\n');
	/* pread from 0: the fd's offset is shared with other processes. */
	while (o->err == 0) {
		n = pread(req->msgfd, rbuf, sizeof(rbuf), off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			rerr = errno;
			break;
		}
		if (n == 0)
			break;
		off += n;
		for (i = 0; i < n; i++) {
			if (cr) {
				cr = 0;
				if (rbuf[i] == '\n') {
					out_putc(o, '\n');
					continue;
				}
				out_putc(o, '\r');
			}
			if (rbuf[i] == '\r')
				cr = 1;
			else
				out_putc(o, (unsigned char)rbuf[i]);
		}
	}
	if (cr)
		out_putc(o, '\r');
	out_flush(o);
	if (rerr != 0)
		status = md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 cannot read message: %s", strerror(rerr));
	else if (o->err != 0)
		status = md_io_fail(o->err, "cannot write", tmppath, err,
		    errsz);
	else if (fsync(fd) == -1)
		status = md_io_fail(errno, "cannot sync", tmppath, err, errsz);
	free(o);
	return status;
}

/* tmp/NAME -> new/NAME without ever replacing an existing new/NAME. */
static int
md_move(int tmpfd, int newfd, const char *name)
{
	if (linkat(tmpfd, name, newfd, name, 0) == 0) {
		if (unlinkat(tmpfd, name, 0) == -1)
			log_warn("maildir: cannot remove tmp/%s", name);
		return 0;
	}
	/* Filesystems without hard links: the name is unique anyway. */
	if (errno == EPERM || errno == EOPNOTSUPP || errno == ENOSYS)
		return renameat(tmpfd, name, newfd, name);
	return -1;
}

/* The whole delivery, in the child, as the user. */
static int
md_deliver(const struct mda_request *req, char *err, size_t errsz)
{
	char		 path[PATH_MAX], name[NAME_MAX + 1];
	char		 tmppath[PATH_MAX + NAME_MAX + 8];	/* for errors */
	size_t		 len;
	int		 dfd = -1, tmpfd = -1, newfd = -1, fd = -1;
	int		 created = 0, status;

	/* No trailing '/': lstat would follow a symlink through it. */
	if (req->path[0] != '/' ||
	    strlcpy(path, req->path, sizeof(path)) >= sizeof(path))
		return md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 bad maildir path \"%s\"", req->path);
	for (len = strlen(path); len > 1 && path[len - 1] == '/'; len--)
		path[len - 1] = '\0';

	if ((status = md_open(path, &dfd, err, errsz)) != DLV_OK)
		return status;
	if ((status = md_subdir(dfd, path, "tmp", &tmpfd, &created, err,
	    errsz)) != DLV_OK ||
	    (status = md_subdir(dfd, path, "new", &newfd, &created, err,
	    errsz)) != DLV_OK ||
	    (status = md_subdir(dfd, path, "cur", NULL, &created, err,
	    errsz)) != DLV_OK)
		goto done;
	if (created && fsync(dfd) == -1) {
		status = md_io_fail(errno, "cannot sync maildir", path, err,
		    errsz);
		goto done;
	}
	if (md_unique_name(req, name, sizeof(name)) == -1) {
		status = md_io_fail(errno, "cannot name a file in", path, err,
		    errsz);
		goto done;
	}
	snprintf(tmppath, sizeof(tmppath), "%s/tmp/%s", path, name);
	if ((fd = openat(tmpfd, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1) {
		status = md_io_fail(errno, "cannot create", tmppath, err,
		    errsz);
		goto done;
	}
	status = md_write(fd, req, tmppath, err, errsz);
	if (close(fd) == -1 && status == DLV_OK)
		status = md_io_fail(errno, "cannot write", tmppath, err,
		    errsz);
	if (status == DLV_OK && md_move(tmpfd, newfd, name) == -1)
		status = md_io_fail(errno, "cannot move into new/", tmppath,
		    err, errsz);
	if (status != DLV_OK) {
		if (unlinkat(tmpfd, name, 0) == -1 && errno != ENOENT)
			log_warn("maildir: cannot remove %s", tmppath);
		goto done;
	}
	if (fsync(newfd) == -1) {
		status = md_io_fail(errno, "cannot sync new/ of", path, err,
		    errsz);
		/* Not known to be durable: take it back, it will be retried. */
		if (unlinkat(newfd, name, 0) == -1)
			log_warn("maildir: cannot remove %s/new/%s", path,
			    name);
	}
done:
	if (newfd != -1)
		close(newfd);
	if (tmpfd != -1)
		close(tmpfd);
	close(dfd);
	return status;
}

/* ---- the unprivileged child ---- */

static int
drop_to_user(uid_t uid, gid_t gid)
{
	uid_t	 ru, eu, su;
	gid_t	 rg, eg, sg;

	if (setgroups(0, NULL) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		return -1;
	if (getresuid(&ru, &eu, &su) == -1 || getresgid(&rg, &eg, &sg) == -1 ||
	    ru != uid || eu != uid || su != uid ||
	    rg != gid || eg != gid || sg != gid) {
		errno = EPERM;
		return -1;
	}
	if (uid != 0 && setuid(0) != -1) {
		errno = EPERM;
		return -1;
	}
	/* Not ptrace-able or readable through /proc by the user. */
	if (prctl(PR_SET_DUMPABLE, 0) == -1)
		return -1;
	return 0;
}

static void
child_signals(void)
{
	struct sigaction	 sa;
	sigset_t		 all;
	int			 sig;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	/* The master's handlers mean nothing here; uncatchable ones fail. */
	for (sig = 1; sig < NSIG; sig++) {
		sa.sa_handler = (sig == SIGPIPE || sig == SIGXFSZ) ?
		    SIG_IGN : SIG_DFL;
		(void)sigaction(sig, &sa, NULL);
	}
	sigemptyset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
}

/* Keeps stdio, the message and the result pipe. */
static void
close_other_fds(int a, int b)
{
	int	 lo = a < b ? a : b, hi = a < b ? b : a, from = 3;

	if (lo >= from) {
		if (lo > from)
			(void)close_range((unsigned)from, (unsigned)lo - 1, 0);
		from = lo + 1;
	}
	if (hi >= from) {
		if (hi > from)
			(void)close_range((unsigned)from, (unsigned)hi - 1, 0);
		from = hi + 1;
	}
	(void)close_range((unsigned)from, ~0U, 0);
}

static void __attribute__((noreturn))
md_child(const struct mda_request *req, int resfd, pid_t parent)
{
	struct md_result	 res;
	size_t			 off = 0;
	ssize_t			 n;

	memset(&res, 0, sizeof(res));
	child_signals();
	close_other_fds(req->msgfd, resfd);
	umask(077);
	if (drop_to_user(req->uid, req->gid) == -1) {
		res.status = md_fail(DLV_TEMPFAIL, res.err, sizeof(res.err),
		    "4.3.0 cannot switch to uid %lu: %s",
		    (unsigned long)req->uid, strerror(errno));
	} else if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
	    getppid() != parent) {
		/* The helper is gone (killed on timeout): so are we. */
		_exit(1);
	} else
		res.status = md_deliver(req, res.err, sizeof(res.err));
	while (off < sizeof(res)) {
		n = write(resfd, (char *)&res + off, sizeof(res) - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1);
		off += (size_t)n;
	}
	_exit(0);
}

int
mda_maildir(const struct mda_request *req, char *err, size_t errsz)
{
	struct md_result	 res;
	struct sigaction	 sa, osa;
	size_t			 got = 0;
	ssize_t			 n;
	pid_t			 pid, parent = getpid();
	int			 p[2], wstatus = 0, reaped = 0;

	if (errsz > 0)
		err[0] = '\0';
	if (req->uid == (uid_t)-1 || req->gid == (gid_t)-1)
		return md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 no account for maildir %s", req->path);
	if (pipe2(p, O_CLOEXEC) == -1)
		return md_io_fail(errno, "cannot make a pipe for", req->path,
		    err, errsz);
	/* waitpid needs SIGCHLD not ignored. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, &osa) == -1) {
		close(p[0]);
		close(p[1]);
		return md_io_fail(errno, "cannot reset SIGCHLD for", req->path,
		    err, errsz);
	}
	if ((pid = fork()) == -1) {
		int	 saved = errno;

		close(p[0]);
		close(p[1]);
		(void)sigaction(SIGCHLD, &osa, NULL);
		return md_io_fail(saved, "cannot fork to deliver to",
		    req->path, err, errsz);
	}
	if (pid == 0) {
		close(p[0]);
		md_child(req, p[1], parent);
	}
	close(p[1]);
	memset(&res, 0, sizeof(res));
	while (got < sizeof(res)) {
		n = read(p[0], (char *)&res + got, sizeof(res) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(p[0]);
	while (!reaped) {
		if (waitpid(pid, &wstatus, 0) == pid)
			reaped = 1;
		else if (errno != EINTR)
			break;
	}
	(void)sigaction(SIGCHLD, &osa, NULL);
	if (got != sizeof(res) || !reaped || !WIFEXITED(wstatus) ||
	    WEXITSTATUS(wstatus) != 0 || (res.status != DLV_OK &&
	    res.status != DLV_TEMPFAIL && res.status != DLV_PERMFAIL)) {
		if (reaped && WIFSIGNALED(wstatus))
			return md_fail(DLV_TEMPFAIL, err, errsz,
			    "4.3.0 delivery to %s killed by signal %d",
			    req->path, WTERMSIG(wstatus));
		return md_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 delivery to %s failed", req->path);
	}
	res.err[sizeof(res.err) - 1] = '\0';
	strlcpy(err, res.err, errsz);
	return res.status;
}
