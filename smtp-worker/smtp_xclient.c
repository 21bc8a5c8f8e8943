#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "submit.h"
#include "smtp_xclient.h"

#define XCLIENT_VALUE_MAX	255		/* decoded, as Postfix's Note 1 */
#define XCLIENT_XTEXT_MAX	(3 * XCLIENT_VALUE_MAX)	/* all "+HH" */
#define XCLIENT_NAME_ECHO	32		/* of an unknown name, in a reply */
#define XCLIENT_SEP		" \t"
#define XCLIENT_SYNTAX		"501 5.5.4 Syntax: XCLIENT attribute=value ..."

static int	set_addr(struct xclient *, const char *);
static int	set_name(struct xclient *, const char *);
static int	set_port(struct xclient *, const char *);
static int	set_helo(struct xclient *, const char *);
static int	set_login(struct xclient *, const char *);
static int	set_proto(struct xclient *, const char *);
static int	set_destaddr(struct xclient *, const char *);
static int	set_destport(struct xclient *, const char *);

static const struct xclient_attr {
	const char	*name;
	int		(*set)(struct xclient *, const char *value);
} xclient_attrs[] = {
	{ "ADDR",	set_addr },
	{ "NAME",	set_name },
	{ "PORT",	set_port },
	{ "HELO",	set_helo },
	{ "LOGIN",	set_login },
	{ "PROTO",	set_proto },
	{ "DESTADDR",	set_destaddr },
	{ "DESTPORT",	set_destport },
};
#define XCLIENT_NATTRS	(sizeof(xclient_attrs) / sizeof(xclient_attrs[0]))

/* ---- values --------------------------------------------------------------- */

static int
is_unavailable(const char *v)
{
	return strcasecmp(v, "[UNAVAILABLE]") == 0 ||
	    strcasecmp(v, "[TEMPUNAVAIL]") == 0;
}

/*
 * IPv4, or IPv6 with the "IPV6:" prefix; older clients send IPv6 bare, and
 * a colon cannot be mistaken for IPv4.  Kept in canonical form so that
 * later comparisons and logs see one spelling.
 */
static int
addr_canonical(const char *v, char *out, size_t outsz)
{
	struct in_addr		a4;
	struct in6_addr		a6;

	if (strncasecmp(v, "IPV6:", 5) == 0) {
		if (inet_pton(AF_INET6, v + 5, &a6) != 1)
			return -1;
		return inet_ntop(AF_INET6, &a6, out, outsz) == NULL ? -1 : 0;
	}
	if (inet_pton(AF_INET, v, &a4) == 1)
		return inet_ntop(AF_INET, &a4, out, outsz) == NULL ? -1 : 0;
	if (inet_pton(AF_INET6, v, &a6) == 1)
		return inet_ntop(AF_INET6, &a6, out, outsz) == NULL ? -1 : 0;
	return -1;
}

static int
port_parse(const char *v, int *port)
{
	size_t	len = strlen(v), i;
	int	n = 0;

	if (len == 0 || len > 5)
		return -1;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	if (n > 65535)
		return -1;
	*port = n;
	return 0;
}

static int
set_addr(struct xclient *xc, const char *v)
{
	if (is_unavailable(v))
		xc->addr[0] = '\0';
	else if (addr_canonical(v, xc->addr, sizeof(xc->addr)) == -1)
		return -1;
	xc->has_addr = 1;
	return 0;
}

static int
set_destaddr(struct xclient *xc, const char *v)
{
	if (is_unavailable(v))
		xc->destaddr[0] = '\0';
	else if (addr_canonical(v, xc->destaddr, sizeof(xc->destaddr)) == -1)
		return -1;
	xc->has_destaddr = 1;
	return 0;
}

/* A hostname, not an address literal nor a dotted quad dressed as a name. */
static int
set_name(struct xclient *xc, const char *v)
{
	struct in_addr	a4;

	if (is_unavailable(v))
		xc->name[0] = '\0';
	else {
		if (v[0] == '[' || !domain_is_valid(v, 0) ||
		    inet_pton(AF_INET, v, &a4) == 1)
			return -1;
		if (strlcpy(xc->name, v, sizeof(xc->name)) >= sizeof(xc->name))
			return -1;
	}
	xc->has_name = 1;
	return 0;
}

static int
set_port(struct xclient *xc, const char *v)
{
	if (is_unavailable(v))
		xc->port = 0;
	else if (port_parse(v, &xc->port) == -1)
		return -1;
	xc->has_port = 1;
	return 0;
}

static int
set_destport(struct xclient *xc, const char *v)
{
	if (is_unavailable(v))
		xc->destport = 0;
	else if (port_parse(v, &xc->destport) == -1)
		return -1;
	xc->has_destport = 1;
	return 0;
}

/* It ends up in Received: headers: one printable ASCII word. */
static int
set_helo(struct xclient *xc, const char *v)
{
	const char	*p;

	if (is_unavailable(v))
		xc->helo[0] = '\0';
	else {
		if (*v == '\0')
			return -1;
		for (p = v; *p != '\0'; p++)
			if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e)
				return -1;
		if (strlcpy(xc->helo, v, sizeof(xc->helo)) >= sizeof(xc->helo))
			return -1;
	}
	xc->has_helo = 1;
	return 0;
}

/* SASL names may be UTF-8 (RFC 4422); control characters never. */
static int
set_login(struct xclient *xc, const char *v)
{
	size_t	len = strlen(v);

	if (is_unavailable(v))
		xc->login[0] = '\0';
	else {
		if (len == 0 || !utf8_is_valid(v, len) ||
		    memchr(v, 0x7f, len) != NULL)
			return -1;
		if (strlcpy(xc->login, v, sizeof(xc->login)) >= sizeof(xc->login))
			return -1;
	}
	xc->has_login = 1;
	return 0;
}

static int
set_proto(struct xclient *xc, const char *v)
{
	if (strcasecmp(v, "SMTP") == 0)
		xc->esmtp = 0;
	else if (strcasecmp(v, "ESMTP") == 0)
		xc->esmtp = 1;
	else
		return -1;
	xc->has_proto = 1;
	return 0;
}

/* ---- the command ---------------------------------------------------------- */

static const struct xclient_attr *
attr_lookup(const char *name, size_t len, size_t *idx)
{
	size_t	i;

	for (i = 0; i < XCLIENT_NATTRS; i++)
		if (strlen(xclient_attrs[i].name) == len &&
		    strncasecmp(xclient_attrs[i].name, name, len) == 0) {
			*idx = i;
			return &xclient_attrs[i];
		}
	return NULL;
}

/* The client's text goes back in a reply: printable ASCII, bounded. */
static void
name_for_reply(const char *name, size_t len, char *out, size_t outsz)
{
	size_t		i;
	unsigned char	c;

	if (outsz == 0)
		return;
	if (len > outsz - 1)
		len = outsz - 1;
	for (i = 0; i < len; i++) {
		c = (unsigned char)name[i];
		out[i] = (c < 0x21 || c > 0x7e) ? '?' : (char)c;
	}
	out[len] = '\0';
}

static int	fail(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static int
fail(char *err, size_t errsz, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
	return -1;
}

/* One "name=value" token of `len` bytes; `seen` catches repeats. */
static int
attr_apply(struct xclient *xc, const char *tok, size_t len, unsigned int *seen,
    char *err, size_t errsz)
{
	const struct xclient_attr	*a;
	const char			*eq;
	char				 raw[XCLIENT_XTEXT_MAX + 1];
	char				 value[XCLIENT_VALUE_MAX + 1];
	char				 shown[XCLIENT_NAME_ECHO + 1];
	size_t				 idx = 0, nlen, vlen;

	if ((eq = memchr(tok, '=', len)) == NULL || eq == tok)
		return fail(err, errsz, XCLIENT_SYNTAX);
	nlen = (size_t)(eq - tok);
	if ((a = attr_lookup(tok, nlen, &idx)) == NULL) {
		name_for_reply(tok, nlen, shown, sizeof(shown));
		return fail(err, errsz,
		    "501 5.5.4 Bad XCLIENT attribute: %s", shown);
	}
	if (*seen & (1U << idx))
		return fail(err, errsz,
		    "501 5.5.4 Duplicate XCLIENT attribute: %s", a->name);
	*seen |= 1U << idx;

	/* Too long, bad xtext, or a bad value: all the same to the client. */
	vlen = len - nlen - 1;
	if (vlen < sizeof(raw)) {
		memcpy(raw, eq + 1, vlen);
		raw[vlen] = '\0';
	}
	if (vlen >= sizeof(raw) ||
	    xtext_decode(raw, value, sizeof(value)) == -1 ||
	    a->set(xc, value) == -1)
		return fail(err, errsz,
		    "501 5.5.4 Bad XCLIENT attribute value: %s", a->name);
	return 0;
}

int
xclient_parse(const char *args, struct xclient *xc, char *err, size_t errsz)
{
	struct xclient	 tmp;
	unsigned int	 seen = 0;
	size_t		 len;
	int		 n = 0;

	memset(xc, 0, sizeof(*xc));
	memset(&tmp, 0, sizeof(tmp));
	for (;;) {
		args += strspn(args, XCLIENT_SEP);
		if (*args == '\0')
			break;
		len = strcspn(args, XCLIENT_SEP);
		if (attr_apply(&tmp, args, len, &seen, err, errsz) == -1)
			return -1;
		args += len;
		n++;
	}
	if (n == 0)
		return fail(err, errsz, XCLIENT_SYNTAX);
	*xc = tmp;
	return 0;
}
