/*
 * A delivery: one final recipient and how to deliver to it, decided by
 * policy at RCPT time (after alias expansion) and carried unchanged through
 * commit, queue and deliver-worker.
 */
#ifndef MTAD_ENVELOPE_H
#define MTAD_ENVELOPE_H

#include <stdint.h>

#include "marshal.h"

#define ADDR_MAX	512	/* an address as text, NUL included */
#define USER_MAX	64
#define ACTION_MAX	64
#define DEST_MAX	1024
#define MSGID_SIZE	17	/* 16 hex digits + NUL */
#define HELO_MAX	256
#define TEXT_MAX	512	/* a reply or error text */

enum dlv_kind {
	DLV_NONE = 0,
	DLV_MBOX,		/* local mailbox file, delivered by the master */
	DLV_MAILDIR,		/* local maildir, delivered by the master */
	DLV_RELAY,		/* remote SMTP by the deliver-worker: rcpt is
				   the final address, action names the relay
				   action in the worker's configuration */
	DLV_MONGO,		/* the MongoDB store, by the deliver-worker:
				   rcpt is the mailbox */
	DLV_KIND_MAX
};

enum dlv_status {
	DLV_OK = 0,
	DLV_TEMPFAIL,		/* try again later */
	DLV_PERMFAIL		/* give up: bounce */
};

/* RFC 3461 NOTIFY, per recipient; 0 when the client gave none. */
#define DSN_NOTIFY_NEVER	0x1
#define DSN_NOTIFY_SUCCESS	0x2
#define DSN_NOTIFY_FAILURE	0x4
#define DSN_NOTIFY_DELAY	0x8
#define ORCPT_MAX		600	/* "rfc822;" + an address, decoded */
/* RFC 3461 RET, per message. */
#define DSN_RET_NONE		0	/* not given */
#define DSN_RET_FULL		1
#define DSN_RET_HDRS		2

struct dlv {
	uint32_t	kind;			/* enum dlv_kind */
	uint32_t	notify;			/* DSN_NOTIFY_* bits, or 0 */
	char		orcpt[ORCPT_MAX];	/* RFC 3461 ORCPT, "" if none */
	char		action[ACTION_MAX];	/* the action that decided it */
	char		user[USER_MAX];		/* local account, for local kinds */
	char		dest[DEST_MAX];		/* mailbox path (for display) */
	char		rcpt[ADDR_MAX];		/* final address */
	char		orig[ADDR_MAX];		/* address as the client gave it */
};

const char	*dlv_kind_name(uint32_t);
const char	*dlv_status_name(uint32_t);
void		 dlv_add(struct mbuf *, const struct dlv *);
/* Reads and validates (known kind, non-empty rcpt); latches r->err if bad. */
void		 dlv_get(struct mreader *, struct dlv *);

#endif
