/*
 * smtp-worker: SMTP server sessions on one event loop.  smtp.c is the process
 * (listeners, channels, session table); smtp_session.c is the per-connection
 * state machine.
 */
#ifndef MTAD_SMTP_H
#define MTAD_SMTP_H

#include <sys/socket.h>
#include <sys/tree.h>
#include <event2/event.h>
#include <stdio.h>

#include "channel.h"
#include "config.h"
#include "smtp_auth.h"
#include "smtp_data.h"

#define SMTP_AUTH_TRIES_MAX	3	/* failed AUTH per session before 421 */
#define SMTP_PROXY_TIMEOUT	10	/* seconds for a PROXY header */
#define SMTP_SHUTDOWN_GRACE_SECS 1	/* for QUIT after the last transaction */
#define IOERR_OTHER		1
#define IOERR_NOSPACE		2	/* ENOSPC, EDQUOT: 452 4.3.1 */
/* deliveries in one transaction, after alias expansion: bounds memory */
#define SMTP_DLVS_MAX		10000

enum smtp_state {
	S_PROXY,		/* reading the PROXY protocol header */
	S_WAIT_CONNECT,		/* policy decides whether the client may talk */
	S_HANDSHAKE,		/* TLS handshake (smtps, or after STARTTLS) */
	S_GREETING,		/* greeting delay: talking now is an error */
	S_CMD,			/* reading commands */
	S_AUTH,			/* reading a SASL response line */
	S_WAIT_AUTH,		/* policy checks the credentials */
	S_BDAT,			/* reading the bytes of a BDAT chunk */
	S_WAIT_MAIL,		/* policy decides MAIL FROM */
	S_WAIT_RCPT,		/* policy decides RCPT TO */
	S_WAIT_DATAFILE,	/* queue creates the message file */
	S_DATA,			/* receiving the message */
	S_WAIT_COMMIT,		/* queue makes it durable */
	S_QUIT			/* flushing the last reply, then close */
};

struct smtp_session {
	RB_ENTRY(smtp_session)	 entry;
	uint32_t		 id;
	struct bufferevent	*bev;
	enum smtp_state		 state;
	struct listener		*listener;
	struct sockaddr_storage	 ss;
	char			 client_addr[64];
	int			 client_local;
	long			 client_uid;	/* local submission, else -1 */
	char			 helo[HELO_MAX];
	int			 helo_seen;
	int			 esmtp;
	int			 errors;
	int			 policy_connected; /* DISCONNECT owed */
	struct event		*timer;		/* greeting delay, lingering */
	int			 lingering;	/* QUIT under TLS: flushing */
	void			*ssl_ctx;	/* the listener's SSL_CTX */
	int			 tls;		/* the session is encrypted */
	char			 tls_info[128];	/* version and cipher */
	struct sasl		*sasl;		/* during AUTH only */
	char			 auth_user[256];	/* "" until AUTH */
	int			 auth_failures;
	int			 xclient;	/* attributes came from XCLIENT */

	/* the transaction */
	int			 mail_seen;
	char			 sender[ADDR_MAX];
	char			 envid[101];	/* RFC 3461 ENVID */
	uint32_t		 ret;		/* RFC 3461 RET: DSN_RET_* */
	char			 rcpt[ADDR_MAX];	/* the one being decided */
	uint32_t		 rcpt_notify;	/* its DSN NOTIFY */
	char			 rcpt_orcpt[ORCPT_MAX];	/* its DSN ORCPT */
	struct dlv		*dlvs;
	size_t			 ndlvs;
	int			 nrcpt;		/* accepted RCPT commands */
	int			 utf8;		/* MAIL ... SMTPUTF8 */
	char			 msgid[MSGID_SIZE];
	FILE			*datafp;
	struct data_parser	 dp;
	int			 data_toobig;
	int			 data_ioerr;	/* IOERR_* */
	int			 bdat;		/* the transaction uses BDAT */
	uint64_t		 bdat_left;	/* bytes of the chunk to read */
	int			 bdat_last;	/* the chunk is the LAST */
	int			 bdat_failed;	/* refused: read and drop chunks */
	const char		*bdat_why;	/* the reply when bdat_failed -1 */
};

RB_HEAD(session_tree, smtp_session);
RB_PROTOTYPE(session_tree, smtp_session, entry, session_cmp);

extern struct config		*smtp_conf;
extern struct event_base	*smtp_base;

/* smtp.c: talking to policy and queue for a session. */
int	smtp_policy_connect(struct smtp_session *);
void	smtp_policy_disconnect(struct smtp_session *);
int	smtp_policy_auth(struct smtp_session *, const char *user,
	    const char *pass);
int	smtp_policy_mail(struct smtp_session *);
int	smtp_policy_rcpt(struct smtp_session *);
int	smtp_queue_create(struct smtp_session *);
int	smtp_queue_commit(struct smtp_session *, uint64_t size);
void	smtp_queue_abort(const char *msgid);
void	smtp_session_register(struct smtp_session *);
void	smtp_session_unregister(struct smtp_session *);
int	smtp_accepting(void);

/* smtp_session.c */
void	smtp_session_new(int fd, struct listener *, struct sockaddr *,
	    socklen_t);
void	smtp_session_free(struct smtp_session *);
void	smtp_reply_mail(struct smtp_session *, int code, const char *text);
void	smtp_reply_rcpt(struct smtp_session *, int code, const char *text,
	    struct dlv *, size_t);
void	smtp_reply_create(struct smtp_session *, int status,
	    const char *msgid, int fd);
void	smtp_reply_commit(struct smtp_session *, int status, const char *text);
void	smtp_reply_connect(struct smtp_session *, int code, const char *text);
void	smtp_reply_auth(struct smtp_session *, int code, const char *text);
/* "ESMTPSA" and friends (RFC 3848, RFC 6531) for Received and the queue. */
const char *smtp_session_proto(const struct smtp_session *);

/* smtp_tls.c: server contexts (before the chroot) and session TLS. */
int	smtp_tls_init(struct config *);
/*
 * Wraps the session's connection: the handshake starts (server side).
 * After STARTTLS, input already buffered in the clear is dropped.
 */
int	smtp_tls_start(struct smtp_session *, int starttls);
/* After the handshake: "TLSv1.3 with cipher TLS_AES_256_GCM_SHA384". */
void	smtp_tls_describe(struct smtp_session *);
/* Why the handshake failed, for the log. */
void	smtp_tls_error(struct smtp_session *, char *, size_t);
/* The worker stops: sessions between commands get 421 now. */
void	smtp_session_shutdown(struct smtp_session *);
/* A peer process went away while this session waited for it. */
void	smtp_session_peer_lost(struct smtp_session *, enum proc_kind);

#endif
