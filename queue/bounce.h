/*
 * Notifications the queue generates (RFC 3464 DSNs): failures, delays and,
 * when asked, successes.  A DSN is written with dsn_write() into a new
 * message, its recipient (the original sender, or the postmaster for a bounce
 * that bounced) is resolved by policy like any recipient, and it is committed
 * through the same group sync as received mail.  Only then are the
 * recipients it reports marked as reported, so a crash can repeat a DSN but
 * never lose one.
 */
#ifndef MTAD_BOUNCE_H
#define MTAD_BOUNCE_H

#include <stddef.h>
#include <stdint.h>

#include "dsn.h"
#include "queue.h"

struct channel;
struct config;
struct event_base;
struct imsg;

void	bounce_init(struct event_base *, struct config *);
void	bounce_set_policy(struct channel *);	/* NULL when it went away */
void	bounce_policy_reply(struct channel *, struct imsg *);
/*
 * Reports `kind` for recipients idx[0..n) of m.  When the DSN is committed
 * (or found unnecessary) scheduler_reported(msgid, kind, idx, n) is called.
 * Returns -1 if nothing could be started now (try again later).
 */
int	bounce_report(struct qmsg *, enum dsn_kind, const uint32_t *idx,
	    size_t n);

/* queue.c: stage a message the queue made itself; done(ok) after sync. */
int	queue_commit_local(struct qmsg *, void (*done)(void *, int), void *);
/* scheduler.c: the outcome of a report. */
void	scheduler_reported(const char *msgid, enum dsn_kind, const uint32_t *,
	    size_t, int ok);

#endif
