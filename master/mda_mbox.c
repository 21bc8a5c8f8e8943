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
 *
 * Exactly once across crashes.  A crash after the record is fsynced but
 * before the queue has recorded the delivery must not deliver it again, and
 * one in the middle of the append must not leave half of it.  So before the
 * first byte, the child writes where the record goes into the delivery
 * intent marker (mda.h), durably: "mbox DEV INO OFFSET LENGTH\n", LENGTH
 * counted by a first pass through the same conversion.  A later attempt
 * that finds a marker looks at the mailbox under its locks: the whole record
 * there (our From_ line, our Delivered-To and " id MSGID" in its header
 * block, ending where the marker says) means done; the start of our record
 * at the end of the file means an append cut short, which is cut off and
 * made again.  Anything else is left alone and the message appended.
 *
 * Dotlocks hold the pid of their maker ("%d\n"), so that one left by a
 * killed helper is removed at once rather than after the age limit.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
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
#define MBOX_HEAD_MAX		MDA_IOBUF	/* read to know a record */

/* What tells this delivery's record from any other. */
struct mbox_ident {
	char		 from[ADDR_MAX + 8];	/* "From SENDER " */
	char		 dlvto[ADDR_MAX + 24];	/* "\nDelivered-To: RCPT\n" */
	char		 id[MSGID_SIZE + 8];	/* " id MSGID" (Received:) */
};

struct mbox_job {
	const struct mda_request *req;
	char		 dir[PATH_MAX];		/* as given: used by the user */
	char		 base[NAME_MAX + 1];
	char		 lockname[NAME_MAX + 1];
	int		 dirfd;			/* root mode: the trusted dir */
	int		 prepared;		/* root locked and checked it */
	dev_t		 dev;			/* what root checked */
	ino_t		 ino;
	struct mda_marker marker;
	struct mbox_ident ident;
};

/* Compares a record being made with what the mailbox holds (a sink). */
struct mbox_cmp {
	int		 fd;
	off_t		 off;		/* the next mailbox byte to compare */
	off_t		 end;		/* the end of the mailbox */
	int		 verdict;	/* 1 same up to end, 0 not, -1 error */
	int		 err;		/* errno of a failed read */
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
	if (strlen(path) >= PATH_MAX ||
	    mda_split_path(path, job->dir, sizeof(job->dir), job->base,
	    sizeof(job->base)) == -1 ||
	    snprintf(job->lockname, sizeof(job->lockname), "%s%s", job->base,
	    MBOX_LOCK_SUFFIX) >= (int)sizeof(job->lockname))
		return -1;
	return 0;
}

static void
mbox_ident(const struct mda_request *req, struct mbox_ident *id)
{
	char	 addr[ADDR_MAX];

	mda_addr_copy(addr, sizeof(addr), req->sender[0] ? req->sender :
	    "MAILER-DAEMON", 1);
	snprintf(id->from, sizeof(id->from), "From %s ", addr);
	mda_dlvto_line(id->dlvto, sizeof(id->dlvto), req->dlv.rcpt);
	snprintf(id->id, sizeof(id->id), " id %s", req->msgid);
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

/* Our pid in the dotlock just made: once we are gone, it is stale. */
static void
mbox_lock_put_pid(int fd, const char *path)
{
	char	 buf[32];
	int	 len;

	len = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)len) != len)
		log_warn("mbox: cannot write pid into %s%s", path,
		    MBOX_LOCK_SUFFIX);
}

/*
 * The pid in the dotlock st describes ("%d\n", as we and liblockfile write
 * it); 0 when there is none to read (other MUAs write nothing).
 */
static pid_t
mbox_lock_pid(int dirfd, const char *lockname, const struct stat *st)
{
	char		 buf[24], *end;
	struct stat	 fst;
	ssize_t		 n = -1;
	long		 pid;
	int		 fd;

	fd = openat(dirfd, lockname, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return 0;
	/* Another lock made since is not the one looked at. */
	if (fstat(fd, &fst) == 0 && S_ISREG(fst.st_mode) &&
	    fst.st_dev == st->st_dev && fst.st_ino == st->st_ino)
		n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0 || !isdigit((unsigned char)buf[0]))
		return 0;
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno != 0 || (*end != '\0' && strcmp(end, "\n") != 0) ||
	    pid <= 0 || pid > INT_MAX)
		return 0;
	return (pid_t)pid;
}

/*
 * Whether the dotlock in the way (described into *st) may be removed: the
 * pid it holds names no process, or it is older than the limit (a maker
 * that writes no pid, a hung one, a pid reused after a reboot).
 */
static int
mbox_lock_is_stale(int dirfd, const char *lockname, struct stat *st)
{
	pid_t	 pid;

	if (fstatat(dirfd, lockname, st, AT_SYMLINK_NOFOLLOW) == -1)
		return 0;
	if (time(NULL) - st->st_mtime > MBOX_LOCK_STALE_SECS)
		return 1;
	if ((pid = mbox_lock_pid(dirfd, lockname, st)) == 0)
		return 0;
	return kill(pid, 0) == -1 && errno == ESRCH;
}

/*
 * Removes the stale dotlock st describes, unless another has taken its
 * place; 1 if it is gone (try again at once), 0 if not.
 */
static int
mbox_lock_break(int dirfd, const struct mbox_job *job, const struct stat *st)
{
	const char	*path = job->req->path;
	struct stat	 now;

	if (fstatat(dirfd, job->lockname, &now, AT_SYMLINK_NOFOLLOW) == -1)
		return errno == ENOENT;
	if (now.st_dev != st->st_dev || now.st_ino != st->st_ino ||
	    now.st_ctim.tv_sec != st->st_ctim.tv_sec ||
	    now.st_ctim.tv_nsec != st->st_ctim.tv_nsec)
		return 0;
	if (unlinkat(dirfd, job->lockname, 0) == 0) {
		log_info("mbox: removed stale lock %s%s", path,
		    MBOX_LOCK_SUFFIX);
		return 1;
	}
	if (errno == ENOENT)
		return 1;
	log_warn("mbox: cannot remove stale lock %s%s", path,
	    MBOX_LOCK_SUFFIX);
	return 0;
}

/*
 * Makes PATH.lock atomically with our pid already in it: the pid goes into
 * a private file first, which is then linked to the lock name, so a kill -9
 * can never leave an empty lock that nobody can prove stale.  -1 with errno
 * EEXIST when the lock is taken.
 */
static int
mbox_lock_create(int dirfd, const struct mbox_job *job)
{
	char	 tmp[NAME_MAX + 1];
	int	 fd, r, saved;

	if (snprintf(tmp, sizeof(tmp), ".%s.%d", job->lockname,
	    (int)getpid()) >= (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	(void)unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	mbox_lock_put_pid(fd, job->req->path);
	if (close(fd) == -1)
		log_warn("mbox: close %s", tmp);
	r = linkat(dirfd, tmp, dirfd, job->lockname, 0);
	saved = errno;
	(void)unlinkat(dirfd, tmp, 0);
	errno = saved;
	return r;
}

/* Takes PATH.lock, waiting a bounded time; removes a stale one. */
static int
mbox_dotlock(int dirfd, const struct mbox_job *job, char *err, size_t errsz)
{
	const char	*path = job->req->path;
	struct timespec	 start;
	struct stat	 st;

	if (clock_gettime(CLOCK_MONOTONIC, &start) == -1)
		return mbox_io_fail(errno, "clock for lock on", path, err,
		    errsz);
	for (;;) {
		if (mbox_lock_create(dirfd, job) == 0)
			return DLV_OK;
		if (errno == EINTR)
			continue;
		if (errno != EEXIST)
			return mbox_io_fail(errno, "cannot create lock for",
			    path, err, errsz);
		if (mbox_lock_is_stale(dirfd, job->lockname, &st) &&
		    mbox_lock_break(dirfd, job, &st))
			continue;
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

/* The mboxrd record of this delivery, its From_ line dated date. */
static int
mbox_record(struct mda_out *o, const struct mbox_job *job, const char *date)
{
	struct mbox_filter	 f = { .bol = 1 };
	int			 rerr;

	mda_out_puts(o, job->ident.from);
	mda_out_puts(o, date);
	mda_out_putc(o, '\n');
	mda_out_envelope(o, job->req->sender, job->req->dlv.rcpt);
	if ((rerr = mda_out_message(o, job->req->msgfd, filter_byte, &f)) ==
	    0) {
		filter_end(&f, o);
		mda_out_flush(o);
	}
	return rerr;
}

/* Says durably where the record goes, before the first byte of it. */
static int
mbox_mark(const struct mbox_job *job, const struct stat *st, off_t len,
    char *err, size_t errsz)
{
	char	 text[MDA_MARKER_MAX];

	if (job->marker.fd == -1)
		return DLV_OK;
	snprintf(text, sizeof(text), "mbox %llu %llu %lld %lld\n",
	    (unsigned long long)st->st_dev, (unsigned long long)st->st_ino,
	    (long long)st->st_size, (long long)len);
	if (mda_marker_write(&job->marker, text) == -1)
		return mda_io_fail(errno, "delivery marker",
		    "cannot write delivery marker", job->req->marker, err,
		    errsz);
	return DLV_OK;
}

/* How the append went: the whole record, as counted, and fsynced. */
static int
mbox_written(int fd, const struct mda_out *o, int rerr, off_t len,
    const char *path, char *err, size_t errsz)
{
	if (rerr != 0)
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 cannot read message: %s", strerror(rerr));
	if (o->err != 0)
		return mbox_io_fail(o->err, "cannot write mailbox", path, err,
		    errsz);
	if (o->total != len)
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 message changed while delivered to %s", path);
	if (fsync(fd) == -1)
		return mbox_io_fail(errno, "cannot sync mailbox", path, err,
		    errsz);
	return DLV_OK;
}

/*
 * Appends one message to the locked mailbox fd, after the marker says
 * where; on any error truncates it back to where it was, so that no half
 * message is ever left.
 */
static int
mbox_write(int fd, const struct mbox_job *job, char *err, size_t errsz)
{
	const char	*path = job->req->path;
	struct mda_out	*o;
	struct stat	 st;
	char		 date[64];
	off_t		 len = 0;
	int		 rerr, status;

	if (fstat(fd, &st) == -1)
		return mbox_io_fail(errno, "cannot stat mailbox", path, err,
		    errsz);
	/* In the child only, which exits soon: the buffer is 64 KiB. */
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return mbox_io_fail(errno, "no memory for", path, err, errsz);
	mbox_date(date, sizeof(date));

	/* A first pass only counts (fd -1): the marker holds the length. */
	o->fd = -1;
	if ((rerr = mbox_record(o, job, date)) != 0)
		status = mbox_written(fd, o, rerr, len, path, err, errsz);
	else
		status = mbox_mark(job, &st, len = o->total, err, errsz);
	if (status == DLV_OK) {
		memset(o, 0, sizeof(*o));
		o->fd = fd;
		rerr = mbox_record(o, job, date);
		status = mbox_written(fd, o, rerr, len, path, err, errsz);
	}
	free(o);

	if (status != DLV_OK &&
	    (ftruncate(fd, st.st_size) == -1 || fsync(fd) == -1)) {
		size_t	 elen = strlen(err);

		snprintf(err + elen, errsz - elen, " (truncating it: %s)",
		    strerror(errno));
	}
	return status;
}

/* ---- an earlier attempt, from the marker ---- */

/*
 * 1 if the marker text prev describes a record in this mailbox (st), then
 * at *off for *len bytes; 0 if not (no marker, another file, not ours).
 */
static int
mbox_marker_parse(const char *prev, const struct stat *st, off_t *off,
    off_t *len)
{
	unsigned long long	 dev, ino;
	long long		 o, l;
	int			 n = -1;

	if (prev[0] == '\0')
		return 0;
	if (sscanf(prev, "mbox %llu %llu %lld %lld%n", &dev, &ino, &o, &l,
	    &n) != 4 || n == -1 || strcmp(prev + n, "\n") != 0 || o < 0 ||
	    l <= 0 || o > LLONG_MAX - l) {
		log_warnx("mbox: delivery marker \"%.40s\" not understood: "
		    "ignored", prev);
		return 0;
	}
	if (dev != (unsigned long long)st->st_dev ||
	    ino != (unsigned long long)st->st_ino)
		return 0;
	*off = (off_t)o;
	*len = (off_t)l;
	return 1;
}

/* 1 if buf holds word, and not as the start of a longer one. */
static int
mbox_has_word(const char *buf, size_t len, const char *word)
{
	const char	*p = buf, *hit;
	size_t		 wlen = strlen(word), end;

	while ((hit = memmem(p, len - (size_t)(p - buf), word, wlen)) !=
	    NULL) {
		end = (size_t)(hit - buf) + wlen;
		if (end == len || !isalnum((unsigned char)buf[end]))
			return 1;
		p = hit + 1;
	}
	return 0;
}

/*
 * 1 if buf, the first n bytes of a record, starts as this delivery's: our
 * From_ line, our Delivered-To line and " id MSGID" in its header block.
 */
static int
mbox_head_is_ours(const char *buf, size_t n, const struct mbox_ident *id)
{
	size_t	 flen = strlen(id->from), hlen;

	if (n < flen || memcmp(buf, id->from, flen) != 0)
		return 0;
	hlen = mda_head_len(buf, n);
	return memmem(buf, hlen, id->dlvto, strlen(id->dlvto)) != NULL &&
	    mbox_has_word(buf, hlen, id->id);
}

/*
 * 1 if the record the marker describes is there whole: it starts as ours,
 * ends with an empty line where the marker says and is followed by nothing
 * or by another record.  (Its start alone could be an append cut short that
 * others appended after.)  0 if not, -1 on a read error.
 */
static int
mbox_record_there(int fd, const struct mbox_job *job, off_t size, off_t off,
    off_t len)
{
	static const char	 tail[] = "\n\nFrom ";
	char			*buf, end[sizeof(tail)];
	size_t			 want, tlen;
	ssize_t			 n;
	int			 there = 0;

	if (len < 2)
		return 0;
	want = len < MBOX_HEAD_MAX ? (size_t)len : MBOX_HEAD_MAX;
	tlen = size > off + len ? sizeof(tail) - 1 : 2;
	if ((buf = malloc(want)) == NULL)
		return -1;
	if ((n = mda_pread_full(fd, buf, want, off)) == -1)
		there = -1;
	else if ((size_t)n == want && mbox_head_is_ours(buf, want,
	    &job->ident)) {
		if ((n = mda_pread_full(fd, end, tlen, off + len - 2)) == -1)
			there = -1;
		else
			there = (size_t)n == tlen &&
			    memcmp(end, tail, tlen) == 0;
	}
	free(buf);
	return there;
}

/* The sink comparing the record being made with the mailbox's bytes. */
static int
mbox_cmp_sink(void *arg, const char *buf, size_t len)
{
	struct mbox_cmp	*c = arg;
	char		 rbuf[8192];
	size_t		 n;
	ssize_t		 got;

	while (len > 0 && c->off < c->end) {
		n = len < sizeof(rbuf) ? len : sizeof(rbuf);
		if ((off_t)n > c->end - c->off)
			n = (size_t)(c->end - c->off);
		if ((got = mda_pread_full(c->fd, rbuf, n, c->off)) == -1) {
			c->verdict = -1;
			c->err = errno;
			return ECANCELED;
		}
		if ((size_t)got != n || memcmp(rbuf, buf, n) != 0)
			return ECANCELED;	/* verdict 0 */
		buf += n;
		len -= n;
		c->off += (off_t)n;
	}
	if (c->off < c->end)
		return 0;
	c->verdict = 1;
	return ECANCELED;	/* the rest need not be made */
}

/*
 * 1 if the bytes from off to the end of the mailbox (size) are the start of
 * this delivery's record, as an attempt cut short wrote it with its own
 * date: only then may they be cut off.  0 if not, -1 on a read error.
 */
static int
mbox_partial_is_ours(int fd, const struct mbox_job *job, off_t off,
    off_t size)
{
	struct mbox_cmp	 c = { fd, off, size, 0, 0 };
	struct mda_out	*o;
	char		 line[sizeof(job->ident.from) + 64], date[64];
	const char	*nl;
	size_t		 flen = strlen(job->ident.from), want, dlen;
	ssize_t		 n;
	int		 rerr;

	want = size - off < (off_t)sizeof(line) ? (size_t)(size - off) :
	    sizeof(line);
	if ((n = mda_pread_full(fd, line, want, off)) == -1)
		return -1;
	if ((size_t)n != want || memcmp(line, job->ident.from,
	    (size_t)n < flen ? (size_t)n : flen) != 0)
		return 0;
	/* Cut within the From_ line: nothing else of it to compare. */
	if ((nl = memchr(line, '\n', want)) == NULL)
		return size - off == (off_t)want && want < flen + sizeof(date);
	if ((size_t)(nl - line) < flen ||
	    (dlen = (size_t)(nl - line) - flen) >= sizeof(date) ||
	    memchr(line + flen, '\0', dlen) != NULL)
		return 0;
	memcpy(date, line + flen, dlen);
	date[dlen] = '\0';

	if ((o = calloc(1, sizeof(*o))) == NULL)
		return -1;
	o->fd = -1;
	o->sink = mbox_cmp_sink;
	o->sinkarg = &c;
	rerr = mbox_record(o, job, date);
	free(o);
	if (rerr != 0 || c.verdict == -1) {
		errno = rerr != 0 ? rerr : c.err;
		return -1;
	}
	return c.verdict;
}

/*
 * What the marker text prev says an earlier attempt did to this mailbox,
 * locked and open on fd: *done when its record is there whole; the start
 * of its record at the end of the file, an append cut short, is cut off.
 * Anything else is left alone: the message is then appended.
 */
static int
mbox_recover(int fd, const struct mbox_job *job, const char *prev,
    int *done, char *err, size_t errsz)
{
	const char	*path = job->req->path, *msgid = job->req->msgid;
	struct stat	 st;
	off_t		 off, len;
	int		 rv;

	*done = 0;
	if (fstat(fd, &st) == -1)
		return mbox_io_fail(errno, "cannot stat mailbox", path, err,
		    errsz);
	if (!mbox_marker_parse(prev, &st, &off, &len) || st.st_size <= off)
		return DLV_OK;
	if (st.st_size >= off + len)
		rv = mbox_record_there(fd, job, st.st_size, off, len);
	else
		rv = mbox_partial_is_ours(fd, job, off, st.st_size);
	if (rv == -1)
		return mbox_io_fail(errno, "cannot read mailbox", path, err,
		    errsz);
	if (st.st_size >= off + len) {
		*done = rv;
		return DLV_OK;
	}
	if (rv == 0) {
		log_warnx("mbox: %s: the %lld bytes at %lld of %s are not its "
		    "delivery cut short: left alone", msgid,
		    (long long)(st.st_size - off), (long long)off, path);
		return DLV_OK;
	}
	if (ftruncate(fd, off) == -1 || fsync(fd) == -1)
		return mbox_io_fail(errno, "cannot truncate mailbox", path, err,
		    errsz);
	log_info("mbox: %s: removed %lld bytes of its delivery to %s cut "
	    "short", msgid, (long long)(st.st_size - off), path);
	return DLV_OK;
}

/* Recovers from an earlier attempt, if any, else appends the message. */
static int
mbox_deliver_locked(int fd, const struct mbox_job *job, const char *prev,
    char *err, size_t errsz)
{
	int	 done, status;

	if ((status = mbox_recover(fd, job, prev, &done, err, errsz)) !=
	    DLV_OK)
		return status;
	if (!done)
		return mbox_write(fd, job, err, errsz);
	log_info("mbox: %s: already delivered to %s", job->req->msgid,
	    job->req->path);
	return mda_fail(DLV_OK, err, errsz,
	    "2.0.0 already delivered (recovered after a crash)");
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
 * Opens the mailbox as the user; for reading too (rdwr) when an earlier
 * attempt's record may have to be looked at.  A mailbox the user cannot
 * read still takes mail: rdwr is cleared and nothing is looked at.
 */
static int
mbox_open_box(int dirfd, const struct mbox_job *job, int *rdwr, int *fdp,
    char *err, size_t errsz)
{
	const char	*path = job->req->path;
	/* O_NONBLOCK: a FIFO swapped in must not hang us before fstat. */
	const int	 flags = O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY |
			    O_CLOEXEC;
	int		 fd;

	fd = openat(dirfd, job->base, (*rdwr ? O_RDWR : O_WRONLY) | flags);
	if (fd == -1 && errno == EACCES && *rdwr) {
		log_warnx("mbox: %s: cannot read %s to look for an earlier "
		    "delivery", job->req->msgid, path);
		*rdwr = 0;
		fd = openat(dirfd, job->base, O_WRONLY | flags);
	}
	if (fd == -1) {
		if (errno == ELOOP)
			return mda_fail(DLV_PERMFAIL, err, errsz,
			    "5.2.0 mailbox %s is a symlink", path);
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.2.0 cannot open mailbox %s: %s", path, strerror(errno));
	}
	*fdp = fd;
	return DLV_OK;
}

/*
 * As the user: opens the mailbox that was checked (same device and inode,
 * still safe), takes the fcntl lock and delivers the message.
 */
static int
mbox_append(int dirfd, const struct mbox_job *job, dev_t dev, ino_t ino,
    char *err, size_t errsz)
{
	const char	*path = job->req->path;
	char		 prev[MDA_MARKER_MAX];
	struct stat	 st;
	int		 fd = -1, flags, rdwr, status;

	if (mda_marker_read(&job->marker, prev, sizeof(prev)) == -1)
		return mda_io_fail(errno, "delivery marker",
		    "cannot read delivery marker", job->req->marker, err,
		    errsz);
	rdwr = prev[0] != '\0';
	if ((status = mbox_open_box(dirfd, job, &rdwr, &fd, err, errsz)) !=
	    DLV_OK)
		return status;
	if (!rdwr)
		prev[0] = '\0';
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
		status = mbox_deliver_locked(fd, job, prev, err, errsz);
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
	const int	 keep[] = { job->dirfd, job->marker.fd,
			    job->marker.dirfd };

	return mda_child_run(job->req, keep, sizeof(keep) / sizeof(keep[0]),
	    mbox_deliver_as_user, job, err, errsz);
}

/* In a trusted directory: root locks and creates, the user writes. */
static int
mbox_deliver_as_root(struct mbox_job *job, char *err, size_t errsz)
{
	struct stat	 st;
	int		 status;

	if ((status = mbox_dotlock(job->dirfd, job, err, errsz)) != DLV_OK)
		return status;
	if ((status = mbox_prepare(job->dirfd, job, 1, &st, err, errsz)) ==
	    DLV_OK) {
		job->prepared = 1;
		job->dev = st.st_dev;
		job->ino = st.st_ino;
		status = mbox_run_child(job, err, errsz);
	}
	mbox_dotunlock(job->dirfd, job);
	return status;
}

int
mda_mbox(const struct mda_request *req, char *err, size_t errsz)
{
	struct mbox_job	 job;
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
	mbox_ident(req, &job.ident);
	if ((status = mda_marker_open(req, &job.marker, err, errsz)) !=
	    DLV_OK)
		return status;
	if ((status = mbox_open_dir(&job, &job.dirfd, err, errsz)) ==
	    DLV_OK) {
		if (job.dirfd == -1)
			status = mbox_run_child(&job, err, errsz);
		else
			status = mbox_deliver_as_root(&job, err, errsz);
	}
	if (job.dirfd != -1)
		close(job.dirfd);
	mda_marker_close(&job.marker);
	return status;
}
