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
 *
 * Exactly once across crashes: before the link into new/, "maildir\n" is
 * written durably into the delivery intent marker (mda.h).  An attempt that
 * finds it looks in new/ and cur/ for a file of this message (its name
 * holds _Q<msgid>.) for this recipient (its Delivered-To line); if there is
 * one, the message is not delivered again.
 */
#include "autoconf.h"

#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#define MD_HOST_MAX	256
#define MD_HEAD_MAX	4096	/* read of a file to know its recipient */

/* The maildir's directories, open during a delivery. */
struct md_dirs {
	int		 dfd;
	int		 tmpfd;
	int		 newfd;
	int		 curfd;
};

/* An I/O error in the maildir, with its RFC 3463 code. */
static int
md_io_fail(int errnum, const char *what, const char *path, char *err,
    size_t errsz)
{
	return mda_io_fail(errnum, "maildir", what, path, err, errsz);
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
		return mda_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 maildir %s is a symlink", path);
	else if (!S_ISDIR(st.st_mode))
		return mda_fail(DLV_PERMFAIL, err, errsz,
		    "5.2.0 maildir %s is not a directory", path);
	if ((*dfd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		if (errno == ELOOP)
			return mda_fail(DLV_PERMFAIL, err, errsz,
			    "5.2.0 maildir %s is a symlink", path);
		if (errno == ENOTDIR)
			return mda_fail(DLV_PERMFAIL, err, errsz,
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
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.0 cannot create %s/%s: %s", path, name,
		    strerror(errno));
	if ((fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		if (errno == ELOOP || errno == ENOTDIR)
			return mda_fail(DLV_PERMFAIL, err, errsz,
			    "5.2.0 %s/%s is not a directory", path, name);
		return mda_fail(DLV_TEMPFAIL, err, errsz,
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
 * "_Qmsgid.", what names this message's files.  The message id comes from
 * a worker: only its alphanumerics are used.
 */
static void
md_msgid_tag(const struct mda_request *req, char *tag, size_t tagsz)
{
	char	 msgid[MSGID_SIZE];
	size_t	 i, j;

	for (i = j = 0; i < sizeof(req->msgid) - 1 &&
	    req->msgid[i] != '\0'; i++)
		if (isalnum((unsigned char)req->msgid[i]))
			msgid[j++] = req->msgid[i];
	msgid[j] = '\0';
	snprintf(tag, tagsz, "_Q%s.", msgid);
}

/*
 * TIME.MusecPpid_Qmsgid.HOST: unique because one process makes one delivery
 * and pids are not reused within a microsecond.  '/' and ':' in the host
 * name are written \057 and \072, as the spec says.
 */
static int
md_unique_name(const struct mda_request *req, char *name, size_t namesz)
{
	char		 host[MD_HOST_MAX], ehost[MD_HOST_MAX * 4 + 1];
	char		 tag[MSGID_SIZE + 4];
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
	md_msgid_tag(req, tag, sizeof(tag));
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return -1;
	n = snprintf(name, namesz, "%lld.M%06ldP%ld%s%s",
	    (long long)ts.tv_sec, ts.tv_nsec / 1000, (long)getpid(), tag,
	    ehost);
	if (n < 0 || (size_t)n >= namesz) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* Writes the message to fd (in tmp/) and fsyncs it. */
static int
md_write(int fd, const struct mda_request *req, const char *tmppath,
    char *err, size_t errsz)
{
	struct mda_out	*o;
	int		 rerr, status = DLV_OK;

	/* In the child only, which exits soon: the buffer is 64 KiB. */
	if ((o = calloc(1, sizeof(*o))) == NULL)
		return md_io_fail(errno, "no memory for", tmppath, err, errsz);
	o->fd = fd;
	mda_out_envelope(o, req->sender, req->dlv.rcpt);
	rerr = mda_out_message(o, req->msgfd, NULL, NULL);
	mda_out_flush(o);
	if (rerr != 0)
		status = mda_fail(DLV_TEMPFAIL, err, errsz,
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

/* 1 if the file name in dirfd begins with the header line dlvto. */
static int
md_file_is_for(int dirfd, const char *name, const char *dlvto)
{
	char		 buf[MD_HEAD_MAX];
	struct stat	 st;
	ssize_t		 n = -1;
	int		 fd;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	if (fd == -1)
		return 0;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
		n = mda_pread_full(fd, buf, sizeof(buf), 0);
	close(fd);
	return n > 0 && memmem(buf, mda_head_len(buf, (size_t)n), dlvto,
	    strlen(dlvto)) != NULL;
}

/*
 * 1 if the directory fd (new/ or cur/) holds a file of this
 * message for this recipient; 0 if not, -1 (errno) if it cannot be read.
 */
static int
md_find(int fd, const char *tag, const char *dlvto)
{
	DIR		*d;
	struct dirent	*de;
	int		 dfd, found = 0;

	/* An fd of its own: readdir moves the offset, closedir closes. */
	if ((dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if ((d = fdopendir(dfd)) == NULL) {
		close(dfd);
		return -1;
	}
	errno = 0;
	while (!found && (de = readdir(d)) != NULL)
		found = strstr(de->d_name, tag) != NULL &&
		    md_file_is_for(fd, de->d_name, dlvto);
	if (!found && errno != 0)
		found = -1;
	closedir(d);
	return found;
}

/*
 * *done if the marker says an earlier attempt got as far as the link into
 * new/ and the file it linked is there (in new/, or cur/ once read).
 */
static int
md_recover(const struct mda_request *req, const struct mda_marker *m,
    const struct md_dirs *md, const char *path, int *done, char *err,
    size_t errsz)
{
	char	 prev[MDA_MARKER_MAX], tag[MSGID_SIZE + 4];
	char	 dlvto[ADDR_MAX + 24];
	int	 rv;

	*done = 0;
	if (mda_marker_read(m, prev, sizeof(prev)) == -1)
		return mda_io_fail(errno, "delivery marker",
		    "cannot read delivery marker", req->marker, err, errsz);
	md_msgid_tag(req, tag, sizeof(tag));
	if (strcmp(prev, "maildir\n") != 0 || strcmp(tag, "_Q.") == 0)
		return DLV_OK;
	mda_dlvto_line(dlvto, sizeof(dlvto), req->dlv.rcpt);
	if ((rv = md_find(md->newfd, tag, dlvto)) == 0)
		rv = md_find(md->curfd, tag, dlvto);
	if (rv == -1)
		return md_io_fail(errno, "cannot read", path, err, errsz);
	*done = rv;
	return DLV_OK;
}

/* Opens the maildir and its tmp, new and cur, creating what is missing. */
static int
md_open_all(const char *path, struct md_dirs *md, char *err, size_t errsz)
{
	int	 created = 0, status;

	if ((status = md_open(path, &md->dfd, err, errsz)) != DLV_OK)
		return status;
	if ((status = md_subdir(md->dfd, path, "tmp", &md->tmpfd, &created,
	    err, errsz)) != DLV_OK ||
	    (status = md_subdir(md->dfd, path, "new", &md->newfd, &created,
	    err, errsz)) != DLV_OK ||
	    (status = md_subdir(md->dfd, path, "cur", &md->curfd, &created,
	    err, errsz)) != DLV_OK)
		return status;
	if (created && fsync(md->dfd) == -1)
		return md_io_fail(errno, "cannot sync maildir", path, err,
		    errsz);
	return DLV_OK;
}

static void
md_close_all(struct md_dirs *md)
{
	if (md->curfd != -1)
		close(md->curfd);
	if (md->newfd != -1)
		close(md->newfd);
	if (md->tmpfd != -1)
		close(md->tmpfd);
	if (md->dfd != -1)
		close(md->dfd);
}

/*
 * Writes the message into tmp/, says so in the marker and links it into
 * new/, durably.
 */
static int
md_store(const struct mda_request *req, const struct mda_marker *m,
    const struct md_dirs *md, const char *path, char *err, size_t errsz)
{
	char	 name[NAME_MAX + 1];
	char	 tmppath[PATH_MAX + NAME_MAX + 8];	/* for errors */
	int	 fd, status;

	if (md_unique_name(req, name, sizeof(name)) == -1)
		return md_io_fail(errno, "cannot name a file in", path, err,
		    errsz);
	snprintf(tmppath, sizeof(tmppath), "%s/tmp/%s", path, name);
	if ((fd = openat(md->tmpfd, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_NOFOLLOW | O_CLOEXEC, 0600)) == -1)
		return md_io_fail(errno, "cannot create", tmppath, err, errsz);
	status = md_write(fd, req, tmppath, err, errsz);
	if (close(fd) == -1 && status == DLV_OK)
		status = md_io_fail(errno, "cannot write", tmppath, err,
		    errsz);
	if (status == DLV_OK && mda_marker_write(m, "maildir\n") == -1)
		status = mda_io_fail(errno, "delivery marker",
		    "cannot write delivery marker", req->marker, err, errsz);
	if (status == DLV_OK && md_move(md->tmpfd, md->newfd, name) == -1)
		status = md_io_fail(errno, "cannot move into new/", tmppath,
		    err, errsz);
	if (status != DLV_OK) {
		if (unlinkat(md->tmpfd, name, 0) == -1 && errno != ENOENT)
			log_warn("maildir: cannot remove %s", tmppath);
		return status;
	}
	if (fsync(md->newfd) == -1) {
		status = md_io_fail(errno, "cannot sync new/ of", path, err,
		    errsz);
		/* Not known to be durable: take it back, it will be retried. */
		if (unlinkat(md->newfd, name, 0) == -1)
			log_warn("maildir: cannot remove %s/new/%s", path,
			    name);
	}
	return status;
}

/* The whole delivery, in the child, as the user. */
static int
md_deliver(const struct mda_request *req, void *arg, char *err, size_t errsz)
{
	const struct mda_marker	*m = arg;
	struct md_dirs		 md = { -1, -1, -1, -1 };
	char			 path[PATH_MAX];
	size_t			 len;
	int			 done, status;

	/* No trailing '/': lstat would follow a symlink through it. */
	if (req->path[0] != '/' ||
	    strlcpy(path, req->path, sizeof(path)) >= sizeof(path))
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 bad maildir path \"%s\"", req->path);
	for (len = strlen(path); len > 1 && path[len - 1] == '/'; len--)
		path[len - 1] = '\0';

	if ((status = md_open_all(path, &md, err, errsz)) == DLV_OK &&
	    (status = md_recover(req, m, &md, path, &done, err, errsz)) ==
	    DLV_OK) {
		if (!done)
			status = md_store(req, m, &md, path, err, errsz);
		else {
			log_info("maildir: %s: already delivered to %s",
			    req->msgid, path);
			status = mda_fail(DLV_OK, err, errsz, "2.0.0 already "
			    "delivered (recovered after a crash)");
		}
	}
	md_close_all(&md);
	return status;
}

int
mda_maildir(const struct mda_request *req, char *err, size_t errsz)
{
	struct mda_marker	 m;
	int			 keep[2], status;

	if (errsz > 0)
		err[0] = '\0';
	if (req->uid == (uid_t)-1 || req->gid == (gid_t)-1)
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 no account for maildir %s", req->path);
	if ((status = mda_marker_open(req, &m, err, errsz)) != DLV_OK)
		return status;
	keep[0] = m.fd;
	keep[1] = m.dirfd;
	status = mda_child_run(req, keep, 2, md_deliver, &m, err, errsz);
	mda_marker_close(&m);
	return status;
}
