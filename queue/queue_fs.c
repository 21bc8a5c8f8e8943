#include "autoconf.h"

/*
 * The file spool: the embedded queue backend.
 *
 *	incoming/MSGID		being received (written by an smtp-worker)
 *	incoming/MSGID.env	envelope of a commit in progress
 *	queue/MSGID		committed message
 *	queue/MSGID.env		its envelope: its presence is the commit
 *	queue/MSGID.env.tmp	envelope update in progress
 *	corrupt/		whatever load() could not trust; never deleted
 *
 * A commit writes the envelope next to the message in incoming/, then
 * renames the message and then the envelope into queue/: an envelope in
 * queue/ always has its message beside it.  Commits are not synced one by
 * one: sync() makes every commit staged since the last one durable at once
 * (one syncfs), which is what lets many clients share one disk flush before
 * they hear 250.
 *
 * Everything works relative to directory fds opened by init(), so that the
 * paths stay short and valid after chroot.
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "envelope_file.h"
#include "log.h"
#include "queue.h"
#include "util.h"

#define ENV_SUFFIX	".env"
#define TMP_SUFFIX	".env.tmp"
#define NAME_MAX_FS	(MSGID_SIZE + sizeof(TMP_SUFFIX) + 8)
#define CREATE_TRIES	100	/* msgid collisions are ~impossible: 64 bits */
#define CORRUPT_TRIES	100	/* name.1 .. name.99 when corrupt/ has name */

/* Test hook: take the per-file fsync path as if syncfs(2) were missing. */

static struct {
	int	  incoming;
	int	  queue;
	int	  corrupt;
	/* Committed since the last sync, for the per-file fallback. */
	char	(*staged)[MSGID_SIZE];
	size_t	  nstaged;
	size_t	  capstaged;
	int	  nosyncfs;
} fs = { .incoming = -1, .queue = -1, .corrupt = -1 };

/* ---- helpers --------------------------------------------------------------- */

static int
fs_ready(void)
{
	if (fs.queue == -1) {
		log_warnx("queue_fs: not initialized");
		errno = EBADF;
		return 0;
	}
	return 1;
}

/* Every msgid from outside becomes a file name: nothing but 16 hex digits. */
static int
fs_valid_id(const char *msgid)
{
	char	 safe[64];

	if (msgid != NULL && strnlen(msgid, MSGID_SIZE) < MSGID_SIZE &&
	    msgid_is_valid(msgid))
		return 1;
	str_sanitize(msgid ? msgid : "(null)", safe, sizeof(safe));
	log_warnx("queue_fs: invalid msgid \"%s\"", safe);
	errno = EINVAL;
	return 0;
}

static void
fs_name(char *out, size_t outsz, const char *msgid, const char *suffix)
{
	/* Cannot truncate: msgid is validated and out is NAME_MAX_FS. */
	(void)snprintf(out, outsz, "%s%s", msgid, suffix);
}

static int
has_suffix(const char *s, const char *suffix)
{
	size_t	 ls = strlen(s), lx = strlen(suffix);

	return ls > lx && strcmp(s + ls - lx, suffix) == 0;
}

static void
close_keep_errno(int fd)
{
	int	 saved = errno;

	(void)close(fd);
	errno = saved;
}

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
		len -= n;
	}
	return 0;
}

/*
 * Writes a whole file (created or truncated, mode 0600), optionally with
 * fdatasync.  On failure the file is removed and errno kept.
 */
static int
write_file(int dirfd, const char *name, const char *buf, size_t len,
    int datasync)
{
	int	 fd, saved;

	fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1)
		return -1;
	if (write_all(fd, buf, len) == -1 || (datasync && fdatasync(fd) == -1)) {
		close_keep_errno(fd);
		goto fail;
	}
	/* close() reports delayed write errors on some filesystems. */
	if (close(fd) == -1)
		goto fail;
	return 0;
fail:
	saved = errno;
	(void)unlinkat(dirfd, name, 0);
	errno = saved;
	return -1;
}

/*
 * rename that never replaces: a clash would silently destroy a committed
 * message (or an earlier corrupt file).  Filesystems without RENAME_NOREPLACE
 * get a check-then-rename, safe here because this process owns the spool.
 */
static int
move_noreplace(int fromfd, const char *from, int tofd, const char *to)
{
	struct stat	 st;

	if (renameat2(fromfd, from, tofd, to, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -1;
	if (fstatat(tofd, to, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		errno = EEXIST;
		return -1;
	}
	if (errno != ENOENT)
		return -1;
	return renameat(fromfd, from, tofd, to);
}

static int
fsync_name(int dirfd, const char *name)
{
	int	 fd;

	if ((fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1)
		return -1;
	if (fsync(fd) == -1) {
		close_keep_errno(fd);
		return -1;
	}
	return close(fd);
}

/* ---- init ------------------------------------------------------------------ */

static int
open_subdir(int rootfd, const char *name, int *created)
{
	int	 fd;

	if (mkdirat(rootfd, name, 0700) == 0) {
		log_info("queue_fs: created missing directory %s/", name);
		*created = 1;
	} else if (errno != EEXIST) {
		log_warn("queue_fs: mkdir %s", name);
		return -1;
	}
	fd = openat(rootfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC);
	if (fd == -1)
		log_warn("queue_fs: %s/ is not a usable directory", name);
	return fd;
}

static void
fs_close(void)
{
	if (fs.incoming != -1)
		(void)close(fs.incoming);
	if (fs.queue != -1)
		(void)close(fs.queue);
	if (fs.corrupt != -1)
		(void)close(fs.corrupt);
	fs.incoming = fs.queue = fs.corrupt = -1;
	fs.nstaged = 0;
}

static int
fs_init(const char *root)
{
	int	 rootfd, created = 0, in = -1, q = -1, c = -1;

	fs_close();
	if ((rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("queue_fs: spool %s", root);
		return -1;
	}
	if ((in = open_subdir(rootfd, "incoming", &created)) == -1 ||
	    (q = open_subdir(rootfd, "queue", &created)) == -1 ||
	    (c = open_subdir(rootfd, "corrupt", &created)) == -1)
		goto fail;
	/* A directory created now must survive, like what goes into it. */
	if (created && fsync(rootfd) == -1) {
		log_warn("queue_fs: fsync %s", root);
		goto fail;
	}
	(void)close(rootfd);
	fs.incoming = in;
	fs.queue = q;
	fs.corrupt = c;
	return 0;
fail:
	close_keep_errno(rootfd);
	if (in != -1)
		close_keep_errno(in);
	if (q != -1)
		close_keep_errno(q);
	if (c != -1)
		close_keep_errno(c);
	return -1;
}

/* ---- reception ------------------------------------------------------------- */

static int
fs_message_create(char msgid[MSGID_SIZE])
{
	char		 id[MSGID_SIZE];
	struct stat	 st;
	int		 fd, i;

	if (!fs_ready())
		return -1;
	for (i = 0; i < CREATE_TRIES; i++) {
		msgid_generate(id);
		/* A committed message of that name would be replaced. */
		if (fstatat(fs.queue, id, &st, AT_SYMLINK_NOFOLLOW) == 0)
			continue;
		if (errno != ENOENT) {
			log_warn("queue_fs: queue/%s", id);
			return -1;
		}
		fd = openat(fs.incoming, id, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW, 0600);
		if (fd != -1) {
			memcpy(msgid, id, MSGID_SIZE);
			return fd;
		}
		if (errno != EEXIST) {
			log_warn("queue_fs: create incoming/%s", id);
			return -1;
		}
	}
	log_warnx("queue_fs: no free msgid after %d tries", CREATE_TRIES);
	errno = EEXIST;
	return -1;
}

static int
fs_message_abort(const char *msgid)
{
	char	 env[NAME_MAX_FS];

	if (!fs_ready() || !fs_valid_id(msgid))
		return -1;
	fs_name(env, sizeof(env), msgid, ENV_SUFFIX);
	if (unlinkat(fs.incoming, env, 0) == -1 && errno != ENOENT) {
		log_warn("queue_fs: unlink incoming/%s", env);
		return -1;
	}
	if (unlinkat(fs.incoming, msgid, 0) == -1) {
		log_warn("queue_fs: unlink incoming/%s", msgid);
		return -1;
	}
	return 0;
}

/* ---- commit ---------------------------------------------------------------- */

static int
staged_reserve(void)
{
	char	(*p)[MSGID_SIZE];
	size_t	  n;

	if (fs.nstaged < fs.capstaged)
		return 0;
	n = fs.capstaged ? fs.capstaged * 2 : 64;
	if ((p = reallocarray(fs.staged, n, sizeof(*p))) == NULL) {
		log_warn("queue_fs: staged list");
		return -1;
	}
	fs.staged = p;
	fs.capstaged = n;
	return 0;
}

static int
fs_commit_stage(const struct qmsg *m)
{
	char		 env[NAME_MAX_FS], *buf;
	const char	*id = m->msgid;
	struct stat	 st;
	size_t		 len;

	if (!fs_ready() || !fs_valid_id(id))
		return -1;
	if (fstatat(fs.incoming, id, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		log_warn("queue_fs: %s: incoming message", id);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != m->size) {
		log_warnx("queue_fs: %s: message has %lld bytes, envelope says "
		    "%llu", id, (long long)st.st_size,
		    (unsigned long long)m->size);
		errno = EINVAL;
		return -1;
	}
	if (staged_reserve() == -1)
		return -1;
	if ((buf = envelope_serialize(m, &len)) == NULL) {
		log_warn("queue_fs: %s: envelope", id);
		return -1;
	}
	fs_name(env, sizeof(env), id, ENV_SUFFIX);
	if (write_file(fs.incoming, env, buf, len, 0) == -1) {
		log_warn("queue_fs: %s: write incoming/%s", id, env);
		free(buf);
		return -1;
	}
	free(buf);

	if (move_noreplace(fs.incoming, id, fs.queue, id) == -1) {
		log_warn("queue_fs: %s: rename message into queue/", id);
		(void)unlinkat(fs.incoming, env, 0);
		return -1;
	}
	if (move_noreplace(fs.incoming, env, fs.queue, env) == -1) {
		log_warn("queue_fs: %s: rename envelope into queue/", id);
		/* Not committed: give the message back to message_abort(). */
		if (renameat(fs.queue, id, fs.incoming, id) == -1)
			log_warn("queue_fs: %s: left in queue/ without envelope",
			    id);
		(void)unlinkat(fs.incoming, env, 0);
		return -1;
	}
	memcpy(fs.staged[fs.nstaged++], id, MSGID_SIZE);
	return 0;
}

/* Without syncfs: every staged file, then both directories of the renames. */
static int
sync_each(void)
{
	char	 env[NAME_MAX_FS];
	size_t	 i;

	for (i = 0; i < fs.nstaged; i++) {
		fs_name(env, sizeof(env), fs.staged[i], ENV_SUFFIX);
		/* ENOENT: deleted since; nothing to make durable. */
		if ((fsync_name(fs.queue, fs.staged[i]) == -1 && errno != ENOENT) ||
		    (fsync_name(fs.queue, env) == -1 && errno != ENOENT)) {
			log_warn("queue_fs: %s: fsync", fs.staged[i]);
			return -1;
		}
	}
	if (fsync(fs.queue) == -1 || fsync(fs.incoming) == -1) {
		log_warn("queue_fs: fsync spool directories");
		return -1;
	}
	return 0;
}

/*
 * One syncfs flushes the data, inodes and directory entries of every staged
 * commit at once.  Whatever the outcome, the staged list is emptied: after a
 * failure the caller refuses those messages, and a later syncfs would not
 * report the same writeback error again.
 */
static int
fs_sync(void)
{
	int	 r = 0;

	if (!fs_ready())
		return -1;
	if (fs.nstaged == 0)
		return 0;
	if (!fs.nosyncfs && syncfs(fs.queue) == 0)
		r = 0;
	else if (fs.nosyncfs || errno == ENOSYS)
		r = sync_each();
	else {
		log_warn("queue_fs: syncfs");
		r = -1;
	}
	log_trace(TRACE_QUEUE, "queue_fs: sync of %zu commits: %s",
	    fs.nstaged, r == 0 ? "ok" : "failed");
	fs.nstaged = 0;
	return r;
}

void
queue_fs_test_nosyncfs(int on)
{
	fs.nosyncfs = on;
}

/* ---- committed messages ---------------------------------------------------- */

static int
fs_envelope_update(const struct qmsg *m)
{
	char		 env[NAME_MAX_FS], tmp[NAME_MAX_FS], *buf;
	const char	*id = m->msgid;
	struct stat	 st;
	size_t		 len;

	if (!fs_ready() || !fs_valid_id(id))
		return -1;
	fs_name(env, sizeof(env), id, ENV_SUFFIX);
	fs_name(tmp, sizeof(tmp), id, TMP_SUFFIX);
	/* Never create an envelope for a message that is gone. */
	if (fstatat(fs.queue, env, &st, AT_SYMLINK_NOFOLLOW) == -1 ||
	    fstatat(fs.queue, id, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		log_warn("queue_fs: %s: update of an uncommitted message", id);
		return -1;
	}
	if ((buf = envelope_serialize(m, &len)) == NULL) {
		log_warn("queue_fs: %s: envelope", id);
		return -1;
	}
	if (write_file(fs.queue, tmp, buf, len, 1) == -1) {
		log_warn("queue_fs: %s: write queue/%s", id, tmp);
		free(buf);
		return -1;
	}
	free(buf);
	if (renameat(fs.queue, tmp, fs.queue, env) == -1) {
		log_warn("queue_fs: %s: rename %s", id, tmp);
		(void)unlinkat(fs.queue, tmp, 0);
		return -1;
	}
	if (fsync(fs.queue) == -1) {
		log_warn("queue_fs: %s: fsync queue/", id);
		return -1;
	}
	return 0;
}

/*
 * Delivery intent markers, `ID.mda.N`, are written into queue/ by the
 * master's local delivery helpers (see master/mda.h).  They live and die
 * with their message.
 */
static int
is_marker(const char *name, char *msgid, size_t msgidsz)
{
	const char	*p;

	if (strlen(name) < MSGID_SIZE - 1 + 5 || msgidsz < MSGID_SIZE)
		return 0;
	memcpy(msgid, name, MSGID_SIZE - 1);
	msgid[MSGID_SIZE - 1] = '\0';
	if (!msgid_is_valid(msgid) ||
	    strncmp(name + MSGID_SIZE - 1, ".mda.", 5) != 0)
		return 0;
	p = name + MSGID_SIZE - 1 + 5;
	if (*p == '\0' || strspn(p, "0123456789") != strlen(p))
		return 0;
	return 1;
}

static void
remove_markers(const char *msgid, uint32_t nrcpts)
{
	char		 name[NAME_MAX_FS];
	uint32_t	 i;

	for (i = 0; i < nrcpts; i++) {
		if (snprintf(name, sizeof(name), "%s.mda.%u", msgid, i) >=
		    (int)sizeof(name))
			return;
		if (unlinkat(fs.queue, name, 0) == -1 && errno != ENOENT)
			log_warn("queue_fs: unlink queue/%s", name);
	}
}

static int
fs_message_delete(const char *msgid, uint32_t nrcpts)
{
	char	 env[NAME_MAX_FS];
	int	 gone = 0;

	if (!fs_ready() || !fs_valid_id(msgid))
		return -1;
	fs_name(env, sizeof(env), msgid, ENV_SUFFIX);
	/*
	 * Envelope first: a crash in between leaves a message without
	 * envelope (moved aside on load), never an envelope without message.
	 * On ext4/xfs the journal keeps the two unlinks in order.
	 */
	if (unlinkat(fs.queue, env, 0) == -1) {
		if (errno != ENOENT) {
			log_warn("queue_fs: unlink queue/%s", env);
			return -1;
		}
		gone++;
	}
	if (unlinkat(fs.queue, msgid, 0) == -1) {
		if (errno != ENOENT) {
			log_warn("queue_fs: unlink queue/%s", msgid);
			return -1;
		}
		gone++;
	}
	if (gone == 2) {
		log_warnx("queue_fs: %s: delete of an unknown message", msgid);
		errno = ENOENT;
		return -1;
	}
	/* Last: markers without their envelope are removed at load too. */
	remove_markers(msgid, nrcpts);
	if (fsync(fs.queue) == -1) {
		log_warn("queue_fs: %s: fsync queue/", msgid);
		return -1;
	}
	return 0;
}

static int
fs_message_fd(const char *msgid)
{
	int	 fd;

	if (!fs_ready() || !fs_valid_id(msgid))
		return -1;
	fd = openat(fs.queue, msgid, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd == -1)
		log_warn("queue_fs: open queue/%s", msgid);
	return fd;
}

/* ---- load ------------------------------------------------------------------ */

struct names {
	char	**v;
	size_t	  n;
	size_t	  cap;
};

static void
names_free(struct names *nl)
{
	size_t	 i;

	for (i = 0; i < nl->n; i++)
		free(nl->v[i]);
	free(nl->v);
	memset(nl, 0, sizeof(*nl));
}

static int
names_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The names of a directory, sorted, read in full before anything is renamed
 * or removed so that changes cannot confuse readdir.
 */
static int
list_dir(int dirfd, const char *what, struct names *nl)
{
	DIR		*d;
	struct dirent	*de;
	char		**v;
	int		 fd;

	memset(nl, 0, sizeof(*nl));
	if ((fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		log_warn("queue_fs: open %s/", what);
		return -1;
	}
	if ((d = fdopendir(fd)) == NULL) {
		log_warn("queue_fs: fdopendir %s/", what);
		(void)close(fd);
		return -1;
	}
	for (;;) {
		errno = 0;
		if ((de = readdir(d)) == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (nl->n == nl->cap) {
			size_t n = nl->cap ? nl->cap * 2 : 256;

			if ((v = reallocarray(nl->v, n, sizeof(*v))) == NULL)
				goto fail;
			nl->v = v;
			nl->cap = n;
		}
		if ((nl->v[nl->n] = strdup(de->d_name)) == NULL)
			goto fail;
		nl->n++;
	}
	if (errno != 0)
		goto fail;
	(void)closedir(d);
	if (nl->n > 0)
		qsort(nl->v, nl->n, sizeof(*nl->v), names_cmp);
	return 0;
fail:
	log_warn("queue_fs: reading %s/", what);
	(void)closedir(d);
	names_free(nl);
	return -1;
}

/* Receptions that never reached commit were never acknowledged: drop them. */
static int
clean_incoming(void)
{
	struct names	 nl;
	struct stat	 st;
	char		 safe[NAME_MAX + 1];
	size_t		 i;
	int		 removed = 0;

	if (list_dir(fs.incoming, "incoming", &nl) == -1)
		return -1;
	for (i = 0; i < nl.n; i++) {
		str_sanitize(nl.v[i], safe, sizeof(safe));
		if (fstatat(fs.incoming, nl.v[i], &st, AT_SYMLINK_NOFOLLOW) == -1)
			continue;
		if (!S_ISREG(st.st_mode)) {
			log_warnx("queue_fs: incoming/%s: not a file, left alone",
			    safe);
			continue;
		}
		if (unlinkat(fs.incoming, nl.v[i], 0) == -1) {
			log_warn("queue_fs: unlink incoming/%s", safe);
			continue;
		}
		log_info("queue_fs: incoming/%s: removed, interrupted "
		    "reception (never acknowledged)", safe);
		removed++;
	}
	names_free(&nl);
	if (removed && fsync(fs.incoming) == -1)
		log_warn("queue_fs: fsync incoming/");
	return 0;
}

/*
 * Moves one queue/ entry to corrupt/, under name.N if corrupt/ already has
 * one of that name.  A failure leaves the file where it is (it will be seen
 * again at the next start), so it is logged, not fatal.
 */
static int
to_corrupt(const char *name)
{
	char	 dst[NAME_MAX + 1], safe[NAME_MAX + 1];
	int	 i, n;

	for (i = 0; i < CORRUPT_TRIES; i++) {
		if (i == 0)
			n = snprintf(dst, sizeof(dst), "%s", name);
		else
			n = snprintf(dst, sizeof(dst), "%s.%d", name, i);
		if (n < 0 || (size_t)n >= sizeof(dst))
			break;
		if (move_noreplace(fs.queue, name, fs.corrupt, dst) == 0)
			return 0;
		if (errno != EEXIST)
			break;
	}
	str_sanitize(name, safe, sizeof(safe));
	log_warn("queue_fs: could not move queue/%s to corrupt/", safe);
	return -1;
}

/* Moves an envelope and its message (when there is one) aside. */
static void
corrupt_pair(const char *envname, const char *msgname, const char *reason)
{
	char		 safe[NAME_MAX + 1], why[512];
	struct stat	 st;

	str_sanitize(envname, safe, sizeof(safe));
	str_sanitize(reason, why, sizeof(why));
	log_warnx("queue_fs: queue/%s: moved to corrupt/: %s", safe, why);
	(void)to_corrupt(envname);
	if (msgname != NULL &&
	    fstatat(fs.queue, msgname, &st, AT_SYMLINK_NOFOLLOW) == 0)
		(void)to_corrupt(msgname);
}

/*
 * Reads an envelope file.  0 and a buffer; 1 when the file itself is bad
 * (reason set); -1 when the system fails us (no memory, no fds), which must
 * not send good mail to corrupt/.
 */
static int
read_envelope(const char *name, char **bufp, size_t *lenp, char *reason,
    size_t reasonsz)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;

	if ((fd = openat(fs.queue, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW |
	    O_NONBLOCK)) == -1)
		goto syserr;
	if (fstat(fd, &st) == -1)
		goto syserr;
	if (!S_ISREG(st.st_mode)) {
		snprintf(reason, reasonsz, "not a regular file");
		goto bad;
	}
	if (st.st_size > ENVELOPE_MAX) {
		snprintf(reason, reasonsz, "larger than %d bytes", ENVELOPE_MAX);
		goto bad;
	}
	if ((buf = malloc(st.st_size + 1)) == NULL)
		goto syserr;
	while (len < (size_t)st.st_size) {
		n = read(fd, buf + len, st.st_size - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			goto syserr;
		if (n == 0)
			break;
		len += n;
	}
	(void)close(fd);
	*bufp = buf;
	*lenp = len;
	return 0;
syserr:
	if (errno == ENOMEM || errno == EMFILE || errno == ENFILE) {
		log_warn("queue_fs: reading queue/%s", name);
		if (fd != -1)
			close_keep_errno(fd);
		free(buf);
		return -1;
	}
	/* ELOOP (a symlink), EIO...: the file cannot be trusted. */
	snprintf(reason, reasonsz, "unreadable: %s", strerror(errno));
bad:
	if (fd != -1)
		(void)close(fd);
	free(buf);
	return 1;
}

/* One queue/MSGID.env: loaded through cb, or moved aside.  -1: fatal. */
static int
load_envelope(const char *envname, void (*cb)(struct qmsg *, void *),
    void *arg, int *count)
{
	char		 id[NAME_MAX + 1], reason[512], *buf;
	struct qmsg	*m;
	struct stat	 st;
	size_t		 len;
	int		 r;

	strlcpy(id, envname, sizeof(id));
	id[strlen(id) - strlen(ENV_SUFFIX)] = '\0';
	if (strlen(id) >= MSGID_SIZE || !msgid_is_valid(id)) {
		corrupt_pair(envname, NULL, "not named after a msgid");
		return 0;
	}
	r = read_envelope(envname, &buf, &len, reason, sizeof(reason));
	if (r == -1)
		return -1;
	if (r == 1) {
		corrupt_pair(envname, id, reason);
		return 0;
	}
	m = envelope_parse(buf, len, reason, sizeof(reason));
	free(buf);
	if (m == NULL) {
		corrupt_pair(envname, id, reason);
		return 0;
	}
	if (strcmp(m->msgid, id) != 0) {
		snprintf(reason, sizeof(reason), "envelope of msgid %s",
		    m->msgid);
		goto bad;
	}
	if (fstatat(fs.queue, id, &st, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT) {
			log_warn("queue_fs: queue/%s", id);
			qmsg_free(m);
			return -1;
		}
		snprintf(reason, sizeof(reason), "message file missing");
		goto bad;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(reason, sizeof(reason), "message is not a file");
		goto bad;
	}
	if ((uint64_t)st.st_size != m->size) {
		snprintf(reason, sizeof(reason), "message has %lld bytes, "
		    "envelope says %llu", (long long)st.st_size,
		    (unsigned long long)m->size);
		goto bad;
	}
	cb(m, arg);
	(*count)++;
	return 0;
bad:
	qmsg_free(m);
	corrupt_pair(envname, id, reason);
	return 0;
}

static int
load_entry(const char *name, void (*cb)(struct qmsg *, void *), void *arg,
    int *count)
{
	char		 env[NAME_MAX + 1], safe[NAME_MAX + 1];
	struct stat	 st;

	str_sanitize(name, safe, sizeof(safe));
	if (has_suffix(name, TMP_SUFFIX)) {
		/* An update cut short: the envelope it replaces is intact. */
		if (unlinkat(fs.queue, name, 0) == -1)
			log_warn("queue_fs: unlink queue/%s", safe);
		else
			log_info("queue_fs: queue/%s: removed unfinished "
			    "envelope update", safe);
		return 0;
	}
	if (has_suffix(name, ENV_SUFFIX))
		return load_envelope(name, cb, arg, count);
	if (is_marker(name, env, sizeof(env))) {
		char	 envname[NAME_MAX_FS];

		fs_name(envname, sizeof(envname), env, ENV_SUFFIX);
		if (fstatat(fs.queue, envname, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return 0;	/* kept for the next delivery attempt */
		if (unlinkat(fs.queue, name, 0) == -1)
			log_warn("queue_fs: unlink queue/%s", safe);
		return 0;
	}
	if (strlen(name) < MSGID_SIZE && msgid_is_valid(name)) {
		fs_name(env, sizeof(env), name, ENV_SUFFIX);
		if (fstatat(fs.queue, env, &st, AT_SYMLINK_NOFOLLOW) == 0)
			return 0;	/* its envelope decides */
		if (errno != ENOENT) {
			log_warn("queue_fs: queue/%s", env);
			return -1;
		}
		/* Already moved aside with its envelope? */
		if (fstatat(fs.queue, name, &st, AT_SYMLINK_NOFOLLOW) == -1)
			return 0;
		log_warnx("queue_fs: queue/%s: moved to corrupt/: message "
		    "without envelope (interrupted commit)", safe);
		(void)to_corrupt(name);
		return 0;
	}
	log_warnx("queue_fs: queue/%s: moved to corrupt/: unknown file", safe);
	(void)to_corrupt(name);
	return 0;
}

static int
fs_load(void (*cb)(struct qmsg *, void *), void *arg)
{
	struct names	 nl;
	size_t		 i;
	int		 count = 0;

	if (!fs_ready())
		return -1;
	fs.nstaged = 0;
	if (clean_incoming() == -1)
		return -1;
	if (list_dir(fs.queue, "queue", &nl) == -1)
		return -1;
	for (i = 0; i < nl.n; i++)
		if (load_entry(nl.v[i], cb, arg, &count) == -1) {
			names_free(&nl);
			return -1;
		}
	names_free(&nl);
	/* Make the moves to corrupt/ stick, so they are not redone. */
	if (fsync(fs.corrupt) == -1 || fsync(fs.queue) == -1)
		log_warn("queue_fs: fsync after load");
	log_info("queue_fs: %d messages loaded", count);
	return count;
}

const struct queue_backend queue_backend_fs = {
	.name = "fs",
	.init = fs_init,
	.message_create = fs_message_create,
	.message_abort = fs_message_abort,
	.commit_stage = fs_commit_stage,
	.sync = fs_sync,
	.envelope_update = fs_envelope_update,
	.message_delete = fs_message_delete,
	.message_fd = fs_message_fd,
	.load = fs_load,
};
