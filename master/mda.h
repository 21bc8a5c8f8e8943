/*
 * Local delivery (mbox, maildir).  The master forks one helper per delivery
 * (mda.c); the helper calls one of these functions, still as root, and they
 * do the privileged steps (the mailbox spool directory is root:mail 2775 on
 * Debian) and write the message as the recipient's user.
 */
#ifndef MTAD_MDA_H
#define MTAD_MDA_H

#include <sys/types.h>
#include <limits.h>

#include "envelope.h"

struct mda_request {
	char		msgid[MSGID_SIZE];
	char		sender[ADDR_MAX];	/* "" for <> */
	struct dlv	dlv;			/* rcpt, orig, user */
	char		path[DEST_MAX];		/* resolved by the master */
	uid_t		uid;
	gid_t		gid;
	char		home[PATH_MAX];
	int		msgfd;			/* the spooled message, CRLF line ends,
						   read with pread from offset 0 */
	/*
	 * Intent marker, "" for none: <spool>/queue/<msgid>.mda.<index>,
	 * written durably before the mailbox is touched, so that a delivery
	 * repeated after a crash finds what the first one did (exactly once).
	 */
	char		marker[PATH_MAX];
};

/*
 * Each returns an enum dlv_status and, on failure, a one-line reason in err
 * (e.g. "4.2.0 mailbox /var/mail/bob is locked", "5.2.0 ... is a symlink").
 * A failed delivery leaves the mailbox as it was.
 */
int	mda_mbox(const struct mda_request *, char *err, size_t errsz);
int	mda_maildir(const struct mda_request *, char *err, size_t errsz);

/*
 * How long mda_mbox() waits for a lock, in ms (10 s).  Exists for the unit
 * tests, which shorten it; nothing else sets it.
 */
extern unsigned int	mda_mbox_lock_wait_ms;

/* master side (mda.c): start a delivery, result reported to deliver-worker. */
struct config;
struct channel;
void	mda_start(struct config *, struct channel *from, uint32_t reqid,
	    const char *msgid, uint32_t index, const char *sender,
	    const struct dlv *, int fd);
/* Called on SIGCHLD for a pid that is not a worker: 1 if it was an mda helper. */
int	mda_reap(pid_t, int status);

#endif
