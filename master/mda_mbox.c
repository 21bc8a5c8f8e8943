/*
 * Delivery to an mbox file (mboxrd), as mail.local and Postfix local(8) do
 * it, in the helper the master forks for one delivery (still root).
 *
 * Who does what.  The bytes must be written by a process running as the
 * recipient, so that the kernel checks the mailbox's permissions, charges the
 * user's limits and no file the user could not write himself is ever
 * written.  Opening an fd as root and writing through it as the user would
 * not give that (permissions are checked at open), so the mailbox is opened,
 * locked with fcntl, written, fsynced and truncated back on error in a child
 * that has dropped to the user (setgroups/setresgid/setresuid); the helper
 * waits for it and relays its status and reason.
 *
 * Root does only what the user cannot: in a "trusted" spool directory (owned
 * by root, not world-writable, reached through root-owned directories that
 * nobody else can rename entries in; Debian's /var/mail is root:mail 2775)
 * root creates the dotlock PATH.lock and, when the mailbox does not exist,
 * creates it owned by the user.  Everything root touches is named relative to
 * a descriptor of that directory, with O_NOFOLLOW and O_EXCL, so a symlink
 * cannot redirect it.  In any other directory (a home directory, a sticky
 * world-writable spool) root touches nothing: the child does the dotlock and
 * the creation too, as the user.
 *
 * Format (mboxrd): "From SENDER DATE", Return-Path and Delivered-To, the
 * message with CRLF turned into LF and every line matching ^>*From quoted
 * with one more '>', a final newline if missing, and an empty line.
 */
#include "autoconf.h"

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

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

/*
 * How long to wait for the dotlock and then for the fcntl lock before giving
 * up with a temporary failure.  Not static only so that the unit tests can
 * shorten it (tests/unit/check_mda.c declares it); nothing else sets it.
 */
unsigned int	mda_mbox_lock_wait_ms = 10000;

#define MBOX_LOCK_POLL_MS	100
#define MBOX_LOCK_STALE_SECS	300	/* an older dotlock is removed */
#define MBOX_IOBUF		65536
#define MBOX_LOCK_SUFFIX	".lock"

struct mbox_job {
	const struct mda_request *req;
	char		 dir[PATH_MAX];		/* as given: used by the user */
	char		 base[NAME_MAX + 1];
	char		 lockname[NAME_MAX + 1];
	int		 dirfd;			/* root mode: the trusted dir */
	int		 prepared;		/* root locked and checked it */
	dev_t		 dev;			/* what root checked */
	ino_t		 ino;
};

struct mbox_out {
	int		 fd;
	int		 err;		/* errno of the first failed write */
	int		 last;		/* last byte written */
	size_t		 len;
	char		 buf[MBOX_IOBUF];
};

/* Line-start state for the CRLF -> LF and ^>*From quoting filter. */
struct mbox_filter {
	int		 cr;		/* a CR waits to see if LF follows */
	int		 bol;		/* at the beginning of a line */
	size_t		 gt;		/* '>' seen at the start of the line */
	size_t		 match;		/* bytes of "From " matched next */
};

struct mbox_result {
	int		 status;
	char		 err[TEXT_MAX];
};

static const char	 from_[] = "From ";

static int
mbox_fail(int status, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
mbox_fail(int status, char *err, size_t errsz, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return status;
}

/* RFC 3463 codes for an I/O error on the mailbox: all temporary. */
static int
mbox_io_fail(int errnum, const char *what, const char *path, char *err,
    size_t errsz)
{
	switch (errnum) {
	case EDQUOT:
	case EFBIG:
		return mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.2.2 mailbox %s is full: %s", path, strerror(errnum));
	case ENOSPC:
		return mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.1 mail system full: %s: %s", path, strerror(errnum));
	default:
		return mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 %s %s: %s", what, path, strerror(errnum));
	}
}

static const char *
mbox_user(const struct mda_request *req, char *buf, size_t bufsz)
{
	if (req->dlv.user[0] != '\0')
		return req->dlv.user;
	snprintf(buf, bufsz, "uid %lu", (unsigned long)req->uid);
	return buf;
}

static long long
mbox_elapsed_ms(const struct timespec *start)
{
	struct timespec	 now;

	if (clock_gettime(CLOCK_MONOTONIC, &now) == -1)
		return LLONG_MAX;	/* cannot tell: stop waiting */
	return (long long)(now.tv_sec - start->tv_sec) * 1000 +
	    (now.tv_nsec - start->tv_nsec) / 1000000;
}

static void
mbox_sleep_ms(unsigned int ms)
{
	struct timespec	 ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Splits an absolute mailbox path into its directory and its name. */
static int
mbox_split(const char *path, struct mbox_job *job)
{
	const char	*slash;
	size_t		 dirlen;

	if (path[0] != '/' || strlen(path) >= PATH_MAX)
		return -1;
	slash = strrchr(path, '/');
	if (slash[1] == '\0' || strcmp(slash + 1, ".") == 0 ||
	    strcmp(slash + 1, "..") == 0)
		return -1;
	if (strlcpy(job->base, slash + 1, sizeof(job->base)) >=
	    sizeof(job->base) ||
	    snprintf(job->lockname, sizeof(job->lockname), "%s%s", job->base,
	    MBOX_LOCK_SUFFIX) >= (int)sizeof(job->lockname))
		return -1;
	dirlen = slash == path ? 1 : (size_t)(slash - path);
	memcpy(job->dir, path, dirlen);
	job->dir[dirlen] = '\0';
	return 0;
}

/*
 * 1 if root may work in the directory rdir (a realpath: no symlinks, no
 * "..") without an unprivileged user being able to redirect it: rdir and
 * every directory above it owned by root; the ancestors writable by others
 * only when sticky (then nobody else can rename the root-owned entry below),
 * rdir itself not world-writable (there anybody can create, so the user can
 * do his own locking).  0 if not, -1 on error.
 */
static int
mbox_dir_trusted(const char *rdir)
{
	char		 prefix[PATH_MAX];
	const char	*next;
	struct stat	 st;
	size_t		 end = 1, len = strlen(rdir);

	if (rdir[0] != '/' || len >= sizeof(prefix))
		return 0;
	for (;;) {
		memcpy(prefix, rdir, end);
		prefix[end] = '\0';
		if (lstat(prefix, &st) == -1)
			return -1;
		if (!S_ISDIR(st.st_mode) || st.st_uid != 0)
			return 0;
		if (end >= len)
			return (st.st_mode & S_IWOTH) ? 0 : 1;
		if ((st.st_mode & (S_IWGRP | S_IWOTH)) &&
		    !(st.st_mode & S_ISVTX))
			return 0;
		next = strchr(rdir + end + 1, '/');
		end = next ? (size_t)(next - rdir) : len;
	}
}

/*
 * Opens the mailbox directory for root's steps if it is trusted; -1 in
 * *dirfd when it is not (the user does everything).
 */
static int
mbox_open_dir(struct mbox_job *job, int *dirfd, char *err, size_t errsz)
{
	char		 rdir[PATH_MAX];
	struct stat	 lst, fst;
	int		 fd, trusted;

	*dirfd = -1;
	if (realpath(job->dir, rdir) == NULL)
		return mbox_io_fail(errno, "mailbox directory", job->dir, err,
		    errsz);
	if ((trusted = mbox_dir_trusted(rdir)) == -1)
		return mbox_io_fail(errno, "mailbox directory", rdir, err,
		    errsz);
	if (!trusted)
		return DLV_OK;
	if ((fd = open(rdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1)
		return mbox_io_fail(errno, "cannot open mailbox directory",
		    rdir, err, errsz);
	if (fstat(fd, &fst) == -1 || lstat(rdir, &lst) == -1 ||
	    fst.st_dev != lst.st_dev || fst.st_ino != lst.st_ino) {
		close(fd);
		return mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 mailbox directory %s changed while opening it",
		    rdir);
	}
	*dirfd = fd;
	return DLV_OK;
}

/* Takes PATH.lock, waiting a bounded time; removes a stale one. */
static int
mbox_dotlock(int dirfd, const struct mbox_job *job, char *err, size_t errsz)
{
	const char	*path = job->req->path;
	struct timespec	 start;
	struct stat	 st;
	int		 fd;

	if (clock_gettime(CLOCK_MONOTONIC, &start) == -1)
		return mbox_io_fail(errno, "clock for lock on", path, err,
		    errsz);
	for (;;) {
		fd = openat(dirfd, job->lockname, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd != -1) {
			if (close(fd) == -1)
				log_warn("mbox: close %s%s", path,
				    MBOX_LOCK_SUFFIX);
			return DLV_OK;
		}
		if (errno == EINTR)
			continue;
		if (errno != EEXIST)
			return mbox_io_fail(errno, "cannot create lock for",
			    path, err, errsz);
		if (fstatat(dirfd, job->lockname, &st,
		    AT_SYMLINK_NOFOLLOW) == 0 &&
		    time(NULL) - st.st_mtime > MBOX_LOCK_STALE_SECS) {
			if (unlinkat(dirfd, job->lockname, 0) == 0) {
				log_info("mbox: removed stale lock %s%s", path,
				    MBOX_LOCK_SUFFIX);
				continue;
			}
			if (errno == ENOENT)
				continue;
			log_warn("mbox: cannot remove stale lock %s%s", path,
			    MBOX_LOCK_SUFFIX);
		}
		if (mbox_elapsed_ms(&start) >= mda_mbox_lock_wait_ms)
			return mbox_fail(DLV_TEMPFAIL, err, errsz,
			    "4.2.0 mailbox %s is locked", path);
		mbox_sleep_ms(MBOX_LOCK_POLL_MS);
	}
}

static void
mbox_dotunlock(int dirfd, const struct mbox_job *job)
{
	if (unlinkat(dirfd, job->lockname, 0) == -1)
		log_warn("mbox: cannot remove lock %s%s", job->req->path,
		    MBOX_LOCK_SUFFIX);
}

/* What makes a mailbox unsafe to append to: permanent until fixed. */
static int
mbox_check(const struct stat *st, const struct mbox_job *job, char *err,
    size_t errsz)
{
	const char	*path = job->req->path;
	char		 ubuf[32];

	if (S_ISLNK(st->st_mode))
		return mbox_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 mailbox %s is a symlink", path);
	if (!S_ISREG(st->st_mode))
		return mbox_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 mailbox %s is not a regular file", path);
	if (st->st_nlink != 1)
		return mbox_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 mailbox %s has %lu links", path,
		    (unsigned long)st->st_nlink);
	if (st->st_uid != job->req->uid)
		return mbox_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 mailbox %s is not owned by %s", path,
		    mbox_user(job->req, ubuf, sizeof(ubuf)));
	return DLV_OK;
}

/* The group of a mailbox root creates: "mail" as Debian's tools do. */
static gid_t
mbox_group(gid_t fallback)
{
	struct group	*gr;

	if ((gr = getgrnam("mail")) == NULL)
		return fallback;
	return gr->gr_gid;
}

/*
 * Creates the mailbox if it is missing (owned by the user when root creates
 * it), then checks that it is safe; *st is what was checked.
 */
static int
mbox_prepare(int dirfd, const struct mbox_job *job, int as_root,
    struct stat *st, char *err, size_t errsz)
{
	const char	*path = job->req->path;
	int		 fd, tries;

	for (tries = 0; tries < 3; tries++) {
		if (fstatat(dirfd, job->base, st, AT_SYMLINK_NOFOLLOW) == 0)
			return mbox_check(st, job, err, errsz);
		if (errno != ENOENT)
			return mbox_io_fail(errno, "cannot stat mailbox", path,
			    err, errsz);
		fd = openat(dirfd, job->base, O_WRONLY | O_CREAT | O_EXCL |
		    O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd == -1) {
			if (errno == EEXIST || errno == EINTR)
				continue;
			return mbox_io_fail(errno, "cannot create mailbox",
			    path, err, errsz);
		}
		if ((as_root && fchown(fd, job->req->uid,
		    mbox_group(job->req->gid)) == -1) ||
		    fchmod(fd, 0600) == -1) {
			int	 saved = errno;

			if (unlinkat(dirfd, job->base, 0) == -1)
				log_warn("mbox: unlink %s", path);
			close(fd);
			return mbox_io_fail(saved, "cannot set owner of",
			    path, err, errsz);
		}
		if (close(fd) == -1)
			log_warn("mbox: close %s", path);
		if (fsync(dirfd) == -1)
			return mbox_io_fail(errno, "cannot sync directory of",
			    path, err, errsz);
		log_info("mbox: created mailbox %s", path);
	}
	return mbox_fail(DLV_TEMPFAIL, err, errsz,
	    "4.2.0 mailbox %s keeps changing", path);
}

/* ---- output: buffered writes, CRLF -> LF, mboxrd quoting ---- */

static void
out_flush(struct mbox_out *o)
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
out_putc(struct mbox_out *o, int c)
{
	if (o->len == sizeof(o->buf))
		out_flush(o);
	o->buf[o->len++] = (char)c;
	o->last = c;
}

static void
out_put(struct mbox_out *o, const char *s, size_t len)
{
	while (len-- > 0)
		out_putc(o, (unsigned char)*s++);
}

static void
out_puts(struct mbox_out *o, const char *s)
{
	out_put(o, s, strlen(s));
}

/* Copies an envelope address for a header: no controls, no line breaks. */
static void
out_addr(struct mbox_out *o, const char *s, int nospace)
{
	unsigned char	 c;

	for (; (c = (unsigned char)*s) != '\0'; s++) {
		if (c < 0x20 || c == 0x7f || (nospace && c == ' '))
			c = '_';
		out_putc(o, c);
	}
}

/* The line head held back was not "From " after all: write it as it was. */
static void
filter_release(struct mbox_filter *f, struct mbox_out *o)
{
	size_t	 i;

	for (i = 0; i < f->gt; i++)
		out_putc(o, '>');
	out_put(o, from_, f->match);
	f->gt = f->match = 0;
	f->bol = 0;
}

static void
filter_byte(struct mbox_filter *f, struct mbox_out *o, int c)
{
	if (f->cr) {
		f->cr = 0;
		if (c == '\n') {
			out_putc(o, '\n');
			f->bol = 1;
			return;
		}
		out_putc(o, '\r');
	}
	if (f->bol) {
		if (c == '>' && f->match == 0) {
			f->gt++;
			return;
		}
		if (c == from_[f->match]) {
			if (++f->match == sizeof(from_) - 1) {
				out_putc(o, '>');
				filter_release(f, o);
			}
			return;
		}
		filter_release(f, o);
	}
	if (c == '\r') {
		f->cr = 1;
		return;
	}
	out_putc(o, c);
	if (c == '\n')
		f->bol = 1;
}

static void
filter_end(struct mbox_filter *f, struct mbox_out *o)
{
	if (f->cr)
		out_putc(o, '\r');
	if (f->bol && (f->gt || f->match))
		filter_release(f, o);
	if (o->last != '\n')
		out_putc(o, '\n');
	out_putc(o, '\n');
}

/* asctime format, as in every From_ line: "Mon Nov 23 14:44:52 2026". */
static void
mbox_date(char *buf, size_t bufsz)
{
	static const char *const days[] = { "Sun", "Mon", "Tue", "Wed", "Thu",
	    "Fri", "Sat" };
	static const char *const months[] = { "Jan", "Feb", "Mar", "Apr",
	    "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
	struct tm	 tm;
	time_t		 now = time(NULL);

	if (localtime_r(&now, &tm) == NULL && gmtime_r(&now, &tm) == NULL)
		memset(&tm, 0, sizeof(tm));
	snprintf(buf, bufsz, "%s %s %2d %02d:%02d:%02d %d",
	    days[tm.tm_wday % 7], months[tm.tm_mon % 12], tm.tm_mday,
	    tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_year + 1900);
}

/*
 * Appends one message to the locked mailbox fd; on any error truncates it
 * back to where it was, so that no half message is ever left.
 */
static int
mbox_write(int fd, const struct mda_request *req, char *err, size_t errsz)
{
	struct mbox_out		*o;
	struct mbox_filter	 f = { .bol = 1 };
	struct stat		 st;
	char			 date[64], rbuf[MBOX_IOBUF];
	off_t			 off = 0;
	ssize_t			 n;
	int			 rerr = 0, status = DLV_OK;

	if (fstat(fd, &st) == -1)
		return mbox_io_fail(errno, "cannot stat mailbox", req->path,
		    err, errsz);
	/* In the child only, which exits soon: the buffer is 64 KiB. */
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return mbox_io_fail(errno, "no memory for", req->path, err,
		    errsz);
	o->fd = fd;

	mbox_date(date, sizeof(date));
	out_puts(o, "From ");
	out_addr(o, req->sender[0] ? req->sender : "MAILER-DAEMON", 1);
	out_putc(o, ' ');
	out_puts(o, date);
	out_puts(o, "\nReturn-Path: <");
	out_addr(o, req->sender, 0);
	out_puts(o, ">\nDelivered-To: ");
	out_addr(o, req->dlv.rcpt, 0);
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
		for (ssize_t i = 0; i < n; i++)
			filter_byte(&f, o, (unsigned char)rbuf[i]);
	}
	if (rerr == 0) {
		filter_end(&f, o);
		out_flush(o);
	}
	if (rerr != 0)
		status = mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 cannot read message: %s", strerror(rerr));
	else if (o->err != 0)
		status = mbox_io_fail(o->err, "cannot write mailbox",
		    req->path, err, errsz);
	else if (fsync(fd) == -1)
		status = mbox_io_fail(errno, "cannot sync mailbox", req->path,
		    err, errsz);
	free(o);

	if (status != DLV_OK &&
	    (ftruncate(fd, st.st_size) == -1 || fsync(fd) == -1)) {
		size_t	 len = strlen(err);

		snprintf(err + len, errsz - len, " (truncating it: %s)",
		    strerror(errno));
	}
	return status;
}

/* fcntl write lock on the whole mailbox, waiting a bounded time. */
static int
mbox_fcntl_lock(int fd, const char *path, char *err, size_t errsz)
{
	struct flock	 fl;
	struct timespec	 start;

	if (clock_gettime(CLOCK_MONOTONIC, &start) == -1)
		return mbox_io_fail(errno, "clock for lock on", path, err,
		    errsz);
	for (;;) {
		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_WRLCK;
		fl.l_whence = SEEK_SET;
		if (fcntl(fd, F_SETLK, &fl) == 0)
			return DLV_OK;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EACCES)
			return mbox_io_fail(errno, "cannot lock mailbox", path,
			    err, errsz);
		if (mbox_elapsed_ms(&start) >= mda_mbox_lock_wait_ms)
			return mbox_fail(DLV_TEMPFAIL, err, errsz,
			    "4.2.0 mailbox %s is locked", path);
		mbox_sleep_ms(MBOX_LOCK_POLL_MS);
	}
}

/*
 * As the user: opens the mailbox that was checked (same device and inode,
 * still safe), takes the fcntl lock and appends the message.
 */
static int
mbox_append(int dirfd, const struct mbox_job *job, dev_t dev, ino_t ino,
    char *err, size_t errsz)
{
	const char	*path = job->req->path;
	struct stat	 st;
	int		 fd, flags, status;

	/* O_NONBLOCK: a FIFO swapped in must not hang us before fstat. */
	fd = openat(dirfd, job->base, O_WRONLY | O_APPEND | O_NOFOLLOW |
	    O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd == -1) {
		if (errno == ELOOP)
			return mbox_fail(DLV_PERMFAIL, err, errsz,
			    "5.2.0 mailbox %s is a symlink", path);
		return mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.2.0 cannot open mailbox %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1) {
		status = mbox_io_fail(errno, "cannot stat mailbox", path, err,
		    errsz);
	} else if (st.st_dev != dev || st.st_ino != ino) {
		status = mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.2.0 mailbox %s changed during delivery", path);
	} else if ((status = mbox_check(&st, job, err, errsz)) != DLV_OK) {
		/* status set */
	} else if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) == -1) {
		status = mbox_io_fail(errno, "cannot set flags of mailbox",
		    path, err, errsz);
	} else if ((status = mbox_fcntl_lock(fd, path, err, errsz)) ==
	    DLV_OK)
		status = mbox_write(fd, job->req, err, errsz);
	/* Closing drops the fcntl lock; the data is fsynced already. */
	if (close(fd) == -1 && status == DLV_OK)
		log_warn("mbox: close %s", path);
	return status;
}

/* In the child, as the user: the whole delivery or only its user part. */
static int
mbox_deliver_as_user(struct mbox_job *job, char *err, size_t errsz)
{
	struct stat	 st;
	int		 dirfd, status;

	if (job->prepared)
		return mbox_append(job->dirfd, job, job->dev, job->ino, err,
		    errsz);

	if ((dirfd = open(job->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return mbox_io_fail(errno, "cannot open mailbox directory",
		    job->dir, err, errsz);
	if ((status = mbox_dotlock(dirfd, job, err, errsz)) == DLV_OK) {
		if ((status = mbox_prepare(dirfd, job, 0, &st, err, errsz)) ==
		    DLV_OK)
			status = mbox_append(dirfd, job, st.st_dev, st.st_ino,
			    err, errsz);
		mbox_dotunlock(dirfd, job);
	}
	close(dirfd);
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

/* The child keeps stdio, the message, the trusted dir and its result pipe. */
static void
close_other_fds(const int *keep, size_t nkeep)
{
	int		 sorted[4], lo = 3, t;
	size_t		 i, j, n = 0;

	for (i = 0; i < nkeep && n < 4; i++)
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
mbox_child(struct mbox_job *job, int resfd, pid_t parent)
{
	struct mbox_result	 res;
	int			 keep[3];
	size_t			 off = 0;
	ssize_t			 n;

	memset(&res, 0, sizeof(res));
	keep[0] = job->req->msgfd;
	keep[1] = job->dirfd;
	keep[2] = resfd;
	child_signals();
	close_other_fds(keep, 3);
	umask(077);
	if (drop_to_user(job->req->uid, job->req->gid) == -1) {
		res.status = mbox_fail(DLV_TEMPFAIL, res.err, sizeof(res.err),
		    "4.3.0 cannot switch to uid %lu: %s",
		    (unsigned long)job->req->uid, strerror(errno));
	} else if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 ||
	    getppid() != parent) {
		/* The helper is gone (killed on timeout): so are we. */
		_exit(1);
	} else
		res.status = mbox_deliver_as_user(job, res.err,
		    sizeof(res.err));
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

/* Runs the user's part in a child and returns its status and reason. */
static int
mbox_run_child(struct mbox_job *job, char *err, size_t errsz)
{
	struct mbox_result	 res;
	struct sigaction	 sa, osa;
	size_t			 got = 0;
	ssize_t			 n;
	pid_t			 pid, parent = getpid();
	int			 p[2], wstatus = 0, reaped = 0;

	if (pipe2(p, O_CLOEXEC) == -1)
		return mbox_io_fail(errno, "cannot make a pipe for",
		    job->req->path, err, errsz);
	/* waitpid needs SIGCHLD not ignored. */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, &osa) == -1) {
		close(p[0]);
		close(p[1]);
		return mbox_io_fail(errno, "cannot reset SIGCHLD for",
		    job->req->path, err, errsz);
	}
	if ((pid = fork()) == -1) {
		int	 saved = errno;

		close(p[0]);
		close(p[1]);
		(void)sigaction(SIGCHLD, &osa, NULL);
		return mbox_io_fail(saved, "cannot fork to deliver to",
		    job->req->path, err, errsz);
	}
	if (pid == 0) {
		close(p[0]);
		mbox_child(job, p[1], parent);
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
			return mbox_fail(DLV_TEMPFAIL, err, errsz,
			    "4.3.0 delivery to %s killed by signal %d",
			    job->req->path, WTERMSIG(wstatus));
		return mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 delivery to %s failed", job->req->path);
	}
	res.err[sizeof(res.err) - 1] = '\0';
	strlcpy(err, res.err, errsz);
	return res.status;
}

int
mda_mbox(const struct mda_request *req, char *err, size_t errsz)
{
	struct mbox_job	 job;
	struct stat	 st;
	int		 status;

	if (errsz > 0)
		err[0] = '\0';
	memset(&job, 0, sizeof(job));
	job.req = req;
	job.dirfd = -1;
	if (mbox_split(req->path, &job) == -1)
		return mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 bad mailbox path \"%s\"", req->path);
	if (req->uid == (uid_t)-1 || req->gid == (gid_t)-1)
		return mbox_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 no account for mailbox %s", req->path);
	if ((status = mbox_open_dir(&job, &job.dirfd, err, errsz)) != DLV_OK)
		return status;
	if (job.dirfd == -1)
		return mbox_run_child(&job, err, errsz);

	if ((status = mbox_dotlock(job.dirfd, &job, err, errsz)) == DLV_OK) {
		if ((status = mbox_prepare(job.dirfd, &job, 1, &st, err,
		    errsz)) == DLV_OK) {
			job.prepared = 1;
			job.dev = st.st_dev;
			job.ino = st.st_ino;
			status = mbox_run_child(&job, err, errsz);
		}
		mbox_dotunlock(job.dirfd, &job);
	}
	close(job.dirfd);
	return status;
}
