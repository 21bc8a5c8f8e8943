/*
 * The queue process: owns the spool, commits accepted mail durably, schedules
 * deliveries and answers control requests.
 */
#ifndef MTAD_QUEUE_H
#define MTAD_QUEUE_H

#include <sys/queue.h>
#include <stdint.h>
#include <time.h>

#include "envelope.h"
#include "imsg.h"

struct config;

enum rcpt_state {
	RS_PENDING = 0,		/* waiting for its next attempt */
	RS_INFLIGHT,		/* handed to a deliver-worker (memory only) */
	RS_DELIVERED,		/* done: kept only until the message goes */
	RS_FAILED		/* permanent failure: awaiting its bounce */
};

struct qrcpt {
	uint32_t	 index;
	enum rcpt_state	 state;
	uint32_t	 attempts;
	time_t		 next_try;
	time_t		 last_try;
	char		 last_error[TEXT_MAX];
	struct dlv	 dlv;
};

/* A committed message and its per-recipient envelopes. */
struct qmsg {
	TAILQ_ENTRY(qmsg)	 entry;
	char			 msgid[MSGID_SIZE];
	time_t			 created;
	uint64_t		 size;		/* bytes of the message file */
	char			 sender[ADDR_MAX];	/* "" for <> */
	char			 helo[HELO_MAX];
	char			 client_addr[64];
	char			 client_name[256];
	char			 auth_user[USER_MAX * 4];
	char			 proto[16];	/* SMTP, ESMTP, ESMTPS, ... */
	struct qrcpt		*rcpts;
	uint32_t		 nrcpts;
	int			 inflight;	/* batches out (memory only) */
};

struct qmsg	*qmsg_new(void);
void		 qmsg_free(struct qmsg *);
/*
 * Appends a recipient (index = position); -1 on memory exhaustion or beyond
 * 100000 recipients (E2BIG).  rcpts must only be grown through here.
 */
int		 qmsg_add_rcpt(struct qmsg *, const struct dlv *);
const char	*rcpt_state_name(enum rcpt_state);

/* scheduler.c: the in-memory queue, dispatch to deliver-workers, retries. */
struct channel;
struct event_base;
void	scheduler_init(struct event_base *, struct config *);
void	scheduler_add(struct qmsg *);		/* takes ownership */
void	scheduler_worker_add(struct channel *);
void	scheduler_worker_lost(struct channel *);
void	scheduler_result(struct channel *, struct imsg *);
void	scheduler_done(struct channel *, struct imsg *);
int	scheduler_flush(void);			/* recipients rescheduled */
void	scheduler_show_queue(struct channel *, uint32_t id);
void	scheduler_stop(void);
int	scheduler_messages(void);
#endif
