#include "autoconf.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "imsg.h"

#define RBUF_SIZE	(IMSG_HDR_SIZE + IMSG_MAX_PAYLOAD)

int
imsgbuf_init(struct imsgbuf *ib, int fd)
{
	memset(ib, 0, sizeof(*ib));
	ib->fd = fd;
	ib->pid = getpid();
	TAILQ_INIT(&ib->wq);
	if ((ib->rbuf = malloc(RBUF_SIZE)) == NULL)
		return -1;
	return 0;
}

void
imsgbuf_clear(struct imsgbuf *ib)
{
	struct imsg_frame	*f;

	while ((f = TAILQ_FIRST(&ib->wq)) != NULL) {
		TAILQ_REMOVE(&ib->wq, f, entry);
		if (f->fd != -1)
			close(f->fd);
		free(f);
	}
	ib->wq_bytes = 0;
	while (ib->nfdq > 0)
		close(ib->fdq[--ib->nfdq]);
	free(ib->rbuf);
	ib->rbuf = NULL;
	ib->rlen = 0;
}

int
imsg_compose(struct imsgbuf *ib, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	struct imsg_frame	*f;
	struct imsg_hdr		 hdr;

	if (len > IMSG_MAX_PAYLOAD || (len > 0 && data == NULL)) {
		if (fd != -1)
			close(fd);
		errno = EMSGSIZE;
		return -1;
	}
	if ((f = malloc(sizeof(*f) + IMSG_HDR_SIZE + len)) == NULL) {
		if (fd != -1)
			close(fd);
		return -1;
	}
	hdr.type = type;
	hdr.len = (uint32_t)len;
	hdr.flags = fd != -1 ? IMSG_F_HASFD : 0;
	hdr.peerid = peerid;
	hdr.pid = (uint32_t)ib->pid;
	memcpy(f->buf, &hdr, IMSG_HDR_SIZE);
	if (len)
		memcpy(f->buf + IMSG_HDR_SIZE, data, len);
	f->len = IMSG_HDR_SIZE + len;
	f->off = 0;
	f->fd = fd;
	TAILQ_INSERT_TAIL(&ib->wq, f, entry);
	ib->wq_bytes += f->len;
	return 0;
}

static int
queue_fds(struct imsgbuf *ib, struct msghdr *msg)
{
	struct cmsghdr	*cmsg;
	int		 bad = 0;

	for (cmsg = CMSG_FIRSTHDR(msg); cmsg; cmsg = CMSG_NXTHDR(msg, cmsg)) {
		int	*fds, n, i;

		if (cmsg->cmsg_level != SOL_SOCKET ||
		    cmsg->cmsg_type != SCM_RIGHTS)
			continue;
		fds = (int *)CMSG_DATA(cmsg);
		n = (int)((cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		for (i = 0; i < n; i++) {
			if (ib->nfdq < IMSG_MAX_FDS)
				ib->fdq[ib->nfdq++] = fds[i];
			else {
				close(fds[i]);
				bad = 1;
			}
		}
	}
	return bad ? -1 : 0;
}

ssize_t
imsg_read(struct imsgbuf *ib)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int) * 4)];
	} cmsgbuf;
	ssize_t		 n;

	if (ib->rlen >= RBUF_SIZE) {
		errno = ENOBUFS;
		return -1;
	}
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = ib->rbuf + ib->rlen;
	iov.iov_len = RBUF_SIZE - ib->rlen;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = &cmsgbuf.buf;
	msg.msg_controllen = sizeof(cmsgbuf.buf);

	do {
		n = recvmsg(ib->fd, &msg, MSG_CMSG_CLOEXEC);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (queue_fds(ib, &msg) == -1 || (msg.msg_flags & MSG_CTRUNC)) {
		errno = EBADMSG;
		return -1;
	}
	ib->rlen += (size_t)n;
	return n;
}

int
imsg_get(struct imsgbuf *ib, struct imsg *imsg)
{
	struct imsg_hdr	 hdr;
	size_t		 total;

	imsg->fd = -1;
	imsg->data = NULL;
	if (ib->rlen < IMSG_HDR_SIZE)
		return 0;
	memcpy(&hdr, ib->rbuf, IMSG_HDR_SIZE);
	if (hdr.len > IMSG_MAX_PAYLOAD || (hdr.flags & ~IMSG_F_HASFD)) {
		errno = EBADMSG;
		return -1;
	}
	total = IMSG_HDR_SIZE + hdr.len;
	if (ib->rlen < total)
		return 0;
	if (hdr.flags & IMSG_F_HASFD) {
		/* The fd is sent with the frame's first byte: it is here. */
		if (ib->nfdq == 0) {
			errno = EBADMSG;
			return -1;
		}
		imsg->fd = ib->fdq[0];
		memmove(ib->fdq, ib->fdq + 1, (ib->nfdq - 1) * sizeof(int));
		ib->nfdq--;
	}
	if (hdr.len > 0) {
		if ((imsg->data = malloc(hdr.len)) == NULL) {
			if (imsg->fd != -1)
				close(imsg->fd);
			imsg->fd = -1;
			return -1;
		}
		memcpy(imsg->data, ib->rbuf + IMSG_HDR_SIZE, hdr.len);
	}
	imsg->hdr = hdr;
	memmove(ib->rbuf, ib->rbuf + total, ib->rlen - total);
	ib->rlen -= total;
	return 1;
}

void
imsg_free(struct imsg *imsg)
{
	if (imsg->fd != -1)
		close(imsg->fd);
	imsg->fd = -1;
	free(imsg->data);
	imsg->data = NULL;
}

static int
write_frame(struct imsgbuf *ib, struct imsg_frame *f)
{
	struct msghdr	 msg;
	struct iovec	 iov;
	union {
		struct cmsghdr	hdr;
		char		buf[CMSG_SPACE(sizeof(int))];
	} cmsgbuf;
	ssize_t		 n;

	memset(&msg, 0, sizeof(msg));
	iov.iov_base = f->buf + f->off;
	iov.iov_len = f->len - f->off;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (f->off == 0 && f->fd != -1) {
		struct cmsghdr	*cmsg;

		memset(&cmsgbuf, 0, sizeof(cmsgbuf));
		msg.msg_control = &cmsgbuf.buf;
		msg.msg_controllen = sizeof(cmsgbuf.buf);
		cmsg = CMSG_FIRSTHDR(&msg);
		cmsg->cmsg_len = CMSG_LEN(sizeof(int));
		cmsg->cmsg_level = SOL_SOCKET;
		cmsg->cmsg_type = SCM_RIGHTS;
		memcpy(CMSG_DATA(cmsg), &f->fd, sizeof(int));
	}
	do {
		n = sendmsg(ib->fd, &msg, MSG_NOSIGNAL);
	} while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (f->fd != -1) {
		close(f->fd);
		f->fd = -1;
	}
	f->off += (size_t)n;
	ib->wq_bytes -= (size_t)n;
	return 0;
}

int
imsg_flush(struct imsgbuf *ib)
{
	struct imsg_frame	*f;

	while ((f = TAILQ_FIRST(&ib->wq)) != NULL) {
		if (write_frame(ib, f) == -1) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 1;
			return -1;
		}
		if (f->off < f->len)
			return 1;
		TAILQ_REMOVE(&ib->wq, f, entry);
		free(f);
	}
	return 0;
}

int
imsg_flush_blocking(struct imsgbuf *ib)
{
	struct pollfd	 pfd;
	int		 r;

	while ((r = imsg_flush(ib)) == 1) {
		pfd.fd = ib->fd;
		pfd.events = POLLOUT;
		if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
			return -1;
	}
	return r;
}

int
imsg_pending(const struct imsgbuf *ib)
{
	return !TAILQ_EMPTY(&ib->wq);
}
