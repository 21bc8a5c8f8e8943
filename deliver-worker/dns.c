/*
 * libunbound's event API runs the resolver's sockets on our event base.
 * It hands back raw answer packets, which are parsed here with dn_expand(3)
 * for the names: only the answer section, only the records of the type
 * asked (the resolver has already followed CNAMEs).
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>

#include <resolv.h>
#include <stdlib.h>
#include <string.h>
#include <unbound.h>
#include <unbound-event.h>

#include "dns.h"
#include "log.h"
#include "stats.h"

#define T_MX_	15
#define T_A_	1
#define T_AAAA_	28
#define C_IN_	1

struct dns_req {
	int			 type;		/* T_MX_, T_A_, T_AAAA_ */
	int			 family;
	dns_mx_cb		 mx_cb;
	dns_addr_cb		 addr_cb;
	void			*arg;
	struct event		*ev;		/* timeout, then delivery */
	int			 ub_pending;	/* unbound still owes a callback */
	int			 user_pending;	/* our callback not run yet */
	enum dns_status		 status;
	struct dns_mx		 mx[DNS_MX_MAX];
	struct sockaddr_storage	 addr[DNS_ADDR_MAX];
	size_t			 n;
};

static struct ub_ctx		*ctx;
static struct event_base	*dns_base;

const char *
dns_status_text(enum dns_status s)
{
	switch (s) {
	case DNS_OK:		return "ok";
	case DNS_NODATA:	return "no such record";
	case DNS_NXDOMAIN:	return "no such domain (NXDOMAIN)";
	case DNS_TEMPFAIL:	return "temporary failure";
	}
	return "unknown";
}

int
dns_init(struct event_base *base, const struct config *conf)
{
	int	 i, r;

	dns_base = base;
	if ((ctx = ub_ctx_create_event(base)) == NULL) {
		log_warnx("dns: ub_ctx_create_event failed");
		return -1;
	}
	for (i = 0; i < conf->nresolvers; i++)
		if ((r = ub_ctx_set_fwd(ctx, conf->resolvers[i])) != 0) {
			log_warnx("dns: resolver %s: %s", conf->resolvers[i],
			    ub_strerror(r));
			return -1;
		}
	/*
	 * libunbound answers test. itself (RFC 6761); the resolvers decide
	 * here, so that a private zone such as the test suite's works.
	 */
	if ((r = ub_ctx_set_option(ctx, "local-zone:", "test. transparent")) !=
	    0)
		log_warnx("dns: local-zone test.: %s", ub_strerror(r));
	if (conf->nresolvers == 0 && (r = ub_ctx_resolvconf(ctx, NULL)) != 0)
		log_warnx("dns: /etc/resolv.conf: %s: resolving from the "
		    "root servers", ub_strerror(r));
	return 0;
}

static void
req_free_maybe(struct dns_req *q)
{
	if (q->ub_pending || q->user_pending)
		return;
	event_free(q->ev);
	free(q);
}

/* Runs the user's callback: from the timeout or the delivery event. */
static void
req_deliver(evutil_socket_t fd, short ev, void *arg)
{
	struct dns_req	*q = arg;

	if (!q->user_pending)
		return;
	q->user_pending = 0;
	if (q->ub_pending)	/* timed out: unbound answers later */
		q->status = DNS_TEMPFAIL;
	if (q->status != DNS_OK)
		q->n = 0;
	if (q->type == T_MX_)
		q->mx_cb(q->arg, q->status, q->mx, q->n);
	else
		q->addr_cb(q->arg, q->status, q->addr, q->n);
	req_free_maybe(q);
}

static void
ub_done(void *arg, int rcode, void *pkt, int len, int sec, char *why_bogus,
    int ratelimited)
{
	struct dns_req	*q = arg;
	struct timeval	 now = { 0, 0 };
	int		 n;

	q->ub_pending = 0;
	if (!q->user_pending) {		/* cancelled or timed out */
		req_free_maybe(q);
		return;
	}
	/* The callback's rcode is 0 for answers made locally: the header. */
	if (rcode == ns_r_noerror && pkt != NULL && len >= NS_HFIXEDSZ)
		rcode = ((unsigned char *)pkt)[3] & 0x0f;
	if (rcode == ns_r_nxdomain)
		q->status = DNS_NXDOMAIN;
	else if (rcode != ns_r_noerror || pkt == NULL || len <= 0)
		q->status = DNS_TEMPFAIL;
	else {
		if (q->type == T_MX_)
			n = dns_parse_mx(pkt, (size_t)len, q->mx, DNS_MX_MAX);
		else
			n = dns_parse_addr(pkt, (size_t)len, q->family,
			    q->addr, DNS_ADDR_MAX);
		if (n < 0)
			q->status = DNS_TEMPFAIL;
		else {
			q->n = (size_t)n;
			q->status = n > 0 ? DNS_OK : DNS_NODATA;
		}
	}
	/* Never from inside ub_resolve_event (it may answer from cache). */
	evtimer_del(q->ev);
	evtimer_add(q->ev, &now);
}

static struct dns_req *
query(const char *name, int type, int family, dns_mx_cb mcb, dns_addr_cb acb,
    void *arg)
{
	struct dns_req	*q;
	struct timeval	 tv = { DNS_TIMEOUT, 0 };
	int		 id, r;

	if ((q = calloc(1, sizeof(*q))) == NULL)
		return NULL;
	if ((q->ev = evtimer_new(dns_base, req_deliver, q)) == NULL) {
		free(q);
		return NULL;
	}
	q->type = type;
	q->family = family;
	q->mx_cb = mcb;
	q->addr_cb = acb;
	q->arg = arg;
	q->user_pending = 1;
	q->ub_pending = 1;
	q->status = DNS_TEMPFAIL;
	evtimer_add(q->ev, &tv);
	stat_increment("deliver.dns.query", 1);
	log_trace(TRACE_DELIVER, "dns: query %s %s", name, type == T_MX_ ?
	    "MX" : type == T_A_ ? "A" : "AAAA");
	if (ctx == NULL ||
	    (r = ub_resolve_event(ctx, name, type, C_IN_, q, ub_done,
	    &id)) != 0) {
		if (ctx != NULL)
			log_warnx("dns: %s: %s", name, ub_strerror(r));
		q->ub_pending = 0;
		evtimer_del(q->ev);
		tv.tv_sec = 0;
		evtimer_add(q->ev, &tv);
	}
	return q;
}

struct dns_req *
dns_query_mx(const char *domain, dns_mx_cb cb, void *arg)
{
	return query(domain, T_MX_, 0, cb, NULL, arg);
}

struct dns_req *
dns_query_addr(const char *host, int family, dns_addr_cb cb, void *arg)
{
	return query(host, family == AF_INET6 ? T_AAAA_ : T_A_, family, NULL,
	    cb, arg);
}

void
dns_cancel(struct dns_req *q)
{
	if (q == NULL)
		return;
	q->user_pending = 0;
	evtimer_del(q->ev);
	req_free_maybe(q);
}

/* ---- answer parsing ------------------------------------------------------ */

static uint16_t
get16(const unsigned char *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

struct rr {
	int			 type;
	const unsigned char	*rdata;
	size_t			 rdlen;
};

/*
 * Walks the answer section, calling fn for each record of `type`.  -1 if
 * the packet is malformed, else the number of records fn accepted.
 */
static int
walk_answers(const unsigned char *msg, size_t len, int type,
    int (*fn)(const unsigned char *, size_t, const struct rr *, void *,
    size_t, size_t), void *out, size_t max)
{
	const unsigned char	*p = msg, *eom = msg + len;
	char			 name[NS_MAXDNAME];
	struct rr		 rr;
	unsigned		 qd, an, i, class;
	int			 n, found = 0;

	if (len < NS_HFIXEDSZ)
		return -1;
	qd = get16(msg + 4);
	an = get16(msg + 6);
	p += NS_HFIXEDSZ;
	for (i = 0; i < qd; i++) {
		if ((n = dn_expand(msg, eom, p, name, sizeof(name))) < 0 ||
		    (size_t)(eom - p) < (size_t)n + NS_QFIXEDSZ)
			return -1;
		p += n + NS_QFIXEDSZ;
	}
	for (i = 0; i < an; i++) {
		if ((n = dn_expand(msg, eom, p, name, sizeof(name))) < 0 ||
		    (size_t)(eom - p) < (size_t)n + NS_RRFIXEDSZ)
			return -1;
		p += n;
		rr.type = get16(p);
		class = get16(p + 2);
		rr.rdlen = get16(p + 8);
		p += NS_RRFIXEDSZ;
		if ((size_t)(eom - p) < rr.rdlen)
			return -1;
		rr.rdata = p;
		p += rr.rdlen;
		if (rr.type != type || class != C_IN_)
			continue;
		/* Past max, only MX looks further: for better preferences. */
		if ((size_t)found >= max && type != T_MX_)
			continue;
		if ((n = fn(msg, len, &rr, out, (size_t)found, max)) < 0)
			return -1;
		found += n;
	}
	return found;
}

/* The n-th MX, or when max are kept, in place of a less preferred one. */
static int
take_mx(const unsigned char *msg, size_t len, const struct rr *rr, void *out,
    size_t i, size_t max)
{
	struct dns_mx	*mx = out;
	char		 name[NS_MAXDNAME];
	size_t		 j, worst;
	int		 n, added = 1;

	if (rr->rdlen < 3)
		return -1;
	n = dn_expand(msg, msg + len, rr->rdata + 2, name, sizeof(name));
	if (n < 0 || (size_t)n + 2 != rr->rdlen)
		return -1;
	if (strlen(name) >= sizeof(mx[0].host))
		return 0;	/* cannot be a usable host name: skipped */
	if (i >= max) {
		for (worst = 0, j = 1; j < max; j++)
			if (mx[j].pref > mx[worst].pref)
				worst = j;
		if (max == 0 || get16(rr->rdata) >= mx[worst].pref)
			return 0;
		i = worst;
		added = 0;
	}
	mx[i].pref = get16(rr->rdata);
	(void)strlcpy(mx[i].host, name, sizeof(mx[i].host));
	return added;
}

static int
take_a(const unsigned char *msg, size_t len, const struct rr *rr, void *out,
    size_t i, size_t max)
{
	struct sockaddr_storage	*ss = out;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss[i];

	if (rr->rdlen != 4)
		return -1;
	memset(&ss[i], 0, sizeof(ss[i]));
	sin->sin_family = AF_INET;
	memcpy(&sin->sin_addr, rr->rdata, 4);
	return 1;
}

static int
take_aaaa(const unsigned char *msg, size_t len, const struct rr *rr,
    void *out, size_t i, size_t max)
{
	struct sockaddr_storage	*ss = out;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss[i];

	if (rr->rdlen != 16)
		return -1;
	memset(&ss[i], 0, sizeof(ss[i]));
	sin6->sin6_family = AF_INET6;
	memcpy(&sin6->sin6_addr, rr->rdata, 16);
	return 1;
}

int
dns_parse_mx(const unsigned char *msg, size_t len, struct dns_mx *mx,
    size_t max)
{
	return walk_answers(msg, len, T_MX_, take_mx, mx, max);
}

int
dns_parse_addr(const unsigned char *msg, size_t len, int family,
    struct sockaddr_storage *ss, size_t max)
{
	if (family == AF_INET6)
		return walk_answers(msg, len, T_AAAA_, take_aaaa, ss, max);
	return walk_answers(msg, len, T_A_, take_a, ss, max);
}
