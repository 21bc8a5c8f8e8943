/*
 * Small parsers for the remote delivery settings, shared by the
 * configuration parser (so that `mtad -n` finds the errors) and the
 * deliver-worker.
 */
#ifndef MTAD_RELAY_H
#define MTAD_RELAY_H

#include <stddef.h>

#include "config.h"

/*
 * A smarthost URL: smtp://HOST[:PORT] (STARTTLS per the tls policy),
 * smtp+tls://HOST[:PORT] (STARTTLS required) or smtps://HOST[:PORT] (TLS on
 * connect).  HOST is a host name, an IPv4 address or an IPv6 address in
 * brackets; the brackets are kept.  Default ports: 25, 25, 465.  0, or -1
 * with a reason in err.
 */
int	relay_url_parse(const char *url, enum relay_proto *proto, char *host,
	    size_t hostsz, int *port, char *err, size_t errsz);
/*
 * A secrets table value: "user:password" (the first colon separates) or
 * "user password" (the first blanks separate).  0, or -1 if either part is
 * empty or does not fit.
 */
int	relay_secret_split(const char *value, char *user, size_t usersz,
	    char *pass, size_t passsz);
/*
 * A `resolver` argument: an IPv4 or IPv6 address with an optional @PORT.
 * Writes the address and port (53 by default).  0, or -1.
 */
int	resolver_parse(const char *spec, char *addr, size_t addrsz, int *port);

#endif
