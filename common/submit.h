/*
 * A small blocking SMTP client for local submission: sendmail(8) and the
 * master's pickup of offline/ drops both hand a message to mtad this way,
 * over the AF_UNIX submit socket.  One transaction per connection; every
 * read and write is bounded by a timeout; replies are parsed strictly.
 *
 * The message is read from a descriptor (pread, from an offset), with LF or
 * CRLF line ends; it is sent with CRLF line ends and dot-stuffed.  A bare CR
 * is sent as a line break: the server refuses bare CRs.
 */
#ifndef MTAD_SUBMIT_H
#define MTAD_SUBMIT_H

#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

#define SUBMIT_TEXT_MAX		512	/* a reply as kept for reports */
#define SUBMIT_ENVID_MAX	100	/* RFC 3461 ENVID, decoded */
#define SUBMIT_NOTIFY_MAX	32	/* "SUCCESS,FAILURE,DELAY" */

/* Timeouts, in seconds (RFC 5321 4.5.3.2 gives the upper bounds). */
#define SUBMIT_TIMEOUT_CONNECT	10
#define SUBMIT_TIMEOUT_GREETING	30	/* local: a paused or stuck mtad */
#define SUBMIT_TIMEOUT_REPLY	300
#define SUBMIT_TIMEOUT_FINAL	600

struct submit_rcpt {
	char	 addr[ADDR_MAX];
	int	 code;			/* reply to RCPT; 0: not tried */
	char	 reply[SUBMIT_TEXT_MAX];
};

struct submit_env {
	char			 sender[ADDR_MAX];	/* "" for <> */
	struct submit_rcpt	*rcpts;
	size_t			 nrcpts;
	size_t			 cap;
	/* DSN (RFC 3461), "" when not asked for */
	char			 notify[SUBMIT_NOTIFY_MAX]; /* NEVER or a list */
	char			 ret[8];		/* FULL or HDRS */
	char			 envid[SUBMIT_ENVID_MAX + 1]; /* decoded */
};

/* Adds a recipient, ignoring a duplicate; -1 (errno) on memory exhaustion. */
int	 submit_env_add(struct submit_env *, const char *addr);
void	 submit_env_free(struct submit_env *);

/* Checks -N / -R / -V style values; on success stores them normalized. */
int	 submit_set_notify(struct submit_env *, const char *);
int	 submit_set_ret(struct submit_env *, const char *);
int	 submit_set_envid(struct submit_env *, const char *);

/* Prints one line of the dialogue (-v): dir is "<<<" or ">>>". */
typedef void (*submit_trace_fn)(void *arg, const char *dir, const char *line);

struct submit_client {
	int		 fd;
	int		 timeout;	/* seconds, for the next reply */
	char		 rbuf[4096];
	size_t		 rlen;
	int		 code;		/* last reply; 0 if none (I/O error) */
	char		 reply[SUBMIT_TEXT_MAX];	/* its lines, joined */
	int		 esmtp;
	int		 ext_dsn;
	int		 ext_8bitmime;
	int		 ext_size;
	submit_trace_fn	 trace;
	void		*trace_arg;
};

enum submit_status {
	SUBMIT_OK = 0,		/* accepted for every recipient it will be */
	SUBMIT_TEMPFAIL,	/* nothing was accepted; try again later */
	SUBMIT_PERMFAIL		/* nothing was accepted; never will be */
};

void	 submit_init(struct submit_client *);
/*
 * Connects to the AF_UNIX socket at path.  -1 with errno: ENOENT or
 * ECONNREFUSED mean that mtad is not running.
 */
int	 submit_connect(struct submit_client *, const char *path);
/* Greeting and EHLO (HELO if EHLO is refused): an enum submit_status. */
int	 submit_hello(struct submit_client *, const char *helo);
/*
 * One transaction: MAIL, RCPT for each recipient (their replies are stored
 * in env->rcpts), DATA with the size bytes of the message in msgfd at off.
 * SUBMIT_OK when the server took the message for at least one recipient:
 * recipients refused permanently are the others (code 5xx).  A temporary
 * refusal of any recipient makes the whole transaction temporary: the
 * accepted ones are dropped with RSET, so a retry never duplicates.
 * On failure c->code and c->reply say why (code 0: an I/O error).
 */
int	 submit_transaction(struct submit_client *, struct submit_env *,
	    int msgfd, off_t off, uint64_t size);
/* QUIT (best effort) and close. */
void	 submit_close(struct submit_client *);

/* RFC 3461 xtext, for ENVID; -1 if it does not fit. */
int	 xtext_encode(const char *in, char *out, size_t outsz);
int	 xtext_decode(const char *in, char *out, size_t outsz);

#endif
