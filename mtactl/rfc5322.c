/*
 * Address lists and header field names (RFC 5322), for sendmail(8).
 *
 * A tokenizer in the style of Postfix's tok822: atoms, quoted strings,
 * comments, domain literals and specials, with white space (CR and LF
 * included) between them.  Entries of a list are split at top-level commas
 * and semicolons; a group's display name (up to its colon) is dropped; an
 * entry with angle brackets gives the address inside them, an entry
 * without gives the addr-spec made of its tokens.
 */
#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "rfc5322.h"

#define SHOW_MAX	200	/* a malformed entry as shown to the user */
#define ADDRSPEC_MAX	512

enum tok_type {
	T_END,
	T_ATOM,
	T_QSTRING,	/* with its quotes */
	T_LITERAL,	/* [...] with its brackets */
	T_COMMENT,	/* (...) with its parentheses */
	T_SPECIAL,	/* one of < > @ , ; : . */
	T_BAD		/* unterminated, or a stray ) ] \ */
};

struct token {
	enum tok_type	 type;
	const char	*p;
	size_t		 len;
};

static int	 is_wsp(char);
static void	 next_token(const char **, const char *, struct token *);
static int	 entry(const char *, const char *, rfc5322_addr_fn, void *);
static int	 malformed(const char *, const char *, rfc5322_addr_fn, void *);
static int	 addrspec(const char *, const char *, char *, size_t);
static int	 is_phrase(const char *, const char *);

static int
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Scans a quoted string, comment or literal ending at `close`. */
static const char *
scan_delimited(const char *p, const char *end, char open, char close)
{
	int	 depth = 1;

	for (p++; p < end; p++) {
		if (*p == '\\') {
			if (++p == end)
				break;
		} else if (*p == close) {
			if (--depth == 0)
				return p + 1;
		} else if (*p == open && open != close)
			depth++;
	}
	return NULL;
}

static void
next_token(const char **pp, const char *end, struct token *t)
{
	const char	*p = *pp, *q;

	while (p < end && is_wsp(*p))
		p++;
	t->p = p;
	t->len = 0;
	if (p == end || *p == '\0') {
		t->type = T_END;
		*pp = p;
		return;
	}
	switch (*p) {
	case '(':
	case '"':
	case '[':
		q = scan_delimited(p, end, *p, *p == '(' ? ')' :
		    *p == '"' ? '"' : ']');
		if (q == NULL) {
			t->type = T_BAD;
			q = end;
		} else
			t->type = *p == '(' ? T_COMMENT : *p == '"' ?
			    T_QSTRING : T_LITERAL;
		break;
	case '<': case '>': case '@': case ',': case ';': case ':': case '.':
		t->type = T_SPECIAL;
		q = p + 1;
		break;
	case ')': case ']': case '\\':
		t->type = T_BAD;
		q = p + 1;
		break;
	default:
		t->type = T_ATOM;
		for (q = p; q < end && *q != '\0' && !is_wsp(*q) &&
		    strchr("()<>@,;:.\"[]\\", *q) == NULL; q++)
			;
		break;
	}
	t->len = (size_t)(q - p);
	*pp = q;
}

static int
is_special(const struct token *t, char c)
{
	return t->type == T_SPECIAL && *t->p == c;
}

/* The entry as written, trimmed and on one line. */
static int
malformed(const char *s, const char *e, rfc5322_addr_fn fn, void *arg)
{
	char	 show[SHOW_MAX + 4];
	size_t	 n = 0;

	while (s < e && is_wsp(*s))
		s++;
	while (e > s && is_wsp(e[-1]))
		e--;
	for (; s < e && n < SHOW_MAX; s++)
		show[n++] = (unsigned char)*s < 0x20 ? ' ' : *s;
	if (s < e) {
		memcpy(show + n, "...", 3);
		n += 3;
	}
	show[n] = '\0';
	return fn(arg, 0, show);
}

static int
append(char *out, size_t outsz, size_t *o, const char *p, size_t len)
{
	if (*o + len >= outsz)
		return -1;
	memcpy(out + *o, p, len);
	*o += len;
	out[*o] = '\0';
	return 0;
}

/*
 * The addr-spec made of the tokens of [s, e): word *("." word) ["@"
 * (atom *("." atom) / domain-literal)], comments ignored.
 */
static int
addrspec(const char *s, const char *e, char *out, size_t outsz)
{
	enum { L_WORD, L_SEP, D_FIRST, D_ATOM, D_SEP, D_END } st = L_WORD;
	struct token	 t;
	size_t		 o = 0;

	out[0] = '\0';
	for (;;) {
		next_token(&s, e, &t);
		if (t.type == T_END)
			break;
		if (t.type == T_COMMENT)
			continue;
		switch (st) {
		case L_WORD:
			if (t.type != T_ATOM && t.type != T_QSTRING)
				return -1;
			st = L_SEP;
			break;
		case L_SEP:
			if (is_special(&t, '.'))
				st = L_WORD;
			else if (is_special(&t, '@'))
				st = D_FIRST;
			else
				return -1;
			break;
		case D_FIRST:
		case D_ATOM:
			if (t.type == T_ATOM)
				st = D_SEP;
			else if (t.type == T_LITERAL && st == D_FIRST)
				st = D_END;
			else
				return -1;
			break;
		case D_SEP:
			if (!is_special(&t, '.'))
				return -1;
			st = D_ATOM;
			break;
		case D_END:
			return -1;
		}
		if (append(out, outsz, &o, t.p, t.len) == -1)
			return -1;
	}
	return st == L_SEP || st == D_SEP || st == D_END ? 0 : -1;
}

/* Only words, dots (obs-phrase) and comments: a display name. */
static int
is_phrase(const char *s, const char *e)
{
	struct token	 t;
	int		 words = 0;

	for (;;) {
		next_token(&s, e, &t);
		if (t.type == T_END)
			return words > 0;
		if (t.type == T_ATOM || t.type == T_QSTRING)
			words++;
		else if (t.type != T_COMMENT && !is_special(&t, '.'))
			return 0;
	}
}

/* One entry of the list, between separators. */
static int
entry(const char *s, const char *e, rfc5322_addr_fn fn, void *arg)
{
	struct token	 t;
	const char	*p = s, *lt = NULL, *gt = NULL, *as, *ae;
	char		 addr[ADDRSPEC_MAX];
	int		 ntok = 0, bad = 0;

	for (;;) {
		next_token(&p, e, &t);
		if (t.type == T_END)
			break;
		if (t.type == T_COMMENT)
			continue;
		ntok++;
		if (t.type == T_BAD)
			bad = 1;
		else if (is_special(&t, '<')) {
			if (lt != NULL)
				bad = 1;
			lt = t.p;
		} else if (is_special(&t, '>')) {
			if (lt == NULL || gt != NULL)
				bad = 1;
			gt = t.p;
		} else if (gt != NULL)
			bad = 1;	/* only comments may follow "<...>" */
	}
	if (ntok == 0)
		return 0;
	if (bad || (lt != NULL && gt == NULL))
		return malformed(s, e, fn, arg);
	as = s;
	ae = e;
	if (lt != NULL) {
		as = lt + 1;
		ae = gt;
		p = as;
		next_token(&p, ae, &t);
		if (is_special(&t, '@')) {	/* obs-route "@a,@b:" */
			while (t.type != T_END && !is_special(&t, ':'))
				next_token(&p, ae, &t);
			if (t.type == T_END)
				return malformed(s, e, fn, arg);
			as = p;
		}
	}
	if (addrspec(as, ae, addr, sizeof(addr)) == -1)
		return malformed(s, e, fn, arg);
	return fn(arg, 1, addr);
}

int
rfc5322_addrlist(const char *s, rfc5322_addr_fn fn, void *arg)
{
	struct token	 t;
	const char	*p = s, *start = s, *end = s + strlen(s);
	int		 depth = 0, r;

	for (;;) {
		next_token(&p, end, &t);
		if (t.type == T_END)
			return entry(start, end, fn, arg);
		if (t.type != T_SPECIAL)
			continue;
		if (*t.p == '<')
			depth++;
		else if (*t.p == '>' && depth > 0)
			depth--;
		else if (depth == 0 && (*t.p == ',' || *t.p == ';')) {
			if ((r = entry(start, t.p, fn, arg)) != 0)
				return r;
			start = t.p + 1;
		} else if (depth == 0 && *t.p == ':') {
			/* A group: its name is no address. */
			if (!is_phrase(start, t.p) &&
			    (r = malformed(start, t.p + 1, fn, arg)) != 0)
				return r;
			start = t.p + 1;
		}
	}
}

size_t
rfc5322_field_name(const char *line, size_t len, size_t *colon)
{
	size_t	 i, n;

	for (i = 0; i < len; i++) {
		unsigned char	 c = (unsigned char)line[i];

		if (c < 33 || c > 126 || c == ':')
			break;
	}
	if (i == 0)
		return 0;
	n = i;
	while (i < len && (line[i] == ' ' || line[i] == '\t'))
		i++;		/* obs-optional: "Name :" */
	if (i == len || line[i] != ':')
		return 0;
	*colon = i;
	return n;
}

/* ---- display names ------------------------------------------------------- */

static int
is_atext(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

static void
base64(const unsigned char *in, size_t len, char *out)
{
	static const char	 b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t			 i, o = 0;
	unsigned int		 v;

	for (i = 0; i + 2 < len; i += 3) {
		v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = b64[v >> 6 & 63];
		out[o++] = b64[v & 63];
	}
	if (i < len) {
		v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);
		out[o++] = b64[v >> 18 & 63];
		out[o++] = b64[v >> 12 & 63];
		out[o++] = i + 1 < len ? b64[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* RFC 2047 encoded words of at most 45 input bytes, cut between characters. */
static int
encoded_words(const char *name, size_t len, char *out, size_t outsz)
{
	char	 word[80];
	size_t	 i = 0, n, o = 0;

	out[0] = '\0';
	while (i < len) {
		n = len - i > 45 ? 45 : len - i;
		while (n > 1 && i + n < len &&
		    ((unsigned char)name[i + n] & 0xc0) == 0x80)
			n--;
		base64((const unsigned char *)name + i, n, word);
		if ((o > 0 && append(out, outsz, &o, " ", 1) == -1) ||
		    append(out, outsz, &o, "=?UTF-8?B?", 10) == -1 ||
		    append(out, outsz, &o, word, strlen(word)) == -1 ||
		    append(out, outsz, &o, "?=", 2) == -1)
			return -1;
		i += n;
	}
	return 0;
}

int
rfc5322_phrase(const char *name, char *out, size_t outsz)
{
	char		 clean[1024];
	size_t		 i, n = 0, o = 0;
	int		 eightbit = 0, plain = 1;
	unsigned char	 c;

	/* Controls (a line break above all) never reach a header. */
	for (i = 0; name[i] != '\0' && n < sizeof(clean) - 1; i++) {
		c = (unsigned char)name[i];
		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c == ' ' && (n == 0 || clean[n - 1] == ' '))
			continue;
		clean[n++] = (char)c;
		if (c >= 0x80)
			eightbit = 1;
		else if (c != ' ' && !is_atext(c))
			plain = 0;
	}
	while (n > 0 && clean[n - 1] == ' ')
		n--;
	clean[n] = '\0';
	if (outsz == 0)
		return -1;
	out[0] = '\0';
	if (eightbit)
		return encoded_words(clean, n, out, outsz);
	if (plain)
		return append(out, outsz, &o, clean, n);
	if (append(out, outsz, &o, "\"", 1) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if ((clean[i] == '"' || clean[i] == '\\') &&
		    append(out, outsz, &o, "\\", 1) == -1)
			return -1;
		if (append(out, outsz, &o, clean + i, 1) == -1)
			return -1;
	}
	return append(out, outsz, &o, "\"", 1);
}
