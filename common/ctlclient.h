/*
 * The client side of the control socket: connect, send a request, read the
 * answer frames.  Used by mtactl and by sendmail's mailq, newaliases and -q.
 * Nothing here prints or exits: callers say what went wrong their own way.
 */
#ifndef MTAD_CTLCLIENT_H
#define MTAD_CTLCLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "imsg.h"

/*
 * Connects to the control socket at path; timeout (seconds, 0 for none)
 * bounds each later read.  0, or -1 with errno: ENOENT or ECONNREFUSED when
 * mtad is not running, EACCES when the caller may not use the socket.
 */
int	ctlclient_connect(struct imsgbuf *, const char *path, int timeout);
/* Sends one request frame and flushes it: 0, or -1 with errno. */
int	ctlclient_send(struct imsgbuf *, uint32_t type, const void *data,
	    size_t len);
/*
 * The next answer frame: 1 with *imsg filled (imsg_free it), 0 when mtad
 * closed the connection, -1 with errno (EBADMSG: malformed; ETIMEDOUT).
 */
int	ctlclient_next(struct imsgbuf *, struct imsg *);
void	ctlclient_close(struct imsgbuf *);

#endif
