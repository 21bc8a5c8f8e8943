/*
 * A channel: one imsg stream to a peer process, driven by libevent.  Frames
 * are validated against proto.h before dispatch; a peer that sends a bad frame
 * or closes the stream is reported through on_close, once, from its own
 * event, and the channel is dead from then on (the owner frees it there or
 * later; sends to a dead channel are dropped).
 */
#ifndef MTAD_CHANNEL_H
#define MTAD_CHANNEL_H

#include <event2/event.h>
#include <stdint.h>

#include "imsg.h"
#include "marshal.h"
#include "proto.h"

struct channel;
typedef void (*channel_dispatch_fn)(struct channel *, struct imsg *);
typedef void (*channel_close_fn)(struct channel *, int malformed);

struct channel {
	struct imsgbuf		 ibuf;
	struct event		*ev;
	struct event		*close_ev;	/* runs on_close after a failure */
	short			 events;
	enum proc_kind		 peer;
	int			 slot;		/* pool index of the peer */
	int			 dead;
	int			 malformed;
	channel_dispatch_fn	 dispatch;
	channel_close_fn	 on_close;
	void			*arg;
};

struct channel	*channel_new(struct event_base *, int fd, enum proc_kind peer,
		    int slot, channel_dispatch_fn, channel_close_fn, void *arg);
void		 channel_free(struct channel *);
/* Queue a frame; fd (or -1) is given away.  Errors kill the channel. */
void		 channel_send(struct channel *, uint32_t type, uint32_t peerid,
		    int fd, const void *data, size_t len);
/* Same with a marshalled payload; frees nothing (caller m_free's). */
void		 channel_send_m(struct channel *, uint32_t type, uint32_t peerid,
		    int fd, const struct mbuf *);
/* Called by a dispatch function on a frame whose payload does not parse. */
void		 channel_malformed(struct channel *, const struct imsg *);

#endif
