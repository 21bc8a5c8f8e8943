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

/* qrcpt.dsn: which notifications this recipient has had */
#define RCPT_DSN_WARNED		0x1	/* a delay warning went out */
#define RCPT_DSN_DONE		0x2	/* its final outcome was reported, or
					   needs no report */

struct qrcpt {
	uint32_t	 index;
	enum rcpt_state	 state;
	uint32_t	 dsn;		/* RCPT_DSN_* */
	uint32_t	 attempts;
	time_t		 next_try;
	time_t		 last_try;
	char		 last_error[TEXT_MAX];
	struct dlv	 dlv;
};

#define MSG_F_HELD	0x1	/* not scheduled until released */
#define MSG_F_DSN	0x2	/* a notification mtad generated */
#define MSG_F_DOUBLE	0x4	/* a bounce of a bounce, to postmaster: its own
				   failure is only logged, never reported */

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
	uint32_t		 flags;		/* MSG_F_* */
	char			 envid[101];	/* RFC 3461 ENVID, "" if none */
	uint32_t		 ret;		/* DSN_RET_* */
	struct qrcpt		*rcpts;
	uint32_t		 nrcpts;
	int			 inflight;	/* batches out (memory only) */
	int			 reporting;	/* notifications being made (memory) */
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
/* mtactl: flush/schedule/hold/release/remove (enum ctl_op in proto.h). */
int	scheduler_op(int op, const char *target);
void	scheduler_pause(int);
int	scheduler_show_message(struct channel *, uint32_t id, const char *);
void	scheduler_show_queue(struct channel *, uint32_t id);
void	scheduler_stop(void);
#endif
