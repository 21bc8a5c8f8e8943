/*
 * The DATA phase as an explicit byte-level state machine: finds the end of
 * data, removes dot-stuffing (RFC 5321 4.5.2) and notices bare CR and bare LF.
 * Only <CR><LF>.<CR><LF> ends the data (the line before it counts: the data
 * starts at a line start), which is what defeats SMTP smuggling: "\n.\n",
 * "\r.\r" and friends are ordinary content here.
 */
#ifndef MTAD_SMTP_DATA_H
#define MTAD_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

enum data_state {
	DS_BOL,		/* at the start of a line */
	DS_TEXT,	/* inside a line */
	DS_CR,		/* inside a line, after CR */
	DS_DOT,		/* a line started with "." */
	DS_DOTCR,	/* a line is ".\r" so far */
	DS_DONE		/* saw CRLF.CRLF */
};

struct data_parser {
	enum data_state	 state;
	uint64_t	 size;		/* bytes of unstuffed output so far */
	int		 bare_lf;	/* an LF not preceded by CR was seen */
	int		 bare_cr;	/* a CR not followed by LF was seen */
};

void	data_parser_init(struct data_parser *);

/*
 * Consumes up to `len` bytes of `in`.  Unstuffed output is appended to `out`
 * (capacity at least 2 * len + 2 bytes: a held-back CR may be emitted with the
 * next byte) and its length stored in *outlen.  Returns the number of bytes of
 * `in` consumed; when the parser reaches DS_DONE it stops right after the
 * final LF, so the rest of `in` belongs to the next command (pipelining).
 * The terminating ".\r\n" is not part of the output; the CRLF before it is.
 */
size_t	data_parser_feed(struct data_parser *, const char *in, size_t len,
	    char *out, size_t *outlen);

#endif
