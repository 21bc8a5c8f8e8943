/*
 * Local delivery helpers (internal to mda_mbox.c and mda_maildir.c): running
 * a piece of delivery work in a child that has dropped to the recipient's
 * user, relaying its status and reason, and making that reason.
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

/*
 * Forks a child that keeps only stdio, req->msgfd, keepfd (-1 for none) and
 * a result pipe, drops to req->uid and req->gid and runs work; waits for it
 * and returns its status and reason.  A child that could not be started,
 * died or said nothing valid is a temporary failure.
 */
int	mda_child_run(const struct mda_request *req, int keepfd,
	    mda_work_fn work, void *arg, char *err, size_t errsz);

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
