/*
 * sendmail(8): reading the message and completing its header, as Postfix's
 * cleanup does for a local submission.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "rfc5322.h"
#include "sendmail.h"
#include "util.h"

#define CHUNK_MAX	8192
#define OUTBUF_SIZE	65536

enum hdr_kind {
	H_OTHER,
	H_DROP,		/* Return-Path, Content-Length */
	H_FROM,
	H_DATE,
	H_MSGID,
	H_TO,		/* To, Cc */
	H_BCC,
	H_RESENT_TO,	/* Resent-To, Resent-Cc */
	H_RESENT_BCC
};

static const struct {
	const char	*name;
	enum hdr_kind	 kind;
} fields[] = {
	{ "Bcc",		H_BCC },
	{ "Cc",			H_TO },
	{ "Content-Length",	H_DROP },
	{ "Date",		H_DATE },
	{ "From",		H_FROM },
	{ "Message-Id",		H_MSGID },
	{ "Resent-Bcc",		H_RESENT_BCC },
	{ "Resent-Cc",		H_RESENT_TO },
	{ "Resent-To",		H_RESENT_TO },
	{ "Return-Path",	H_DROP },
	{ "To",			H_TO },
};

struct reader {
	FILE	*in;
	int	 dot_ends;
	int	 bol;		/* the next chunk starts a line */
	int	 end;		/* EOF or the lone dot was seen */
	int	 dot_seen;	/* the lone dot */
};

struct writer {
	int		 fd;
	char		 buf[OUTBUF_SIZE];
	size_t		 len;
	uint64_t	 size;
	uint64_t	 max;
	int		 err;	/* sysexits code latched */
	int		 errnum;	/* errno of a failed write */
};

struct field {
	char	*buf;		/* NUL-terminated, '\n' between lines */
	size_t	 len, cap;
	int	 active;
};

struct state {
	const struct msg_opts	*opts;
	struct msg_info		*info;
	struct writer		 w;
	struct field		 f;
	int			 seen_from, seen_date, seen_msgid;
	struct addr_list	*collect;	/* during an address parse */
	int			 overflow;
};

/* ---- input --------------------------------------------------------------- */

/*
 * The next piece of a line: 1 with *len bytes (line end removed) and *eol
 * if the line ends there, 0 at the end of input, -1 on a read error.
 */
static int
rd_chunk(struct reader *r, char *buf, size_t bufsz, size_t *len, int *eol)
{
	size_t	 n = 0;
	int	 c, bol = r->bol;

	*eol = 0;
	if (r->end)
		return 0;
	while (n < bufsz) {
		if ((c = getc(r->in)) == EOF) {
			if (ferror(r->in))
				return -1;
			r->end = 1;
			if (n == 0 && bol)
				return 0;
			*eol = 1;	/* an unterminated last line */
			break;
		}
		if (c == '\n') {
			*eol = 1;
			break;
		}
		if (c == '\r') {
			while ((c = getc(r->in)) == '\r')
				;
			if (c != '\n' && c != EOF && ungetc(c, r->in) == EOF)
				return -1;
			*eol = 1;
			break;
		}
		buf[n++] = (char)c;
	}
	*len = n;
	r->bol = *eol;
	if (r->dot_ends && bol && *eol && n == 1 && buf[0] == '.') {
		r->end = r->dot_seen = 1;
		return 0;
	}
	return 1;
}

/* ---- output -------------------------------------------------------------- */

static void
w_flush(struct writer *w)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (!w->err && off < w->len) {
		if ((n = write(w->fd, w->buf + off, w->len - off)) == -1) {
			if (errno == EINTR)
				continue;
			w->err = EX_IOERR;
			w->errnum = errno;
			break;
		}
		off += (size_t)n;
	}
	w->len = 0;
}

static void
w_put(struct writer *w, const char *p, size_t len)
{
	size_t	 n;

	if (w->err)
		return;
	if (w->size + len > w->max) {
		w->err = EX_DATAERR;
		return;
	}
	w->size += len;
	while (len > 0) {
		if (w->len == sizeof(w->buf))
			w_flush(w);
		n = sizeof(w->buf) - w->len;
		if (n > len)
			n = len;
		memcpy(w->buf + w->len, p, n);
		w->len += n;
		p += n;
		len -= n;
	}
}

static void
w_str(struct writer *w, const char *s)
{
	w_put(w, s, strlen(s));
}

/* ---- header fields ------------------------------------------------------- */

static int
f_append(struct field *f, const char *p, size_t len)
{
	char	*n;
	size_t	 cap;

	if (f->len + len + 1 > MSG_FIELD_MAX)
		return -1;
	if (f->len + len + 1 > f->cap) {
		cap = f->cap ? f->cap : 1024;
		while (cap < f->len + len + 1)
			cap *= 2;
		if (cap > MSG_FIELD_MAX)
			cap = MSG_FIELD_MAX;
		if ((n = realloc(f->buf, cap)) == NULL)
			return -1;
		f->buf = n;
		f->cap = cap;
	}
	memcpy(f->buf + f->len, p, len);
	f->len += len;
	f->buf[f->len] = '\0';
	return 0;
}

static enum hdr_kind
field_kind(const char *name, size_t len)
{
	size_t	 i;

	for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (strlen(fields[i].name) == len &&
		    strncasecmp(fields[i].name, name, len) == 0)
			return fields[i].kind;
	return H_OTHER;
}

static int
collect_cb(void *arg, int ok, const char *addr)
{
	struct state		*st = arg;
	struct addr_list	*l = st->collect;
	struct addr_entry	*n;
	size_t			 cap;

	if (l->n >= st->opts->max_rcpts) {
		st->overflow = 1;
		return 1;
	}
	if (l->n == l->cap) {
		cap = l->cap ? l->cap * 2 : 16;
		if ((n = reallocarray(l->v, cap, sizeof(*n))) == NULL) {
			st->overflow = 2;
			return 1;
		}
		l->v = n;
		l->cap = cap;
	}
	l->v[l->n].ok = ok;
	(void)strlcpy(l->v[l->n].addr, addr, sizeof(l->v[0].addr));
	l->n++;
	return 0;
}

static int
collect(struct state *st, struct addr_list *l, const char *value)
{
	if (!st->opts->extract)
		return 0;
	st->collect = l;
	if (rfc5322_addrlist(value, collect_cb, st) == 0)
		return 0;
	if (st->overflow == 2) {
		(void)strlcpy(st->info->err, "out of memory",
		    sizeof(st->info->err));
		return EX_OSERR;
	}
	(void)snprintf(st->info->err, sizeof(st->info->err),
	    "too many recipients in the header (limit %zu)",
	    st->opts->max_rcpts);
	return EX_DATAERR;
}

/* The field collected so far is complete: keep, drop or note it. */
static int
field_done(struct state *st)
{
	struct field	*f = &st->f;
	size_t		 colon, nlen;
	const char	*value;
	int		 keep = 1, r = 0;

	if (!f->active)
		return 0;
	f->active = 0;
	nlen = rfc5322_field_name(f->buf, f->len, &colon);
	value = f->buf + colon + 1;
	switch (field_kind(f->buf, nlen)) {
	case H_DROP:
		keep = 0;
		break;
	case H_FROM:
		st->seen_from = 1;
		break;
	case H_DATE:
		st->seen_date = 1;
		break;
	case H_MSGID:
		st->seen_msgid = 1;
		break;
	case H_TO:
		r = collect(st, &st->info->to, value);
		break;
	case H_BCC:
		keep = 0;
		r = collect(st, &st->info->to, value);
		break;
	case H_RESENT_TO:
		st->info->has_resent = 1;
		r = collect(st, &st->info->resent, value);
		break;
	case H_RESENT_BCC:
		keep = 0;
		st->info->has_resent = 1;
		r = collect(st, &st->info->resent, value);
		break;
	case H_OTHER:
		break;
	}
	if (keep) {
		w_put(&st->w, f->buf, f->len);
		w_put(&st->w, "\n", 1);
	}
	f->len = 0;
	return r;
}

/* From, Date and Message-Id when the message has none. */
static void
add_missing(struct state *st)
{
	const struct msg_opts	*o = st->opts;
	char			 line[2048], phrase[1024], date[64];
	char			 stamp[32], id[MSGID_SIZE], from[ADDR_MAX + 32];
	time_t			 now = time(NULL);
	struct tm		 tm;

	if (!st->seen_from) {
		if (o->sender[0] != '\0')
			(void)strlcpy(from, o->sender, sizeof(from));
		else
			(void)snprintf(from, sizeof(from), "MAILER-DAEMON@%s",
			    o->hostname);
		if (o->fullname != NULL && o->fullname[0] != '\0' &&
		    rfc5322_phrase(o->fullname, phrase, sizeof(phrase)) == 0 &&
		    phrase[0] != '\0')
			(void)snprintf(line, sizeof(line), "From: %s <%s>\n",
			    phrase, from);
		else
			(void)snprintf(line, sizeof(line), "From: %s\n", from);
		w_str(&st->w, line);
		st->info->added_from = 1;
	}
	if (!st->seen_date) {
		time_rfc5322(now, date, sizeof(date));
		(void)snprintf(line, sizeof(line), "Date: %s\n", date);
		w_str(&st->w, line);
		st->info->added_date = 1;
	}
	if (!st->seen_msgid) {
		if (gmtime_r(&now, &tm) == NULL ||
		    strftime(stamp, sizeof(stamp), "%Y%m%d%H%M%S", &tm) == 0)
			(void)strlcpy(stamp, "0", sizeof(stamp));
		msgid_generate(id);
		(void)snprintf(line, sizeof(line), "Message-Id: <%s.%s@%s>\n",
		    stamp, id, o->hostname);
		w_str(&st->w, line);
		st->info->added_msgid = 1;
	}
}

static int
headers_end(struct state *st)
{
	int	 r;

	if ((r = field_done(st)) != 0)
		return r;
	add_missing(st);
	w_put(&st->w, "\n", 1);
	return 0;
}

/* ---- the message --------------------------------------------------------- */

static int
run(struct state *st, struct reader *rd)
{
	char	 chunk[CHUNK_MAX];
	size_t	 len, colon;
	int	 eol, bol, r, in_headers = 1, skipping = 0, first = 1;

	for (;;) {
		bol = rd->bol;
		if ((r = rd_chunk(rd, chunk, sizeof(chunk), &len, &eol)) == 0)
			break;
		if (r == -1) {
			(void)snprintf(st->info->err, sizeof(st->info->err),
			    "error reading the message: %s", strerror(errno));
			return EX_IOERR;
		}
		if (st->w.err)
			break;
		if (st->opts->unstuff && bol && len > 0 && chunk[0] == '.')
			memmove(chunk, chunk + 1, --len);	/* RFC 5321 4.5.2 */
		if (in_headers && first && bol && len >= 5 &&
		    memcmp(chunk, "From ", 5) == 0)
			skipping = 1;	/* an mbox "From " line */
		first = 0;
		if (skipping) {
			skipping = !eol;
			continue;
		}
		if (in_headers && !bol) {
			if (f_append(&st->f, chunk, len) == -1)
				goto toolong;
			continue;
		}
		if (in_headers && st->f.active && len > 0 &&
		    (chunk[0] == ' ' || chunk[0] == '\t')) {
			if (f_append(&st->f, "\n", 1) == -1 ||
			    f_append(&st->f, chunk, len) == -1)
				goto toolong;
			continue;
		}
		if (in_headers) {
			if ((r = field_done(st)) != 0)
				return r;
			if (len > 0 && rfc5322_field_name(chunk, len,
			    &colon) > 0) {
				st->f.active = 1;
				if (f_append(&st->f, chunk, len) == -1)
					goto toolong;
				continue;
			}
			in_headers = 0;
			if ((r = headers_end(st)) != 0)
				return r;
			if (len == 0 && eol)
				continue;	/* the separator line */
		}
		w_put(&st->w, chunk, len);
		if (eol)
			w_put(&st->w, "\n", 1);
	}
	if (in_headers && (r = headers_end(st)) != 0)
		return r;
	return 0;
toolong:
	(void)snprintf(st->info->err, sizeof(st->info->err),
	    "a header field is longer than %d bytes", MSG_FIELD_MAX);
	return EX_DATAERR;
}

int
msg_read(FILE *in, int out, const struct msg_opts *opts,
    struct msg_info *info)
{
	struct state	*st;
	struct reader	 rd;
	int		 r;

	memset(info, 0, sizeof(*info));
	if ((st = calloc(1, sizeof(*st))) == NULL) {
		(void)strlcpy(info->err, "out of memory", sizeof(info->err));
		return EX_OSERR;
	}
	st->opts = opts;
	st->info = info;
	st->w.fd = out;
	st->w.max = opts->max_size;
	rd.in = in;
	rd.dot_ends = opts->dot_ends;
	rd.bol = 1;
	rd.end = rd.dot_seen = 0;
	r = run(st, &rd);
	info->dot_seen = rd.dot_seen;
	info->bol = rd.bol;
	if (r == 0)
		w_flush(&st->w);
	if (r == 0 && st->w.err == EX_DATAERR)
		(void)snprintf(info->err, sizeof(info->err), "message too "
		    "large: more than %llu bytes (limit message-size)",
		    (unsigned long long)opts->max_size);
	else if (r == 0 && st->w.err)
		(void)snprintf(info->err, sizeof(info->err), "cannot write "
		    "the message to a temporary file: %s",
		    strerror(st->w.errnum));
	if (r == 0)
		r = st->w.err;
	info->size = st->w.size;
	free(st->f.buf);
	free(st);
	return r;
}

const struct addr_list *
msg_header_rcpts(const struct msg_info *info)
{
	return info->has_resent ? &info->resent : &info->to;
}

void
msg_info_free(struct msg_info *info)
{
	free(info->to.v);
	free(info->resent.v);
	info->to.v = info->resent.v = NULL;
	info->to.n = info->resent.n = 0;
	info->to.cap = info->resent.cap = 0;
}
