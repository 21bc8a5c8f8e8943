/*
 * Every message that crosses a process boundary, who may send it, and its
 * payload.  Payloads are built with m_add_* in the order written here and
 * read back with m_get_* + m_end().  proto_check() refuses a frame whose type
 * is unknown, whose sender may not send it, whose size is out of bounds or
 * whose fd presence is wrong: the sender is then treated as compromised.
 *
 * Notation: u32/u64/i64 fixed width, str length-prefixed, dlv = dlv_add().
 */
#ifndef MTAD_PROTO_H
#define MTAD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "imsg.h"

enum proc_kind {
	PROC_MASTER = 0,
	PROC_POLICY,
	PROC_QUEUE,
	PROC_SMTP,
	PROC_DELIVER,
	PROC_CONTROL,		/* an mtactl client on the control socket */
	PROC_COUNT
};

const char	*proc_name(enum proc_kind);

enum imsg_type {
	IMSG_NONE = 0,

	/* master -> any child */
	IMSG_PEER_CONNECT,	/* u32 kind, u32 slot; fd: channel to that peer */
	IMSG_SHUTDOWN,		/* empty: stop accepting, finish, exit */
	IMSG_LOG_VERBOSE,	/* u32 verbose, u32 trace mask */
	IMSG_STATS_REQ,		/* empty; peerid = request */
	/* any child -> master */
	IMSG_STATS_REP,		/* u32 n, n x (str name, u64 value); peerid echoed */
	IMSG_BAD_PEER,		/* u32 kind, u32 slot: that peer sent garbage */

	/* smtp-worker <-> policy, and queue <-> policy for the recipients of
	 * notifications (RCPT only); peerid = session or request id */
	IMSG_POLICY_MAIL,	/* str client_addr, u32 client_local, str helo,
				   str auth_user, str sender */
	IMSG_POLICY_MAIL_RES,	/* u32 code, str text ("2.1.0 Ok") */
	IMSG_POLICY_RCPT,	/* str client_addr, u32 client_local, str helo,
				   str auth_user, str sender, str rcpt */
	IMSG_POLICY_RCPT_RES,	/* u32 code, str text, u32 n, n x dlv */
	/* smtp-worker -> policy, per session: connection limits, AUTH */
	IMSG_POLICY_CONNECT,	/* str client_addr */
	IMSG_POLICY_CONNECT_RES, /* u32 code (220 or 421), str text */
	IMSG_POLICY_DISCONNECT,	/* empty: the session that CONNECTed ended */
	IMSG_POLICY_AUTH,	/* str client_addr, str table, str user,
				   str password */
	IMSG_POLICY_AUTH_RES,	/* u32 code (235, 454, 535), str text */

	/* smtp-worker <-> queue; peerid = session id */
	IMSG_QUEUE_CREATE,	/* empty */
	IMSG_QUEUE_CREATE_RES,	/* u32 status (QUEUE_*), str msgid; fd (O_WRONLY)
				   when QUEUE_OK */
	IMSG_QUEUE_RCPTS,	/* str msgid, u32 n, n x dlv: deliveries of a
				   message, in as many frames as needed, before
				   its COMMIT */
	IMSG_QUEUE_COMMIT,	/* str msgid, u64 size, str sender, str helo,
				   str client_addr, str client_name, str auth_user,
				   str proto, str envid, u32 ret (DSN_RET_*),
				   u32 n (total deliveries sent) */
	IMSG_QUEUE_COMMIT_RES,	/* u32 status (QUEUE_*), str msgid, str text */
	IMSG_QUEUE_ABORT,	/* str msgid */

	/* queue <-> deliver-worker; peerid = batch id */
	IMSG_DELIVER_BATCH,	/* str msgid, str sender, u32 n, n x (u32 index, dlv),
				   str envid, u32 ret (DSN_RET_*), str helo,
				   str client_addr, str auth_user, str proto,
				   i64 received; fd: the message, O_RDONLY */
	IMSG_DELIVER_RESULT,	/* u32 index, u32 status (enum dlv_status), str text */
	IMSG_DELIVER_DONE,	/* empty: every recipient of the batch reported */

	/* deliver-worker <-> master; peerid = request id */
	IMSG_MDA_DELIVER,	/* str msgid, u32 rcpt index, str sender, dlv;
				   fd: the message */
	IMSG_MDA_RESULT,	/* u32 status, str text */

	/* control: mtactl <-> master <-> queue; peerid = control client id */
	IMSG_CTL_SHOW_QUEUE,	/* empty */
	IMSG_CTL_QUEUE_ENTRY,	/* str msgid, str sender, str rcpt, str state,
				   u32 attempts, i64 created, i64 next_try,
				   str last_error */
	IMSG_CTL_SHOW_STATS,	/* empty */
	IMSG_CTL_STAT,		/* str name, u64 value */
	IMSG_CTL_MSG_OP,	/* u32 op (enum ctl_op), str target: a queue id,
				   "all", or for flush a domain; "" = all */
	IMSG_CTL_SHOW_MESSAGE,	/* str msgid: QUEUE_ENTRY rows, TEXT, END */
	IMSG_CTL_TEXT,		/* str text: a piece of a longer answer */
	IMSG_CTL_PAUSE,		/* u32 what (CTL_PAUSE_*), u32 paused */
	IMSG_CTL_STATUS,	/* empty: PROC rows, END */
	IMSG_CTL_PROC,		/* str name, u32 slot, u32 pid, str user,
				   i64 started, u32 restarts */
	IMSG_CTL_RELOAD,	/* empty: as SIGHUP */
	IMSG_CTL_RESULT,	/* u32 ok, str text */
	IMSG_CTL_END,		/* empty: end of a listing */

	IMSG_TYPE_MAX
};

enum fd_rule { FD_NONE, FD_REQUIRED, FD_OPTIONAL };

/* The queue's answer to CREATE and COMMIT. */
#define QUEUE_FAIL	0	/* temporary failure: 451 4.3.0 */
#define QUEUE_OK	1
#define QUEUE_NOSPACE	2	/* the spool is full: 452 4.3.1 */

enum ctl_op {
	CTL_OP_FLUSH = 1,	/* deferred recipients due now */
	CTL_OP_SCHEDULE,	/* the same, for one message */
	CTL_OP_HOLD,		/* not scheduled until released */
	CTL_OP_RELEASE,
	CTL_OP_REMOVE,		/* deleted without notification */
	CTL_OP_MAX
};
#define CTL_PAUSE_SMTP		1
#define CTL_PAUSE_DELIVERY	2

#define P(kind)	(1u << (kind))

struct imsg_spec {
	const char	*name;
	uint32_t	 senders;	/* P(kind) mask */
	uint32_t	 minlen;
	uint32_t	 maxlen;
	enum fd_rule	 fd;
};

const struct imsg_spec	*proto_spec(uint32_t type);
const char		*imsg_type_name(uint32_t type);
/* 0 if `imsg` is acceptable from a process of kind `from`, else -1. */
int			 proto_check(const struct imsg *, enum proc_kind from);

#endif
