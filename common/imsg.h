/*
 * imsg-style framing over a SOCK_STREAM socketpair.
 *
 * A frame is a fixed header followed by `len` payload bytes (at most
 * IMSG_MAX_PAYLOAD).  One file descriptor may travel with a frame; it is sent
 * with the frame's first byte and flagged in the header, so the receiver can
 * pair queued descriptors with frames in order.  This module knows nothing of
 * message types: proto.c validates them.
 */
#ifndef MTAD_IMSG_H
#define MTAD_IMSG_H

#include <sys/queue.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#define IMSG_MAX_PAYLOAD	(64 * 1024)
#define IMSG_MAX_FDS		16	/* received but not yet consumed */
#define IMSG_F_HASFD		0x1

struct imsg_hdr {
	uint32_t	type;
	uint32_t	len;		/* payload bytes after the header */
	uint32_t	flags;
	uint32_t	peerid;		/* session or request this frame is for */
	uint32_t	pid;
};
#define IMSG_HDR_SIZE	sizeof(struct imsg_hdr)

struct imsg {
	struct imsg_hdr	 hdr;
	int		 fd;		/* -1, or owned by the caller until imsg_free */
	uint8_t		*data;		/* hdr.len bytes, or NULL */
};

struct imsg_frame {
	TAILQ_ENTRY(imsg_frame)	 entry;
	size_t			 len;	/* header + payload */
	size_t			 off;	/* bytes already written */
	int			 fd;
	uint8_t			 buf[];
};

struct imsgbuf {
	int				 fd;
	uint8_t				*rbuf;	/* IMSG_HDR_SIZE + IMSG_MAX_PAYLOAD */
	size_t				 rlen;
	int				 fdq[IMSG_MAX_FDS];
	size_t				 nfdq;
	TAILQ_HEAD(, imsg_frame)	 wq;
	size_t				 wq_bytes;
	pid_t				 pid;
};

int	imsgbuf_init(struct imsgbuf *, int fd);
void	imsgbuf_clear(struct imsgbuf *);

/* Queue a frame. Takes ownership of fd (closed once sent). -1 on error. */
int	imsg_compose(struct imsgbuf *, uint32_t type, uint32_t peerid, int fd,
	    const void *data, size_t len);

/* Read what is there: >0 bytes read, 0 on EOF, -1 on error (EAGAIN too). */
ssize_t	imsg_read(struct imsgbuf *);

/*
 * Extract one frame: 1 when one was returned, 0 when more bytes are needed,
 * -1 when the stream is malformed (errno EBADMSG): the peer is not to be
 * trusted any more.
 */
int	imsg_get(struct imsgbuf *, struct imsg *);
void	imsg_free(struct imsg *);

/* Write queued frames: 0 all written, 1 more pending, -1 error. */
int	imsg_flush(struct imsgbuf *);
/* Blocking variant for short-lived tools and shutdown paths. */
int	imsg_flush_blocking(struct imsgbuf *);
int	imsg_pending(const struct imsgbuf *);

#endif
