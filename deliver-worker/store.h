/*
 * The MongoDB mail store, written by the deliver-worker (store.c, with the
 * MIME side in store_mime.c).  One document in `messages` per delivered
 * recipient, `_id` derived from the queue id and the mailbox so that a
 * delivery repeated after a crash finds its own document instead of filing
 * a second copy.  The schema is in doc/store.md.
 */
#ifndef MTAD_STORE_H
#define MTAD_STORE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "envelope.h"

/* The message and its envelope, as the queue handed them over. */
struct store_msg {
	const char	*msgid;		/* queue id */
	const char	*sender;	/* "" for <> */
	const char	*helo;
	const char	*client_addr;
	const char	*auth_user;	/* "" if none */
	const char	*proto;		/* "ESMTPS", "ESMTPSA", ... (TLS if S) */
	time_t		 received;	/* when the queue accepted it */
	int		 fd;		/* O_RDONLY, read with pread */
};

/*
 * Before the chroot: a client pool for conf->store_uri (no connection is
 * made yet).  0 when there is no store or it is ready, -1 on a bad URI.
 */
int	store_init(const struct config *);
/*
 * Files the message into the mailboxes dlvs[i]->rcpt (all DLV_MONGO).
 * Synchronous, bounded by the URI's timeouts.  status[i] is DLV_OK,
 * DLV_TEMPFAIL (database unreachable, slow, quota re-check says full...)
 * or DLV_PERMFAIL, with an enhanced status code and text in text[i]
 * ("2.0.0 stored as uid 42", "4.2.2 mailbox full", "4.4.1 store
 * unreachable: ...").
 */
void	store_deliver(const struct store_msg *, const struct dlv *const *dlvs,
	    size_t n, uint32_t *status, char (*text)[TEXT_MAX]);

#endif
