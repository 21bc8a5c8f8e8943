#include "autoconf.h"

/*
 * The on-disk envelope of the fs spool, and the in-memory qmsg it describes.
 *
 *	version 1
 *	msgid 0123456789abcdef
 *	created 1700000000
 *	size 2048
 *	sender alice@example.org
 *	helo mail.example.org
 *	client_addr 192.0.2.1
 *	client_name mail.example.org
 *	auth_user alice
 *	proto ESMTPS
 *	flags 0
 *	envid QQ314159
 *	ret 2
 *	rcpts 1
 *	rcpt 0 pending 0 0 0 1 local bob /var/mail/bob bob@example.org Bob@example.org  6 rfc822;Bob@example.org 0
 *	end
 *
 * Every line is "key SP value" (rcpt: "rcpt" and fifteen values, each after
 * exactly one space, so that empty values keep their place).  Values are
 * escaped with field_escape(), so they never hold a space or a newline.
 * "rcpts" gives the count before the recipients and "end" closes the file:
 * a file cut anywhere cannot parse, so a damaged envelope is never mistaken
 * for one with fewer recipients.
 *
 * The rcpt values: index, state (pending, delivered, failed), attempts,
 * next_try, last_try, delivery kind (enum dlv_kind), action, user, dest,
 * rcpt, orig, last_error, notify (DSN_NOTIFY_* bits), orcpt, and dsn
 * (RCPT_DSN_* bits).  flags holds MSG_F_* bits and ret a DSN_RET_* value.
 * Bit sets and enumerations are decimal numbers; unknown bits or values are
 * errors, as they mean a writer this parser does not know.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope_file.h"
#include "queue.h"
#include "util.h"

#define ENVELOPE_RCPT_MAX	100000
/* Longest escaped line: a recipient with every field full, escaped x3. */
#define ENVELOPE_LINE_MAX	16384
#define RCPT_NFIELDS		15
/* The rcpt text fields with their NULs, and room for the numbers. */
#define RCPT_TEXT_MAX	(ACTION_MAX + USER_MAX + DEST_MAX + 2 * ADDR_MAX + \
			    TEXT_MAX + ORCPT_MAX)
_Static_assert(3 * RCPT_TEXT_MAX + 256 <= ENVELOPE_LINE_MAX,
    "a full recipient line must fit ENVELOPE_LINE_MAX");
/* sb_field() escapes into a buffer sized for the largest field. */
_Static_assert(ORCPT_MAX <= DEST_MAX && ADDR_MAX <= DEST_MAX &&
    TEXT_MAX <= DEST_MAX && sizeof(((struct qmsg *)0)->envid) <= DEST_MAX &&
    sizeof(((struct qmsg *)0)->auth_user) <= DEST_MAX,
    "a field is larger than the escape buffer");

#define MSG_F_ALL	(MSG_F_HELD | MSG_F_DSN | MSG_F_DOUBLE)
#define RCPT_DSN_ALL	(RCPT_DSN_WARNED | RCPT_DSN_DONE)
#define DSN_NOTIFY_ALL	(DSN_NOTIFY_NEVER | DSN_NOTIFY_SUCCESS | \
			    DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY)

/* ---- qmsg ---------------------------------------------------------------- */

struct qmsg *
qmsg_new(void)
{
	return calloc(1, sizeof(struct qmsg));
}

void
qmsg_free(struct qmsg *m)
{
	if (m == NULL)
		return;
	free(m->rcpts);
	free(m);
}

int
qmsg_add_rcpt(struct qmsg *m, const struct dlv *d)
{
	struct qrcpt	*r;

	if (m->nrcpts >= ENVELOPE_RCPT_MAX) {
		errno = E2BIG;
		return -1;
	}
	/*
	 * The array grows by powers of two, so it is full exactly when nrcpts
	 * is 0 or a power of two: rcpts must only ever grow through here.
	 */
	if ((m->nrcpts & (m->nrcpts - 1)) == 0) {
		size_t n = m->nrcpts ? (size_t)m->nrcpts * 2 : 1;

		r = reallocarray(m->rcpts, n, sizeof(*r));
		if (r == NULL)
			return -1;
		m->rcpts = r;
	}
	r = &m->rcpts[m->nrcpts];
	memset(r, 0, sizeof(*r));
	r->index = m->nrcpts;
	r->state = RS_PENDING;
	r->dlv = *d;
	m->nrcpts++;
	return 0;
}

const char *
rcpt_state_name(enum rcpt_state s)
{
	switch (s) {
	case RS_PENDING:
		return "pending";
	case RS_INFLIGHT:
		return "inflight";
	case RS_DELIVERED:
		return "delivered";
	case RS_FAILED:
		return "failed";
	}
	return "unknown";
}

/* ---- serialization -------------------------------------------------------- */

struct sbuf {
	char	*p;
	size_t	 len;
	size_t	 cap;
	int	 err;
};

static void sb_printf(struct sbuf *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static void
sb_printf(struct sbuf *sb, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;
	char	*np;
	size_t	 ncap;

	if (sb->err)
		return;
	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(sb->p + sb->len, sb->cap - sb->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			sb->err = 1;
			return;
		}
		if ((size_t)n < sb->cap - sb->len) {
			sb->len += n;
			return;
		}
		ncap = sb->cap * 2;
		while (ncap - sb->len <= (size_t)n)
			ncap *= 2;
		if ((np = realloc(sb->p, ncap)) == NULL) {
			sb->err = 1;
			return;
		}
		sb->p = np;
		sb->cap = ncap;
	}
}

/* Appends " value", escaped. */
static void
sb_field(struct sbuf *sb, const char *value)
{
	char	 esc[3 * DEST_MAX + 1];

	if (field_escape(value, esc, sizeof(esc)) < 0) {
		/* Every field is shorter than DEST_MAX: cannot happen. */
		sb->err = 1;
		return;
	}
	sb_printf(sb, " %s", esc);
}

static void
sb_key(struct sbuf *sb, const char *key, const char *value)
{
	sb_printf(sb, "%s", key);
	sb_field(sb, value);
	sb_printf(sb, "\n");
}

static void
sb_rcpt(struct sbuf *sb, const struct qrcpt *r)
{
	/* In flight is a memory-only state: on disk it is due again. */
	enum rcpt_state	 st = r->state == RS_INFLIGHT ? RS_PENDING : r->state;

	sb_printf(sb, "rcpt %u %s %u %lld %lld %u", r->index,
	    rcpt_state_name(st), r->attempts, (long long)r->next_try,
	    (long long)r->last_try, r->dlv.kind);
	sb_field(sb, r->dlv.action);
	sb_field(sb, r->dlv.user);
	sb_field(sb, r->dlv.dest);
	sb_field(sb, r->dlv.rcpt);
	sb_field(sb, r->dlv.orig);
	sb_field(sb, r->last_error);
	sb_printf(sb, " %u", r->dlv.notify);
	sb_field(sb, r->dlv.orcpt);
	sb_printf(sb, " %u\n", r->dsn);
}

char *
envelope_serialize(const struct qmsg *m, size_t *lenp)
{
	struct sbuf	 sb;
	uint32_t	 i;

	memset(&sb, 0, sizeof(sb));
	sb.cap = 1024;
	if ((sb.p = malloc(sb.cap)) == NULL)
		return NULL;

	sb_printf(&sb, "version %d\n", ENVELOPE_VERSION);
	sb_key(&sb, "msgid", m->msgid);
	sb_printf(&sb, "created %lld\n", (long long)m->created);
	sb_printf(&sb, "size %llu\n", (unsigned long long)m->size);
	sb_key(&sb, "sender", m->sender);
	sb_key(&sb, "helo", m->helo);
	sb_key(&sb, "client_addr", m->client_addr);
	sb_key(&sb, "client_name", m->client_name);
	sb_key(&sb, "auth_user", m->auth_user);
	sb_key(&sb, "proto", m->proto);
	sb_printf(&sb, "flags %u\n", m->flags);
	sb_key(&sb, "envid", m->envid);
	sb_printf(&sb, "ret %u\n", m->ret);
	sb_printf(&sb, "rcpts %u\n", m->nrcpts);
	for (i = 0; i < m->nrcpts; i++)
		sb_rcpt(&sb, &m->rcpts[i]);
	sb_printf(&sb, "end\n");

	if (sb.err) {
		free(sb.p);
		errno = ENOMEM;
		return NULL;
	}
	*lenp = sb.len;
	return sb.p;
}

/* ---- parsing --------------------------------------------------------------- */

/* The message-level keys, each required exactly once. */
enum {
	K_MSGID, K_CREATED, K_SIZE, K_SENDER, K_HELO, K_CLIENT_ADDR,
	K_CLIENT_NAME, K_AUTH_USER, K_PROTO, K_FLAGS, K_ENVID, K_RET, K_RCPTS,
	K_COUNT
};

static const char *const key_names[K_COUNT] = {
	"msgid", "created", "size", "sender", "helo", "client_addr",
	"client_name", "auth_user", "proto", "flags", "envid", "ret", "rcpts"
};

struct parser {
	struct qmsg	*m;
	int		 lineno;
	int		 seen[K_COUNT];
	uint32_t	 declared;	/* the "rcpts" value */
	char		*err;
	size_t		 errsz;
};

static int perr(struct parser *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static int
perr(struct parser *p, const char *fmt, ...)
{
	va_list	 ap;
	char	 what[256];

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errsz, "line %d: %s", p->lineno, what);
	return -1;
}

/* A decimal number without sign, no larger than max. */
static int
parse_number(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t	 v = 0;
	unsigned	 d;

	if (*s == '\0')
		return -1;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		d = *s - '0';
		if (d > max || v > (max - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

static int
get_number(struct parser *p, const char *what, const char *s, uint64_t max,
    uint64_t *out)
{
	if (parse_number(s, max, out) < 0)
		return perr(p, "bad %s \"%.32s\"", what, s);
	return 0;
}

/* A set of bits, all of them among known. */
static int
get_bits(struct parser *p, const char *what, const char *s, uint32_t known,
    uint32_t *out)
{
	uint64_t	 v = 0;

	if (get_number(p, what, s, UINT32_MAX, &v) < 0)
		return -1;
	if (v & ~(uint64_t)known)
		return perr(p, "bad %s %llu: unknown bits 0x%llx", what,
		    (unsigned long long)v,
		    (unsigned long long)(v & ~(uint64_t)known));
	*out = v;
	return 0;
}

/* RFC 3461: NEVER excludes every other keyword. */
static int
get_notify(struct parser *p, const char *s, uint32_t *out)
{
	if (get_bits(p, "notify", s, DSN_NOTIFY_ALL, out) < 0)
		return -1;
	if ((*out & DSN_NOTIFY_NEVER) && *out != DSN_NOTIFY_NEVER)
		return perr(p, "bad notify %u: NEVER with other values", *out);
	return 0;
}

/*
 * Unescapes into a buffer of its final size.  The escaped text must be made
 * of printable bytes (8-bit allowed) and must not encode a NUL, which would
 * silently cut the value.
 */
static int
get_text(struct parser *p, const char *what, const char *s, char *out,
    size_t outsz)
{
	const unsigned char	*c;

	for (c = (const unsigned char *)s; *c; c++) {
		if (*c < 0x21 || *c == 0x7f)
			return perr(p, "%s: unescaped control character", what);
		if (c[0] == '%' && c[1] == '0' && c[2] == '0')
			return perr(p, "%s: escaped NUL", what);
	}
	if (field_unescape(s, out, outsz) < 0)
		return perr(p, "%s: bad escape or too long", what);
	return 0;
}

static int
get_state(struct parser *p, const char *s, enum rcpt_state *out)
{
	/* RS_INFLIGHT is never written: finding it means a foreign writer. */
	static const enum rcpt_state states[] = {
		RS_PENDING, RS_DELIVERED, RS_FAILED
	};
	size_t	 i;

	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++)
		if (strcmp(s, rcpt_state_name(states[i])) == 0) {
			*out = states[i];
			return 0;
		}
	return perr(p, "bad recipient state \"%.32s\"", s);
}

/* "rcpt" followed by exactly RCPT_NFIELDS single-space separated values. */
static int
parse_rcpt(struct parser *p, char *rest)
{
	char		*f[RCPT_NFIELDS], *s;
	struct qrcpt	 r;
	uint64_t	 v = 0;
	int		 n;

	if (!p->seen[K_RCPTS])
		return perr(p, "rcpt before rcpts");
	if (p->m->nrcpts >= p->declared)
		return perr(p, "more recipients than the %u declared",
		    p->declared);

	for (n = 0; n < RCPT_NFIELDS; n++) {
		if ((s = strsep(&rest, " ")) == NULL)
			return perr(p, "rcpt: %d fields, %d expected", n,
			    RCPT_NFIELDS);
		f[n] = s;
	}
	if (rest != NULL)
		return perr(p, "rcpt: more than %d fields", RCPT_NFIELDS);

	memset(&r, 0, sizeof(r));
	if (get_number(p, "recipient index", f[0], UINT32_MAX, &v) < 0)
		return -1;
	if (v != p->m->nrcpts)
		return perr(p, "recipient index %llu, %u expected",
		    (unsigned long long)v, p->m->nrcpts);
	r.index = v;
	if (get_state(p, f[1], &r.state) < 0)
		return -1;
	if (get_number(p, "attempts", f[2], UINT32_MAX, &v) < 0)
		return -1;
	r.attempts = v;
	if (get_number(p, "next_try", f[3], INT64_MAX, &v) < 0)
		return -1;
	r.next_try = v;
	if (get_number(p, "last_try", f[4], INT64_MAX, &v) < 0)
		return -1;
	r.last_try = v;
	/* The kinds dlv_get() accepts: DLV_NONE is never queued. */
	if (get_number(p, "delivery kind", f[5], DLV_KIND_MAX - 1, &v) < 0)
		return -1;
	if (v == DLV_NONE)
		return perr(p, "bad delivery kind \"%s\"", f[5]);
	r.dlv.kind = v;
	if (get_text(p, "action", f[6], r.dlv.action, sizeof(r.dlv.action)) < 0 ||
	    get_text(p, "user", f[7], r.dlv.user, sizeof(r.dlv.user)) < 0 ||
	    get_text(p, "dest", f[8], r.dlv.dest, sizeof(r.dlv.dest)) < 0 ||
	    get_text(p, "rcpt", f[9], r.dlv.rcpt, sizeof(r.dlv.rcpt)) < 0 ||
	    get_text(p, "orig", f[10], r.dlv.orig, sizeof(r.dlv.orig)) < 0 ||
	    get_text(p, "last_error", f[11], r.last_error,
	    sizeof(r.last_error)) < 0)
		return -1;
	if (get_notify(p, f[12], &r.dlv.notify) < 0 ||
	    get_text(p, "orcpt", f[13], r.dlv.orcpt, sizeof(r.dlv.orcpt)) < 0 ||
	    get_bits(p, "dsn", f[14], RCPT_DSN_ALL, &r.dsn) < 0)
		return -1;
	if (r.dlv.rcpt[0] == '\0')
		return perr(p, "empty recipient address");

	if (qmsg_add_rcpt(p->m, &r.dlv) < 0)
		return perr(p, "out of memory");
	/* Same index; state, attempts, times and dsn come from the file. */
	p->m->rcpts[r.index] = r;
	return 0;
}

static int
parse_key(struct parser *p, int k, const char *val)
{
	struct qmsg	*m = p->m;
	uint64_t	 v = 0;

	if (p->seen[k])
		return perr(p, "duplicate %s", key_names[k]);
	p->seen[k] = 1;

	switch (k) {
	case K_MSGID:
		if (!msgid_is_valid(val))
			return perr(p, "bad msgid \"%.32s\"", val);
		strlcpy(m->msgid, val, sizeof(m->msgid));
		return 0;
	case K_CREATED:
		if (get_number(p, "created", val, INT64_MAX, &v) < 0)
			return -1;
		m->created = v;
		return 0;
	case K_SIZE:
		if (get_number(p, "size", val, INT64_MAX, &v) < 0)
			return -1;
		m->size = v;
		return 0;
	case K_SENDER:
		return get_text(p, "sender", val, m->sender, sizeof(m->sender));
	case K_HELO:
		return get_text(p, "helo", val, m->helo, sizeof(m->helo));
	case K_CLIENT_ADDR:
		return get_text(p, "client_addr", val, m->client_addr,
		    sizeof(m->client_addr));
	case K_CLIENT_NAME:
		return get_text(p, "client_name", val, m->client_name,
		    sizeof(m->client_name));
	case K_AUTH_USER:
		return get_text(p, "auth_user", val, m->auth_user,
		    sizeof(m->auth_user));
	case K_PROTO:
		return get_text(p, "proto", val, m->proto, sizeof(m->proto));
	case K_FLAGS:
		return get_bits(p, "flags", val, MSG_F_ALL, &m->flags);
	case K_ENVID:
		return get_text(p, "envid", val, m->envid, sizeof(m->envid));
	case K_RET:
		/* The DSN_RET_* values run from 0 to DSN_RET_HDRS. */
		if (get_number(p, "ret", val, DSN_RET_HDRS, &v) < 0)
			return -1;
		m->ret = v;
		return 0;
	case K_RCPTS:
		if (get_number(p, "rcpts", val, UINT32_MAX, &v) < 0)
			return -1;
		if (v == 0)
			return perr(p, "no recipients");
		if (v > ENVELOPE_RCPT_MAX)
			return perr(p, "too many recipients (%llu > %d)",
			    (unsigned long long)v, ENVELOPE_RCPT_MAX);
		p->declared = v;
		return 0;
	}
	return perr(p, "internal: key %d", k);
}

/* The last line: every key present, every declared recipient read. */
static int
parse_end(struct parser *p)
{
	int	 k;

	for (k = 0; k < K_COUNT; k++)
		if (!p->seen[k])
			return perr(p, "missing %s", key_names[k]);
	if (p->m->nrcpts != p->declared)
		return perr(p, "%u recipients, %u declared", p->m->nrcpts,
		    p->declared);
	return 0;
}

static int
parse_line(struct parser *p, char *line)
{
	char	*key, *val, version[32];
	int	 k;

	if (p->lineno == 1) {
		snprintf(version, sizeof(version), "version %d",
		    ENVELOPE_VERSION);
		if (strcmp(line, version) != 0)
			return perr(p, "unknown version \"%.32s\"", line);
		return 0;
	}
	key = line;
	if ((val = strchr(line, ' ')) == NULL)
		return perr(p, "\"%.32s\": no value", line);
	*val++ = '\0';
	if (strcmp(key, "rcpt") == 0)
		return parse_rcpt(p, val);
	if (strchr(val, ' ') != NULL)
		return perr(p, "%.32s: unexpected space", key);
	for (k = 0; k < K_COUNT; k++)
		if (strcmp(key, key_names[k]) == 0)
			return parse_key(p, k, val);
	return perr(p, "unknown key \"%.32s\"", key);
}

static int
parse_buf(struct parser *p, const char *buf, size_t len)
{
	char		 line[ENVELOPE_LINE_MAX];
	const char	*nl;
	size_t		 pos = 0, n;

	if (len > ENVELOPE_MAX) {
		p->lineno = 0;
		return perr(p, "envelope larger than %d bytes", ENVELOPE_MAX);
	}
	while (pos < len) {
		p->lineno++;
		if ((nl = memchr(buf + pos, '\n', len - pos)) == NULL)
			return perr(p, "truncated: no end of line");
		n = nl - (buf + pos);
		if (n >= sizeof(line))
			return perr(p, "line too long");
		memcpy(line, buf + pos, n);
		line[n] = '\0';
		if (memchr(line, '\0', n) != NULL)
			return perr(p, "NUL byte");
		pos += n + 1;
		if (p->lineno > 1 && strcmp(line, "end") == 0) {
			if (parse_end(p) < 0)
				return -1;
			if (pos != len) {
				p->lineno++;
				return perr(p, "data after end");
			}
			return 0;
		}
		if (parse_line(p, line) < 0)
			return -1;
	}
	p->lineno++;
	return perr(p, "truncated: no end line");
}

struct qmsg *
envelope_parse(const char *buf, size_t len, char *err, size_t errsz)
{
	struct parser	 p;

	memset(&p, 0, sizeof(p));
	p.err = err;
	p.errsz = errsz;
	if (errsz > 0)
		err[0] = '\0';
	if ((p.m = qmsg_new()) == NULL) {
		snprintf(err, errsz, "line 0: out of memory");
		return NULL;
	}
	if (parse_buf(&p, buf, len) < 0) {
		qmsg_free(p.m);
		errno = EINVAL;
		return NULL;
	}
	return p.m;
}
