/*
 * Tables: named sets or key/value maps, inline `{ a, b }` or loaded from a
 * file.  A file table is one entry a line: `key value...` or `key: value...`
 * (the /etc/aliases format: continuation lines start with white space,
 * comments with #); a line with a key only makes a list entry.  Keys are
 * compared case-insensitively.  Lookups are by sorted array + bsearch.
 */
#ifndef MTAD_TABLE_H
#define MTAD_TABLE_H

#include <sys/queue.h>
#include <stddef.h>

#define TABLE_NAME_MAX	64

struct table_entry {
	char	*key;		/* lowercased */
	char	*value;		/* NULL for a list entry */
};

#define TABLE_VALUE_MAX	4096	/* a value fetched from a remote table */

/*
 * A remote table (`table NAME mongo:COLLECTION`) holds no entries: each
 * lookup asks the process's remote backend, which only the processes that
 * need it install (policy).  Elsewhere such a table finds nothing.
 */
struct table {
	TAILQ_ENTRY(table)	 entry;
	char			 name[TABLE_NAME_MAX];
	char			 path[1024];	/* "" for inline tables */
	char			 remote[256];	/* "" or the collection name */
	struct table_entry	*entries;
	size_t			 n, cap;
	int			 sorted;
	struct table_entry	 fetched;	/* the last remote result */
	char			 fetched_key[512];
	char			 fetched_value[TABLE_VALUE_MAX];
};

/*
 * The remote backend: 1 and the value ("" for a list entry) when the key is
 * there, 0 when it is not, -1 when the lookup failed (then table_errors is
 * incremented and the lookup finds nothing: callers that must tell "no"
 * from "cannot say now" compare table_errors before and after).
 */
typedef int (*table_remote_fn)(struct table *, const char *key, char *value,
    size_t valuesz);
void		 table_set_remote(table_remote_fn);
extern unsigned long table_errors;

/*
 * Reports a problem found while loading a table file: `file:line: what`.
 * The callback may be NULL (problems then go to log_warnx).
 */
typedef void (*table_errfn)(void *arg, const char *file, int line,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

struct table	*table_new(const char *name);
void		 table_free(struct table *);
/* Adds an entry; value NULL for a list entry.  -1 on memory exhaustion. */
int		 table_add(struct table *, const char *key, const char *value);
/* Loads `path` into the table; returns the number of errors reported. */
int		 table_load_file(struct table *, const char *path,
		    table_errfn, void *arg);
/* Sorts; call once after filling (table_lookup does it lazily too). */
void		 table_finish(struct table *);

/* The entry for key, or NULL. */
const struct table_entry *table_lookup(struct table *, const char *key);
int		 table_contains(struct table *, const char *key);
/*
 * Does the table hold this domain?  Exact match, or an entry "*.example.org"
 * matching any subdomain of example.org, or ".example.org" likewise.
 */
int		 table_match_domain(struct table *, const char *domain);
/* Does the table hold this IP address as text, or a CIDR block covering it? */
int		 table_match_addr(struct table *, const char *ip);

#endif
