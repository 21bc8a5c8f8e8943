/*
 * What the two MongoDB clients (the store writer in the deliver-worker,
 * tables and quotas in policy) set up the same way.
 */
#ifndef MTAD_MONGO_UTIL_H
#define MTAD_MONGO_UTIL_H

#include <stdint.h>

#include <mongoc/mongoc.h>

/* libmongoc's own messages go to mtad's log: warnings and worse as such,
 * the rest as debug lines. */
void	mongo_log_to_syslog(void);
/* Sets an integer URI option (a timeout) unless the URI gives one. */
void	mongo_uri_default(mongoc_uri_t *, const char *opt, int32_t value);

#endif
