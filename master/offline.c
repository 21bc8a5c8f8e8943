/*
 * Pickup of offline/ drops (see offline.h).
 *
 * offline/ is mode 01733: anyone may create a file there, nobody but root
 * and mtad-queue may list it, and each user may remove only their own
 * files.  The master trusts nothing in it: an entry is taken only if it is a
 * regular file with one link, opened without following links and checked to
 * be the file it looked at.  The child that submits it drops to the file's
 * owner before reading a byte, parses strictly, and reports one short result
 * through a pipe; the master then removes the file (submitted), leaves it
 * (temporary failure: the next scan tries again) or moves it to corrupt/
 * (unparsable, or refused for good), after checking again that the name
 * still holds the same file.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dropfile.h"
#include "log.h"
#include "master.h"
#include "offline.h"
#include "submit.h"
#include "util.h"

#define PICKUP_INTERVAL		60	/* seconds between scans */
#define PICKUP_FIRST		1	/* the first scan, after start */
#define PICKUP_RUNNING_MAX	4
#define PICKUP_TIMEOUT		900	/* then the child is killed */
#define PICKUP_REPORT_MAX	16384	/* what a child may say */
#define ENVELOPE_SLACK		4096	/* envelope lines besides rcpts */
#define STALE_TEMP_SECS		(24 * 3600)	/* unfinished ".NAME" files */

/* What the child says last: "S <status> <text>". */
enum pickup_status {
	PICKUP_DONE = 0,	/* submitted: remove the file */
	PICKUP_RETRY = 1,	/* temporary failure: keep it */
	PICKUP_CORRUPT = 2	/* unparsable or refused: corrupt/ */
};

struct pickup {
	TAILQ_ENTRY(pickup)	 entry;
	char			 name[NAME_MAX + 1];
	dev_t			 dev;
	ino_t			 ino;
	char			 owner[64];	/* for the logs */
	pid_t			 pid;
	int			 fd;		/* the child's report */
	struct event		*timer;
};

static TAILQ_HEAD(, pickup)	 running = TAILQ_HEAD_INITIALIZER(running);
static int			 nrunning;
static struct event		*scan_ev, *rescan_ev;
static int			 more_waiting;	/* a scan hit the limit */
static int			 retry_seen;	/* a temporary failure: wait */
static char			 offline_dir[PATH_MAX];
static char			 corrupt_dir[PATH_MAX];
static char			 submit_path[PATH_MAX];

/* ---- the child ----------------------------------------------------------- */

struct report {
	char	 buf[PICKUP_REPORT_MAX];
	size_t	 len;
};

static void __attribute__((format(printf, 2, 3)))
report_add(struct report *rp, const char *fmt, ...)
{
	char	 line[1024], clean[1024];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	str_sanitize(line, clean, sizeof(clean));
	/* keep room for the status line, which always comes last */
	if (rp->len + strlen(clean) + 1 > sizeof(rp->buf) - 1100 &&
	    clean[0] != 'S')
		return;
	rp->len += (size_t)snprintf(rp->buf + rp->len,
	    sizeof(rp->buf) - rp->len, "%s\n", clean);
}

static void __attribute__((noreturn))
child_exit(struct report *rp, int fd)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (off < rp->len) {
		if ((n = write(fd, rp->buf + off, rp->len - off)) == -1) {
			if (errno == EINTR)
				continue;
			_exit(1);
		}
		off += (size_t)n;
	}
	_exit(0);
}

static int
drop_to(uid_t uid, gid_t gid)
{
	if (setgroups(1, &gid) == -1 || setresgid(gid, gid, gid) == -1 ||
	    setresuid(uid, uid, uid) == -1)
		return -1;
	if (uid != 0 && (setuid(0) != -1 || geteuid() == 0))
		return -1;	/* root must be gone for good */
	return 0;
}

/* Runs as the owner: parse, submit, report.  msgfd 3, report fd 4. */
static void __attribute__((noreturn))
pickup_child(uid_t uid, gid_t gid, size_t max_rcpts, uint64_t max_size,
    const char *helo)
{
	struct report		 rp;
	struct submit_env	 env;
	struct submit_client	 c;
	char			 err[SUBMIT_TEXT_MAX];
	uint64_t		 size;
	off_t			 off;
	size_t			 i, refused = 0;
	int			 s;

	rp.len = 0;
	memset(&env, 0, sizeof(env));
	if (drop_to(uid, gid) == -1) {
		report_add(&rp, "S %d cannot become uid %ld: %s", PICKUP_RETRY,
		    (long)uid, strerror(errno));
		child_exit(&rp, 4);
	}
	if (dropfile_parse(3, &env, max_rcpts, max_size, &off, &size, err,
	    sizeof(err)) == -1) {
		report_add(&rp, "S %d %s", PICKUP_CORRUPT, err);
		child_exit(&rp, 4);
	}
	submit_init(&c);
	if (submit_connect(&c, submit_path) == -1) {
		report_add(&rp, "S %d %s", PICKUP_RETRY, c.reply);
		child_exit(&rp, 4);
	}
	if ((s = submit_hello(&c, helo)) == SUBMIT_OK)
		s = submit_transaction(&c, &env, 3, off, size);
	(void)strlcpy(err, c.reply, sizeof(err));
	submit_close(&c);
	for (i = 0; i < env.nrcpts; i++)
		if (env.rcpts[i].code >= 500) {
			refused++;
			report_add(&rp, "R <%s> %s", env.rcpts[i].addr,
			    env.rcpts[i].reply);
		}
	if (s == SUBMIT_OK)
		report_add(&rp, "S %d %s%s", PICKUP_DONE, err, refused ?
		    " (some recipients refused)" : "");
	else if (s == SUBMIT_TEMPFAIL)
		report_add(&rp, "S %d %s", PICKUP_RETRY, err);
	else
		report_add(&rp, "S %d refused: %s", PICKUP_CORRUPT,
		    refused == env.nrcpts && refused > 0 ?
		    "every recipient" : err);
	child_exit(&rp, 4);
}

/* ---- the master ---------------------------------------------------------- */

static int
in_flight(const char *name)
{
	struct pickup	*p;

	TAILQ_FOREACH(p, &running, entry)
		if (strcmp(p->name, name) == 0)
			return 1;
	return 0;
}

/* Is name in offline/ still the file we looked at? */
static int
same_file(const char *name, dev_t dev, ino_t ino)
{
	char		 path[PATH_MAX];
	struct stat	 st;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", offline_dir, name) >=
	    sizeof(path) || lstat(path, &st) == -1)
		return 0;
	return st.st_dev == dev && st.st_ino == ino;
}

/* Moves name to corrupt/offline.NAME[.N], never over anything. */
static void
to_corrupt(const char *name, const char *owner, const char *why)
{
	char	 from[PATH_MAX], to[PATH_MAX];
	int	 i, n;

	if ((size_t)snprintf(from, sizeof(from), "%s/%s", offline_dir, name) >=
	    sizeof(from))
		return;
	for (i = 0; i < 100; i++) {
		n = i == 0 ? snprintf(to, sizeof(to), "%s/offline.%s",
		    corrupt_dir, name) : snprintf(to, sizeof(to),
		    "%s/offline.%s.%d", corrupt_dir, name, i);
		if (n < 0 || (size_t)n >= sizeof(to))
			break;
		if (renameat2(AT_FDCWD, from, AT_FDCWD, to,
		    RENAME_NOREPLACE) == 0) {
			log_warnx("offline: %s from %s moved to %s: %s", name,
			    owner, to, why);
			return;
		}
		if (errno != EEXIST)
			break;
	}
	log_warn("offline: %s from %s (%s): cannot move it to %s", name,
	    owner, why, corrupt_dir);
}

static void	scan(evutil_socket_t, short, void *);

static void
pickup_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct pickup	*p = arg;

	log_warnx("offline: %s from %s: no result after %ds, killing the "
	    "pickup", p->name, p->owner, PICKUP_TIMEOUT);
	(void)kill(p->pid, SIGKILL);
}

static void
pickup_start(int dfd, const char *name, const struct stat *lst,
    const struct passwd *pw)
{
	struct timeval	 tv = { PICKUP_TIMEOUT, 0 };
	struct pickup	*p;
	struct stat	 st;
	int		 fd, sp[2], m, r;
	size_t		 max_rcpts = (size_t)master->conf->max_rcpt;
	uint64_t	 max_size = master->conf->max_message_size;

	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd == -1) {
		log_warn("offline: %s", name);
		return;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) ||
	    st.st_nlink != 1 || st.st_dev != lst->st_dev ||
	    st.st_ino != lst->st_ino || st.st_uid != lst->st_uid) {
		log_debug("offline: %s changed while looked at", name);
		(void)close(fd);
		return;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    pipe2(sp, O_CLOEXEC) == -1) {
		log_warn("offline: %s", name);
		free(p);
		(void)close(fd);
		return;
	}
	(void)strlcpy(p->name, name, sizeof(p->name));
	(void)strlcpy(p->owner, pw->pw_name, sizeof(p->owner));
	p->dev = st.st_dev;
	p->ino = st.st_ino;
	switch (p->pid = fork()) {
	case -1:
		log_warn("offline: fork");
		(void)close(sp[0]);
		(void)close(sp[1]);
		(void)close(fd);
		free(p);
		return;
	case 0:
		/* the file on 3, the report pipe on 4, nothing else */
		m = fcntl(fd, F_DUPFD, 10);
		r = fcntl(sp[1], F_DUPFD, 10);
		if (m == -1 || r == -1 || dup2(m, 3) == -1 || dup2(r, 4) == -1)
			_exit(1);
		(void)close_range(5, ~0U, 0);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		setproctitle("offline pickup %s", name);
		pickup_child(pw->pw_uid, pw->pw_gid, max_rcpts, max_size,
		    master->conf->hostname);
	}
	(void)close(sp[1]);
	(void)close(fd);
	p->fd = sp[0];
	set_nonblock(p->fd);
	if ((p->timer = evtimer_new(master->base, pickup_timeout, p)) == NULL ||
	    evtimer_add(p->timer, &tv) == -1)
		fatalx("offline: evtimer");
	TAILQ_INSERT_TAIL(&running, p, entry);
	nrunning++;
	log_debug("offline: %s from %s: pickup %d started", name,
	    pw->pw_name, (int)p->pid);
}

/* One directory entry: start a pickup, or set it aside. */
static void
consider(int dfd, const char *name)
{
	struct stat	 st;
	struct passwd	*pw;
	char		 why[128];
	uint64_t	 limit;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT)
			log_warn("offline: %s", name);
		return;
	}
	errno = 0;
	pw = getpwuid(st.st_uid);
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		to_corrupt(name, pw ? pw->pw_name : "?", "not a regular file "
		    "with one link");
		return;
	}
	if (pw == NULL) {
		if (errno != 0) {
			log_warn("offline: %s: getpwuid %ld", name,
			    (long)st.st_uid);
			return;
		}
		(void)snprintf(why, sizeof(why), "its owner, uid %ld, has no "
		    "account", (long)st.st_uid);
		to_corrupt(name, "?", why);
		return;
	}
	limit = master->conf->max_message_size + ENVELOPE_SLACK +
	    (uint64_t)master->conf->max_rcpt * (ADDR_MAX + 8);
	if ((uint64_t)st.st_size > limit) {
		(void)snprintf(why, sizeof(why), "%lld bytes: too large",
		    (long long)st.st_size);
		to_corrupt(name, pw->pw_name, why);
		return;
	}
	pickup_start(dfd, name, &st, pw);
}

/* ".NAME": a sendmail still writing, or one that died before its rename. */
static void
stale_temp(int dfd, const char *name)
{
	struct stat	 st;

	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
	    fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) ||
	    st.st_mtime > time(NULL) - STALE_TEMP_SECS)
		return;
	if (unlinkat(dfd, name, 0) == -1)
		log_warn("offline: unlink %s", name);
	else
		log_info("offline: removed %s, left unfinished by uid %ld",
		    name, (long)st.st_uid);
}

static void
scan(evutil_socket_t fd, short ev, void *arg)
{
	DIR		*d;
	struct dirent	*e;

	if (!supervise_running())
		return;
	retry_seen = 0;
	more_waiting = 0;
	if ((d = opendir(offline_dir)) == NULL) {
		log_warn("offline: %s", offline_dir);
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.') {
			stale_temp(dirfd(d), e->d_name);
			continue;
		}
		if (in_flight(e->d_name))
			continue;
		if (nrunning >= PICKUP_RUNNING_MAX) {
			more_waiting = 1;
			break;
		}
		consider(dirfd(d), e->d_name);
	}
	(void)closedir(d);
}

/* The child's report: log it and act on its status line. */
static void
pickup_finish(struct pickup *p, int status)
{
	char			 buf[PICKUP_REPORT_MAX + 1], *line, *next;
	char			 text[PICKUP_REPORT_MAX], path[PATH_MAX];
	size_t			 len = 0;
	ssize_t			 n;
	int			 result = -1;

	while (len < sizeof(buf) - 1 &&
	    (n = read(p->fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	text[0] = '\0';
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (line[0] == 'R' && line[1] == ' ')
			log_warnx("offline: %s from %s: %s refused", p->name,
			    p->owner, line + 2);
		else if (line[0] == 'S' && line[1] == ' ' && line[2] >= '0' &&
		    line[2] <= '2' && line[3] == ' ' &&
		    (next == NULL || *next == '\0')) {
			result = line[2] - '0';
			(void)strlcpy(text, line + 4, sizeof(text));
		}
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || result == -1) {
		log_warnx("offline: %s from %s: the pickup failed (%s %d); "
		    "it is tried again later", p->name, p->owner,
		    WIFSIGNALED(status) ? "signal" : "status",
		    WIFSIGNALED(status) ? WTERMSIG(status) :
		    WEXITSTATUS(status));
		retry_seen = 1;
		return;
	}
	if (!same_file(p->name, p->dev, p->ino)) {
		log_warnx("offline: %s from %s was replaced during its pickup; "
		    "left alone", p->name, p->owner);
		return;
	}
	switch (result) {
	case PICKUP_DONE:
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", offline_dir,
		    p->name) >= sizeof(path) || unlink(path) == -1)
			log_warn("offline: unlink %s", path);
		log_info("offline: %s from %s submitted: %s", p->name,
		    p->owner, text);
		break;
	case PICKUP_RETRY:
		log_info("offline: %s from %s kept for a later try: %s",
		    p->name, p->owner, text);
		retry_seen = 1;
		break;
	default:
		to_corrupt(p->name, p->owner, text);
		break;
	}
}

int
offline_reap(pid_t pid, int status)
{
	struct timeval	 now = { 0, 0 };
	struct pickup	*p;

	TAILQ_FOREACH(p, &running, entry)
		if (p->pid == pid)
			break;
	if (p == NULL)
		return 0;
	TAILQ_REMOVE(&running, p, entry);
	nrunning--;
	pickup_finish(p, status);
	event_free(p->timer);
	(void)close(p->fd);
	free(p);
	/* More drops wait and the server takes them: go on at once. */
	if (more_waiting && !retry_seen)
		evtimer_add(rescan_ev, &now);
	return 1;
}

void
offline_scan_now(void)
{
	struct timeval	 now = { 0, 0 };

	if (rescan_ev != NULL)
		evtimer_add(rescan_ev, &now);
}

void
offline_start(void)
{
	struct timeval	 first = { PICKUP_FIRST, 0 };
	struct timeval	 every = { PICKUP_INTERVAL, 0 };
	const struct config *conf = master->conf;

	if ((size_t)snprintf(offline_dir, sizeof(offline_dir), "%s/offline",
	    conf->queue_path) >= sizeof(offline_dir) ||
	    (size_t)snprintf(corrupt_dir, sizeof(corrupt_dir), "%s/corrupt",
	    conf->queue_path) >= sizeof(corrupt_dir) ||
	    strlcpy(submit_path, conf->submit_path, sizeof(submit_path)) >=
	    sizeof(submit_path))
		fatalx("offline: path too long");
	scan_ev = event_new(master->base, -1, EV_PERSIST, scan, NULL);
	rescan_ev = evtimer_new(master->base, scan, NULL);
	if (scan_ev == NULL || rescan_ev == NULL ||
	    event_add(scan_ev, &every) == -1 ||
	    evtimer_add(rescan_ev, &first) == -1)
		fatalx("offline: cannot arm the scans");
}
