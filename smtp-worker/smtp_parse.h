/*
 * SMTP command line parsing (RFC 5321 section 4.1), free of I/O so that the
 * unit tests drive it directly.
 */
#ifndef MTAD_SMTP_PARSE_H
#define MTAD_SMTP_PARSE_H

#include <stddef.h>

#include "addr.h"

enum smtp_verb {
	VERB_UNKNOWN = 0,
	VERB_HELO, VERB_EHLO, VERB_MAIL, VERB_RCPT, VERB_DATA, VERB_RSET,
	VERB_NOOP, VERB_QUIT, VERB_VRFY, VERB_EXPN, VERB_HELP,
	VERB_STARTTLS, VERB_AUTH, VERB_BDAT, VERB_XCLIENT
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*name;		/* canonical verb, upper case */
	const char	*args;		/* points into the parsed line, after
					   the verb and one space; "" if none */
};

/*
 * Splits a command line (without CRLF).  Verbs are case-insensitive and must
 * be followed by a space or the end of the line.  Returns 0, or -1 for a line
 * that holds a NUL, bare CR/LF or other control characters (501).
 */
int	smtp_parse_command(char *line, struct smtp_cmd *);

#define SMTP_PARAMS_MAX	16

struct smtp_param {
	char	key[32];	/* upper-cased */
	char	value[256];	/* "" when the parameter has no value */
};

struct smtp_path {
	char			addr[ADDR_MAX];	/* "" for the null path <> */
	struct mailaddr		mailaddr;	/* valid when addr[0] */
	struct smtp_param	params[SMTP_PARAMS_MAX];
	int			nparams;
};

/*
 * Parses the argument of MAIL ("FROM:<...> params") or RCPT ("TO:<...>
 * params"); `prefix` is "FROM:" or "TO:" (case-insensitive, RFC 5321 allows
 * no space after the colon, and mtad tolerates one space, as Postfix does).
 * A source route (<@a,@b:user@d>) is accepted and dropped.  The null path
 * "<>" is valid only when allow_null.  On error returns -1 and writes a
 * complete reply ("501 5.1.7 Bad sender address syntax", "501 5.5.4 ...")
 * into err.
 */
int	smtp_parse_path(const char *args, const char *prefix, int allow_null,
	    int utf8, struct smtp_path *, char *err, size_t errsz);

/* The value of parameter `key` (upper case), or NULL when absent. */
const char	*smtp_path_param(const struct smtp_path *, const char *key);

#endif
