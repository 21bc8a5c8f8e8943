/*
 * Buffered output for local delivery (internal to mda_mbox.c and
 * mda_maildir.c): envelope headers, and the spooled message copied with its
 * CRLF line ends turned into LF.
 */
#ifndef MTAD_MDA_WRITE_H
#define MTAD_MDA_WRITE_H

#include <stddef.h>

#define MDA_IOBUF	65536

/* Too large for a stack frame: allocate it (delivery children only). */
struct mda_out {
	int		 fd;
	int		 err;		/* errno of the first failed write */
	int		 last;		/* last byte written */
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
