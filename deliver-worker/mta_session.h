/*
 * One SMTP client connection (RFC 5321), as an explicit state machine:
 * connect, greeting, EHLO (HELO fallback), STARTTLS, AUTH, then
 * transactions (MAIL, RCPT..., DATA, content, dot), pipelined when the
 * server offers PIPELINING, with RSET between messages.
 */
#ifndef MTAD_MTA_SESSION_H
#define MTAD_MTA_SESSION_H

#include <sys/queue.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <openssl/ssl.h>

#include "mta.h"

#define MTA_REPLY_MAX		1024	/* a reply's text, lines joined */
#define MTA_REPLY_LINES_MAX	100
#define MTA_LINE_MAX		4096	/* longest reply line accepted */

/* A reply, built line by line. */
struct mta_reply {
	int	code;			/* 250, 354, 550... */
	char	text[MTA_REPLY_MAX];	/* "550 5.1.1 first line second line" */
	int	nlines;
};

#define MTA_AUTH_PLAIN		0x1
#define MTA_AUTH_LOGIN		0x2
#define MTA_AUTH_CRAM_MD5	0x4

/* What the server said it supports in its EHLO reply. */
struct mta_caps {
	int		pipelining;
	int		eightbitmime;
	int		smtputf8;
	int		starttls;
	int		dsn;
	int		enhanced;
	int		size_offered;
	uint64_t	size;		/* 0: no limit given */
	int		auth;		/* MTA_AUTH_* */
};

enum mta_state {
	MS_CONNECT,		/* TCP connection in progress */
	MS_TLS_WRAP,		/* smtps: handshake before the greeting */
	MS_GREETING,
	MS_EHLO,
	MS_HELO,
	MS_STARTTLS,
	MS_TLS_HANDSHAKE,
	MS_AUTH,
	MS_IDLE,		/* no job */
	MS_RSET,
	MS_TX,			/* replies to MAIL, RCPT, DATA pending */
	MS_BODY,		/* sending the content */
	MS_EOM,			/* waiting for the reply to the final dot */
	MS_QUIT
};

#define MTA_CMD_MAIL	(-1)
#define MTA_CMD_DATA	(-2)

struct mta_session {
	TAILQ_ENTRY(mta_session) entry;		/* the destination's idle list */
	struct mta_dest		*dest;
	struct mta_job		*job;
	enum mta_state		 state;
	size_t			 host, addr;	/* where in the route */
	struct bufferevent	*bev;
	SSL			*ssl;
	int			 tls;		/* TLS is up */
	int			 no_tls;	/* opportunistic TLS failed: plain */
	char			 tls_info[64];	/* "TLSv1.3" or "none" */
	struct mta_caps		 caps;
	struct mta_reply	 reply;
	int			 esmtp;
	int			 authed;
	int			 auth_mech;
	int			 auth_step;
	/* a transaction */
	int			 cmds[MTA_RCPTS_PER_TX + 2];	/* FIFO */
	size_t			 cmd_head, cmd_tail;
	int			 pipelined;
	size_t			 next_rcpt;	/* without PIPELINING */
	int			 tx_failed;	/* MAIL was refused */
	size_t			 naccepted;
	uint64_t		 data_off;
	int			 dot_state;
	int			 used;		/* a transaction was made */
	int			 nmsgs;
	/* names for logs and texts */
	char			 name[RELAY_HOST_MAX];
	char			 addrtext[64];
	int			 port;
	struct event		*idle_ev;
	int			 idle_listed;	/* on the destination's list */
	int			 in_cb;		/* inside a callback: free later */
	int			 dead;
};

/* A new connection for the job, from the job's first usable host. */
void	 mta_session_start(struct mta_dest *, struct mta_job *);
/* An idle session takes a job. */
void	 mta_session_take(struct mta_session *, struct mta_job *);
/* Keeps the session idle for a while, then QUIT. */
void	 mta_session_idle(struct mta_session *);
/* QUIT now (idle sessions only). */
void	 mta_session_quit(struct mta_session *);
/* "mx1.test [127.0.0.2]:25" */
void	 mta_session_relay_text(const struct mta_session *, char *, size_t);

/* snprintf for texts that may be cut: a cut text is still a good text. */
void	 mta_textf(char *, size_t, const char *, ...)
	    __attribute__((format(printf, 3, 4)));

/* Parsers and encoders (exposed for the unit tests). */
void	 mta_reply_init(struct mta_reply *);
/* One line without its CRLF: 1 when the reply is complete, 0 if more
 * lines follow, -1 if the line is malformed. */
int	 mta_reply_line(struct mta_reply *, const char *, size_t);
/* The enhanced status code of the reply, or one made from its class. */
void	 mta_reply_status(const struct mta_reply *, char *, size_t);
/* One line of an EHLO reply after the first, without the code. */
void	 mta_caps_line(struct mta_caps *, const char *);
/*
 * Message content to SMTP DATA form: dots doubled at the start of lines,
 * bare LF made CRLF.  state starts at MTA_DOT_INIT and carries over chunks;
 * out must hold 2 * n bytes.  Returns the bytes written.
 */
#define MTA_DOT_INIT	1
size_t	 mta_dotstuff(const char *in, size_t n, char *out, int *state);
/* The last bytes that end the data: "\r\n.\r\n" or ".\r\n". */
const char *mta_dot_end(int state);
/* AUTH PLAIN's initial response; AUTH CRAM-MD5's answer.  -1 if too long. */
int	 mta_auth_plain(const char *user, const char *pass, char *, size_t);
int	 mta_auth_cram_md5(const char *user, const char *pass,
	    const char *challenge_b64, char *, size_t);
int	 mta_base64(const char *in, size_t n, char *out, size_t outsz);

#endif
