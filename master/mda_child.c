/*
 * Running delivery work as the recipient, for mda_mbox.c and mda_maildir.c.
 *
 * The bytes of a delivery must be written by a process running as the
 * recipient, so that the kernel checks permissions and charges limits to
 * the user.  The helper (still root) forks a child that resets its signals,
 * closes every descriptor it was not given, drops to the user for good and
 * runs the work; the child writes its status and reason into a pipe and
 * exits, and the helper reads them, reaps the child and returns them.
 */
#include "autoconf.h"

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "mda_child.h"

/* What the child writes into the pipe: whole, in one piece. */
struct mda_result {
	int		 status;
	char		 err[TEXT_MAX];
};

int
mda_fail(int status, char *err, size_t errsz, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return status;
}

int
mda_io_fail(int errnum, const char *box, const char *what, const char *path,
    char *err, size_t errsz)
{
	switch (errnum) {
	case EDQUOT:
	case EFBIG:
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.2.2 %s %s is full: %s", box, path, strerror(errnum));
	case ENOSPC:
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.1 mail system full: %s: %s", path, strerror(errnum));
	default:
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 %s %s: %s", what, path, strerror(errnum));
	}
}

/* ---- the child ---- */

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

#define CHILD_FDS	(MDA_CHILD_KEEP_MAX + 2)	/* + message, result */

/* Closes every fd above stdio but those in keep (below 3: ignored). */
static void
close_other_fds(const int *keep, size_t nkeep)
{
	int		 sorted[CHILD_FDS], lo = 3, t;
	size_t		 i, j, n = 0;

	for (i = 0; i < nkeep && n < CHILD_FDS; i++)
		if (keep[i] >= 3)
			sorted[n++] = keep[i];
	for (i = 1; i < n; i++)
		for (j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			t = sorted[j];
			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (i = 0; i < n; i++) {
		if (sorted[i] > lo)
			(void)close_range((unsigned)lo,
			    (unsigned)sorted[i] - 1, 0);
		if (sorted[i] >= lo)
			lo = sorted[i] + 1;
	}
	(void)close_range((unsigned)lo, ~0U, 0);
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

static void __attribute__((noreturn))
child_main(const struct mda_request *req, const int *keepfds, size_t nkeep,
    mda_work_fn work, void *arg, int resfd, pid_t parent)
{
	struct mda_result	 res;
	int			 keep[CHILD_FDS];
	size_t			 i, off = 0;
	ssize_t			 n;

	memset(&res, 0, sizeof(res));
	keep[0] = req->msgfd;
	keep[1] = resfd;
	for (i = 0; i < nkeep; i++)
		keep[i + 2] = keepfds[i];
	child_signals();
	close_other_fds(keep, nkeep + 2);
	umask(077);
	if (drop_to_user(req->uid, req->gid) == -1) {
		res.status = mda_fail(DLV_TEMPFAIL, res.err, sizeof(res.err),
		    "4.3.0 cannot switch to uid %lu: %s",
		    (unsigned long)req->uid, strerror(errno));
	} else if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
	    getppid() != parent) {
		/* The helper is gone (killed on timeout): so are we. */
		_exit(1);
	} else
		res.status = work(req, arg, res.err, sizeof(res.err));
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

/* ---- the helper ---- */

/*
 * The helper's own steps (pipe2, sigaction, fork, opening the marker) are
 * no fault of the mailbox: the reason is always the plain 4.3.0 one.
 */
static int
run_fail(int errnum, const char *what, const char *path, char *err,
    size_t errsz)
{
	return mda_fail(DLV_TEMPFAIL, err, errsz, "4.3.0 %s %s: %s", what,
	    path, strerror(errnum));
}

/* Reads the whole result; the number of bytes read. */
static size_t
read_result(int fd, struct mda_result *res)
{
	size_t	 got = 0;
	ssize_t	 n;

	memset(res, 0, sizeof(*res));
	while (got < sizeof(*res)) {
		n = read(fd, (char *)res + got, sizeof(*res) - got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	return got;
}

int
mda_child_run(const struct mda_request *req, const int *keep, size_t nkeep,
    mda_work_fn work, void *arg, char *err, size_t errsz)
{
	struct mda_result	 res;
	struct sigaction	 sa, osa;
	size_t			 got;
	pid_t			 pid, parent = getpid();
	int			 p[2], wstatus = 0, reaped = 0;

	if (nkeep > MDA_CHILD_KEEP_MAX)
		return run_fail(EINVAL, "too many descriptors to deliver to",
		    req->path, err, errsz);
	if (pipe2(p, O_CLOEXEC) == -1)
		return run_fail(errno, "cannot make a pipe for", req->path,
		    err, errsz);
	/* waitpid needs SIGCHLD not ignored. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, &osa) == -1) {
		close(p[0]);
		close(p[1]);
		return run_fail(errno, "cannot reset SIGCHLD for", req->path,
		    err, errsz);
	}
	if ((pid = fork()) == -1) {
		int	 saved = errno;

		close(p[0]);
		close(p[1]);
		(void)sigaction(SIGCHLD, &osa, NULL);
		return run_fail(saved, "cannot fork to deliver to", req->path,
		    err, errsz);
	}
	if (pid == 0) {
		close(p[0]);
		child_main(req, keep, nkeep, work, arg, p[1], parent);
	}
	close(p[1]);
	got = read_result(p[0], &res);
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
			return mda_fail(DLV_TEMPFAIL, err, errsz,
			    "4.3.0 delivery to %s killed by signal %d",
			    req->path, WTERMSIG(wstatus));
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 delivery to %s failed", req->path);
	}
	res.err[sizeof(res.err) - 1] = '\0';
	strlcpy(err, res.err, errsz);
	return res.status;
}

ssize_t
mda_pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t	 got = 0;
	ssize_t	 n;

	while (got < len) {
		n = pread(fd, (char *)buf + got, len - got, off + (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

int
mda_split_path(const char *path, char *dir, size_t dirsz, char *base,
    size_t basesz)
{
	const char	*slash;
	size_t		 dirlen;

	if (path[0] != '/' || (slash = strrchr(path, '/')) == NULL)
		return -1;
	if (slash[1] == '\0' || strcmp(slash + 1, ".") == 0 ||
	    strcmp(slash + 1, "..") == 0 ||
	    strlcpy(base, slash + 1, basesz) >= basesz)
		return -1;
	dirlen = slash == path ? 1 : (size_t)(slash - path);
	if (dirlen >= dirsz)
		return -1;
	memcpy(dir, path, dirlen);
	dir[dirlen] = '\0';
	return 0;
}

/* ---- the intent marker ---- */

/*
 * The marker's directory belongs to another account, which could plant a
 * hard link there for root to open: only a file root made is used.
 */
static int
marker_check(int fd, const char *path, char *err, size_t errsz)
{
	struct stat	 st;

	if (fstat(fd, &st) == -1)
		return run_fail(errno, "cannot stat delivery marker", path, err,
		    errsz);
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_uid != geteuid())
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 delivery marker %s is not a file of ours", path);
	return DLV_OK;
}

int
mda_marker_open(const struct mda_request *req, struct mda_marker *m,
    char *err, size_t errsz)
{
	char	 dir[PATH_MAX], base[NAME_MAX + 1];
	int	 status;

	m->fd = m->dirfd = -1;
	if (req->marker[0] == '\0')
		return DLV_OK;
	if (mda_split_path(req->marker, dir, sizeof(dir), base,
	    sizeof(base)) == -1)
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 bad delivery marker path \"%s\"", req->marker);
	if ((m->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return run_fail(errno, "cannot open directory of delivery "
		    "marker", req->marker, err, errsz);
	m->fd = openat(m->dirfd, base, O_RDWR | O_CREAT | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (m->fd == -1)
		status = run_fail(errno, "cannot open delivery marker",
		    req->marker, err, errsz);
	else
		status = marker_check(m->fd, req->marker, err, errsz);
	if (status != DLV_OK)
		mda_marker_close(m);
	return status;
}

void
mda_marker_close(struct mda_marker *m)
{
	if (m->fd != -1)
		close(m->fd);
	if (m->dirfd != -1)
		close(m->dirfd);
	m->fd = m->dirfd = -1;
}

int
mda_marker_read(const struct mda_marker *m, char *buf, size_t bufsz)
{
	ssize_t	 n;
	size_t	 got;

	if (bufsz == 0)
		return 0;
	buf[0] = '\0';
	if (m->fd == -1)
		return 0;
	/* One byte more than fits: a longer text is none of ours. */
	if ((n = mda_pread_full(m->fd, buf, bufsz, 0)) == -1)
		return -1;
	got = (size_t)n;
	if (got == bufsz || memchr(buf, '\0', got) != NULL) {
		log_warnx("mda: delivery marker holds no text of ours: "
		    "ignored");
		got = 0;
	}
	buf[got] = '\0';
	return 0;
}

int
mda_marker_write(const struct mda_marker *m, const char *text)
{
	size_t	 len = strlen(text), off = 0;
	ssize_t	 n;

	if (m->fd == -1)
		return 0;
	if (ftruncate(m->fd, 0) == -1)
		return -1;
	while (off < len) {
		n = pwrite(m->fd, text + off, len - off, (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		off += (size_t)n;
	}
	if (fdatasync(m->fd) == -1 || fsync(m->dirfd) == -1)
		return -1;
	return 0;
}
