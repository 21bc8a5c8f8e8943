/*
 * Buffered output for local delivery.  Write errors are kept in the
 * buffer (the first errno) rather than returned by every call, so that a
 * message is composed without a check per byte; the caller looks at err
 * after the last flush.
 */
#include "autoconf.h"

#include <sys/types.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "mda_write.h"

void
mda_out_flush(struct mda_out *o)
{
	size_t	 off = 0;
	ssize_t	 n;

	while (o->err == 0 && off < o->len) {
		n = write(o->fd, o->buf + off, o->len - off);
		if (n == -1) {
			if (errno != EINTR)
				o->err = errno;
			continue;
		}
		off += (size_t)n;
	}
	o->len = 0;
}

void
mda_out_putc(struct mda_out *o, int c)
{
	if (o->len == sizeof(o->buf))
		mda_out_flush(o);
	o->buf[o->len++] = (char)c;
	o->last = c;
}

void
mda_out_put(struct mda_out *o, const char *s, size_t len)
{
	while (len-- > 0)
		mda_out_putc(o, (unsigned char)*s++);
}

void
mda_out_puts(struct mda_out *o, const char *s)
{
	mda_out_put(o, s, strlen(s));
}

void
mda_out_addr(struct mda_out *o, const char *s, int nospace)
{
	unsigned char	 c;

	for (; (c = (unsigned char)*s) != '\0'; s++) {
		if (c < 0x20 || c == 0x7f || (nospace && c == ' '))
			c = '_';
		mda_out_putc(o, c);
	}
}

static void
put_byte(struct mda_out *o, mda_put_fn put, void *arg, int c)
{
	if (put != NULL)
		put(arg, o, c);
	else
		mda_out_putc(o, c);
}

int
mda_out_message(struct mda_out *o, int msgfd, mda_put_fn put, void *arg)
{
	char		 rbuf[MDA_IOBUF];
	off_t		 off = 0;
	ssize_t		 n, i;
	int		 cr = 0, c;

	/* pread from 0: the fd's offset is shared with other processes. */
	while (o->err == 0) {
		n = pread(msgfd, rbuf, sizeof(rbuf), off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		if (n == 0)
			break;
		off += n;
		for (i = 0; i < n; i++) {
			c = (unsigned char)rbuf[i];
			if (cr) {
				cr = 0;
				if (c == '\n') {
					put_byte(o, put, arg, '\n');
					continue;
				}
				put_byte(o, put, arg, '\r');
			}
			if (c == '\r')
				cr = 1;
			else
				put_byte(o, put, arg, c);
		}
	}
	if (cr)
		put_byte(o, put, arg, '\r');
	return 0;
}
