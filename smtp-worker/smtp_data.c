#include "autoconf.h"

#include <stddef.h>
#include <string.h>

#include "smtp_data.h"

/*
 * Line starts.  A line ends with CRLF and nothing else: that is what the
 * end-of-data rule of RFC 5321 (4.1.1.4) and its transparency rule (4.5.2)
 * are written for, and the one definition serves both.  So after a bare LF
 * or a bare CR we are not at a line start, in any mode: a "." there neither
 * begins an end marker nor is a stuffed dot to remove.  Were "\n." a line
 * start for unstuffing, the same reading would make "\n.\r\n" an end, which
 * is exactly the smuggling this parser exists to refuse; and a sender that
 * stuffs by the RFC only stuffs after CRLF, so a dot after its bare LF is
 * content.  Normalizing changes the bytes written, never where lines start
 * in the input.
 *
 * A CR is written out as soon as it is read (except the one of a ".\r"
 * line, which may be the end); once the next byte shows that it was bare,
 * normalizing adds the LF that completes it.  So the output of a
 * normalizing mode never holds a bare CR or LF, and the strict modes write
 * the input as it is (minus stuffing and the end), flags raised.
 */

void
data_parser_init(struct data_parser *dp, enum data_mode mode)
{
	memset(dp, 0, sizeof(*dp));
	dp->mode = mode;
	/* The data starts at a line start: ".\r\n" first is an empty message. */
	dp->state = DS_BOL;
}

static int
is_raw(const struct data_parser *dp)
{
	return dp->mode == DM_RAW || dp->mode == DM_RAW_NORMALIZE;
}

static int
normalizing(const struct data_parser *dp)
{
	return dp->mode == DM_DATA_NORMALIZE || dp->mode == DM_RAW_NORMALIZE;
}

/* An LF that no CR came before: itself, or CRLF when normalizing. */
static size_t
bare_lf(struct data_parser *dp, char *out)
{
	size_t	n = 0;

	dp->bare_lf = 1;
	if (normalizing(dp))
		out[n++] = '\r';
	out[n++] = '\n';
	return n;
}

/* The CR already written turned out bare: complete it when normalizing. */
static size_t
bare_cr(struct data_parser *dp, char *out)
{
	dp->bare_cr = 1;
	if (!normalizing(dp))
		return 0;
	out[0] = '\n';
	return 1;
}

/* A byte inside a line (or one that does not start a "." line). */
static size_t
text_byte(struct data_parser *dp, unsigned char c, char *out)
{
	if (c == '\r') {
		dp->state = DS_CR;
		out[0] = '\r';
		return 1;
	}
	dp->state = DS_TEXT;
	if (c == '\n')
		return bare_lf(dp, out);
	out[0] = (char)c;
	return 1;
}

/* The byte after a CR: an LF makes a line end, anything else a bare CR. */
static size_t
cr_byte(struct data_parser *dp, unsigned char c, char *out)
{
	size_t	n;

	if (c == '\n') {
		dp->state = DS_BOL;
		out[0] = '\n';
		return 1;
	}
	n = bare_cr(dp, out);
	return n + text_byte(dp, c, out + n);	/* c is not LF: at most 1 */
}

/* One byte of DATA.  At most 2 bytes out, 3 when a held CR goes too. */
static size_t
data_byte(struct data_parser *dp, unsigned char c, char *out)
{
	size_t	n;

	switch (dp->state) {
	case DS_BOL:
		if (c == '.') {
			dp->state = DS_DOT;	/* drop the stuffed dot */
			return 0;
		}
		return text_byte(dp, c, out);
	case DS_TEXT:
		return text_byte(dp, c, out);
	case DS_CR:
		return cr_byte(dp, c, out);
	case DS_DOT:
		if (c == '\r') {
			dp->state = DS_DOTCR;	/* the end, or content */
			return 0;
		}
		/* ".\n" too: the dot began a real line, so it was stuffing. */
		return text_byte(dp, c, out);
	case DS_DOTCR:
		if (c == '\n') {
			dp->state = DS_DONE;
			return 0;
		}
		/* The held CR was a bare one: it is content after all. */
		out[0] = '\r';
		n = 1 + bare_cr(dp, out + 1);
		return n + text_byte(dp, c, out + n);	/* c is not LF */
	case DS_DONE:
		break;
	}
	return 0;
}

/* One byte of a BDAT chunk: only line ends matter, never dots. */
static size_t
raw_byte(struct data_parser *dp, unsigned char c, char *out)
{
	switch (dp->state) {
	case DS_CR:
		return cr_byte(dp, c, out);
	case DS_DONE:
		return 0;
	default:
		return text_byte(dp, c, out);
	}
}

size_t
data_parser_feed(struct data_parser *dp, const char *in, size_t len,
    char *out, size_t *outlen)
{
	size_t	i, o = 0;

	if (is_raw(dp)) {
		for (i = 0; i < len && dp->state != DS_DONE; i++)
			o += raw_byte(dp, (unsigned char)in[i], out + o);
	} else {
		for (i = 0; i < len && dp->state != DS_DONE; i++)
			o += data_byte(dp, (unsigned char)in[i], out + o);
	}
	dp->size += o;
	*outlen = o;
	return i;
}

size_t
data_parser_finish(struct data_parser *dp, char *out)
{
	size_t	n = 0;

	if (!is_raw(dp) || dp->state == DS_DONE)
		return 0;
	if (dp->state == DS_CR)
		n = bare_cr(dp, out);
	dp->state = DS_DONE;
	dp->size += n;
	return n;
}
