/*
 * The on-disk envelope of the fs spool: a small text file, one field a line,
 * values escaped with field_escape(), starting with "version 1".
 */
#ifndef MTAD_ENVELOPE_FILE_H
#define MTAD_ENVELOPE_FILE_H

#include <stddef.h>

#include "queue.h"

#define ENVELOPE_VERSION	1
#define ENVELOPE_MAX		(4 * 1024 * 1024)	/* refuse larger files */

/* Serializes into a malloc'ed buffer; NULL on memory exhaustion. */
char	*envelope_serialize(const struct qmsg *, size_t *lenp);
/*
 * Parses a buffer; NULL on any error, with "line N: what" in err.  The
 * recipients' in-memory state RS_INFLIGHT never appears on disk.
 */
struct qmsg *envelope_parse(const char *buf, size_t len, char *err, size_t errsz);

#endif
