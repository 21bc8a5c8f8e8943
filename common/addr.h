/*
 * Mail addresses (RFC 5321 Mailbox, with RFC 6531 UTF-8 when allowed).
 */
#ifndef MTAD_ADDR_H
#define MTAD_ADDR_H

#include <stddef.h>

#include "envelope.h"

#define LOCALPART_MAX	64	/* RFC 5321 4.5.3.1.1, in octets */
#define DOMAIN_MAX	255

struct mailaddr {
	char	local[ADDR_MAX];	/* as given; a quoted local part keeps its quotes */
	char	domain[DOMAIN_MAX + 1];	/* "" only for the bare <postmaster> */
};

/*
 * Parses "local@domain" (no angle brackets).  utf8: accept UTF-8 (SMTPUTF8).
 * The local part is a dot-string or a quoted-string; the domain is a
 * hostname (LDH labels, each 1..63) or an address literal [1.2.3.4] /
 * [IPv6:...].  "postmaster" alone (case-insensitive) is accepted with an empty
 * domain.  Returns 0, or -1 if invalid.
 */
int	mailaddr_parse(struct mailaddr *, const char *, int utf8);
/* "local@domain" (or "local" when domain is empty); -1 if it does not fit. */
int	mailaddr_format(const struct mailaddr *, char *, size_t);
int	domain_is_valid(const char *, int utf8);
/* Lowercases ASCII letters in place. */
void	str_lower(char *);
/* Is s valid UTF-8 (no overlongs, no surrogates)? Also rejects NUL and controls < 0x20. */
int	utf8_is_valid(const char *s, size_t len);

#endif
