#include "autoconf.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"
#include "util.h"

static void	channel_io(evutil_socket_t, short, void *);

static void
channel_closed(evutil_socket_t fd, short ev, void *arg)
{
	struct channel	*c = arg;

	if (c->on_close)
		c->on_close(c, c->malformed);
}

static void
channel_update(struct channel *c)
{
	short	 want = EV_READ | EV_PERSIST;

	if (c->dead)
		return;
	if (imsg_pending(&c->ibuf))
		want |= EV_WRITE;
	if (want == c->events)
		return;
	event_del(c->ev);
	event_assign(c->ev, event_get_base(c->ev), c->ibuf.fd, want,
	    channel_io, c);
	if (event_add(c->ev, NULL) == -1)
		fatalx("channel: event_add failed");
	c->events = want;
}

struct channel *
channel_new(struct event_base *base, int fd, enum proc_kind peer, int slot,
    channel_dispatch_fn dispatch, channel_close_fn on_close, void *arg)
{
	struct channel	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (imsgbuf_init(&c->ibuf, fd) == -1) {
		free(c);
		return NULL;
	}
	set_nonblock(fd);
	c->peer = peer;
	c->slot = slot;
	c->dispatch = dispatch;
	c->on_close = on_close;
	c->arg = arg;
	c->events = EV_READ | EV_PERSIST;
	if ((c->ev = event_new(base, fd, c->events, channel_io, c)) == NULL ||
	    (c->close_ev = evtimer_new(base, channel_closed, c)) == NULL ||
	    event_add(c->ev, NULL) == -1) {
		if (c->ev)
			event_free(c->ev);
		if (c->close_ev)
			event_free(c->close_ev);
		imsgbuf_clear(&c->ibuf);
		free(c);
		return NULL;
	}
	return c;
}

void
channel_free(struct channel *c)
{
	if (c == NULL)
		return;
	event_free(c->ev);
	event_free(c->close_ev);
	close(c->ibuf.fd);
	imsgbuf_clear(&c->ibuf);
	free(c);
}

/*
 * Marks the channel dead and tells the owner, who may free it, from a fresh
 * event so that no caller up the stack is left holding a freed channel.
 */
static void
channel_fail(struct channel *c, int malformed)
{
	struct timeval	 now = { 0, 0 };

	if (c->dead)
		return;
	c->dead = 1;
	c->malformed = malformed;
	event_del(c->ev);
	if (event_add(c->close_ev, &now) == -1)
		fatalx("channel: event_add failed");
}

void
channel_malformed(struct channel *c, const struct imsg *imsg)
{
	log_warnx("malformed %s payload from %s #%d: disconnecting it",
	    imsg_type_name(imsg->hdr.type), proc_name(c->peer), c->slot);
	channel_fail(c, 1);
}

void
channel_send(struct channel *c, uint32_t type, uint32_t peerid, int fd,
    const void *data, size_t len)
{
	if (c->dead) {
		if (fd != -1)
			close(fd);
		return;
	}
	log_trace(TRACE_IMSG, "imsg: send %s to %s #%d peerid %u len %zu",
	    imsg_type_name(type), proc_name(c->peer), c->slot, peerid, len);
	if (imsg_compose(&c->ibuf, type, peerid, fd, data, len) == -1) {
		log_warn("imsg_compose %s to %s", imsg_type_name(type),
		    proc_name(c->peer));
		return;
	}
	channel_update(c);
}

void
channel_send_m(struct channel *c, uint32_t type, uint32_t peerid, int fd,
    const struct mbuf *m)
{
	if (m->err) {
		log_warnx("imsg %s to %s: payload too large",
		    imsg_type_name(type), proc_name(c->peer));
		if (fd != -1)
			close(fd);
		return;
	}
	channel_send(c, type, peerid, fd, m->data, m->len);
}

static void
channel_io(evutil_socket_t fd, short ev, void *arg)
{
	struct channel	*c = arg;
	struct imsg	 imsg;
	ssize_t		 n;
	int		 r;

	if (ev & EV_WRITE) {
		if (imsg_flush(&c->ibuf) == -1) {
			if (errno != EPIPE && errno != ECONNRESET)
				log_warn("channel to %s: write", proc_name(c->peer));
			channel_fail(c, 0);
			return;
		}
	}
	if (ev & EV_READ) {
		n = imsg_read(&c->ibuf);
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK) {
			if (errno == EBADMSG) {
				log_warnx("channel from %s #%d: bad fd passing",
				    proc_name(c->peer), c->slot);
				channel_fail(c, 1);
			} else
				channel_fail(c, 0);
			return;
		}
		if (n == 0) {
			channel_fail(c, 0);
			return;
		}
		/* c->dead guards against a dispatch that closed the channel. */
		while (!c->dead && (r = imsg_get(&c->ibuf, &imsg)) != 0) {
			if (r == -1) {
				log_warnx("channel from %s #%d: malformed frame",
				    proc_name(c->peer), c->slot);
				channel_fail(c, 1);
				return;
			}
			log_trace(TRACE_IMSG, "imsg: recv %s from %s #%d "
			    "peerid %u len %u", imsg_type_name(imsg.hdr.type),
			    proc_name(c->peer), c->slot, imsg.hdr.peerid,
			    imsg.hdr.len);
			if (proto_check(&imsg, c->peer) == -1) {
				imsg_free(&imsg);
				channel_fail(c, 1);
				return;
			}
			c->dispatch(c, &imsg);
			imsg_free(&imsg);
		}
	}
	channel_update(c);
}
