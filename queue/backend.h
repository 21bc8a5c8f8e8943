/*
 * The queue storage interface.  The queue process talks to its storage only
 * through this vtable, so that a MongoDB-backed queue shared by several nodes
 * can replace the file spool later.
 *
 * Durability contract: commit_stage() may leave a message non-durable; after
 * sync() returns 0 every message staged before it is durable (survives a
 * crash or power loss), and only then may the client hear 250.  Updates and
 * deletions are durable when they return.
 */
#ifndef MTAD_QUEUE_BACKEND_H
#define MTAD_QUEUE_BACKEND_H

#include "queue.h"

struct queue_backend {
	const char	*name;
	/* After chroot: the spool root is "/" (or a test directory). */
	int	(*init)(const char *root);
	/* New incoming message: fills msgid, returns a writable fd or -1. */
	int	(*message_create)(char msgid[MSGID_SIZE]);
	/* Drops an incoming message that will not be committed. */
	int	(*message_abort)(const char *msgid);
	/* Writes the envelope and moves message + envelope into the queue. */
	int	(*commit_stage)(const struct qmsg *);
	/* Makes everything staged so far durable. */
	int	(*sync)(void);
	/* Rewrites a committed envelope (attempt counts, states) durably. */
	int	(*envelope_update)(const struct qmsg *);
	/* Removes message, envelope and delivery markers (ID.mda.0..n-1). */
	int	(*message_delete)(const char *msgid, uint32_t nrcpts);
	/* Read-only fd of a committed message, or -1. */
	int	(*message_fd)(const char *msgid);
	/*
	 * Calls cb for every committed message, after moving anything that
	 * fails to parse to corrupt/ (with a log line) and removing leftovers
	 * of interrupted receptions from incoming/.  cb takes ownership of the
	 * qmsg.  Returns the number loaded, or -1.
	 */
	int	(*load)(void (*cb)(struct qmsg *, void *), void *arg);
};

extern const struct queue_backend queue_backend_fs;
/* Tests: take the fsync path as if syncfs(2) were missing. */
void	queue_fs_test_nosyncfs(int);

#endif
