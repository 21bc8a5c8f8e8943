#include "autoconf.h"

/*
 * Delivery status notifications (RFC 3464 in an RFC 6522 multipart/report):
 * composes the whole bounce, delay warning or success report of one message
 * for a set of its recipients.  Pure: it reads the original with pread,
 * writes the report to a descriptor, allocates nothing.
 *
 * The report is composed twice by the same code: first into a sink that
 * writes nothing but looks for the MIME boundary in all the content (the
 * delimiters themselves excepted) and notes 8-bit octets in the returned
 * original, then for real.  So the boundary is proven absent from exactly
 * what is written, and the parts' Content-Transfer-Encoding is known before
 * their headers are written.
 *
 * Everything that comes from outside (addresses, remote replies, the
 * original) is rewritten so that it cannot add a line, a header field or a
 * MIME part, and so that no line exceeds 998 octets.
 */

#include <sys/types.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"
#include "submit.h"
#include "util.h"

#define LINE_LIMIT	998		/* octets, CRLF excluded: RFC 5322 2.1.1 */
#define WRAP_COLUMN	76		/* fold or wrap here when there is a space */
#define FIELD_MAX	4096		/* one sanitized value */
#define HOST_MAX	256
#define QID_MAX		24		/* queue id characters in the boundary */
#define BOUNDARY_MAX	70		/* RFC 2046 5.1.1 */
#define RANDOM_BYTES	16
#define BOUNDARY_TRIES	8
#define HEADERS_MAX	(128 * 1024)	/* most of the original's header returned */
#define READ_CHUNK	16384
#define OUT_BUFSZ	16384

void	(*dsn_random_bytes)(void *, size_t) = arc4random_buf;

/*
 * Where the report goes.  With fd == -1 nothing is written: the octets are
 * only searched for the boundary (KMP, case-insensitive) and, inside the
 * returned original, for 8-bit data.
 */
struct sink {
	int		 fd;
	int		 err;			/* errno of the first failure */
	size_t		 len;
	char		 buf[OUT_BUFSZ];
	const char	*boundary;
	size_t		 blen;
	size_t		 next[BOUNDARY_MAX + 1];
	size_t		 matched;
	int		 found;
	int		 in_original;
	int		 saw_8bit;
};

struct dsn_ctx {
	const struct dsn_info	*info;
	const struct dsn_rcpt	*rcpts;
	size_t			 n;
	int			 msg_fd;
	int			 full;		/* the whole original is returned */
	int			 oversize;	/* RET=FULL refused for its size */
	int			 eightbit;	/* the returned original is 8-bit */
	char			 host[HOST_MAX];
	char			 qid[QID_MAX + 1];
	char			 boundary[BOUNDARY_MAX + 1];
	char			 msgid[2 * HOST_MAX];
};

/* State of the copy of the original across read chunks. */
struct copier {
	int		 full;
	int		 in_headers;
	int		 cr;			/* a CR seen, its LF maybe next */
	size_t		 col;
	size_t		 copied;
};

/* A bounded string being built; once a piece did not fit, nothing more. */
struct strbuf {
	char		*p;
	size_t		 size;
	size_t		 len;
	int		 full;
};

/* ---- output ---------------------------------------------------------------- */

static void
sink_init(struct sink *s, int fd, const char *boundary)
{
	size_t	 i, k;

	memset(s, 0, offsetof(struct sink, buf));
	s->fd = fd;
	s->boundary = boundary;
	s->blen = strlen(boundary);
	s->matched = 0;
	s->found = s->in_original = s->saw_8bit = 0;
	s->next[0] = s->next[1] = 0;
	for (i = 1, k = 0; i < s->blen; i++) {
		while (k > 0 && tolower((unsigned char)boundary[i]) !=
		    tolower((unsigned char)boundary[k]))
			k = s->next[k];
		if (tolower((unsigned char)boundary[i]) ==
		    tolower((unsigned char)boundary[k]))
			k++;
		s->next[i + 1] = k;
	}
}

static void
sink_fail(struct sink *s, int err)
{
	if (s->err == 0)
		s->err = err;
}

static void
sink_scan(struct sink *s, const char *p, size_t n)
{
	size_t	 i;
	int	 c;

	for (i = 0; i < n; i++) {
		if (s->in_original && (unsigned char)p[i] >= 0x80)
			s->saw_8bit = 1;
		if (s->found)
			continue;
		c = tolower((unsigned char)p[i]);
		while (s->matched > 0 &&
		    tolower((unsigned char)s->boundary[s->matched]) != c)
			s->matched = s->next[s->matched];
		if (tolower((unsigned char)s->boundary[s->matched]) == c)
			s->matched++;
		if (s->matched == s->blen)
			s->found = 1;
	}
}

static void
sink_flush(struct sink *s)
{
	size_t	 off = 0;
	ssize_t	 w;

	while (s->err == 0 && off < s->len) {
		w = write(s->fd, s->buf + off, s->len - off);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			sink_fail(s, w == 0 ? EIO : errno);
		else
			off += (size_t)w;
	}
	s->len = 0;
}

static void
sink_put(struct sink *s, const char *p, size_t n)
{
	size_t	 k;

	if (s->err)
		return;
	if (s->fd == -1) {
		sink_scan(s, p, n);
		return;
	}
	while (n > 0 && s->err == 0) {
		if (s->len == sizeof(s->buf))
			sink_flush(s);
		k = sizeof(s->buf) - s->len;
		if (k > n)
			k = n;
		memcpy(s->buf + s->len, p, k);
		s->len += k;
		p += k;
		n -= k;
	}
}

static void
sink_puts(struct sink *s, const char *str)
{
	sink_put(s, str, strlen(str));
}

/* For fixed texts with bounded arguments only: outside text is wrapped. */
static void __attribute__((format(printf, 2, 3)))
sink_printf(struct sink *s, const char *fmt, ...)
{
	char	 buf[1024];
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (r < 0 || (size_t)r >= sizeof(buf)) {
		sink_fail(s, EOVERFLOW);
		return;
	}
	sink_put(s, buf, (size_t)r);
}

/* Delimiters are no content: the scanning pass leaves them out. */
static void
sink_delimiter(struct sink *s, int last)
{
	if (s->fd == -1)
		return;
	sink_puts(s, "\r\n--");
	sink_puts(s, s->boundary);
	sink_puts(s, last ? "--\r\n" : "\r\n");
}

/*
 * Writes text (no CR, LF or runs of spaces: sanitized) starting at column
 * col, breaking at spaces past WRAP_COLUMN and anywhere past LINE_LIMIT.
 * Each new line starts with cont: " " folds a header field.
 */
static void
sink_wrapped(struct sink *s, const char *text, size_t col, const char *cont)
{
	size_t	 contlen = strlen(cont), wlen, take;
	int	 first = 1;

	for (;;) {
		while (*text == ' ')
			text++;
		if (*text == '\0')
			break;
		wlen = strcspn(text, " ");
		if (!first) {
			if (col > contlen && col + 1 + wlen > WRAP_COLUMN) {
				sink_puts(s, "\r\n");
				sink_puts(s, cont);
				col = contlen;
			} else {
				sink_put(s, " ", 1);
				col++;
			}
		}
		while (col + wlen > LINE_LIMIT) {
			take = LINE_LIMIT - col;
			sink_put(s, text, take);
			text += take;
			wlen -= take;
			sink_puts(s, "\r\n");
			sink_puts(s, cont);
			col = contlen;
		}
		sink_put(s, text, wlen);
		text += wlen;
		col += wlen;
		first = 0;
	}
	sink_puts(s, "\r\n");
}

/* A header (or delivery-status) field; value already sanitized. */
static void
sink_field(struct sink *s, const char *name, const char *value)
{
	sink_puts(s, name);
	sink_puts(s, ": ");
	sink_wrapped(s, value, strlen(name) + 2, " ");
}

/* ---- sanitizing ------------------------------------------------------------ */

static void
sb_init(struct strbuf *b, char *p, size_t size)
{
	b->p = p;
	b->size = size;
	b->len = 0;
	b->full = 0;
	p[0] = '\0';
}

static void
sb_add(struct strbuf *b, const char *s, size_t n)
{
	if (b->full || b->len + n >= b->size) {
		b->full = 1;
		return;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void
sb_adds(struct strbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

/* One UTF-8 character: its length, or 0 when p is not one. */
static size_t
utf8_decode(const unsigned char *p, uint32_t *cp)
{
	uint32_t	 c, min;
	size_t		 len, i;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		c = p[0] & 0x1f;
		min = 0x80;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		c = p[0] & 0x0f;
		min = 0x800;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		c = p[0] & 0x07;
		min = 0x10000;
	} else
		return 0;
	/* a NUL is no continuation octet: the string end stops this */
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

/*
 * Text from outside as one line of printable US-ASCII: controls (CR and LF
 * among them) become spaces, runs of spaces one, ends are trimmed, and each
 * non-ASCII character (or stray 8-bit octet) becomes a '?'.
 */
static void
text_sanitize(const char *in, char *out, size_t outsz)
{
	const unsigned char	*p = (const unsigned char *)in;
	struct strbuf		 b;
	uint32_t		 cp;
	size_t			 k;
	int			 space = 0;

	sb_init(&b, out, outsz);
	for (; *p != '\0'; p += k) {
		k = 1;
		if (*p <= 0x20 || *p == 0x7f) {
			space = 1;
			continue;
		}
		if (space && b.len > 0)
			sb_add(&b, " ", 1);
		space = 0;
		if (*p < 0x80)
			sb_add(&b, (const char *)p, 1);
		else {
			if ((k = utf8_decode(p, &cp)) == 0)
				k = 1;
			sb_add(&b, "?", 1);
		}
	}
}

static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

static int
is_printable_ascii(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return 0;
	return 1;
}

/*
 * An address as 7-bit text: a non-ASCII character becomes RFC 6533's
 * "\x{HEX}" (U+FFFD for octets that are no UTF-8), a control '?'.  With
 * xtext, "\", "+", "=" and SP are escaped too, as utf-8-addr-xtext wants.
 */
static void
addr_7bit(const char *in, char *out, size_t outsz, int xtext)
{
	const unsigned char	*p = (const unsigned char *)in;
	struct strbuf		 b;
	char			 esc[16];
	uint32_t		 cp;
	size_t			 k;

	sb_init(&b, out, outsz);
	for (; *p != '\0'; p += k) {
		k = 1;
		cp = *p;
		if (*p < 0x20 || *p == 0x7f) {
			sb_add(&b, "?", 1);
			continue;
		}
		if (*p >= 0x80 && (k = utf8_decode(p, &cp)) == 0) {
			k = 1;
			cp = 0xfffd;
		}
		if (cp >= 0x80 || (xtext && strchr("\\+= ", (int)cp) != NULL)) {
			(void)snprintf(esc, sizeof(esc), "\\x{%02X}",
			    (unsigned int)cp);
			sb_adds(&b, esc);
		} else
			sb_add(&b, (const char *)p, 1);
	}
}

/* "rfc822; addr", or "utf-8; " and its 7-bit form (RFC 6533) if non-ASCII. */
static void
addr_field(const char *addr, char *out, size_t outsz)
{
	char	 enc[FIELD_MAX];

	if (has_8bit(addr)) {
		addr_7bit(addr, enc, sizeof(enc), 1);
		(void)strlcpy(out, "utf-8; ", outsz);
		(void)strlcat(out, enc, outsz);
	} else {
		addr_7bit(addr, enc, sizeof(enc), 0);
		(void)strlcpy(out, "rfc822; ", outsz);
		(void)strlcat(out, enc, outsz);
	}
}

/*
 * The sender as it goes in To: UTF-8 stays (RFC 6532: a non-ASCII sender is
 * only reachable over SMTPUTF8 anyway), anything else unsafe becomes '?'.
 */
static void
addr_header(const char *in, char *out, size_t outsz)
{
	const unsigned char	*p = (const unsigned char *)in;
	struct strbuf		 b;
	uint32_t		 cp;
	size_t			 k;

	sb_init(&b, out, outsz - 1);	/* room kept for the '>' */
	sb_add(&b, "<", 1);
	for (; *p != '\0'; p += k) {
		k = 1;
		if (*p < 0x20 || *p == 0x7f || *p == '<' || *p == '>')
			sb_add(&b, "?", 1);
		else if (*p < 0x80)
			sb_add(&b, (const char *)p, 1);
		else if ((k = utf8_decode(p, &cp)) == 0) {
			k = 1;
			sb_add(&b, "?", 1);
		} else
			sb_add(&b, (const char *)p, k);
	}
	b.size = outsz;
	b.full = 0;
	sb_add(&b, ">", 1);
}

/*
 * An xtext value as it goes in a field: decoded when that gives printable
 * ASCII, else as received (xtext is ASCII), else sanitized.
 */
static void
xtext_field(const char *xtext, char *out, size_t outsz)
{
	char	 dec[FIELD_MAX];

	if (xtext_decode(xtext, dec, sizeof(dec)) == 0 &&
	    is_printable_ascii(dec))
		text_sanitize(dec, out, outsz);
	else
		text_sanitize(xtext, out, outsz);
}

/* ORCPT "addr-type;xtext" as "addr-type;value"; -1 if it is malformed. */
static int
orcpt_field(const char *orcpt, char *out, size_t outsz)
{
	char	 type[33], value[FIELD_MAX];
	size_t	 tlen;

	tlen = strspn(orcpt, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-");
	if (tlen == 0 || tlen >= sizeof(type) || orcpt[tlen] != ';' ||
	    orcpt[tlen + 1] == '\0')
		return -1;
	memcpy(type, orcpt, tlen);
	type[tlen] = '\0';
	xtext_field(orcpt + tlen + 1, value, sizeof(value));
	if (value[0] == '\0')
		return -1;
	(void)strlcpy(out, type, outsz);
	(void)strlcat(out, ";", outsz);
	(void)strlcat(out, value, outsz);
	return 0;
}

/* Hostnames, including address literals; never empty. */
static void
host_sanitize(const char *in, char *out, size_t outsz)
{
	size_t	 i;

	for (i = 0; in[i] != '\0' && i + 1 < outsz; i++)
		out[i] = (isalnum((unsigned char)in[i]) ||
		    strchr(".-_:[]", in[i]) != NULL) ? in[i] : '-';
	out[i] = '\0';
	if (i == 0)
		(void)strlcpy(out, "localhost", outsz);
}

static void
qid_sanitize(const char *in, char *out, size_t outsz)
{
	size_t	 i, o = 0;

	for (i = 0; in[i] != '\0' && o + 1 < outsz; i++)
		if (isalnum((unsigned char)in[i]))
			out[o++] = in[i];
	if (o == 0)
		out[o++] = '0';
	out[o] = '\0';
}

static int
atom_valid(const char *s, size_t max)
{
	size_t	 n;

	n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789-");
	return n > 0 && n <= max && s[n] == '\0';
}

/* RFC 3463 status code: class "." subject "." detail. */
static int
status_valid(const char *s)
{
	size_t	 n;
	int	 i;

	if (s == NULL || (s[0] != '2' && s[0] != '4' && s[0] != '5') ||
	    s[1] != '.')
		return 0;
	s += 2;
	for (i = 0; i < 2; i++) {
		n = strspn(s, "0123456789");
		if (n < 1 || n > 3)
			return 0;
		s += n;
		if (i == 0 && *s++ != '.')
			return 0;
	}
	return *s == '\0';
}

/* The status, made to agree with the action: no self-contradiction. */
static const char *
rcpt_status(enum dsn_kind kind, const struct dsn_rcpt *r)
{
	const char	*s = status_valid(r->status) ? r->status : NULL;

	switch (kind) {
	case DSN_FAILED:
		return s != NULL && s[0] != '2' ? s : "5.0.0";
	case DSN_DELAYED:
		return s != NULL && s[0] == '4' ? s : "4.0.0";
	default:
		return s != NULL && s[0] == '2' ? s : "2.0.0";
	}
}

static const char *
kind_action(enum dsn_kind kind)
{
	switch (kind) {
	case DSN_FAILED:
		return "failed";
	case DSN_DELAYED:
		return "delayed";
	default:
		return "delivered";
	}
}

static const char *
kind_subject(enum dsn_kind kind)
{
	switch (kind) {
	case DSN_FAILED:
		return "Undelivered Mail Returned to Sender";
	case DSN_DELAYED:
		return "Delayed Mail (still being retried)";
	default:
		return "Successful Mail Delivery Report";
	}
}

static int
is_empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

/* ---- the original ----------------------------------------------------------- */

/* Whether the original has more than max octets: 1, 0, or -1 (errno). */
static int
original_exceeds(int fd, size_t max)
{
	char	 c;
	ssize_t	 r;

	if ((uint64_t)max >= (uint64_t)INT64_MAX)
		return 0;
	do {
		r = pread(fd, &c, 1, (off_t)max);
	} while (r == -1 && errno == EINTR);
	return r == -1 ? -1 : r == 1;
}

/* A line too long for RFC 5322: broken, and folded while in the header. */
static void
copy_break(struct sink *s, struct copier *cp)
{
	sink_puts(s, cp->in_headers ? "\r\n " : "\r\n");
	cp->col = cp->in_headers ? 1 : 0;
}

/* A line end of the original; 1 when the copy is complete. */
static int
copy_line_end(struct sink *s, struct copier *cp)
{
	if (cp->in_headers && cp->col == 0) {
		/* the empty line: end of the header block */
		cp->in_headers = 0;
		if (!cp->full)
			return 1;
	}
	sink_puts(s, "\r\n");
	cp->copied += cp->col + 2;
	cp->col = 0;
	return !cp->full && cp->copied > HEADERS_MAX;
}

/* 1 when the copy is complete. */
static int
copy_chunk(struct sink *s, struct copier *cp, const char *p, size_t n)
{
	size_t	 i = 0, run;

	while (i < n) {
		if (cp->cr) {
			/* CRLF, or a bare CR: a line end either way */
			cp->cr = 0;
			if (p[i] == '\n')
				i++;
			if (copy_line_end(s, cp))
				return 1;
			continue;
		}
		if (p[i] == '\r') {
			cp->cr = 1;
			i++;
			continue;
		}
		if (p[i] == '\n') {
			i++;
			if (copy_line_end(s, cp))
				return 1;
			continue;
		}
		if (cp->col == LINE_LIMIT)
			copy_break(s, cp);
		for (run = 0; i + run < n && p[i + run] != '\r' &&
		    p[i + run] != '\n' && cp->col + run < LINE_LIMIT; run++)
			;
		sink_put(s, p + i, run);
		cp->col += run;
		i += run;
	}
	return 0;
}

/*
 * Copies the original, every line ending in CRLF (bare CR and LF become
 * one) and none longer than LINE_LIMIT.  Headers only: up to the empty line
 * that ends the header block, or the first line end after HEADERS_MAX.
 */
static void
copy_original(struct sink *s, const struct dsn_ctx *c)
{
	struct copier	 cp;
	char		 buf[READ_CHUNK];
	off_t		 off = 0;
	ssize_t		 r;

	memset(&cp, 0, sizeof(cp));
	cp.full = c->full;
	cp.in_headers = 1;
	while (s->err == 0) {
		r = pread(c->msg_fd, buf, sizeof(buf), off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			sink_fail(s, errno);
			return;
		}
		if (r == 0)
			break;
		off += r;
		if (copy_chunk(s, &cp, buf, (size_t)r))
			return;
	}
	if (cp.cr)
		(void)copy_line_end(s, &cp);
	else if (cp.col > 0)
		sink_puts(s, "\r\n");
}

/* ---- the parts -------------------------------------------------------------- */

static void
compose_headers(struct sink *s, const struct dsn_ctx *c)
{
	char	 date[64], to[FIELD_MAX];

	time_rfc5322(c->info->now, date, sizeof(date));
	sink_field(s, "Date", date);
	sink_printf(s, "From: Mail Delivery System <MAILER-DAEMON@%s>\r\n",
	    c->host);
	sink_field(s, "Subject", kind_subject(c->info->kind));
	addr_header(c->info->sender, to, sizeof(to));
	sink_field(s, "To", to);
	sink_field(s, "Message-Id", c->msgid);
	sink_puts(s, "Auto-Submitted: auto-replied\r\n");
	sink_puts(s, "MIME-Version: 1.0\r\n");
	sink_puts(s, "Content-Type: multipart/report; "
	    "report-type=delivery-status;\r\n\tboundary=\"");
	if (s->fd != -1)
		sink_puts(s, c->boundary);
	sink_puts(s, "\"\r\n");
	if (c->eightbit)
		sink_puts(s, "Content-Transfer-Encoding: 8bit\r\n");
	sink_puts(s, "\r\n");
	sink_puts(s, "This is a MIME-encapsulated message.\r\n");
}

static void
duration_text(time_t secs, char *buf, size_t bufsz)
{
	long long	 v;

	if (secs < 3600) {
		v = secs < 60 ? 1 : (long long)secs / 60;
		(void)snprintf(buf, bufsz, "%lld minute%s", v, v == 1 ? "" : "s");
	} else if (secs < 2 * 86400) {
		v = (long long)secs / 3600;
		(void)snprintf(buf, bufsz, "%lld hour%s", v, v == 1 ? "" : "s");
	} else {
		v = (long long)secs / 86400;
		(void)snprintf(buf, bufsz, "%lld days", v);
	}
}

static void
explain_returned(struct sink *s, const struct dsn_ctx *c)
{
	if (c->full)
		sink_puts(s, "A copy of the message is attached.\r\n");
	else if (c->oversize)
		sink_printf(s, "The message is larger than %zu bytes, too large "
		    "to be returned in\r\nfull: only its headers are "
		    "attached.\r\n", c->info->max_full_size);
	else
		sink_puts(s, "The headers of the message are attached.\r\n");
}

static void
explain_delay(struct sink *s, const struct dsn_ctx *c)
{
	const struct dsn_info	*info = c->info;
	char			 waited[64], until[64];
	time_t			 last = 0;
	size_t			 i;

	for (i = 0; i < c->n; i++)
		if (c->rcpts[i].will_retry_until > last)
			last = c->rcpts[i].will_retry_until;
	duration_text(info->now > info->arrival ? info->now - info->arrival :
	    0, waited, sizeof(waited));
	sink_puts(s, "This is a warning only: you do not need to send your "
	    "message again.\r\n\r\n");
	sink_printf(s, "Your message has not yet been delivered to the "
	    "recipients listed below,\r\nafter %s of attempts.", waited);
	if (last != 0) {
		time_rfc5322(last, until, sizeof(until));
		sink_printf(s, " Delivery will be tried again until\r\n%s.",
		    until);
	}
	sink_puts(s, "\r\n");
	explain_returned(s, c);
}

/* "<addr>: reason", wrapped. */
static void
explain_rcpt(struct sink *s, const struct dsn_ctx *c, const struct dsn_rcpt *r)
{
	struct strbuf	 b;
	char		 line[2 * FIELD_MAX], tmp[FIELD_MAX];
	const char	*status = rcpt_status(c->info->kind, r);

	sb_init(&b, line, sizeof(line));
	addr_7bit(r->final_rcpt, tmp, sizeof(tmp), 0);
	sb_adds(&b, "<");
	sb_adds(&b, tmp);
	sb_adds(&b, ">: ");
	if (!is_empty(r->remote_mta)) {
		text_sanitize(r->remote_mta, tmp, sizeof(tmp));
		sb_adds(&b, "host ");
		sb_adds(&b, tmp);
		sb_adds(&b, is_empty(r->diagnostic) ? " " : " said: ");
	}
	if (!is_empty(r->diagnostic)) {
		text_sanitize(r->diagnostic, tmp, sizeof(tmp));
		sb_adds(&b, tmp);
	} else {
		switch (c->info->kind) {
		case DSN_FAILED:
			sb_adds(&b, "delivery failed, status ");
			break;
		case DSN_DELAYED:
			sb_adds(&b, "delivery temporarily failed, status ");
			break;
		default:
			sb_adds(&b, "delivered, status ");
			break;
		}
		sb_adds(&b, status);
	}
	sink_wrapped(s, line, 0, "    ");
}

static void
compose_notification(struct sink *s, const struct dsn_ctx *c)
{
	size_t	 i;

	sink_puts(s, "Content-Description: Notification\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n\r\n");
	sink_printf(s, "This is the mail system at host %s.\r\n\r\n", c->host);
	switch (c->info->kind) {
	case DSN_FAILED:
		sink_puts(s, "Your message could not be delivered to one or "
		    "more of its recipients.\r\nThe reasons are given at the "
		    "end of this report.\r\n");
		explain_returned(s, c);
		break;
	case DSN_DELAYED:
		explain_delay(s, c);
		break;
	default:
		sink_puts(s, "Your message was delivered to the recipients "
		    "listed below, as you\r\nasked when you sent it.\r\n");
		break;
	}
	sink_printf(s, "\r\nIf you need help, write to the postmaster of %s "
	    "and\r\ninclude this report.\r\n\r\n", c->host);
	sink_puts(s, "                   The mail system\r\n");
	for (i = 0; i < c->n; i++) {
		sink_puts(s, "\r\n");
		explain_rcpt(s, c, &c->rcpts[i]);
	}
}

static void
date_field(struct sink *s, const char *name, time_t t)
{
	char	 date[64];

	time_rfc5322(t, date, sizeof(date));
	sink_field(s, name, date);
}

static void
compose_rcpt_status(struct sink *s, const struct dsn_ctx *c,
    const struct dsn_rcpt *r)
{
	char		 value[FIELD_MAX], tmp[FIELD_MAX];
	const char	*type;

	if (r->orig_rcpt != NULL &&
	    orcpt_field(r->orig_rcpt, value, sizeof(value)) == 0)
		sink_field(s, "Original-Recipient", value);
	else if (!is_empty(r->client_rcpt)) {
		addr_field(r->client_rcpt, value, sizeof(value));
		sink_field(s, "Original-Recipient", value);
	}
	addr_field(r->final_rcpt, value, sizeof(value));
	sink_field(s, "Final-Recipient", value);
	sink_field(s, "Action", kind_action(c->info->kind));
	sink_field(s, "Status", rcpt_status(c->info->kind, r));
	if (!is_empty(r->remote_mta)) {
		text_sanitize(r->remote_mta, tmp, sizeof(tmp));
		(void)strlcpy(value, "dns; ", sizeof(value));
		(void)strlcat(value, tmp, sizeof(value));
		sink_field(s, "Remote-MTA", value);
	}
	if (!is_empty(r->diagnostic)) {
		if (r->diag_type != NULL && atom_valid(r->diag_type, 32))
			type = r->diag_type;
		else
			type = is_empty(r->remote_mta) ? "x-local" : "smtp";
		text_sanitize(r->diagnostic, tmp, sizeof(tmp));
		(void)strlcpy(value, type, sizeof(value));
		(void)strlcat(value, "; ", sizeof(value));
		(void)strlcat(value, tmp, sizeof(value));
		sink_field(s, "Diagnostic-Code", value);
	}
	if (r->last_attempt != 0)
		date_field(s, "Last-Attempt-Date", r->last_attempt);
	if (c->info->kind == DSN_DELAYED && r->will_retry_until != 0)
		date_field(s, "Will-Retry-Until", r->will_retry_until);
}

/* Per-message fields in RFC 3464's order, extension fields last. */
static void
compose_status(struct sink *s, const struct dsn_ctx *c)
{
	const struct dsn_info	*info = c->info;
	char			 value[FIELD_MAX], tmp[FIELD_MAX];
	size_t			 i;

	sink_puts(s, "Content-Description: Delivery report\r\n"
	    "Content-Type: message/delivery-status\r\n\r\n");
	if (!is_empty(info->envid)) {
		xtext_field(info->envid, value, sizeof(value));
		if (value[0] != '\0')
			sink_field(s, "Original-Envelope-Id", value);
	}
	(void)snprintf(value, sizeof(value), "dns; %s", c->host);
	sink_field(s, "Reporting-MTA", value);
	if (!is_empty(info->received_from)) {
		text_sanitize(info->received_from, tmp, sizeof(tmp));
		(void)strlcpy(value, "dns; ", sizeof(value));
		(void)strlcat(value, tmp, sizeof(value));
		sink_field(s, "Received-From-MTA", value);
	}
	if (info->arrival != 0)
		date_field(s, "Arrival-Date", info->arrival);
	text_sanitize(info->queue_id, value, sizeof(value));
	if (value[0] != '\0')
		sink_field(s, "X-Mtad-Queue-ID", value);
	for (i = 0; i < c->n; i++) {
		sink_puts(s, "\r\n");
		compose_rcpt_status(s, c, &c->rcpts[i]);
	}
}

static void
compose_original(struct sink *s, const struct dsn_ctx *c)
{
	const char	*what;

	switch (c->info->kind) {
	case DSN_FAILED:
		what = "Undelivered Message";
		break;
	case DSN_DELAYED:
		what = "Delayed Message";
		break;
	default:
		what = "Delivered Message";
		break;
	}
	if (c->full)
		sink_printf(s, "Content-Description: %s\r\n"
		    "Content-Type: message/rfc822\r\n", what);
	else
		sink_printf(s, "Content-Description: %s Headers\r\n"
		    "Content-Type: text/rfc822-headers\r\n", what);
	if (c->eightbit)
		sink_puts(s, "Content-Transfer-Encoding: 8bit\r\n");
	sink_puts(s, "\r\n");
	s->in_original = 1;
	copy_original(s, c);
	s->in_original = 0;
}

static void
compose(struct sink *s, const struct dsn_ctx *c)
{
	compose_headers(s, c);
	sink_delimiter(s, 0);
	compose_notification(s, c);
	sink_delimiter(s, 0);
	compose_status(s, c);
	sink_delimiter(s, 0);
	compose_original(s, c);
	sink_delimiter(s, 1);
}

/* ---- entry ------------------------------------------------------------------ */

static void
random_hex(char *out, size_t nbytes)
{
	unsigned char	 rnd[RANDOM_BYTES];
	size_t		 i;

	if (nbytes > sizeof(rnd))
		nbytes = sizeof(rnd);
	dsn_random_bytes(rnd, nbytes);
	for (i = 0; i < nbytes; i++)
		(void)snprintf(out + 2 * i, 3, "%02x", rnd[i]);
	out[2 * nbytes] = '\0';
}

static void
make_boundary(struct dsn_ctx *c)
{
	char	 hex[2 * RANDOM_BYTES + 1];

	random_hex(hex, RANDOM_BYTES);
	(void)snprintf(c->boundary, sizeof(c->boundary), "%s.%s/mtad",
	    c->qid, hex);
}

static void
make_msgid(struct dsn_ctx *c)
{
	struct tm	 tm;
	char		 stamp[32], hex[2 * RANDOM_BYTES + 1];
	time_t		 now = c->info->now;

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
		(void)strlcpy(stamp, "0", sizeof(stamp));
	random_hex(hex, 8);
	(void)snprintf(c->msgid, sizeof(c->msgid), "<%s.%s.%s@%s>", stamp,
	    c->qid, hex, c->host);
}

static int
args_valid(const struct dsn_info *info, const struct dsn_rcpt *rcpts,
    size_t n)
{
	size_t	 i;

	if (info == NULL || rcpts == NULL || n == 0 ||
	    (info->kind != DSN_FAILED && info->kind != DSN_DELAYED &&
	    info->kind != DSN_DELIVERED) || is_empty(info->reporting_mta) ||
	    info->queue_id == NULL || is_empty(info->sender))
		return 0;
	for (i = 0; i < n; i++)
		if (is_empty(rcpts[i].final_rcpt))
			return 0;
	return 1;
}

int
dsn_write(int out_fd, int msg_fd, const struct dsn_info *info,
    const struct dsn_rcpt *rcpts, size_t n)
{
	struct dsn_ctx	 c;
	struct sink	 s;
	int		 tries, big;

	if (!args_valid(info, rcpts, n)) {
		errno = EINVAL;
		return -1;
	}
	memset(&c, 0, sizeof(c));
	c.info = info;
	c.rcpts = rcpts;
	c.n = n;
	c.msg_fd = msg_fd;
	host_sanitize(info->reporting_mta, c.host, sizeof(c.host));
	qid_sanitize(info->queue_id, c.qid, sizeof(c.qid));
	make_msgid(&c);
	if (info->ret_full) {
		if ((big = original_exceeds(msg_fd, info->max_full_size)) == -1)
			return -1;
		c.full = !big;
		c.oversize = big;
	}

	for (tries = 0;; tries++) {
		if (tries == BOUNDARY_TRIES) {
			errno = EEXIST;
			return -1;
		}
		make_boundary(&c);
		sink_init(&s, -1, c.boundary);
		compose(&s, &c);
		if (s.err) {
			errno = s.err;
			return -1;
		}
		if (!s.found)
			break;
	}
	c.eightbit = s.saw_8bit;

	sink_init(&s, out_fd, c.boundary);
	compose(&s, &c);
	sink_flush(&s);
	if (s.err) {
		errno = s.err;
		return -1;
	}
	return 0;
}
