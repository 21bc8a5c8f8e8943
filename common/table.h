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

struct table {
	TAILQ_ENTRY(table)	 entry;
	char			 name[TABLE_NAME_MAX];
	char			 path[1024];	/* "" for inline tables */
	struct table_entry	*entries;
	size_t			 n, cap;
	int			 sorted;
};

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
