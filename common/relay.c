#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "relay.h"

static int
port_parse(const char *s, int *port)
{
	char	*end;
	long	 v;

	if (*s == '\0' || strspn(s, "0123456789") != strlen(s) ||
	    strlen(s) > 5)
		return -1;
	v = strtol(s, &end, 10);
	if (*end != '\0' || v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

int
relay_url_parse(const char *url, enum relay_proto *proto, char *host,
    size_t hostsz, int *port, char *err, size_t errsz)
{
	static const struct {
		const char		*scheme;
		enum relay_proto	 proto;
		int			 port;
	} schemes[] = {
		{ "smtp://",		RELAY_PROTO_SMTP,	25 },
		{ "smtp+tls://",	RELAY_PROTO_STARTTLS,	25 },
		{ "smtps://",		RELAY_PROTO_SMTPS,	465 },
	};
	unsigned char	 a6[sizeof(struct in6_addr)];
	char		 h[RELAY_HOST_MAX], lit[RELAY_HOST_MAX];
	const char	*s = NULL, *colon, *end;
	size_t		 i, n;

	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (strncasecmp(url, schemes[i].scheme,
		    strlen(schemes[i].scheme)) == 0) {
			s = url + strlen(schemes[i].scheme);
			*proto = schemes[i].proto;
			*port = schemes[i].port;
			break;
		}
	if (s == NULL) {
		(void)snprintf(err, errsz, "unknown scheme: use smtp://, "
		    "smtp+tls:// or smtps://");
		return -1;
	}
	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL) {
			(void)snprintf(err, errsz, "unclosed [");
			return -1;
		}
		end++;
		colon = *end == ':' ? end : NULL;
		if (*end != '\0' && *end != ':') {
			(void)snprintf(err, errsz, "junk after the address");
			return -1;
		}
	} else {
		colon = strchr(s, ':');
		end = colon != NULL ? colon : s + strlen(s);
	}
	n = (size_t)(end - s);
	if (n == 0 || n >= sizeof(h) || n >= hostsz) {
		(void)snprintf(err, errsz, "bad host");
		return -1;
	}
	memcpy(h, s, n);
	h[n] = '\0';
	if (h[0] == '[') {
		/* [IPv6] or [IPv4]: the literal between the brackets */
		memcpy(lit, h + 1, n - 2);
		lit[n - 2] = '\0';
		if (inet_pton(AF_INET6, lit, a6) != 1 &&
		    inet_pton(AF_INET, lit, a6) != 1) {
			(void)snprintf(err, errsz, "bad address \"%s\"", h);
			return -1;
		}
	} else if (!domain_is_valid(h, 0) && inet_pton(AF_INET, h, a6) != 1) {
		(void)snprintf(err, errsz, "bad host name \"%s\"", h);
		return -1;
	}
	if (colon != NULL && port_parse(colon + 1, port) == -1) {
		(void)snprintf(err, errsz, "bad port \"%s\": 1 to 65535",
		    colon + 1);
		return -1;
	}
	(void)strlcpy(host, h, hostsz);
	str_lower(host);
	return 0;
}

int
relay_secret_split(const char *value, char *user, size_t usersz, char *pass,
    size_t passsz)
{
	size_t		 ulen, blank = strcspn(value, " \t");
	const char	*colon = memchr(value, ':', blank), *p;

	if (colon != NULL) {
		ulen = (size_t)(colon - value);
		p = colon + 1;
	} else {
		ulen = blank;
		p = value + blank;
		p += strspn(p, " \t");
	}
	if (ulen == 0 || ulen >= usersz || *p == '\0' ||
	    strlen(p) >= passsz)
		return -1;
	memcpy(user, value, ulen);
	user[ulen] = '\0';
	(void)strlcpy(pass, p, passsz);
	return 0;
}

int
resolver_parse(const char *spec, char *addr, size_t addrsz, int *port)
{
	unsigned char	 a[sizeof(struct in6_addr)];
	char		 h[RESOLVER_LEN];
	const char	*at = strrchr(spec, '@');
	size_t		 n = at != NULL ? (size_t)(at - spec) : strlen(spec);

	if (n == 0 || n >= sizeof(h) || n >= addrsz)
		return -1;
	memcpy(h, spec, n);
	h[n] = '\0';
	if (inet_pton(AF_INET, h, a) != 1 && inet_pton(AF_INET6, h, a) != 1)
		return -1;
	*port = 53;
	if (at != NULL && port_parse(at + 1, port) == -1)
		return -1;
	(void)strlcpy(addr, h, addrsz);
	return 0;
}
