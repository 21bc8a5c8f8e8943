/*
 * Remote delivery in the deliver-worker: jobs (one message, the recipients
 * of one relay action and domain), destinations (where a job goes: the MX
 * hosts of a domain or a smarthost, with its connections), routes (the
 * ordered hosts and addresses of a destination).  mta.c manages them;
 * mta_session.c speaks SMTP on one connection; dns.c resolves.
 */
#ifndef MTAD_MTA_H
#define MTAD_MTA_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <stdint.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "config.h"
#include "dns.h"
#include "envelope.h"

#define MTA_RCPTS_PER_TX	100	/* recipients per transaction */
#define MTA_HOSTS_MAX		DNS_MX_MAX
#define MTA_ADDRS_MAX		(2 * DNS_ADDR_MAX)	/* per host */
#define MTA_ROUTE_TTL		60	/* seconds a resolved route is used */
#define MTA_IDLE_SECS		5	/* an idle connection is kept so long */
#define MTA_MSGS_PER_CONN	100	/* then the connection is closed */
#define ENVID_MAX		128

struct mta_session;
struct mta_dest;

/* Per relay action: what was prepared before the chroot. */
struct mta_relay {
	TAILQ_ENTRY(mta_relay)	 entry;
	const struct action	*action;
	SSL_CTX			*ssl_ctx;	/* NULL if TLS is unusable */
	char			 tls_error[TEXT_MAX];
};

struct mta_rcpt {
	uint32_t	 index;		/* the queue's index in its batch */
	char		 addr[ADDR_MAX];
	uint32_t	 notify;	/* DSN_NOTIFY_* */
	char		 orcpt[ORCPT_MAX];
	int		 done;		/* the outcome is reported */
	int		 accepted;	/* 250 to RCPT in this transaction */
	int		 status;	/* last failure: DLV_TEMPFAIL/PERMFAIL */
	char		 text[TEXT_MAX];/* and its text */
};

typedef void (*mta_result_fn)(void *arg, uint32_t index, int status,
    const char *text);
typedef void (*mta_done_fn)(void *arg);

struct mta_job {
	TAILQ_ENTRY(mta_job)	 entry;
	TAILQ_ENTRY(mta_job)	 all;		/* every job of the worker */
	int			 cancelled;	/* its results have nowhere to go */
	struct mta_dest		*dest;
	char			 msgid[MSGID_SIZE];
	char			 sender[ADDR_MAX];
	char			 envid[ENVID_MAX];	/* RFC 3461, xtext */
	uint32_t		 ret;		/* DSN_RET_* */
	int			 fd;		/* the message, read with pread */
	uint64_t		 size;
	int			 eightbit;	/* -1 not scanned yet */
	struct mta_rcpt		*rcpts;
	size_t			 nrcpts;
	size_t			 left;		/* not reported yet */
	size_t			 min_host;	/* first route host to try */
	struct timeval		 start;
	mta_result_fn		 result;
	mta_done_fn		 done;
	void			*arg;
};

struct mta_host {
	struct mta_dest		*dest;
	char			 name[RELAY_HOST_MAX];
	int			 pref;
	struct sockaddr_storage	 addrs[MTA_ADDRS_MAX];
	size_t			 naddrs;
	enum dns_status		 a_status, aaaa_status;
	struct dns_req		*a_req, *aaaa_req;
};

enum dest_state { DEST_NEW, DEST_RESOLVING, DEST_READY };

struct mta_dest {
	TAILQ_ENTRY(mta_dest)	 entry;
	struct mta_relay	*relay;
	char			 domain[RELAY_HOST_MAX];	/* or smarthost */
	int			 port;
	int			 smarthost;
	enum dest_state		 state;
	/* the route */
	struct mta_host		 hosts[MTA_HOSTS_MAX];
	size_t			 nhosts;
	int			 implicit_mx;	/* no MX: the domain itself */
	time_t			 expires;
	int			 route_status;	/* DLV_OK, or why none */
	char			 route_error[TEXT_MAX];
	struct dns_req		*mx_req;
	int			 dns_pending;
	/* work */
	TAILQ_HEAD(, mta_job)	 jobs;		/* waiting for a session */
	TAILQ_HEAD(, mta_session) idle;		/* connections without a job */
	int			 nsessions;	/* all of them */
};

/* mta.c */
int	 mta_init(struct event_base *, struct config *);	/* before chroot */
/*
 * A job: the recipients (at most MTA_RCPTS_PER_TX) of one message for one
 * relay action and domain.  fd is taken over.  result runs once per
 * recipient, then done once; both always run later, from the event loop.
 */
int	 mta_submit(const char *action, const char *msgid, const char *sender,
	    const char *envid, uint32_t ret, int fd, const struct dlv *,
	    const uint32_t *index, size_t n, mta_result_fn, mta_done_fn,
	    void *arg);
/*
 * The queue that asked for the job is gone: it will ask again.  The job
 * stops before its next transaction (one whose content is being sent ends
 * normally); its results still come, and are dropped by the caller.
 */
void	 mta_cancel(void *arg);
/* Jobs not finished: the worker exits only when there are none. */
int	 mta_busy(void);
/* Shutdown: idle connections are closed, jobs run to their end. */
void	 mta_shutdown(void);

/* For mta_session.c. */
struct event_base *mta_base(void);
const struct config *mta_config(void);
void	 mta_rcpt_result(struct mta_job *, struct mta_rcpt *,
	    struct mta_session *, int status, const char *text);
/* The session gives the job back: done, or on to the next host. */
void	 mta_job_release(struct mta_job *, struct mta_session *);
/* The route ran out for this job: pending recipients get their last error. */
void	 mta_job_exhausted(struct mta_job *, struct mta_session *);
/* The session can take another job (else it is kept idle). */
void	 mta_session_ready(struct mta_session *);
/* The session is gone. */
void	 mta_session_gone(struct mta_session *);
/* Is this address one of ours (a listener on the relay port)? */
int	 mta_addr_is_ours(const struct sockaddr *);

/* MX handling (exposed for the unit tests). */
/* By preference; equal preferences in random order (RFC 5321 5.1). */
void	 mx_sort(struct dns_mx *, size_t n);
/* Is this the null MX of RFC 7505 (a single MX "." at any preference)? */
int	 mx_is_null(const struct dns_mx *, size_t n);
/*
 * Keeps the MX hosts preferred over `self` (RFC 5321 5.1: a host that finds
 * itself in the list discards itself and every less preferred host).
 * Returns the number kept: 0 means that we are the best MX (a loop, or
 * nothing to relay to as a backup).  *found says whether self was listed.
 */
size_t	 mx_select(struct dns_mx *, size_t n, const char *self, int *found);

#endif
