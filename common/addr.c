#include "autoconf.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"

#define LABEL_MAX	63

static int	is_atext(unsigned char, int);
static int	is_qtext(unsigned char, int);
static int	is_ldh(unsigned char, int);
static size_t	dotstring_span(const char *, int);
static size_t	quoted_span(const char *, int);
static int	text_is_allowed(const char *, size_t, int);
static int	label_is_valid(const char *, size_t, int);
static int	literal_is_valid(const char *, size_t);

/* RFC 5322 atext; with SMTPUTF8 any byte of a (pre-validated) UTF-8 sequence. */
static int
is_atext(unsigned char c, int utf8)
{
	if (c >= 0x80)
		return utf8;
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9'))
		return 1;
	return c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL;
}

/* RFC 5321 qtextSMTP: printable ASCII and space, but no '"' and no '\'. */
static int
is_qtext(unsigned char c, int utf8)
{
	if (c >= 0x80)
		return utf8;
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

static int
is_ldh(unsigned char c, int utf8)
{
	if (c >= 0x80)
		return utf8;
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9') || c == '-';
}

/* Length of the Dot-string at s, 0 if there is none (empty atom, "..", ...). */
static size_t
dotstring_span(const char *s, int utf8)
{
	size_t	i = 0, start;

	for (;;) {
		start = i;
		while (is_atext((unsigned char)s[i], utf8))
			i++;
		if (i == start)
			return 0;
		if (s[i] != '.')
			return i;
		i++;
	}
}

/*
 * Length of the Quoted-string at s, quotes included, 0 if invalid.  The empty
 * string "" is refused on purpose: no mailbox has an empty name, and an empty
 * user would only confuse what comes after us.
 */
static size_t
quoted_span(const char *s, int utf8)
{
	size_t		i = 1;
	unsigned char	c;

	for (;;) {
		c = (unsigned char)s[i];
		if (c == '"')
			return i == 1 ? 0 : i + 1;
		if (c == '\\') {
			c = (unsigned char)s[i + 1];
			if (c < 32 || c > 126)
				return 0;
			i += 2;
			continue;
		}
		if (!is_qtext(c, utf8))
			return 0;
		i++;
	}
}

/* Byte-level screening of the whole string before any grammar applies. */
static int
text_is_allowed(const char *s, size_t len, int utf8)
{
	size_t	i;

	if (utf8)
		return utf8_is_valid(s, len);
	for (i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return 1;
}

int
mailaddr_parse(struct mailaddr *ma, const char *s, int utf8)
{
	size_t	len, llen;

	memset(ma, 0, sizeof(*ma));
	if (s == NULL)
		return -1;
	len = strlen(s);
	if (len >= sizeof(ma->local) || !text_is_allowed(s, len, utf8))
		return -1;

	/* RFC 5321 4.1.1.3: <Postmaster> needs no domain. */
	if (strcasecmp(s, "postmaster") == 0) {
		memcpy(ma->local, s, len + 1);
		return 0;
	}

	if (s[0] == '"')
		llen = quoted_span(s, utf8);
	else
		llen = dotstring_span(s, utf8);
	if (llen == 0 || llen > LOCALPART_MAX || s[llen] != '@')
		return -1;
	if (!domain_is_valid(s + llen + 1, utf8))
		return -1;

	memcpy(ma->local, s, llen);
	ma->local[llen] = '\0';
	/* Fits: domain_is_valid() bounds it to DOMAIN_MAX. */
	memcpy(ma->domain, s + llen + 1, len - llen);
	return 0;
}

int
mailaddr_format(const struct mailaddr *ma, char *buf, size_t bufsz)
{
	int	n;

	if (ma->domain[0] == '\0')
		n = snprintf(buf, bufsz, "%s", ma->local);
	else
		n = snprintf(buf, bufsz, "%s@%s", ma->local, ma->domain);
	if (n < 0 || (size_t)n >= bufsz)
		return -1;
	return 0;
}

/* One LDH label (or U-label with SMTPUTF8): 1..63 octets, no edge hyphen. */
static int
label_is_valid(const char *l, size_t len, int utf8)
{
	size_t	i;

	if (len == 0 || len > LABEL_MAX)
		return 0;
	if (l[0] == '-' || l[len - 1] == '-')
		return 0;
	for (i = 0; i < len; i++)
		if (!is_ldh((unsigned char)l[i], utf8))
			return 0;
	return 1;
}

/* "[1.2.3.4]" or "[IPv6:...]"; RFC 5321 4.1.3.  Other tags are refused. */
static int
literal_is_valid(const char *d, size_t len)
{
	char			 inner[DOMAIN_MAX + 1];
	struct in_addr		 a4;
	struct in6_addr		 a6;

	if (len < 3 || d[0] != '[' || d[len - 1] != ']' ||
	    len - 2 >= sizeof(inner))
		return 0;
	memcpy(inner, d + 1, len - 2);
	inner[len - 2] = '\0';
	if (strncasecmp(inner, "IPv6:", 5) == 0)
		return inet_pton(AF_INET6, inner + 5, &a6) == 1;
	return inet_pton(AF_INET, inner, &a4) == 1;
}

int
domain_is_valid(const char *d, int utf8)
{
	const char	*dot;
	size_t		 len, llen;

	if (d == NULL)
		return 0;
	len = strlen(d);
	if (len == 0 || len > DOMAIN_MAX || !text_is_allowed(d, len, utf8))
		return 0;
	if (d[0] == '[')
		return literal_is_valid(d, len);

	for (;;) {
		dot = strchr(d, '.');
		llen = dot != NULL ? (size_t)(dot - d) : strlen(d);
		if (!label_is_valid(d, llen, utf8))
			return 0;
		if (dot == NULL)
			return 1;
		d = dot + 1;
	}
}

void
str_lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s += 'a' - 'A';
}

/*
 * UTF-8 per RFC 3629: the shortest form only, no surrogates, nothing above
 * U+10FFFF.  The ranges of the second byte carry those rules.
 */
int
utf8_is_valid(const char *str, size_t len)
{
	const unsigned char	*s = (const unsigned char *)str;
	size_t			 i = 0, n, k;
	unsigned char		 lo, hi;

	while (i < len) {
		if (s[i] < 0x20)
			return 0;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xbf;
		if (s[i] >= 0xc2 && s[i] <= 0xdf)
			n = 1;
		else if (s[i] >= 0xe0 && s[i] <= 0xef) {
			n = 2;
			if (s[i] == 0xe0)
				lo = 0xa0;	/* overlong */
			else if (s[i] == 0xed)
				hi = 0x9f;	/* surrogates */
		} else if (s[i] >= 0xf0 && s[i] <= 0xf4) {
			n = 3;
			if (s[i] == 0xf0)
				lo = 0x90;	/* overlong */
			else if (s[i] == 0xf4)
				hi = 0x8f;	/* above U+10FFFF */
		} else
			return 0;
		if (len - i <= n)
			return 0;
		if (s[i + 1] < lo || s[i + 1] > hi)
			return 0;
		for (k = 2; k <= n; k++)
			if (s[i + k] < 0x80 || s[i + k] > 0xbf)
				return 0;
		i += n + 1;
	}
	return 1;
}
