/*
 * Local delivery helpers (internal to mda_mbox.c and mda_maildir.c): running
 * a piece of delivery work in a child that has dropped to the recipient's
 * user, relaying its status and reason, and making that reason; the
 * delivery intent marker the helper opens for that child.
 */
#ifndef MTAD_MDA_CHILD_H
#define MTAD_MDA_CHILD_H

#include <stddef.h>

#include "mda.h"

/*
 * A piece of delivery work, run as the user: returns an enum dlv_status and,
 * on failure, a one-line reason in err.
 */
typedef int	(*mda_work_fn)(const struct mda_request *, void *arg,
		    char *err, size_t errsz);

#define MDA_CHILD_KEEP_MAX	4

/*
 * Forks a child that keeps only stdio, req->msgfd, the nkeep descriptors in
 * keep (at most MDA_CHILD_KEEP_MAX; -1 entries are ignored) and a result
 * pipe, drops to req->uid and req->gid and runs work; waits for it and
 * returns its status and reason.  A child that could not be started, died
 * or said nothing valid is a temporary failure.
 */
int	mda_child_run(const struct mda_request *req, const int *keep,
	    size_t nkeep, mda_work_fn work, void *arg, char *err,
	    size_t errsz);

/* pread of len bytes at off, fewer only at end of file; -1 on error. */
ssize_t	mda_pread_full(int fd, void *buf, size_t len, off_t off);

/*
 * Splits an absolute path into its directory (as given, "/" for the root)
 * and its last name, which must not be empty, "." or "..": 0, or -1.
 */
int	mda_split_path(const char *path, char *dir, size_t dirsz, char *base,
	    size_t basesz);

/*
 * The delivery intent marker (req->marker, see mda.h).  The helper opens it
 * and its directory as root and hands both descriptors to the user's
 * child, who cannot open them by name; fd -1 when there is none.
 */
struct mda_marker {
	int		 fd;
	int		 dirfd;
};

#define MDA_MARKER_MAX	128	/* the longest text a marker holds, + NUL */

/* Opens (creating it) the marker of req, if any. */
int	mda_marker_open(const struct mda_request *, struct mda_marker *,
	    char *err, size_t errsz);
void	mda_marker_close(struct mda_marker *);
/*
 * The marker's text in buf ("" when there is no marker, it is empty or its
 * text is too long to be one of ours); -1 on a read error.
 */
int	mda_marker_read(const struct mda_marker *, char *buf, size_t bufsz);
/* Replaces the marker's text, durably (file and directory): 0 or -1. */
int	mda_marker_write(const struct mda_marker *, const char *text);

/* Formats the reason into err and returns status. */
int	mda_fail(int status, char *err, size_t errsz, const char *fmt, ...)
	    __attribute__((format(printf, 4, 5)));

/*
 * The reason for an I/O error on path, with its RFC 3463 code (all
 * temporary); box names what path is ("mailbox", "maildir") in the
 * quota message.
 */
int	mda_io_fail(int errnum, const char *box, const char *what,
	    const char *path, char *err, size_t errsz);

#endif
