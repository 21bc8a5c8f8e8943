/*
 * Buffered output for local delivery (internal to mda_mbox.c and
 * mda_maildir.c): envelope headers, and the spooled message copied with its
 * CRLF line ends turned into LF.  The same output can be only counted, or
 * handed to a sink, so that what a delivery writes can be measured or
 * compared with what a previous attempt wrote.
 */
#ifndef MTAD_MDA_WRITE_H
#define MTAD_MDA_WRITE_H

#include <sys/types.h>

#include <stddef.h>

#define MDA_IOBUF	65536

/* Takes flushed bytes instead of a write to fd: 0, or an errno to stop. */
typedef int	(*mda_sink_fn)(void *arg, const char *, size_t);

/*
 * Too large for a stack frame: allocate it (delivery children only).
 * Bytes go to sink when it is set, else to fd, else (fd -1) nowhere: they
 * are only counted.
 */
struct mda_out {
	int		 fd;
	mda_sink_fn	 sink;
	void		*sinkarg;
	int		 err;		/* errno of the first failed write */
	int		 last;		/* last byte written */
	off_t		 total;		/* bytes put so far */
	size_t		 len;
	char		 buf[MDA_IOBUF];
};

/* Called with each byte of the message once its line ends are LF. */
typedef void	(*mda_put_fn)(void *arg, struct mda_out *, int c);

void	mda_out_flush(struct mda_out *);
void	mda_out_putc(struct mda_out *, int c);
void	mda_out_put(struct mda_out *, const char *, size_t);
void	mda_out_puts(struct mda_out *, const char *);
/* An envelope address for a header: controls (and spaces if nospace) as _. */
void	mda_out_addr(struct mda_out *, const char *, int nospace);
/* "Return-Path: <SENDER>\nDelivered-To: RCPT\n", as both formats start. */
void	mda_out_envelope(struct mda_out *, const char *sender,
	    const char *rcpt);
/* The same address as mda_out_addr writes it, in buf (truncated). */
void	mda_addr_copy(char *buf, size_t bufsz, const char *, int nospace);
/*
 * "\nDelivered-To: RCPT\n" as mda_out_envelope writes it: what identifies
 * the recipient of a delivery already made.
 */
void	mda_dlvto_line(char *buf, size_t bufsz, const char *rcpt);
/* The length of the header block that starts buf: up to its empty line. */
size_t	mda_head_len(const char *buf, size_t len);

/*
 * Copies the message in msgfd (read with pread from offset 0) with CRLF
 * turned into LF, a lone CR kept, handing each byte to put (to
 * mda_out_putc when put is NULL); stops early once a write failed.  0, or
 * the errno of a failed read (then a CR held back is not written).  Does
 * not flush.
 */
int	mda_out_message(struct mda_out *, int msgfd, mda_put_fn put,
	    void *arg);

#endif
