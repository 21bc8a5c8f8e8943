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

#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "mda.h"
#include "mda_child.h"
#include "mda_write.h"

/*
 * How long to wait for the dotlock and then for the fcntl lock before giving
 * up with a temporary failure.  Not static only so that the unit tests can
 * shorten it (mda.h declares it for them); nothing else sets it.
 */
unsigned int	mda_mbox_lock_wait_ms = 10000;

#define MBOX_LOCK_POLL_MS	100
#define MBOX_LOCK_STALE_SECS	300	/* an older dotlock is removed */
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

/* Line-start state for the ^>*From quoting filter. */
struct mbox_filter {
	int		 bol;		/* at the beginning of a line */
	size_t		 gt;		/* '>' seen at the start of the line */
	size_t		 match;		/* bytes of "From " matched next */
};

static const char	 from_[] = "From ";

/* An I/O error on the mailbox, with its RFC 3463 code. */
static int
mbox_io_fail(int errnum, const char *what, const char *path, char *err,
    size_t errsz)
{
	return mda_io_fail(errnum, "mailbox", what, path, err, errsz);
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
		return mda_fail(DLV_TEMPFAIL, err, errsz,
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
			return mda_fail(DLV_TEMPFAIL, err, errsz,
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
		return mda_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 mailbox %s is a symlink", path);
	if (!S_ISREG(st->st_mode))
		return mda_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 mailbox %s is not a regular file", path);
	if (st->st_nlink != 1)
		return mda_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 mailbox %s has %lu links", path,
		    (unsigned long)st->st_nlink);
	if (st->st_uid != job->req->uid)
		return mda_fail(DLV_PERMFAIL, err, errsz,
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
	return mda_fail(DLV_TEMPFAIL, err, errsz,
	    "4.2.0 mailbox %s keeps changing", path);
}

/* ---- output: mboxrd quoting (mda_write.c turns CRLF into LF) ---- */

/* The line head held back was not "From " after all: write it as it was. */
static void
filter_release(struct mbox_filter *f, struct mda_out *o)
{
	size_t	 i;

	for (i = 0; i < f->gt; i++)
		mda_out_putc(o, '>');
	mda_out_put(o, from_, f->match);
	f->gt = f->match = 0;
	f->bol = 0;
}

/* Each byte of the message, line ends already LF. */
static void
filter_byte(void *arg, struct mda_out *o, int c)
{
	struct mbox_filter	*f = arg;

	if (f->bol) {
		if (c == '>' && f->match == 0) {
			f->gt++;
			return;
		}
		if (c == from_[f->match]) {
			if (++f->match == sizeof(from_) - 1) {
				mda_out_putc(o, '>');
				filter_release(f, o);
			}
			return;
		}
		filter_release(f, o);
	}
	mda_out_putc(o, c);
	if (c == '\n')
		f->bol = 1;
}

static void
filter_end(struct mbox_filter *f, struct mda_out *o)
{
	if (f->bol && (f->gt || f->match))
		filter_release(f, o);
	if (o->last != '\n')
		mda_out_putc(o, '\n');
	mda_out_putc(o, '\n');
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
	struct mda_out		*o;
	struct mbox_filter	 f = { .bol = 1 };
	struct stat		 st;
	char			 date[64];
	int			 rerr, status = DLV_OK;

	if (fstat(fd, &st) == -1)
		return mbox_io_fail(errno, "cannot stat mailbox", req->path,
		    err, errsz);
	/* In the child only, which exits soon: the buffer is 64 KiB. */
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return mbox_io_fail(errno, "no memory for", req->path, err,
		    errsz);
	o->fd = fd;

	mbox_date(date, sizeof(date));
	mda_out_puts(o, "From ");
	mda_out_addr(o, req->sender[0] ? req->sender : "MAILER-DAEMON", 1);
	mda_out_putc(o, ' ');
	mda_out_puts(o, date);
	mda_out_puts(o, "\nReturn-Path: <");
	mda_out_addr(o, req->sender, 0);
	mda_out_puts(o, ">\nDelivered-To: ");
	mda_out_addr(o, req->dlv.rcpt, 0);
	mda_out_putc(o, '\n');

	if ((rerr = mda_out_message(o, req->msgfd, filter_byte, &f)) == 0) {
		filter_end(&f, o);
		mda_out_flush(o);
	}
	if (rerr != 0)
		status = mda_fail(DLV_TEMPFAIL, err, errsz,
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
			return mda_fail(DLV_TEMPFAIL, err, errsz,
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
			return mda_fail(DLV_PERMFAIL, err, errsz,
			    "5.2.0 mailbox %s is a symlink", path);
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.2.0 cannot open mailbox %s: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == -1) {
		status = mbox_io_fail(errno, "cannot stat mailbox", path, err,
		    errsz);
	} else if (st.st_dev != dev || st.st_ino != ino) {
		status = mda_fail(DLV_TEMPFAIL, err, errsz,
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
mbox_deliver_as_user(const struct mda_request *req, void *arg, char *err,
    size_t errsz)
{
	struct mbox_job	*job = arg;
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

/* Runs the user's part in a child and returns its status and reason. */
static int
mbox_run_child(struct mbox_job *job, char *err, size_t errsz)
{
	return mda_child_run(job->req, job->dirfd, mbox_deliver_as_user, job,
	    err, errsz);
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
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 bad mailbox path \"%s\"", req->path);
	if (req->uid == (uid_t)-1 || req->gid == (gid_t)-1)
		return mda_fail(DLV_TEMPFAIL, err, errsz,
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
