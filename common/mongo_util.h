/*
 * What the two MongoDB clients (the store writer in the deliver-worker,
 * tables and quotas in policy) set up the same way.
 */
#ifndef MTAD_MONGO_UTIL_H
#define MTAD_MONGO_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#define MONGO_DB_DEFAULT	"mtad"	/* when the URI names no database */

/*
 * Initialises libmongoc (before the chroot: TLS and SASL read files),
 * sends its messages to mtad's log and parses `text`.  The timeouts, in
 * milliseconds, apply where the URI sets none.  The database's name, or
 * MONGO_DB_DEFAULT, goes to dbname.  NULL, logged, on a bad URI.
 */
mongoc_uri_t	*mongo_uri_open(const char *text, int32_t select_ms,
		    int32_t connect_ms, int32_t socket_ms, char *dbname,
		    size_t dbnamesz);

#endif
