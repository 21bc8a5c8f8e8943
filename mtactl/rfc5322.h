/*
 * RFC 5322 pieces that sendmail(8) needs: header field names and address
 * lists (To, Cc, Bcc for -t, and recipients given as arguments).
 */
#ifndef MTAD_RFC5322_H
#define MTAD_RFC5322_H

#include <stddef.h>

/*
 * Length of the field name if line starts a header field ("Name:" or the
 * obsolete "Name :"), else 0.  The name is 1..len printable ASCII
 * characters other than ':'; *colon is the offset of the colon.
 */
size_t	rfc5322_field_name(const char *line, size_t len, size_t *colon);

/*
 * Called once per entry of an address list: ok and addr the addr-spec
 * ("local@domain" or a bare "local"; comments, display names and white
 * space removed, a quoted local part kept as quoted), or !ok and addr the
 * entry as written (trimmed, maybe truncated) because it is malformed.
 * A non-zero return stops the parse, and rfc5322_addrlist returns it.
 */
typedef int	(*rfc5322_addr_fn)(void *arg, int ok, const char *addr);

/*
 * Parses an address-list (RFC 5322 3.4, with the obsolete forms of 4.4):
 * mailboxes, name-addrs ("Name <a@b>"), groups ("team: a@b, c@d;"),
 * comments (nested), quoted strings, domain literals, folding white space
 * (CR and LF are white space here: pass an unfolded or a folded value).
 * Empty entries and empty groups are skipped.  Returns 0, or what fn
 * returned to stop.
 */
int	rfc5322_addrlist(const char *s, rfc5322_addr_fn fn, void *arg);

/*
 * A display name as RFC 5322 wants it in a header: as is when it is made
 * of atoms, a quoted string when it holds specials, RFC 2047 encoded words
 * (UTF-8, base64) when it holds 8-bit bytes.  -1 if it does not fit.
 */
int	rfc5322_phrase(const char *name, char *out, size_t outsz);

#endif
