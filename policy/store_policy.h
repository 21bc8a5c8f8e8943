/*
 * The policy process's side of the MongoDB store: remote tables
 * (`table NAME mongo:COLLECTION`) and the quota check at RCPT time.
 */
#ifndef MTAD_STORE_POLICY_H
#define MTAD_STORE_POLICY_H

#include <stddef.h>

#include "config.h"

/*
 * Before the chroot: one client for conf->store_uri (no connection is
 * made yet).  0 when there is no store or it is ready, -1 on a bad URI
 * or a remote table without a store.
 */
int	policy_store_init(const struct config *);
/* The table_remote_fn for table_set_remote(). */
int	store_table_lookup(struct table *, const char *key, char *value,
	    size_t valuesz);
/*
 * Is the mailbox at or over its quota: 1 full (usage >= quota, quota
 * > 0), 0 not (or no such mailbox yet), -1 cannot tell (no store, the
 * database failed).
 */
int	store_mailbox_full(const char *mailbox);

#endif
