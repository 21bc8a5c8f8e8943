/*
 * Asynchronous DNS for remote delivery: libunbound running inside the
 * worker's libevent loop (no thread, no helper process).  The context is
 * made before the chroot, when /etc/resolv.conf (or the `resolver`
 * directives) can still be read.
 */
#ifndef MTAD_DNS_H
#define MTAD_DNS_H

#include <sys/socket.h>
#include <stddef.h>

#include <event2/event.h>

#include "config.h"

#define DNS_MX_MAX	16	/* MX records kept per domain */
#define DNS_ADDR_MAX	8	/* addresses kept per name and family */
#define DNS_TIMEOUT	30	/* seconds before a query counts as failed */

enum dns_status {
	DNS_OK = 0,		/* records found */
	DNS_NODATA,		/* the name exists, without records of the type */
	DNS_NXDOMAIN,		/* the name does not exist */
	DNS_TEMPFAIL		/* SERVFAIL, timeout, no answer: try later */
};

struct dns_mx {
	char	host[RELAY_HOST_MAX];	/* "" for the root: a null MX */
	int	pref;
};

struct dns_req;

typedef void (*dns_mx_cb)(void *arg, enum dns_status, const struct dns_mx *,
    size_t n);
typedef void (*dns_addr_cb)(void *arg, enum dns_status,
    const struct sockaddr_storage *, size_t n);

/* Before the chroot.  -1 if the resolver could not be set up. */
int		 dns_init(struct event_base *, const struct config *);
/*
 * Queries; the callback always runs later from the event loop, never from
 * inside the call.  NULL on memory exhaustion.
 */
struct dns_req	*dns_query_mx(const char *domain, dns_mx_cb, void *arg);
/* family: AF_INET (A) or AF_INET6 (AAAA). */
struct dns_req	*dns_query_addr(const char *host, int family, dns_addr_cb,
		    void *arg);
/* The callback of the request will not be called. */
void		 dns_cancel(struct dns_req *);
const char	*dns_status_text(enum dns_status);

/*
 * Answer parsing (exposed for the unit tests).  Each takes a DNS response
 * and fills up to max records of the answer section; returns the number
 * found, or -1 if the packet is malformed.
 */
int		 dns_parse_mx(const unsigned char *, size_t, struct dns_mx *,
		    size_t max);
int		 dns_parse_addr(const unsigned char *, size_t, int family,
		    struct sockaddr_storage *, size_t max);

#endif
