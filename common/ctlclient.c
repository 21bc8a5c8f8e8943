/*
 * Control socket client (see ctlclient.h).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "ctlclient.h"

int
ctlclient_connect(struct imsgbuf *ib, const char *path, int timeout)
{
	struct sockaddr_un	 sun;
	struct timeval		 tv = { timeout, 0 };
	int			 fd, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return -1;
	if ((timeout > 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)) == -1 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv,
	    sizeof(tv)) == -1)) ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    imsgbuf_init(ib, fd) == -1) {
		saved = errno;
		(void)close(fd);
		errno = saved;
		return -1;
	}
	return 0;
}

int
ctlclient_send(struct imsgbuf *ib, uint32_t type, const void *data,
    size_t len)
{
	if (imsg_compose(ib, type, 0, -1, data, len) == -1)
		return -1;
	return imsg_flush_blocking(ib);
}

int
ctlclient_next(struct imsgbuf *ib, struct imsg *imsg)
{
	ssize_t	 n;
	int	 r;

	for (;;) {
		if ((r = imsg_get(ib, imsg)) == 1)
			return 1;
		if (r == -1) {
			errno = EBADMSG;
			return -1;
		}
		if ((n = imsg_read(ib)) == 0)
			return 0;
		if (n == -1 && errno == EAGAIN) {
			/* the socket is blocking: SO_RCVTIMEO expired */
			errno = ETIMEDOUT;
			return -1;
		}
		if (n == -1 && errno != EINTR)
			return -1;
	}
}

void
ctlclient_close(struct imsgbuf *ib)
{
	int	 fd = ib->fd;

	imsgbuf_clear(ib);
	if (fd != -1)
		(void)close(fd);
}
