/*
 * Named counters, kept per process and summed by the master for
 * `mtactl show stats`.  Names are dotted: "smtp.session", "queue.commit".
 */
#ifndef MTAD_STATS_H
#define MTAD_STATS_H

#include <stdint.h>

#include "marshal.h"

#define STATS_MAX	128

void	stat_increment(const char *name, int64_t delta);
void	stat_decrement(const char *name, int64_t delta);
void	stat_set(const char *name, int64_t value);
int64_t	stat_get(const char *name);
/* Forget every counter: a forked child must not report its parent's. */
void	stat_reset(void);
/* u32 n, then n x (str name, u64 value): the IMSG_STATS_REP payload. */
void	stat_marshal(struct mbuf *);

#endif
