/*
 * Local delivery: mda_mbox() and mda_maildir().  They switch to the
 * recipient's account, so most of these tests need root; they deliver to
 * "nobody" in directories made under mkdtemp.  Without root only the checks
 * that need no privilege run, and the program says what it skipped.
 */
#include "autoconf.h"

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <pwd.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../master/mda.h"

#define MSGID		"0123456789abcdef"
#define SENDER		"alice@example.org"
#define RCPT		"nobody@example.org"

static char	 top[32];		/* per tcase: /tmp/check_mda.XXXXXX */
static char	 base[64];		/* per test: top/t.XXXXXX, root 0755 */
static char	 spool[128];		/* base/spool: root:mail 2775 */
static char	 home[128];		/* base/home: nobody 0755 */
static char	 qdir[128];		/* base/queue: root 0700, markers */
static char	 marker[192];		/* qdir/MSGID.mda.0 */
static uid_t	 nuid;
static gid_t	 ngid;
static gid_t	 mailgid;
static int	 nmsg;

/* One message with all the conversions: CRLF, From quoting, last line. */
static const char m1[] =
    "Subject: one\r\n"
    "\r\n"
    "From here\r\n"
    ">From there\r\n"
    ">>From x\r\n"
    "Fromage\r\n"
    " From y\r\n"
    ">\r\n"
    ">Fro\r\n"
    "From\r\n"
    "bare\rcr\r\n"
    "From the last line";
static const char m1_mbox[] =
    "Return-Path: <" SENDER ">\n"
    "Delivered-To: " RCPT "\n"
    "Subject: one\n"
    "\n"
    ">From here\n"
    ">>From there\n"
    ">>>From x\n"
    "Fromage\n"
    " From y\n"
    ">\n"
    ">Fro\n"
    "From\n"
    "bare\rcr\n"
    ">From the last line\n"
    "\n";
static const char m1_maildir[] =
    "Return-Path: <" SENDER ">\n"
    "Delivered-To: " RCPT "\n"
    "Subject: one\n"
    "\n"
    "From here\n"
    ">From there\n"
    ">>From x\n"
    "Fromage\n"
    " From y\n"
    ">\n"
    ">Fro\n"
    "From\n"
    "bare\rcr\n"
    "From the last line";
static const char m2[] = "Subject: two\r\n\r\nbody\r\n";
/* As mtad spools it: its Received header first, with the message id. */
static const char m3[] =
    "Received: from client ([192.0.2.1])\r\n"
    "\tby mx.example.org (mtad) with ESMTP id " MSGID "\r\n"
    "\tfor <" RCPT ">;\r\n"
    "\tMon, 23 Nov 2026 14:44:52 +0000\r\n"
    "Subject: three\r\n"
    "\r\n"
    "From the start\r\n"
    "body\r\n";
static const char m3_mbox[] =
    "Return-Path: <" SENDER ">\n"
    "Delivered-To: " RCPT "\n"
    "Received: from client ([192.0.2.1])\n"
    "\tby mx.example.org (mtad) with ESMTP id " MSGID "\n"
    "\tfor <" RCPT ">;\n"
    "\tMon, 23 Nov 2026 14:44:52 +0000\n"
    "Subject: three\n"
    "\n"
    ">From the start\n"
    "body\n"
    "\n";
#define RECOVERED	"2.0.0 already delivered (recovered after a crash)"
static const char m2_mbox[] =
    "Return-Path: <>\n"
    "Delivered-To: " RCPT "\n"
    "Subject: two\n"
    "\n"
    "body\n"
    "\n";

/* ---- fixtures and helpers ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) == -1 ? -1 : 0;
}

static void
setup(void)
{
	struct passwd	*pw;
	struct group	*gr;

	ck_assert_ptr_nonnull(pw = getpwnam("nobody"));
	nuid = pw->pw_uid;
	ngid = pw->pw_gid;
	mailgid = (gr = getgrnam("mail")) ? gr->gr_gid : ngid;
	nmsg = 0;

	ck_assert(top[0] != '\0');
	snprintf(base, sizeof(base), "%s/t.XXXXXX", top);
	ck_assert_ptr_nonnull(mkdtemp(base));
	ck_assert_int_eq(chmod(base, 0755), 0);
	snprintf(spool, sizeof(spool), "%s/spool", base);
	ck_assert_int_eq(mkdir(spool, 0755), 0);
	ck_assert_int_eq(chown(spool, 0, mailgid), 0);
	ck_assert_int_eq(chmod(spool, 02775), 0);
	snprintf(home, sizeof(home), "%s/home", base);
	ck_assert_int_eq(mkdir(home, 0755), 0);
	ck_assert_int_eq(chown(home, nuid, ngid), 0);
	/* As the spool's queue/: the user cannot open a marker by name. */
	snprintf(qdir, sizeof(qdir), "%s/queue", base);
	ck_assert_int_eq(mkdir(qdir, 0700), 0);
	snprintf(marker, sizeof(marker), "%s/%s.mda.0", qdir, MSGID);
	mda_mbox_lock_wait_ms = 10000;
}

static void
teardown(void)
{
	if (base[0] != '\0')
		nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	base[0] = '\0';
}

/*
 * Per tcase, in the runner itself: a failed assertion ends the test process
 * before its teardown, so everything lives under one directory that is
 * removed here whatever happened.
 */
static void
top_setup(void)
{
	strlcpy(top, "/tmp/check_mda.XXXXXX", sizeof(top));
	if (mkdtemp(top) == NULL || chmod(top, 0755) == -1) {
		perror("check_mda: mkdtemp");
		top[0] = '\0';
	}
}

static void
top_teardown(void)
{
	if (top[0] != '\0')
		nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	top[0] = '\0';
}

/* The spooled message: a read-only fd whose offset is not at 0. */
static int
msg_fd(const char *data, size_t len)
{
	char	 path[PATH_MAX];
	int	 fd, rfd;

	snprintf(path, sizeof(path), "%s/msg%d", base, nmsg++);
	ck_assert_int_ne(fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600),
	    -1);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	ck_assert_int_ne(rfd = open(path, O_RDONLY), -1);
	/* Another process sharing the fd may have moved its offset. */
	ck_assert_int_eq(lseek(rfd, 0, SEEK_END), (off_t)len);
	return rfd;
}

static void
req_init(struct mda_request *r, uint32_t kind, const char *path,
    const char *sender, const char *data, size_t len)
{
	memset(r, 0, sizeof(*r));
	strlcpy(r->msgid, MSGID, sizeof(r->msgid));
	strlcpy(r->sender, sender, sizeof(r->sender));
	r->dlv.kind = kind;
	strlcpy(r->dlv.action, "local", sizeof(r->dlv.action));
	strlcpy(r->dlv.user, "nobody", sizeof(r->dlv.user));
	strlcpy(r->dlv.dest, path, sizeof(r->dlv.dest));
	strlcpy(r->dlv.rcpt, RCPT, sizeof(r->dlv.rcpt));
	strlcpy(r->dlv.orig, RCPT, sizeof(r->dlv.orig));
	strlcpy(r->path, path, sizeof(r->path));
	r->uid = nuid;
	r->gid = ngid;
	strlcpy(r->home, home, sizeof(r->home));
	r->msgfd = msg_fd(data, len);
}

/* A delivery with the intent marker mpath ("" for none). */
static int
deliver_marked(uint32_t kind, const char *path, const char *mpath,
    const char *sender, const char *data, size_t len, char *err,
    size_t errsz)
{
	struct mda_request	 r;
	int			 status;

	req_init(&r, kind, path, sender, data, len);
	ck_assert_uint_lt(strlcpy(r.marker, mpath, sizeof(r.marker)),
	    sizeof(r.marker));
	err[0] = '\0';
	if (kind == DLV_MBOX)
		status = mda_mbox(&r, err, errsz);
	else
		status = mda_maildir(&r, err, errsz);
	close(r.msgfd);
	return status;
}

static int
deliver(uint32_t kind, const char *path, const char *sender,
    const char *data, size_t len, char *err, size_t errsz)
{
	return deliver_marked(kind, path, "", sender, data, len, err, errsz);
}

#define DELIVER_OK(kind, path, sender, data, len) do {			\
	char	 e_[TEXT_MAX];						\
	int	 s_ = deliver(kind, path, sender, data, len, e_,	\
		    sizeof(e_));					\
	ck_assert_msg(s_ == DLV_OK, "delivery to %s: status %d: %s",	\
	    path, s_, e_);						\
} while (0)

/*
 * The same delivery in a process whose file size limit is `limit`: a write
 * past it fails with EFBIG in the middle of the message.
 */
static int
deliver_limited(uint32_t kind, const char *path, const char *data,
    size_t len, rlim_t limit, char *err, size_t errsz)
{
	struct mda_request	 r;
	struct rlimit		 rl = { limit, limit };
	char			 e[TEXT_MAX];
	int			 p[2], status = -1, ws;
	pid_t			 pid;

	req_init(&r, kind, path, SENDER, data, len);	/* before the limit */
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		close(p[0]);
		if (setrlimit(RLIMIT_FSIZE, &rl) == -1)
			_exit(2);
		signal(SIGXFSZ, SIG_IGN);
		memset(e, 0, sizeof(e));
		if (kind == DLV_MBOX)
			status = mda_mbox(&r, e, sizeof(e));
		else
			status = mda_maildir(&r, e, sizeof(e));
		if (write(p[1], &status, sizeof(status)) != sizeof(status) ||
		    write(p[1], e, sizeof(e)) != sizeof(e))
			_exit(3);
		_exit(0);
	}
	close(p[1]);
	close(r.msgfd);
	ck_assert_int_eq(read(p[0], &status, sizeof(status)),
	    sizeof(status));
	ck_assert_int_eq(read(p[0], e, sizeof(e)), sizeof(e));
	close(p[0]);
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	e[sizeof(e) - 1] = '\0';
	strlcpy(err, e, errsz);
	return status;
}

/* The whole file, NUL-terminated; *lenp its length. */
static char *
slurp(const char *path, size_t *lenp)
{
	struct stat	 st;
	char		*buf;
	int		 fd;

	ck_assert_int_ne(fd = open(path, O_RDONLY), -1);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert(st.st_size < 16 * 1024 * 1024);
	ck_assert_ptr_nonnull(buf = malloc((size_t)st.st_size + 1));
	ck_assert_int_eq(read(fd, buf, (size_t)st.st_size),
	    (ssize_t)st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*lenp = (size_t)st.st_size;
	return buf;
}

static void
write_file(const char *path, const char *data, uid_t uid, gid_t gid,
    mode_t mode)
{
	int	 fd;

	ck_assert_int_ne(fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode),
	    -1);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	ck_assert_int_eq(fchown(fd, uid, gid), 0);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

static void
assert_content(const char *path, const char *want, size_t wantlen)
{
	size_t	 len, i;
	char	*got = slurp(path, &len);

	for (i = 0; i < len && i < wantlen && got[i] == want[i]; i++)
		;
	ck_assert_msg(len == wantlen && i == len,
	    "%s: %zu bytes, want %zu; first difference at %zu", path, len,
	    wantlen, i);
	free(got);
}

static int
exists(const char *path)
{
	struct stat	 st;

	return lstat(path, &st) == 0;
}

static int
regex_match(const char *re, const char *s)
{
	regex_t	 rx;
	int	 rv;

	ck_assert_int_eq(regcomp(&rx, re, REG_EXTENDED | REG_NOSUB), 0);
	rv = regexec(&rx, s, 0, NULL, 0) == 0;
	regfree(&rx);
	return rv;
}

/* "From SENDER Mon Nov 23 14:44:52 2026", the date within a minute of now. */
static void
check_from_line(const char *line, size_t len, const char *sender)
{
	char		 buf[ADDR_MAX + 64], prefix[ADDR_MAX + 8];
	struct tm	 tm;
	const char	*date, *end;
	time_t		 t;

	ck_assert_uint_lt(len, sizeof(buf));
	memcpy(buf, line, len);
	buf[len] = '\0';
	snprintf(prefix, sizeof(prefix), "From %s ", sender);
	ck_assert_msg(strncmp(buf, prefix, strlen(prefix)) == 0,
	    "From_ line \"%s\", want \"%s...\"", buf, prefix);
	date = buf + strlen(prefix);
	ck_assert_msg(regex_match("^[A-Z][a-z]{2} [A-Z][a-z]{2} [ 1-3][0-9] "
	    "[0-2][0-9]:[0-5][0-9]:[0-6][0-9] [0-9]{4}$", date),
	    "date \"%s\" is not in asctime format", date);
	memset(&tm, 0, sizeof(tm));
	end = strptime(date, "%a %b %e %H:%M:%S %Y", &tm);
	ck_assert_msg(end != NULL && *end == '\0', "cannot parse \"%s\"",
	    date);
	tm.tm_isdst = -1;
	t = mktime(&tm);
	ck_assert_msg(labs((long)(t - time(NULL))) <= 60, "date \"%s\" is "
	    "not now", date);
}

/* A mailbox of n messages: each From_ line checked, the rest exact. */
static void
assert_mbox(const char *path, const char *const senders[],
    const char *const bodies[], size_t n)
{
	size_t		 len, i, blen, left;
	char		*data = slurp(path, &len);
	const char	*p = data, *nl;

	for (i = 0; i < n; i++) {
		ck_assert_ptr_nonnull(nl = memchr(p, '\n', len - (p - data)));
		check_from_line(p, (size_t)(nl - p), senders[i]);
		p = nl + 1;
		blen = strlen(bodies[i]);
		left = len - (size_t)(p - data);
		ck_assert_msg(left >= blen && memcmp(p, bodies[i], blen) == 0,
		    "message %zu differs: got \"%.*s\"", i,
		    (int)(left < 300 ? left : 300), p);
		p += blen;
	}
	ck_assert_msg(p == data + len, "%zu bytes after the messages",
	    (size_t)(data + len - p));
	free(data);
}

static void
spool_path(char *buf, size_t bufsz, const char *name)
{
	snprintf(buf, bufsz, "%s/%s", spool, name);
}

/* ---- mbox ---- */

START_TEST(mbox_created_owned_by_user)
{
	char		 path[PATH_MAX], lock[PATH_MAX + 8];
	struct stat	 st;
	const char	*senders[] = { SENDER };
	const char	*bodies[] = { m1_mbox };

	spool_path(path, sizeof(path), "nobody");
	DELIVER_OK(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_uid, nuid);
	ck_assert_uint_eq(st.st_gid, mailgid);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	ck_assert_uint_eq(st.st_nlink, 1);
	assert_mbox(path, senders, bodies, 1);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	ck_assert_msg(!exists(lock), "the dotlock was left behind");
}
END_TEST

START_TEST(mbox_two_messages_in_order)
{
	char		 path[PATH_MAX];
	const char	*senders[] = { SENDER, "MAILER-DAEMON" };
	const char	*bodies[] = { m1_mbox, m2_mbox };

	spool_path(path, sizeof(path), "nobody");
	DELIVER_OK(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1);
	DELIVER_OK(DLV_MBOX, path, "", m2, sizeof(m2) - 1);
	assert_mbox(path, senders, bodies, 2);
}
END_TEST

START_TEST(mbox_existing_mailbox_appended)
{
	char		 path[PATH_MAX];
	const char	 old[] = "From x Mon Jan  1 00:00:00 2024\nold\n\n";
	size_t		 len;
	char		*data;
	struct stat	 st;

	spool_path(path, sizeof(path), "nobody");
	write_file(path, old, nuid, mailgid, 0660);
	DELIVER_OK(DLV_MBOX, path, SENDER, m2, sizeof(m2) - 1);
	data = slurp(path, &len);
	ck_assert_uint_gt(len, strlen(old));
	ck_assert(memcmp(data, old, strlen(old)) == 0);
	ck_assert(strncmp(data + strlen(old), "From " SENDER " ", 6 +
	    strlen(SENDER)) == 0);
	free(data);
	/* An existing mailbox keeps its owner and mode. */
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0660);
	ck_assert_uint_eq(st.st_uid, nuid);
}
END_TEST

START_TEST(mbox_symlink_refused)
{
	char		 path[PATH_MAX], target[PATH_MAX], lock[PATH_MAX + 8];
	char		 err[TEXT_MAX];
	struct stat	 st;
	int		 status;

	snprintf(target, sizeof(target), "%s/target", base);
	write_file(target, "orig\n", nuid, ngid, 0600);
	spool_path(path, sizeof(path), "nobody");
	ck_assert_int_eq(symlink(target, path), 0);
	status = deliver(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_PERMFAIL);
	ck_assert_msg(strncmp(err, "5.2.0 ", 6) == 0 && strstr(err,
	    "symlink") != NULL, "err \"%s\"", err);
	assert_content(target, "orig\n", 5);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert(S_ISLNK(st.st_mode));
	snprintf(lock, sizeof(lock), "%s.lock", path);
	ck_assert(!exists(lock));
}
END_TEST

START_TEST(mbox_foreign_owner_refused)
{
	char	 path[PATH_MAX], err[TEXT_MAX];
	int	 status;

	spool_path(path, sizeof(path), "nobody");
	write_file(path, "root's\n", 0, 0, 0666);
	status = deliver(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_PERMFAIL);
	ck_assert_msg(strncmp(err, "5.2.0 ", 6) == 0 && strstr(err,
	    "not owned by nobody") != NULL, "err \"%s\"", err);
	assert_content(path, "root's\n", 7);
}
END_TEST

START_TEST(mbox_hard_link_refused)
{
	char	 path[PATH_MAX], other[PATH_MAX], err[TEXT_MAX];
	int	 status;

	spool_path(path, sizeof(path), "nobody");
	snprintf(other, sizeof(other), "%s/other", base);
	write_file(other, "x\n", nuid, ngid, 0600);
	ck_assert_int_eq(link(other, path), 0);
	status = deliver(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_PERMFAIL);
	ck_assert_msg(strncmp(err, "5.2.0 ", 6) == 0 && strstr(err,
	    "2 links") != NULL, "err \"%s\"", err);
	assert_content(other, "x\n", 2);
}
END_TEST

START_TEST(mbox_not_regular_refused)
{
	char	 path[PATH_MAX], err[TEXT_MAX];
	int	 status;

	spool_path(path, sizeof(path), "nobody");
	ck_assert_int_eq(mkfifo(path, 0600), 0);
	ck_assert_int_eq(chown(path, nuid, ngid), 0);
	status = deliver(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_PERMFAIL);
	ck_assert_msg(strncmp(err, "5.2.0 ", 6) == 0 && strstr(err,
	    "not a regular file") != NULL, "err \"%s\"", err);
}
END_TEST

START_TEST(mbox_held_dotlock_is_tempfail)
{
	char		 path[PATH_MAX], lock[PATH_MAX + 8], err[TEXT_MAX];
	char		 want[PATH_MAX + 64];
	struct timespec	 t0, t1;
	long		 ms;
	int		 status;

	spool_path(path, sizeof(path), "nobody");
	write_file(path, "", nuid, mailgid, 0600);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	write_file(lock, "", 0, mailgid, 0600);
	mda_mbox_lock_wait_ms = 300;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	status = deliver(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) /
	    1000000;
	ck_assert_int_eq(status, DLV_TEMPFAIL);
	snprintf(want, sizeof(want), "4.2.0 mailbox %s is locked", path);
	ck_assert_str_eq(err, want);
	ck_assert_msg(ms >= 250 && ms < 5000, "waited %ld ms", ms);
	/* Someone else's lock is left alone, the mailbox untouched. */
	ck_assert(exists(lock));
	assert_content(path, "", 0);
}
END_TEST

START_TEST(mbox_stale_dotlock_removed)
{
	char		 path[PATH_MAX], lock[PATH_MAX + 8];
	struct timeval	 tv[2];
	const char	*senders[] = { "MAILER-DAEMON" };
	const char	*bodies[] = { m2_mbox };

	spool_path(path, sizeof(path), "nobody");
	snprintf(lock, sizeof(lock), "%s.lock", path);
	write_file(lock, "", 0, mailgid, 0600);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 600;
	tv[1] = tv[0];
	ck_assert_int_eq(utimes(lock, tv), 0);
	mda_mbox_lock_wait_ms = 300;
	DELIVER_OK(DLV_MBOX, path, "", m2, sizeof(m2) - 1);
	ck_assert(!exists(lock));
	assert_mbox(path, senders, bodies, 1);
}
END_TEST

START_TEST(mbox_fcntl_lock_is_tempfail)
{
	char		 path[PATH_MAX], lock[PATH_MAX + 8], err[TEXT_MAX];
	char		 want[PATH_MAX + 64];
	struct flock	 fl;
	int		 fd, status;

	spool_path(path, sizeof(path), "nobody");
	write_file(path, "", nuid, mailgid, 0600);
	ck_assert_int_ne(fd = open(path, O_RDWR), -1);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	ck_assert_int_eq(fcntl(fd, F_SETLK, &fl), 0);
	mda_mbox_lock_wait_ms = 300;
	status = deliver(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_TEMPFAIL);
	snprintf(want, sizeof(want), "4.2.0 mailbox %s is locked", path);
	ck_assert_str_eq(err, want);
	assert_content(path, "", 0);
	/* Our own dotlock is gone. */
	snprintf(lock, sizeof(lock), "%s.lock", path);
	ck_assert(!exists(lock));
	close(fd);
}
END_TEST

/*
 * Root could write this file; the user cannot.  The delivery fails, so the
 * bytes are written by a process running as the user.
 */
START_TEST(mbox_written_as_user)
{
	char	 path[PATH_MAX], err[TEXT_MAX];
	int	 status;

	spool_path(path, sizeof(path), "nobody");
	write_file(path, "old\n", nuid, mailgid, 0400);
	ck_assert_int_eq(access(path, W_OK), 0);	/* root may */
	status = deliver(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_TEMPFAIL);
	ck_assert_msg(strstr(err, "Permission denied") != NULL, "err \"%s\"",
	    err);
	assert_content(path, "old\n", 4);
}
END_TEST

/* In a directory the user owns, root does nothing: the user creates it. */
START_TEST(mbox_in_home_created_by_user)
{
	char		 path[PATH_MAX], lock[PATH_MAX + 8];
	struct stat	 st;
	const char	*senders[] = { SENDER };
	const char	*bodies[] = { m1_mbox };

	snprintf(path, sizeof(path), "%s/mbox", home);
	DELIVER_OK(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_uint_eq(st.st_uid, nuid);
	ck_assert_uint_eq(st.st_gid, ngid);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	assert_mbox(path, senders, bodies, 1);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	ck_assert(!exists(lock));
}
END_TEST

/* A world-writable spool is not trusted: root must not create in it. */
START_TEST(mbox_world_writable_dir_not_trusted)
{
	char		 dir[PATH_MAX], path[PATH_MAX + 8];
	struct stat	 st;

	snprintf(dir, sizeof(dir), "%s/pub", base);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	ck_assert_int_eq(chmod(dir, 01777), 0);
	snprintf(path, sizeof(path), "%s/nobody", dir);
	DELIVER_OK(DLV_MBOX, path, SENDER, m2, sizeof(m2) - 1);
	ck_assert_int_eq(lstat(path, &st), 0);
	ck_assert_uint_eq(st.st_uid, nuid);
	ck_assert_uint_eq(st.st_gid, ngid);	/* the user's, not "mail" */
}
END_TEST

/* A write error half way (file size limit) leaves the mailbox as it was. */
START_TEST(mbox_failed_write_truncated)
{
	char		 path[PATH_MAX], err[TEXT_MAX];
	char		*big, *before;
	size_t		 len, blen = 200000, i;
	int		 status;
	const char	*senders[] = { SENDER, "MAILER-DAEMON" };
	const char	*bodies[] = { m1_mbox, m2_mbox };

	spool_path(path, sizeof(path), "nobody");
	DELIVER_OK(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1);
	before = slurp(path, &len);
	ck_assert_ptr_nonnull(big = malloc(blen));
	for (i = 0; i < blen; i++)
		big[i] = (i % 80 == 79) ? '\n' : 'a';
	status = deliver_limited(DLV_MBOX, path, big, blen, len + 100000, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.2.2 ", 6) == 0, "err \"%s\"", err);
	assert_content(path, before, len);
	/* And it still takes the next message. */
	DELIVER_OK(DLV_MBOX, path, "", m2, sizeof(m2) - 1);
	assert_mbox(path, senders, bodies, 2);
	free(big);
	free(before);
}
END_TEST

START_TEST(mbox_bad_path_refused)
{
	struct mda_request	 r;
	char			 err[TEXT_MAX];

	memset(&r, 0, sizeof(r));
	r.msgfd = -1;
	strlcpy(r.path, "var/mail/nobody", sizeof(r.path));
	ck_assert_int_eq(mda_mbox(&r, err, sizeof(err)), DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.3.5 ", 6) == 0, "err \"%s\"", err);
	strlcpy(r.path, "/var/mail/", sizeof(r.path));
	ck_assert_int_eq(mda_mbox(&r, err, sizeof(err)), DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.3.5 ", 6) == 0, "err \"%s\"", err);
	strlcpy(r.path, "/var/mail/..", sizeof(r.path));
	ck_assert_int_eq(mda_mbox(&r, err, sizeof(err)), DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.3.5 ", 6) == 0, "err \"%s\"", err);
}
END_TEST

/* ---- exactly once across crashes: the intent marker ---- */

/* m3 into path with the marker, as mtad delivers it. */
static int
deliver_m3(uint32_t kind, const char *path, char *err, size_t errsz)
{
	return deliver_marked(kind, path, marker, SENDER, m3, sizeof(m3) - 1,
	    err, errsz);
}

#define DELIVER_M3(kind, path, want) do {				\
	char	 e_[TEXT_MAX];						\
	int	 s_ = deliver_m3(kind, path, e_, sizeof(e_));		\
	ck_assert_msg(s_ == DLV_OK, "delivery to %s: status %d: %s",	\
	    path, s_, e_);						\
	ck_assert_str_eq(e_, want);					\
} while (0)

/* The marker as an earlier attempt left it: root's, 0600. */
static void
set_marker(const char *text)
{
	if (unlink(marker) == -1)
		ck_assert_int_eq(errno, ENOENT);
	write_file(marker, text, 0, 0, 0600);
}

static void
assert_marker(const char *want)
{
	size_t	 len;
	char	*got = slurp(marker, &len);

	ck_assert_str_eq(got, want);
	free(got);
}

/* The marker text for a record of the mailbox path at off, len bytes. */
static void
mbox_marker_text(char *buf, size_t bufsz, const char *path, off_t off,
    off_t len)
{
	struct stat	 st;

	ck_assert_int_eq(stat(path, &st), 0);
	snprintf(buf, bufsz, "mbox %llu %llu %lld %lld\n",
	    (unsigned long long)st.st_dev, (unsigned long long)st.st_ino,
	    (long long)off, (long long)len);
}

static void
append_bytes(const char *path, const char *data, size_t len)
{
	int	 fd;

	ck_assert_int_ne(fd = open(path, O_WRONLY | O_APPEND), -1);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static off_t
file_size(const char *path)
{
	struct stat	 st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_size;
}

START_TEST(mbox_marker_says_where)
{
	char		 path[PATH_MAX], want[128];
	const char	 old[] = "From x Mon Jan  1 00:00:00 2024\nold\n\n";
	const char	*nl;
	struct stat	 st;
	size_t		 len, olen = strlen(old);
	char		*data;

	spool_path(path, sizeof(path), "nobody");
	write_file(path, old, nuid, mailgid, 0600);
	DELIVER_M3(DLV_MBOX, path, "");
	data = slurp(path, &len);
	mbox_marker_text(want, sizeof(want), path, (off_t)olen,
	    (off_t)(len - olen));
	assert_marker(want);
	/* LENGTH is the record exactly: the From_ line and m3_mbox. */
	ck_assert(memcmp(data, old, olen) == 0);
	ck_assert_ptr_nonnull(nl = memchr(data + olen, '\n', len - olen));
	check_from_line(data + olen, (size_t)(nl - data) - olen, SENDER);
	ck_assert_uint_eq(len - (size_t)(nl + 1 - data), strlen(m3_mbox));
	ck_assert(memcmp(nl + 1, m3_mbox, strlen(m3_mbox)) == 0);
	/* Root's, out of the user's reach. */
	ck_assert_int_eq(lstat(marker, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_uid, 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	free(data);
}
END_TEST

/* In the spool (root locks) and in a home directory (the user does). */
START_TEST(mbox_marker_completed_is_noop)
{
	char		 path[2][PATH_MAX];
	char		*before, *mark;
	size_t		 blen, mlen, i;

	spool_path(path[0], sizeof(path[0]), "nobody");
	snprintf(path[1], sizeof(path[1]), "%s/mbox", home);
	for (i = 0; i < 2; i++) {
		if (unlink(marker) == -1)
			ck_assert_int_eq(errno, ENOENT);
		DELIVER_M3(DLV_MBOX, path[i], "");
		before = slurp(path[i], &blen);
		mark = slurp(marker, &mlen);
		DELIVER_M3(DLV_MBOX, path[i], RECOVERED);
		assert_content(path[i], before, blen);
		assert_marker(mark);
		free(before);
		free(mark);
	}
}
END_TEST

/* An append cut short anywhere is cut off and made again, once. */
START_TEST(mbox_marker_partial_completed)
{
	char		 path[PATH_MAX], text[128];
	const char	*senders[] = { SENDER, SENDER };
	const char	*bodies[] = { m3_mbox, m3_mbox };
	size_t		 cuts[4], flen, i;
	char		*first;

	spool_path(path, sizeof(path), "nobody");
	for (i = 0; i < 4; i++) {
		if (unlink(marker) == -1)
			ck_assert_int_eq(errno, ENOENT);
		if (unlink(path) == -1)
			ck_assert_int_eq(errno, ENOENT);
		DELIVER_M3(DLV_MBOX, path, "");
		first = slurp(path, &flen);
		/* In "From", in the date, in the middle, before the end. */
		cuts[0] = 3;
		cuts[1] = strlen("From " SENDER " Mon");
		cuts[2] = flen / 2;
		cuts[3] = flen - 1;
		append_bytes(path, first, cuts[i]);
		mbox_marker_text(text, sizeof(text), path, (off_t)flen,
		    (off_t)flen);
		set_marker(text);

		DELIVER_M3(DLV_MBOX, path, "");
		assert_mbox(path, senders, bodies, 2);
		ck_assert_int_eq(file_size(path), (off_t)(2 * flen));
		assert_marker(text);	/* the same place again */
		DELIVER_M3(DLV_MBOX, path, RECOVERED);
		assert_mbox(path, senders, bodies, 2);
		free(first);
	}
}
END_TEST

/* A mailbox replaced since (another inode) is not the one marked. */
START_TEST(mbox_marker_other_inode_delivers)
{
	char		 path[PATH_MAX], moved[PATH_MAX + 8];
	const char	*senders[] = { SENDER, SENDER };
	const char	*bodies[] = { m3_mbox, m3_mbox };
	size_t		 len;
	char		*data;

	spool_path(path, sizeof(path), "nobody");
	DELIVER_M3(DLV_MBOX, path, "");
	data = slurp(path, &len);
	snprintf(moved, sizeof(moved), "%s.old", path);
	ck_assert_int_eq(rename(path, moved), 0);
	write_file(path, data, nuid, mailgid, 0600);
	DELIVER_M3(DLV_MBOX, path, "");
	assert_mbox(path, senders, bodies, 2);
	free(data);
}
END_TEST

/* Bytes at OFFSET that are not this delivery's are left alone. */
START_TEST(mbox_marker_other_bytes_delivers)
{
	char		 path[PATH_MAX], text[128];
	const char	 old[] = "From x Mon Jan  1 00:00:00 2024\nold\n\n";
	size_t		 olen = strlen(old), len, i;
	off_t		 lens[2] = { (off_t)strlen(old), 1000 };
	char		*data;

	spool_path(path, sizeof(path), "nobody");
	for (i = 0; i < 2; i++) {
		if (unlink(path) == -1)
			ck_assert_int_eq(errno, ENOENT);
		write_file(path, old, nuid, mailgid, 0600);
		/* As if done (size >= OFFSET+LENGTH), as if cut short. */
		mbox_marker_text(text, sizeof(text), path, 0, lens[i]);
		set_marker(text);
		DELIVER_M3(DLV_MBOX, path, "");
		data = slurp(path, &len);
		ck_assert(memcmp(data, old, olen) == 0);
		ck_assert(strncmp(data + olen, "From " SENDER " ",
		    strlen("From " SENDER " ")) == 0);
		ck_assert_uint_eq(len, olen + (size_t)(strchr(data + olen,
		    '\n') - (data + olen)) + 1 + strlen(m3_mbox));
		free(data);
	}
}
END_TEST

/* Without mtad's " id MSGID" a record is not known to be this message. */
START_TEST(mbox_marker_needs_message_id)
{
	char		 path[PATH_MAX], err[TEXT_MAX];
	const char	*senders[] = { SENDER, SENDER };
	const char	*bodies[] = { m1_mbox, m1_mbox };
	int		 i;

	spool_path(path, sizeof(path), "nobody");
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(deliver_marked(DLV_MBOX, path, marker, SENDER,
		    m1, sizeof(m1) - 1, err, sizeof(err)), DLV_OK);
		ck_assert_str_eq(err, "");
	}
	assert_mbox(path, senders, bodies, 2);
}
END_TEST

/*
 * A start of our record followed by another message (appended after the
 * crash) is neither cut off nor taken for the whole record.
 */
START_TEST(mbox_marker_cut_then_appended_left_alone)
{
	char		 path[PATH_MAX], text[128], *first, *data;
	const char	 other[] = "From bob Mon Jan  1 00:00:00 2024\nhi\n\n";
	size_t		 flen, len, cuts[2], junk, i;

	spool_path(path, sizeof(path), "nobody");
	for (i = 0; i < 2; i++) {
		if (unlink(marker) == -1)
			ck_assert_int_eq(errno, ENOENT);
		if (unlink(path) == -1)
			ck_assert_int_eq(errno, ENOENT);
		DELIVER_M3(DLV_MBOX, path, "");
		first = slurp(path, &flen);
		/* Short of the record's end, past it (whole header block). */
		cuts[0] = 100;
		cuts[1] = flen - 10;
		append_bytes(path, first, cuts[i]);
		append_bytes(path, other, strlen(other));
		junk = cuts[i] + strlen(other);
		ck_assert(i == 0 ? junk < flen : junk >= flen);
		mbox_marker_text(text, sizeof(text), path, (off_t)flen,
		    (off_t)flen);
		set_marker(text);

		DELIVER_M3(DLV_MBOX, path, "");
		data = slurp(path, &len);
		ck_assert_uint_eq(len, 2 * flen + junk);
		ck_assert(memcmp(data + flen, first, cuts[i]) == 0);
		ck_assert(memcmp(data + flen + cuts[i], other,
		    strlen(other)) == 0);
		ck_assert(strncmp(data + flen + junk, "From " SENDER " ",
		    strlen("From " SENDER " ")) == 0);
		ck_assert(memcmp(data + len - strlen(m3_mbox), m3_mbox,
		    strlen(m3_mbox)) == 0);
		free(first);
		free(data);
	}
}
END_TEST

/* A marker the helper did not make itself is not used. */
START_TEST(marker_not_ours_refused)
{
	char		 path[PATH_MAX], target[PATH_MAX], md[PATH_MAX];
	char		 err[TEXT_MAX];
	int		 i, status;

	snprintf(target, sizeof(target), "%s/target", base);
	write_file(target, "x", 0, 0, 0600);
	spool_path(path, sizeof(path), "nobody");
	snprintf(md, sizeof(md), "%s/Maildir", home);
	for (i = 0; i < 3; i++) {
		if (unlink(marker) == -1)
			ck_assert_int_eq(errno, ENOENT);
		if (i == 0)
			ck_assert_int_eq(symlink(target, marker), 0);
		else if (i == 1)
			ck_assert_int_eq(link(target, marker), 0);
		else
			write_file(marker, "", nuid, ngid, 0600);
		status = deliver_m3(DLV_MBOX, path, err, sizeof(err));
		ck_assert_int_eq(status, DLV_TEMPFAIL);
		ck_assert_msg(strncmp(err, "4.3.0 ", 6) == 0 &&
		    strstr(err, "delivery marker") != NULL, "err \"%s\"", err);
		status = deliver_m3(DLV_MAILDIR, md, err, sizeof(err));
		ck_assert_int_eq(status, DLV_TEMPFAIL);
		ck_assert(!exists(path));
		ck_assert(!exists(md));
		assert_content(target, "x", 1);
	}
}
END_TEST

/* ---- stale dotlocks ---- */

/* The pid of a process that has exited and been reaped. */
static pid_t
dead_pid(void)
{
	pid_t	 pid;
	int	 ws;

	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	ck_assert_int_eq(kill(pid, 0), -1);
	return pid;
}

static long
elapsed_ms(const struct timespec *t0)
{
	struct timespec	 t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) /
	    1000000;
}

/* In the spool (root's lock) and a home directory (the user's). */
START_TEST(mbox_dead_pid_dotlock_broken_at_once)
{
	char		 path[2][PATH_MAX], lock[PATH_MAX + 8], pidtext[32];
	const char	*senders[] = { "MAILER-DAEMON" };
	const char	*bodies[] = { m2_mbox };
	struct timespec	 t0;
	long		 ms;
	int		 i;

	spool_path(path[0], sizeof(path[0]), "nobody");
	snprintf(path[1], sizeof(path[1]), "%s/mbox", home);
	mda_mbox_lock_wait_ms = 5000;
	for (i = 0; i < 2; i++) {
		strlcpy(lock, path[i], sizeof(lock));
		strlcat(lock, ".lock", sizeof(lock));
		snprintf(pidtext, sizeof(pidtext), "%d\n", (int)dead_pid());
		write_file(lock, pidtext, i == 0 ? 0 : nuid,
		    i == 0 ? mailgid : ngid, 0600);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		DELIVER_OK(DLV_MBOX, path[i], "", m2, sizeof(m2) - 1);
		ms = elapsed_ms(&t0);
		ck_assert_msg(ms < 2000, "waited %ld ms", ms);
		ck_assert(!exists(lock));
		assert_mbox(path[i], senders, bodies, 1);
	}
}
END_TEST

START_TEST(mbox_live_pid_dotlock_is_tempfail)
{
	char		 path[PATH_MAX], lock[PATH_MAX + 8], err[TEXT_MAX];
	char		 pidtext[32], want[PATH_MAX + 64];
	int		 status;

	spool_path(path, sizeof(path), "nobody");
	write_file(path, "", nuid, mailgid, 0600);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)getpid());
	write_file(lock, pidtext, 0, mailgid, 0600);
	mda_mbox_lock_wait_ms = 300;
	status = deliver(DLV_MBOX, path, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_TEMPFAIL);
	snprintf(want, sizeof(want), "4.2.0 mailbox %s is locked", path);
	ck_assert_str_eq(err, want);
	assert_content(lock, pidtext, strlen(pidtext));
	assert_content(path, "", 0);
}
END_TEST

/* A live pid does not keep a lock past the age limit (pids are reused). */
START_TEST(mbox_old_live_pid_dotlock_removed)
{
	char		 path[PATH_MAX], lock[PATH_MAX + 8], pidtext[32];
	struct timeval	 tv[2];

	spool_path(path, sizeof(path), "nobody");
	snprintf(lock, sizeof(lock), "%s.lock", path);
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)getpid());
	write_file(lock, pidtext, 0, mailgid, 0600);
	gettimeofday(&tv[0], NULL);
	tv[0].tv_sec -= 600;
	tv[1] = tv[0];
	ck_assert_int_eq(utimes(lock, tv), 0);
	mda_mbox_lock_wait_ms = 300;
	DELIVER_OK(DLV_MBOX, path, "", m2, sizeof(m2) - 1);
	ck_assert(!exists(lock));
}
END_TEST

/* While a delivery waits for the fcntl lock, its dotlock names it. */
START_TEST(mbox_dotlock_holds_helper_pid)
{
	char		 path[PATH_MAX], lock[PATH_MAX + 8], pidtext[32];
	char		 err[TEXT_MAX], *got = NULL;
	struct flock	 fl;
	struct timespec	 t0;
	size_t		 len = 0;
	pid_t		 pid;
	int		 fd, ws;

	spool_path(path, sizeof(path), "nobody");
	write_file(path, "", nuid, mailgid, 0600);
	snprintf(lock, sizeof(lock), "%s.lock", path);
	ck_assert_int_ne(fd = open(path, O_RDWR), -1);
	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_WRLCK;
	fl.l_whence = SEEK_SET;
	ck_assert_int_eq(fcntl(fd, F_SETLK, &fl), 0);
	mda_mbox_lock_wait_ms = 10000;
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0)
		_exit(deliver(DLV_MBOX, path, "", m2, sizeof(m2) - 1, err,
		    sizeof(err)) == DLV_OK ? 0 : 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (elapsed_ms(&t0) < 5000) {
		if (exists(lock)) {
			free(got);
			got = slurp(lock, &len);
			if (len > 0 && got[len - 1] == '\n')
				break;
		}
		usleep(10000);
	}
	snprintf(pidtext, sizeof(pidtext), "%d\n", (int)pid);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, pidtext);
	free(got);
	close(fd);	/* releases the fcntl lock */
	ck_assert_int_eq(waitpid(pid, &ws, 0), pid);
	ck_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	ck_assert(!exists(lock));
}
END_TEST

/* ---- a long message: chunk boundaries of the 64 KiB reads ---- */

struct gen {
	char	*buf;
	size_t	 len, cap;
	uint32_t seed;
};

static uint32_t
gen_rand(struct gen *g)
{
	g->seed = g->seed * 1103515245u + 12345u;
	return (g->seed >> 8) & 0xffffff;
}

static void
gen_put(struct gen *g, const char *s, size_t n)
{
	ck_assert_uint_le(g->len + n, g->cap);
	memcpy(g->buf + g->len, s, n);
	g->len += n;
}

/* Random lines while a 300-byte one still fits before `until`. */
static void
gen_lines(struct gen *g, size_t until)
{
	static const char *const heads[] = { "From ", ">From ", ">>>From ",
	    "Fro", "From", ">", "", "F", ">>", "From:" };
	char		 c;
	size_t		 i, n;

	while (g->len + 300 < until) {
		const char	*h = heads[gen_rand(g) % 10];

		gen_put(g, h, strlen(h));
		n = gen_rand(g) % 200;
		for (i = 0; i < n; i++) {
			c = (char)('a' + gen_rand(g) % 26);
			if (gen_rand(g) % 50 == 0)
				c = '\r';
			gen_put(g, &c, 1);
		}
		if (gen_rand(g) % 5 == 0)
			gen_put(g, "\n", 1);
		else
			gen_put(g, "\r\n", 2);
	}
}

/* Fills the current line up to `at`, then ends it with CRLF. */
static void
gen_pad(struct gen *g, size_t at)
{
	ck_assert_uint_le(g->len, at);
	while (g->len < at)
		gen_put(g, "p", 1);
	gen_put(g, "\r\n", 2);
}

/*
 * The boundaries fall between CR and LF (65535|65536), inside "From "
 * (131072 is after "Fr") and between ">>" and "From " (196608).
 */
static char *
gen_message(size_t *lenp)
{
	struct gen	 g = { NULL, 0, 300000, 42 };

	ck_assert_ptr_nonnull(g.buf = malloc(g.cap));
	gen_lines(&g, 65535);
	gen_pad(&g, 65535);
	ck_assert_int_eq(g.buf[65535], '\r');
	gen_lines(&g, 131070);
	gen_pad(&g, 131068);
	gen_put(&g, "From here\r\n", 11);
	gen_lines(&g, 196606);
	gen_pad(&g, 196604);
	gen_put(&g, ">>From there\r\n", 14);
	gen_lines(&g, 262000);
	gen_put(&g, "From the end", 12);
	*lenp = g.len;
	return g.buf;
}

/* The expected conversion, done the simple way on the whole buffer. */
static char *
ref_convert(const char *in, size_t len, int mboxrd, size_t *outlen)
{
	char	*lf, *out;
	size_t	 i, n = 0, o = 0, gt;

	ck_assert_ptr_nonnull(lf = malloc(len + 1));
	for (i = 0; i < len; i++)
		if (!(in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))
			lf[n++] = in[i];
	ck_assert_ptr_nonnull(out = malloc(2 * n + 4));
	for (i = 0; i < n; i++) {
		if (mboxrd && (i == 0 || lf[i - 1] == '\n')) {
			for (gt = i; gt < n && lf[gt] == '>'; gt++)
				;
			if (n - gt >= 5 && memcmp(lf + gt, "From ", 5) == 0)
				out[o++] = '>';
		}
		out[o++] = lf[i];
	}
	if (mboxrd) {
		if (o == 0 || out[o - 1] != '\n')
			out[o++] = '\n';
		out[o++] = '\n';
	}
	free(lf);
	*outlen = o;
	return out;
}

START_TEST(mbox_long_message_exact)
{
	char		 path[PATH_MAX], *msg, *conv, *want;
	const char	 hdr[] = "Return-Path: <" SENDER ">\nDelivered-To: "
			    RCPT "\n";
	size_t		 len, clen, wlen;
	const char	*senders[] = { SENDER };
	const char	*bodies[1];

	msg = gen_message(&len);
	conv = ref_convert(msg, len, 1, &clen);
	wlen = strlen(hdr) + clen;
	ck_assert_ptr_nonnull(want = malloc(wlen + 1));
	memcpy(want, hdr, strlen(hdr));
	memcpy(want + strlen(hdr), conv, clen);
	want[wlen] = '\0';
	ck_assert_uint_eq(strlen(want), wlen);	/* no NUL in the test data */
	ck_assert_ptr_nonnull(strstr(want, "\n>From here\n"));
	ck_assert_ptr_nonnull(strstr(want, "\n>>>From there\n"));

	spool_path(path, sizeof(path), "nobody");
	DELIVER_OK(DLV_MBOX, path, SENDER, msg, len);
	bodies[0] = want;
	assert_mbox(path, senders, bodies, 1);
	free(msg);
	free(conv);
	free(want);
}
END_TEST

/* ---- maildir ---- */

/* The single file in dir (NULL if none), and how many there are. */
static int
dir_entries(const char *dir, char *name, size_t namesz)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n++ == 0 && name != NULL)
			strlcpy(name, de->d_name, namesz);
	}
	closedir(d);
	return n;
}

static void
assert_user_dir(const char *path)
{
	struct stat	 st;

	ck_assert_msg(lstat(path, &st) == 0, "%s missing", path);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_uid, nuid);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
}

START_TEST(maildir_delivered)
{
	char		 md[PATH_MAX], sub[PATH_MAX + 8], name[NAME_MAX + 1];
	char		 file[2 * PATH_MAX], re[256];
	struct stat	 st;

	snprintf(md, sizeof(md), "%s/Maildir", home);
	DELIVER_OK(DLV_MAILDIR, md, SENDER, m1, sizeof(m1) - 1);
	assert_user_dir(md);
	snprintf(sub, sizeof(sub), "%s/tmp", md);
	assert_user_dir(sub);
	ck_assert_int_eq(dir_entries(sub, NULL, 0), 0);
	snprintf(sub, sizeof(sub), "%s/cur", md);
	assert_user_dir(sub);
	ck_assert_int_eq(dir_entries(sub, NULL, 0), 0);
	snprintf(sub, sizeof(sub), "%s/new", md);
	assert_user_dir(sub);
	ck_assert_int_eq(dir_entries(sub, name, sizeof(name)), 1);
	snprintf(re, sizeof(re), "^[0-9]+\\.M[0-9]{6}P[0-9]+_Q%s\\.[^/:]+$",
	    MSGID);
	ck_assert_msg(regex_match(re, name), "file name \"%s\"", name);
	snprintf(file, sizeof(file), "%s/%s", sub, name);
	ck_assert_int_eq(lstat(file, &st), 0);
	ck_assert(S_ISREG(st.st_mode));
	ck_assert_uint_eq(st.st_uid, nuid);
	ck_assert_uint_eq(st.st_gid, ngid);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	assert_content(file, m1_maildir, sizeof(m1_maildir) - 1);
}
END_TEST

START_TEST(maildir_existing_gets_second_file)
{
	char	 md[PATH_MAX], sub[PATH_MAX + 8];

	snprintf(md, sizeof(md), "%s/Maildir", home);
	DELIVER_OK(DLV_MAILDIR, md, SENDER, m1, sizeof(m1) - 1);
	DELIVER_OK(DLV_MAILDIR, md, "", m2, sizeof(m2) - 1);
	snprintf(sub, sizeof(sub), "%s/new", md);
	ck_assert_int_eq(dir_entries(sub, NULL, 0), 2);
	snprintf(sub, sizeof(sub), "%s/tmp", md);
	ck_assert_int_eq(dir_entries(sub, NULL, 0), 0);
}
END_TEST

START_TEST(maildir_parents_created)
{
	char	 md[PATH_MAX], sub[PATH_MAX + 8];

	snprintf(md, sizeof(md), "%s/Mail/box/", home);	/* trailing '/' */
	DELIVER_OK(DLV_MAILDIR, md, SENDER, m2, sizeof(m2) - 1);
	snprintf(sub, sizeof(sub), "%s/Mail", home);
	assert_user_dir(sub);
	snprintf(sub, sizeof(sub), "%snew", md);
	ck_assert_int_eq(dir_entries(sub, NULL, 0), 1);
}
END_TEST

START_TEST(maildir_symlink_refused)
{
	char	 md[PATH_MAX], other[PATH_MAX], err[TEXT_MAX];
	int	 status;

	snprintf(other, sizeof(other), "%s/other", home);
	ck_assert_int_eq(mkdir(other, 0700), 0);
	ck_assert_int_eq(chown(other, nuid, ngid), 0);
	snprintf(md, sizeof(md), "%s/Maildir", home);
	ck_assert_int_eq(symlink(other, md), 0);
	status = deliver(DLV_MAILDIR, md, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_PERMFAIL);
	ck_assert_msg(strncmp(err, "5.2.0 ", 6) == 0 && strstr(err,
	    "symlink") != NULL, "err \"%s\"", err);
	ck_assert_int_eq(dir_entries(other, NULL, 0), 0);
	/* With a trailing '/' too (lstat would follow it). */
	strlcat(md, "/", sizeof(md));
	status = deliver(DLV_MAILDIR, md, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_PERMFAIL);
	ck_assert_int_eq(dir_entries(other, NULL, 0), 0);
}
END_TEST

START_TEST(maildir_not_a_directory_refused)
{
	char	 md[PATH_MAX], err[TEXT_MAX];
	int	 status;

	snprintf(md, sizeof(md), "%s/Maildir", home);
	write_file(md, "x", nuid, ngid, 0600);
	status = deliver(DLV_MAILDIR, md, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_PERMFAIL);
	ck_assert_msg(strncmp(err, "5.2.0 ", 6) == 0, "err \"%s\"", err);
	assert_content(md, "x", 1);
}
END_TEST

/* Root could create it here; the user cannot, so the delivery fails. */
START_TEST(maildir_done_as_user)
{
	char	 md[PATH_MAX], err[TEXT_MAX];
	int	 status;

	snprintf(md, sizeof(md), "%s/Maildir", base);	/* base: root 0755 */
	status = deliver(DLV_MAILDIR, md, SENDER, m1, sizeof(m1) - 1, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.", 2) == 0 && strstr(err,
	    "Permission denied") != NULL, "err \"%s\"", err);
	ck_assert(!exists(md));
}
END_TEST

START_TEST(maildir_failed_write_leaves_nothing)
{
	char	 md[PATH_MAX], sub[PATH_MAX + 8], err[TEXT_MAX], *big;
	size_t	 blen = 200000, i;
	int	 status;

	snprintf(md, sizeof(md), "%s/Maildir", home);
	ck_assert_ptr_nonnull(big = malloc(blen));
	for (i = 0; i < blen; i++)
		big[i] = (i % 80 == 79) ? '\n' : 'b';
	status = deliver_limited(DLV_MAILDIR, md, big, blen, 100000, err,
	    sizeof(err));
	ck_assert_int_eq(status, DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.2.2 ", 6) == 0, "err \"%s\"", err);
	snprintf(sub, sizeof(sub), "%s/tmp", md);
	ck_assert_int_eq(dir_entries(sub, NULL, 0), 0);
	snprintf(sub, sizeof(sub), "%s/new", md);
	ck_assert_int_eq(dir_entries(sub, NULL, 0), 0);
	free(big);
}
END_TEST

START_TEST(maildir_long_message_exact)
{
	char		 md[PATH_MAX], sub[PATH_MAX + 8], name[NAME_MAX + 1];
	char		 file[2 * PATH_MAX], *msg, *conv, *want;
	const char	 hdr[] = "Return-Path: <" SENDER ">\nDelivered-To: "
			    RCPT "\n";
	size_t		 len, clen, wlen;

	msg = gen_message(&len);
	conv = ref_convert(msg, len, 0, &clen);
	wlen = strlen(hdr) + clen;
	ck_assert_ptr_nonnull(want = malloc(wlen));
	memcpy(want, hdr, strlen(hdr));
	memcpy(want + strlen(hdr), conv, clen);

	snprintf(md, sizeof(md), "%s/Maildir", home);
	DELIVER_OK(DLV_MAILDIR, md, SENDER, msg, len);
	snprintf(sub, sizeof(sub), "%s/new", md);
	ck_assert_int_eq(dir_entries(sub, name, sizeof(name)), 1);
	snprintf(file, sizeof(file), "%s/%s", sub, name);
	assert_content(file, want, wlen);
	free(msg);
	free(conv);
	free(want);
}
END_TEST

/* ---- maildir: the intent marker ---- */

/* A maildir as its user made it. */
static void
md_make(const char *md)
{
	static const char *const subs[] = { "", "/tmp", "/new", "/cur" };
	char	 dir[PATH_MAX + 8];
	size_t	 i;

	for (i = 0; i < 4; i++) {
		snprintf(dir, sizeof(dir), "%s%s", md, subs[i]);
		ck_assert_int_eq(mkdir(dir, 0700), 0);
		ck_assert_int_eq(chown(dir, nuid, ngid), 0);
	}
}

static int
md_count(const char *md, const char *sub)
{
	char	 dir[PATH_MAX + 8];

	snprintf(dir, sizeof(dir), "%s/%s", md, sub);
	return dir_entries(dir, NULL, 0);
}

START_TEST(maildir_marker_completed_is_noop)
{
	char	 md[PATH_MAX];

	snprintf(md, sizeof(md), "%s/Maildir", home);
	DELIVER_M3(DLV_MAILDIR, md, "");
	assert_marker("maildir\n");
	DELIVER_M3(DLV_MAILDIR, md, RECOVERED);
	ck_assert_int_eq(md_count(md, "new"), 1);
	ck_assert_int_eq(md_count(md, "tmp"), 0);
	assert_marker("maildir\n");
}
END_TEST

/* The file, in new/ or already read into cur/, is found. */
START_TEST(maildir_marker_existing_file_is_noop)
{
	char		 md[PATH_MAX], file[PATH_MAX + 128];
	const char	*where[] = { "new/1700000000.M1P1_Q" MSGID ".host",
			    "cur/1700000000.M1P1_Q" MSGID ".host:2,S" };
	size_t		 i;

	for (i = 0; i < 2; i++) {
		snprintf(md, sizeof(md), "%s/Maildir%zu", home, i);
		md_make(md);
		snprintf(file, sizeof(file), "%s/%s", md, where[i]);
		write_file(file, m1_maildir, nuid, ngid, 0600);
		set_marker("maildir\n");
		DELIVER_M3(DLV_MAILDIR, md, RECOVERED);
		ck_assert_int_eq(md_count(md, "new"), i == 0 ? 1 : 0);
		ck_assert_int_eq(md_count(md, "cur"), i == 0 ? 0 : 1);
		ck_assert_int_eq(md_count(md, "tmp"), 0);
		assert_content(file, m1_maildir, sizeof(m1_maildir) - 1);
	}
}
END_TEST

/*
 * Delivered: a marker whose attempt linked nothing, a file of the message
 * for another recipient, and (no marker) a file of an earlier delivery.
 */
START_TEST(maildir_marker_without_its_file_delivers)
{
	char		 md[PATH_MAX], file[PATH_MAX + 128];
	const char	 other[] = "Return-Path: <" SENDER ">\n"
			    "Delivered-To: other@example.org\n\nx\n";

	snprintf(md, sizeof(md), "%s/Maildir", home);
	md_make(md);
	set_marker("maildir\n");
	DELIVER_M3(DLV_MAILDIR, md, "");
	ck_assert_int_eq(md_count(md, "new"), 1);

	snprintf(md, sizeof(md), "%s/Other", home);
	md_make(md);
	snprintf(file, sizeof(file), "%s/new/1.M1P1_Q%s.host", md, MSGID);
	write_file(file, other, nuid, ngid, 0600);
	set_marker("maildir\n");
	DELIVER_M3(DLV_MAILDIR, md, "");
	ck_assert_int_eq(md_count(md, "new"), 2);

	snprintf(md, sizeof(md), "%s/Again", home);
	md_make(md);
	snprintf(file, sizeof(file), "%s/new/1.M1P1_Q%s.host", md, MSGID);
	write_file(file, m1_maildir, nuid, ngid, 0600);
	DELIVER_OK(DLV_MAILDIR, md, SENDER, m3, sizeof(m3) - 1);
	ck_assert_int_eq(md_count(md, "new"), 2);
}
END_TEST

/* ---- without privileges ---- */

START_TEST(bad_request_refused)
{
	struct mda_request	 r;
	char			 err[TEXT_MAX];

	memset(&r, 0, sizeof(r));
	r.msgfd = -1;
	r.uid = (uid_t)-1;
	r.gid = (gid_t)-1;
	strlcpy(r.path, "/var/mail/nobody", sizeof(r.path));
	ck_assert_int_eq(mda_mbox(&r, err, sizeof(err)), DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.3.5 ", 6) == 0, "err \"%s\"", err);
	ck_assert_int_eq(mda_maildir(&r, err, sizeof(err)), DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.3.5 ", 6) == 0, "err \"%s\"", err);
	r.uid = 0;
	r.gid = 0;
	strlcpy(r.path, "relative/mbox", sizeof(r.path));
	ck_assert_int_eq(mda_mbox(&r, err, sizeof(err)), DLV_TEMPFAIL);
	ck_assert_msg(strncmp(err, "4.3.5 ", 6) == 0, "err \"%s\"", err);
}
END_TEST

static Suite *
mda_suite(int *skipped)
{
	Suite	*s = suite_create("mda");
	TCase	*tc;

	tc = tcase_create("request");
	tcase_add_test(tc, bad_request_refused);
	tcase_add_test(tc, mbox_bad_path_refused);
	suite_add_tcase(s, tc);

	*skipped = 0;
	if (geteuid() != 0 || getpwnam("nobody") == NULL) {
		/* Check has no skip: the tcases are left out, and said so. */
		*skipped = 1;
		return s;
	}

	tc = tcase_create("mbox");
	tcase_add_unchecked_fixture(tc, top_setup, top_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, mbox_created_owned_by_user);
	tcase_add_test(tc, mbox_two_messages_in_order);
	tcase_add_test(tc, mbox_existing_mailbox_appended);
	tcase_add_test(tc, mbox_symlink_refused);
	tcase_add_test(tc, mbox_foreign_owner_refused);
	tcase_add_test(tc, mbox_hard_link_refused);
	tcase_add_test(tc, mbox_not_regular_refused);
	tcase_add_test(tc, mbox_held_dotlock_is_tempfail);
	tcase_add_test(tc, mbox_stale_dotlock_removed);
	tcase_add_test(tc, mbox_fcntl_lock_is_tempfail);
	tcase_add_test(tc, mbox_written_as_user);
	tcase_add_test(tc, mbox_in_home_created_by_user);
	tcase_add_test(tc, mbox_world_writable_dir_not_trusted);
	tcase_add_test(tc, mbox_failed_write_truncated);
	tcase_add_test(tc, mbox_long_message_exact);
	tcase_add_test(tc, mbox_dead_pid_dotlock_broken_at_once);
	tcase_add_test(tc, mbox_live_pid_dotlock_is_tempfail);
	tcase_add_test(tc, mbox_old_live_pid_dotlock_removed);
	tcase_add_test(tc, mbox_dotlock_holds_helper_pid);
	suite_add_tcase(s, tc);

	tc = tcase_create("marker");
	tcase_add_unchecked_fixture(tc, top_setup, top_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, mbox_marker_says_where);
	tcase_add_test(tc, mbox_marker_completed_is_noop);
	tcase_add_test(tc, mbox_marker_partial_completed);
	tcase_add_test(tc, mbox_marker_other_inode_delivers);
	tcase_add_test(tc, mbox_marker_other_bytes_delivers);
	tcase_add_test(tc, mbox_marker_needs_message_id);
	tcase_add_test(tc, mbox_marker_cut_then_appended_left_alone);
	tcase_add_test(tc, marker_not_ours_refused);
	tcase_add_test(tc, maildir_marker_completed_is_noop);
	tcase_add_test(tc, maildir_marker_existing_file_is_noop);
	tcase_add_test(tc, maildir_marker_without_its_file_delivers);
	suite_add_tcase(s, tc);

	tc = tcase_create("maildir");
	tcase_add_unchecked_fixture(tc, top_setup, top_teardown);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, maildir_delivered);
	tcase_add_test(tc, maildir_existing_gets_second_file);
	tcase_add_test(tc, maildir_parents_created);
	tcase_add_test(tc, maildir_symlink_refused);
	tcase_add_test(tc, maildir_not_a_directory_refused);
	tcase_add_test(tc, maildir_done_as_user);
	tcase_add_test(tc, maildir_failed_write_leaves_nothing);
	tcase_add_test(tc, maildir_long_message_exact);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed, skipped;

	sr = srunner_create(mda_suite(&skipped));
	if (skipped)
		printf("check_mda: SKIP: the mbox and maildir tcases need root "
		    "and the \"nobody\" account (they switch to it); only the "
		    "request checks run\n");
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
