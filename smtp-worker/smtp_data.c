#include "autoconf.h"

#include <stddef.h>
#include <string.h>

#include "smtp_data.h"

void
data_parser_init(struct data_parser *dp)
{
	memset(dp, 0, sizeof(*dp));
	/* The data starts at a line start: ".\r\n" first is an empty message. */
	dp->state = DS_BOL;
}

/*
 * One byte through the machine.  A line is ended by CRLF only: a bare LF or
 * a bare CR is content (and noted), so it never puts us back at DS_BOL and
 * can never start a terminator.  The only byte held back is the CR of a
 * ".\r" line, which is either the start of the end or content.
 */
static size_t
data_byte(struct data_parser *dp, unsigned char c, char *out)
{
	size_t	n = 0;

	switch (dp->state) {
	case DS_BOL:
		if (c == '.') {
			dp->state = DS_DOT;	/* drop the stuffed dot */
			return 0;
		}
		/* FALLTHROUGH */
	case DS_TEXT:
		if (c == '\r')
			dp->state = DS_CR;
		else {
			if (c == '\n')
				dp->bare_lf = 1;
			dp->state = DS_TEXT;
		}
		break;
	case DS_CR:
		if (c == '\n')
			dp->state = DS_BOL;
		else {
			dp->bare_cr = 1;
			dp->state = c == '\r' ? DS_CR : DS_TEXT;
		}
		break;
	case DS_DOT:
		if (c == '\r') {
			dp->state = DS_DOTCR;
			return 0;
		}
		if (c == '\n')
			dp->bare_lf = 1;
		dp->state = DS_TEXT;
		break;
	case DS_DOTCR:
		if (c == '\n') {
			dp->state = DS_DONE;
			return 0;
		}
		/* The held CR was a bare one: it is content after all. */
		dp->bare_cr = 1;
		out[n++] = '\r';
		dp->state = c == '\r' ? DS_CR : DS_TEXT;
		break;
	case DS_DONE:
		return 0;
	}
	out[n++] = (char)c;
	return n;
}

size_t
data_parser_feed(struct data_parser *dp, const char *in, size_t len,
    char *out, size_t *outlen)
{
	size_t	i, o = 0;

	for (i = 0; i < len && dp->state != DS_DONE; i++)
		o += data_byte(dp, (unsigned char)in[i], out + o);
	dp->size += o;
	*outlen = o;
	return i;
}
