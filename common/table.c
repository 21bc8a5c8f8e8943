#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "table.h"

/*
 * Bounds for file tables: one physical line, one logical entry (a line and
 * its continuation lines), a key, entries per file.  /etc/aliases of a large
 * site stays far below these; a runaway file is refused instead of eating
 * memory.
 */
#define TABLE_LINE_MAX		8192
#define TABLE_ENTRY_MAX		65536
#define TABLE_KEY_MAX		512
#define TABLE_ENTRIES_MAX	1000000

struct table_load {
	struct table	*t;
	const char	*path;
	table_errfn	 errfn;
	void		*arg;
	int		 errors;
	char		*entry;		/* logical line being assembled */
	size_t		 len;
	size_t		 cap;
	int		 lineno;	/* where the entry started */
	int		 toolong;	/* entry overflowed: drop it */
	size_t		 first;		/* entries before this were there already */
	int		*lines;		/* line of each new entry */
	size_t		 linescap;
};

/* An entry and where it came from, to sort duplicates deterministically. */
struct table_sortent {
	struct table_entry	 e;
	size_t			 order;
	int			 line;
};

static int	lower_copy(const char *, char *, size_t);
static int	entry_cmp(const void *, const void *);
static int	sortent_cmp(const void *, const void *);
static int	addr_parse(const char *, uint8_t[16], int *);
static int	net_parse(const char *, uint8_t[16], int *);
static int	addr_or_net(const char *);
static int	cidr_covers(const char *, const uint8_t[16]);
static void	load_error(struct table_load *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static int	load_append(struct table_load *, const char *, size_t);
static int	load_flush(struct table_load *);
static int	load_line(struct table_load *, char *, int);
static int	load_sort(struct table_load *);
static int	read_line(FILE *, char *, size_t, int *);

struct table *
table_new(const char *name)
{
	struct table	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if (strlcpy(t->name, name, sizeof(t->name)) >= sizeof(t->name)) {
		free(t);
		errno = ENAMETOOLONG;
		return NULL;
	}
	t->sorted = 1;
	return t;
}

void
table_free(struct table *t)
{
	size_t	i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++) {
		free(t->entries[i].key);
		free(t->entries[i].value);
	}
	free(t->entries);
	free(t);
}

int
table_add(struct table *t, const char *key, const char *value)
{
	struct table_entry	*e;
	size_t			 ncap;
	char			*k, *v = NULL;

	if (t->n == t->cap) {
		ncap = t->cap ? t->cap * 2 : 16;
		e = reallocarray(t->entries, ncap, sizeof(*e));
		if (e == NULL)
			return -1;
		t->entries = e;
		t->cap = ncap;
	}
	if ((k = strdup(key)) == NULL)
		return -1;
	if (value != NULL && (v = strdup(value)) == NULL) {
		free(k);
		return -1;
	}
	for (char *p = k; *p != '\0'; p++)
		*p = (char)tolower((unsigned char)*p);
	t->entries[t->n].key = k;
	t->entries[t->n].value = v;
	t->n++;
	t->sorted = 0;
	return 0;
}

static int
entry_cmp(const void *a, const void *b)
{
	const struct table_entry *ea = a, *eb = b;

	return strcmp(ea->key, eb->key);
}

/*
 * qsort is not stable, so with duplicate keys which one bsearch finds would
 * be unspecified: table_load_file() drops duplicates, and the parser refuses
 * them in inline tables, so a sorted table has unique keys.
 */
void
table_finish(struct table *t)
{
	if (t->sorted)
		return;
	if (t->n > 1)
		qsort(t->entries, t->n, sizeof(*t->entries), entry_cmp);
	t->sorted = 1;
}

/* Lowercased copy; -1 if it does not fit (then no key can equal it). */
static int
lower_copy(const char *s, char *out, size_t outsz)
{
	size_t	i;

	for (i = 0; s[i] != '\0'; i++) {
		if (i + 1 >= outsz)
			return -1;
		out[i] = (char)tolower((unsigned char)s[i]);
	}
	out[i] = '\0';
	return 0;
}

unsigned long		 table_errors;
static table_remote_fn	 remote_lookup;

void
table_set_remote(table_remote_fn fn)
{
	remote_lookup = fn;
}

static const struct table_entry *
remote_get(struct table *t, const char *key)
{
	int	r;

	if (remote_lookup == NULL)
		return NULL;
	(void)strlcpy(t->fetched_key, key, sizeof(t->fetched_key));
	t->fetched_value[0] = '\0';
	r = remote_lookup(t, t->fetched_key, t->fetched_value,
	    sizeof(t->fetched_value));
	if (r == -1)
		table_errors++;
	if (r != 1)
		return NULL;
	t->fetched.key = t->fetched_key;
	t->fetched.value = t->fetched_value[0] != '\0' ? t->fetched_value :
	    NULL;
	return &t->fetched;
}

/*
 * For a remote table the entry stays valid until the next lookup in the
 * same table.
 */
const struct table_entry *
table_lookup(struct table *t, const char *key)
{
	struct table_entry	 k;
	char			 buf[TABLE_KEY_MAX];

	if (t == NULL || key == NULL)
		return NULL;
	if (lower_copy(key, buf, sizeof(buf)) == -1)
		return NULL;
	if (t->remote[0] != '\0')
		return remote_get(t, buf);
	if (t->n == 0)
		return NULL;
	table_finish(t);
	k.key = buf;
	k.value = NULL;
	return bsearch(&k, t->entries, t->n, sizeof(*t->entries), entry_cmp);
}

int
table_contains(struct table *t, const char *key)
{
	return table_lookup(t, key) != NULL;
}

int
table_match_domain(struct table *t, const char *domain)
{
	char		 buf[TABLE_KEY_MAX];
	const char	*p;

	if (t == NULL || domain == NULL || *domain == '\0')
		return 0;
	if (table_contains(t, domain))
		return 1;
	/* Each parent of "a.b.example.org": ".b.example.org", ... */
	for (p = strchr(domain, '.'); p != NULL; p = strchr(p + 1, '.')) {
		if (p == domain || p[1] == '\0')
			continue;
		if (table_contains(t, p))
			return 1;
		if (snprintf(buf, sizeof(buf), "*%s", p) >= (int)sizeof(buf))
			return 0;
		if (table_contains(t, buf))
			return 1;
	}
	return 0;
}

/*
 * An IP address as 16 bytes, IPv4 as IPv4-mapped IPv6, so that a v4 client
 * seen on a dual-stack socket ("::ffff:10.1.2.3") matches "10.1.2.3" and
 * "10.0.0.0/8".  *bits: 32 or 128, the length the prefix refers to.
 */
static int
addr_parse(const char *s, uint8_t out[16], int *bits)
{
	struct in_addr	 in4;
	struct in6_addr	 in6;

	if (inet_pton(AF_INET, s, &in4) == 1) {
		memset(out, 0, 10);
		out[10] = 0xff;
		out[11] = 0xff;
		memcpy(out + 12, &in4, 4);
		*bits = 32;
		return 0;
	}
	if (inet_pton(AF_INET6, s, &in6) == 1) {
		memcpy(out, &in6, 16);
		*bits = 128;
		return 0;
	}
	return -1;
}

/*
 * Splits "addr/len" into the network (16 bytes) and a prefix length in
 * IPv6 terms; a plain address is a /32 or /128.  -1 if malformed.
 */
static int
net_parse(const char *s, uint8_t net[16], int *plen)
{
	char		 base[INET6_ADDRSTRLEN + 1];
	const char	*slash, *errstr = NULL;
	size_t		 n;
	int		 bits;

	if ((slash = strchr(s, '/')) == NULL) {
		if (addr_parse(s, net, &bits) == -1)
			return -1;
		*plen = 128;
		return 0;
	}
	n = (size_t)(slash - s);
	if (n >= sizeof(base))
		return -1;
	memcpy(base, s, n);
	base[n] = '\0';
	if (addr_parse(base, net, &bits) == -1)
		return -1;
	if (slash[1] < '0' || slash[1] > '9' || strlen(slash + 1) > 3)
		return -1;
	*plen = (int)strtonum(slash + 1, 0, bits, &errstr);
	if (errstr != NULL)
		return -1;
	if (bits == 32)
		*plen += 96;	/* inside ::ffff:0:0/96 */
	return 0;
}

/* Is s an IPv6 address or network (the only keys with colons inside)? */
static int
addr_or_net(const char *s)
{
	uint8_t	net[16];
	int	plen;

	return net_parse(s, net, &plen) == 0;
}

static int
cidr_covers(const char *key, const uint8_t ip[16])
{
	uint8_t	net[16], mask;
	int	plen, full, rest;

	if (net_parse(key, net, &plen) == -1)
		return 0;
	full = plen / 8;
	rest = plen % 8;
	if (memcmp(net, ip, full) != 0)
		return 0;
	if (rest == 0)
		return 1;
	mask = (uint8_t)(0xff << (8 - rest));
	return (net[full] & mask) == (ip[full] & mask);
}

int
table_match_addr(struct table *t, const char *ip)
{
	uint8_t	addr[16];
	size_t	i;
	int	bits;

	if (t == NULL || ip == NULL || addr_parse(ip, addr, &bits) == -1)
		return 0;
	if (table_contains(t, ip))
		return 1;
	for (i = 0; i < t->n; i++)
		if (cidr_covers(t->entries[i].key, addr))
			return 1;
	return 0;
}

/* ---- file tables ---------------------------------------------------------- */

static void
load_error(struct table_load *l, int line, const char *fmt, ...)
{
	char	msg[1024];
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	l->errors++;
	if (l->errfn != NULL)
		l->errfn(l->arg, l->path, line, "%s", msg);
	else if (line == 0)
		log_warnx("%s: %s", l->path, msg);
	else
		log_warnx("%s:%d: %s", l->path, line, msg);
}

static int
load_append(struct table_load *l, const char *s, size_t n)
{
	char	*p;
	size_t	 ncap;

	if (l->toolong)
		return 0;
	if (l->len + n + 1 > TABLE_ENTRY_MAX) {
		load_error(l, l->lineno, "entry too long");
		l->toolong = 1;
		return 0;
	}
	if (l->len + n + 1 > l->cap) {
		ncap = l->cap ? l->cap : 256;
		while (ncap < l->len + n + 1)
			ncap *= 2;
		if ((p = realloc(l->entry, ncap)) == NULL)
			return -1;
		l->entry = p;
		l->cap = ncap;
	}
	memcpy(l->entry + l->len, s, n);
	l->len += n;
	l->entry[l->len] = '\0';
	return 0;
}

/*
 * Turns the assembled logical line into an entry: "key: value" (aliases),
 * "key value" or "key" (a list entry).  The key is the first word; a colon
 * in it ends it, unless the word is an IPv6 address or network.
 */
static int
load_flush(struct table_load *l)
{
	char	*s, *key, *value, *end, *colon;
	size_t	 wlen, ncap;
	int	*nl, had_colon = 0;

	if (l->len == 0 || l->toolong) {
		l->len = 0;
		l->toolong = 0;
		return 0;
	}
	l->len = 0;
	s = key = l->entry;
	wlen = strcspn(s, " \t");
	if ((colon = memchr(s, ':', wlen)) != NULL) {
		char	c = s[wlen];

		s[wlen] = '\0';
		if (addr_or_net(s))
			colon = NULL;
		s[wlen] = c;
	}
	if (colon != NULL) {
		*colon = '\0';
		value = colon + 1;
		had_colon = 1;
	} else if (s[wlen] != '\0') {
		s[wlen] = '\0';
		value = s + wlen + 1;
	} else
		value = s + wlen;
	while (*value == ' ' || *value == '\t')
		value++;
	end = value + strlen(value);
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';

	if (*key == '\0') {
		load_error(l, l->lineno, "empty key");
		return 0;
	}
	if (strlen(key) >= TABLE_KEY_MAX) {
		load_error(l, l->lineno, "key too long");
		return 0;
	}
	if (had_colon && *value == '\0') {
		load_error(l, l->lineno, "no value for \"%s\"", key);
		return 0;
	}
	if (l->t->n >= TABLE_ENTRIES_MAX) {
		load_error(l, l->lineno, "too many entries (more than %d)",
		    TABLE_ENTRIES_MAX);
		return 0;
	}
	if (l->t->n - l->first == l->linescap) {
		ncap = l->linescap ? l->linescap * 2 : 64;
		if ((nl = reallocarray(l->lines, ncap, sizeof(*nl))) == NULL)
			return -1;
		l->lines = nl;
		l->linescap = ncap;
	}
	if (table_add(l->t, key, *value != '\0' ? value : NULL) == -1)
		return -1;
	l->lines[l->t->n - 1 - l->first] = l->lineno;
	return 0;
}

/* One physical line, without its newline. */
static int
load_line(struct table_load *l, char *line, int lineno)
{
	char	*s = line;

	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '#')
		return 0;
	if (s != line) {
		/* A continuation of the entry above. */
		if (l->len == 0 && !l->toolong) {
			load_error(l, lineno, "continuation line without an "
			    "entry before it");
			return 0;
		}
		if (load_append(l, " ", 1) == -1)
			return -1;
		return load_append(l, s, strlen(s));
	}
	if (load_flush(l) == -1)
		return -1;
	l->lineno = lineno;
	return load_append(l, s, strlen(s));
}

static int
sortent_cmp(const void *a, const void *b)
{
	const struct table_sortent *sa = a, *sb = b;
	int	c;

	if ((c = strcmp(sa->e.key, sb->e.key)) != 0)
		return c;
	return (sa->order > sb->order) - (sa->order < sb->order);
}

/*
 * Sorts the table and drops repeated keys, keeping the first one (like
 * newaliases, a later duplicate is only worth a warning).
 */
static int
load_sort(struct table_load *l)
{
	struct table		*t = l->t;
	struct table_sortent	*s;
	size_t			 i, n = 0;

	if (t->n == 0) {
		t->sorted = 1;
		return 0;
	}
	if ((s = calloc(t->n, sizeof(*s))) == NULL)
		return -1;
	for (i = 0; i < t->n; i++) {
		s[i].e = t->entries[i];
		s[i].order = i;
		s[i].line = i >= l->first ? l->lines[i - l->first] : 0;
	}
	qsort(s, t->n, sizeof(*s), sortent_cmp);
	for (i = 0; i < t->n; i++) {
		if (n > 0 && strcmp(t->entries[n - 1].key, s[i].e.key) == 0) {
			log_warnx("%s:%d: duplicate entry \"%s\" ignored",
			    l->path, s[i].line, s[i].e.key);
			free(s[i].e.key);
			free(s[i].e.value);
			continue;
		}
		t->entries[n++] = s[i].e;
	}
	t->n = n;
	t->sorted = 1;
	free(s);
	return 0;
}

/*
 * Reads one line into buf (NUL-terminated, newline and a CR before it
 * removed).  *flags: 1 the line was too long (truncated), 2 it held a NUL
 * byte.  Returns 0, or -1 at the end of the file.
 */
static int
read_line(FILE *fp, char *buf, size_t bufsz, int *flags)
{
	size_t	n = 0;
	int	c, any = 0;

	*flags = 0;
	while ((c = getc(fp)) != EOF) {
		any = 1;
		if (c == '\n')
			break;
		if (c == '\0')
			*flags |= 2;
		if (n + 1 < bufsz)
			buf[n++] = (char)c;
		else
			*flags |= 1;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return any ? 0 : -1;
}

/*
 * Open and read failures are reported with line 0 (the file as a whole):
 * the caller knows where the table was declared and words it.
 */
int
table_load_file(struct table *t, const char *path, table_errfn errfn,
    void *arg)
{
	struct table_load	 l;
	FILE			*fp;
	char			 buf[TABLE_LINE_MAX];
	int			 lineno = 0, flags, oom = 0;

	memset(&l, 0, sizeof(l));
	l.t = t;
	l.path = path;
	l.errfn = errfn;
	l.arg = arg;
	l.first = t->n;
	if (strlcpy(t->path, path, sizeof(t->path)) >= sizeof(t->path)) {
		load_error(&l, 0, "%s", strerror(ENAMETOOLONG));
		return l.errors;
	}
	if ((fp = fopen(path, "r")) == NULL) {
		load_error(&l, 0, "%s", strerror(errno));
		return l.errors;
	}
	while (!oom && read_line(fp, buf, sizeof(buf), &flags) == 0) {
		lineno++;
		if (flags & 1)
			load_error(&l, lineno, "line too long (more than %zu "
			    "bytes)", sizeof(buf) - 1);
		else if (flags & 2)
			load_error(&l, lineno, "NUL byte in line");
		else if (load_line(&l, buf, lineno) == -1)
			oom = 1;
	}
	if (!oom && ferror(fp))
		load_error(&l, 0, "%s", strerror(errno));
	else if (!oom && load_flush(&l) == -1)
		oom = 1;
	if (!oom && load_sort(&l) == -1)
		oom = 1;
	if (oom)
		load_error(&l, 0, "%s", strerror(ENOMEM));
	(void)fclose(fp);
	free(l.entry);
	free(l.lines);
	return l.errors;
}
