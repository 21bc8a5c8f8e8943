/*
 * The message bytes of DATA and BDAT as an explicit byte-level state
 * machine: finds the end of DATA, removes dot-stuffing (RFC 5321 4.5.2) and
 * notices bare CR and bare LF (or, on a `normalize` listener, turns them
 * into CRLF).  Only <CR><LF>.<CR><LF> ends the data (the line before it
 * counts: the data starts at a line start), which is what defeats SMTP
 * smuggling: "\n.\n", "\r.\r" and friends are ordinary content here, in
 * every mode.  BDAT chunks (RFC 3030) are taken as they are: no stuffing,
 * no end marker, the command's length says where a chunk ends.
 */
#ifndef MTAD_SMTP_DATA_H
#define MTAD_SMTP_DATA_H

#include <stddef.h>
#include <stdint.h>

enum data_mode {
	DM_DATA = 0,		/* DATA: dot-stuffed, ends at CRLF.CRLF, bare
				   CR/LF flagged (the message is refused) */
	DM_DATA_NORMALIZE,	/* DATA on a `normalize` listener: bare CR/LF
				   become CRLF in the output (and are still
				   flagged, for the log); the end is still only
				   CRLF.CRLF of the input */
	DM_RAW,			/* BDAT: bytes as they come, bare CR/LF
				   flagged */
	DM_RAW_NORMALIZE	/* BDAT on a `normalize` listener: bare CR/LF
				   become CRLF */
};

enum data_state {
	DS_BOL,		/* at the start of a line (after CRLF, or the start) */
	DS_TEXT,	/* inside a line */
	DS_CR,		/* inside a line, after CR (already written out) */
	DS_DOT,		/* DATA: a line started with "." */
	DS_DOTCR,	/* DATA: a line is ".\r" so far (the CR held back) */
	DS_DONE		/* DATA: saw CRLF.CRLF; raw: data_parser_finish() */
};

struct data_parser {
	enum data_mode	 mode;
	enum data_state	 state;
	uint64_t	 size;		/* bytes of output so far */
	int		 bare_lf;	/* an LF not preceded by CR was seen */
	int		 bare_cr;	/* a CR not followed by LF was seen */
};

void	data_parser_init(struct data_parser *, enum data_mode);

/*
 * Consumes up to `len` bytes of `in`.  Output is appended to `out`
 * (capacity at least 2 * len + 2 bytes: a held-back CR may be emitted with
 * the next byte, and normalizing turns one byte into two) and its length
 * stored in *outlen.  Returns the number of bytes of `in` consumed; when
 * DATA reaches DS_DONE it stops right after the final LF, so the rest of
 * `in` belongs to the next command (pipelining).  The terminating ".\r\n"
 * is not part of the output; the CRLF before it is.  The raw modes consume
 * everything they are given (until data_parser_finish()), and their state
 * carries over from one call, and one chunk, to the next: a CR at the end
 * of a chunk and an LF at the start of the next make a proper CRLF.
 */
size_t	data_parser_feed(struct data_parser *, const char *in, size_t len,
	    char *out, size_t *outlen);

/*
 * The end of the last BDAT chunk (BDAT ... LAST), for the raw modes: a CR
 * that ended the previous chunk turns out to be a bare CR (flagged, or
 * completed to CRLF when normalizing).  Writes at most 2 bytes to `out`
 * and returns how many; the parser is then DS_DONE and takes no more
 * input.  The DATA modes end by themselves: for them it returns 0 and
 * changes nothing.
 */
size_t	data_parser_finish(struct data_parser *, char *out);

#endif
