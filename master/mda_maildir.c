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

#include <sys/stat.h>
#include <sys/types.h>

#include <ctype.h>
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
	mda_out_puts(o, "Return-Path: <");
	mda_out_addr(o, req->sender, 0);
	mda_out_puts(o, ">\nDelivered-To: ");
	mda_out_addr(o, req->dlv.rcpt, 0);
	mda_out_putc(o, '\n');
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

/* The whole delivery, in the child, as the user. */
static int
md_deliver(const struct mda_request *req, void *arg, char *err, size_t errsz)
{
	char		 path[PATH_MAX], name[NAME_MAX + 1];
	char		 tmppath[PATH_MAX + NAME_MAX + 8];	/* for errors */
	size_t		 len;
	int		 dfd = -1, tmpfd = -1, newfd = -1, fd = -1;
	int		 created = 0, status;

	/* No trailing '/': lstat would follow a symlink through it. */
	if (req->path[0] != '/' ||
	    strlcpy(path, req->path, sizeof(path)) >= sizeof(path))
		return mda_fail(DLV_TEMPFAIL, err, errsz,
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

int
mda_maildir(const struct mda_request *req, char *err, size_t errsz)
{
	if (errsz > 0)
		err[0] = '\0';
	if (req->uid == (uid_t)-1 || req->gid == (gid_t)-1)
		return mda_fail(DLV_TEMPFAIL, err, errsz,
		    "4.3.5 no account for maildir %s", req->path);
	return mda_child_run(req, -1, md_deliver, NULL, err, errsz);
}
