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

	if (o->sink != NULL) {
		if (o->err == 0 && o->len > 0)
			o->err = o->sink(o->sinkarg, o->buf, o->len);
		o->len = 0;
		return;
	}
	while (o->fd != -1 && o->err == 0 && off < o->len) {
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
	o->total++;
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

/* An address byte as headers carry it: no controls, maybe no spaces. */
static int
addr_byte(unsigned char c, int nospace)
{
	if (c < 0x20 || c == 0x7f || (nospace && c == ' '))
		return '_';
	return c;
}

void
mda_out_addr(struct mda_out *o, const char *s, int nospace)
{
	for (; *s != '\0'; s++)
		mda_out_putc(o, addr_byte((unsigned char)*s, nospace));
}

void
mda_out_envelope(struct mda_out *o, const char *sender, const char *rcpt)
{
	mda_out_puts(o, "Return-Path: <");
	mda_out_addr(o, sender, 0);
	mda_out_puts(o, ">\nDelivered-To: ");
	mda_out_addr(o, rcpt, 0);
	mda_out_putc(o, '\n');
}

void
mda_addr_copy(char *buf, size_t bufsz, const char *s, int nospace)
{
	size_t	 i;

	if (bufsz == 0)
		return;
	for (i = 0; i < bufsz - 1 && s[i] != '\0'; i++)
		buf[i] = (char)addr_byte((unsigned char)s[i], nospace);
	buf[i] = '\0';
}

void
mda_dlvto_line(char *buf, size_t bufsz, const char *rcpt)
{
	static const char	 head[] = "\nDelivered-To: ";
	size_t			 len;

	if (strlcpy(buf, head, bufsz) >= bufsz)
		return;
	len = strlen(buf);
	mda_addr_copy(buf + len, bufsz - len, rcpt, 0);
	strlcat(buf, "\n", bufsz);
}

size_t
mda_head_len(const char *buf, size_t len)
{
	const char	*end = memmem(buf, len, "\n\n", 2);

	return end == NULL ? len : (size_t)(end - buf) + 1;
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
