/*
 * Connection and AUTH-failure limits of the policy process.
 *
 * Three tables:
 * - conns: every live connection by (owner, session), so that a worker's
 *   DISCONNECT, or its death, releases exactly what it holds;
 * - hosts: live connections per address key, freed at zero;
 * - hists: recent connection-rate and AUTH-failure history per address key,
 *   capped and kept in least-recently-used order.
 * Live counts are never evicted (forgetting one would let the per-IP and
 * total limits leak); they are bounded by the live connections, which are
 * bounded by conn_total and LIMITS_CONN_MAX.  History is only ever a reason
 * to refuse, so forgetting it is safe (see hist_evict()).
 */
#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/queue.h>
#include <sys/tree.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "log.h"

/* byte 0: 4, 6 or 0 (not numeric); then the address, the IPv6 one masked. */
struct addrkey {
	uint8_t		 b[17];
};

struct host {
	RB_ENTRY(host)	 entry;
	struct addrkey	 key;
	int		 live;
};

struct conn {
	RB_ENTRY(conn)	 entry;
	uint64_t	 owner;
	uint32_t	 session;
	struct host	*host;
};

struct hist {
	RB_ENTRY(hist)	 entry;
	TAILQ_ENTRY(hist) lru;
	struct addrkey	 key;
	time_t		 seen;		/* last update */
	time_t		 rate_start;
	uint32_t	 rate_count;
	time_t		 auth_start;
	time_t		 auth_last;
	uint32_t	 auth_count;
};

/* Expired history freed per call, so that the table shrinks when idle. */
#define HIST_PURGE_STEP	4

static int	conn_cmp(struct conn *, struct conn *);
static int	host_cmp(struct host *, struct host *);
static int	hist_cmp(struct hist *, struct hist *);

/*
 * The _STATIC tree generators mark their functions __unused, which libbsd
 * leaves undefined (a glibc struct member has that name); defined here,
 * after every header.
 */
#ifndef __unused
#define __unused	__attribute__((__unused__))
#endif

RB_HEAD(conn_tree, conn);
RB_HEAD(host_tree, host);
RB_HEAD(hist_tree, hist);
RB_GENERATE_STATIC(conn_tree, conn, entry, conn_cmp)
RB_GENERATE_STATIC(host_tree, host, entry, host_cmp)
RB_GENERATE_STATIC(hist_tree, hist, entry, hist_cmp)

static struct limits_conf	 lconf = { 0, 0, 0, 60, 0, 300 };
static struct conn_tree		 conns = RB_INITIALIZER(&conns);
static struct host_tree		 hosts = RB_INITIALIZER(&hosts);
static struct hist_tree		 hists = RB_INITIALIZER(&hists);
static TAILQ_HEAD(, hist)	 lru = TAILQ_HEAD_INITIALIZER(lru);
static size_t			 nconns;
static size_t			 nhists;
static size_t			 track_max = LIMITS_TRACK_MAX;
static size_t			 conn_max = LIMITS_CONN_MAX;

static int
conn_cmp(struct conn *a, struct conn *b)
{
	if (a->owner != b->owner)
		return a->owner < b->owner ? -1 : 1;
	if (a->session != b->session)
		return a->session < b->session ? -1 : 1;
	return 0;
}

static int
host_cmp(struct host *a, struct host *b)
{
	return memcmp(a->key.b, b->key.b, sizeof(a->key.b));
}

static int
hist_cmp(struct hist *a, struct hist *b)
{
	return memcmp(a->key.b, b->key.b, sizeof(a->key.b));
}

/* ---- address keys ---------------------------------------------------- */

/*
 * IPv6 counts per /64: one host (SLAAC, privacy addresses) usually owns a
 * whole /64 and can take a fresh address for every connection, so counting
 * single addresses would limit nothing, and a /64 is the smallest block
 * given to one site.  IPv4-mapped addresses (a dual-stack listener) are the
 * IPv4 client they carry.
 */
static void
addr_key(const char *ip, struct addrkey *k)
{
	struct in_addr	 in4;
	struct in6_addr	 in6;
	char		 buf[INET6_ADDRSTRLEN];
	size_t		 n;

	memset(k, 0, sizeof(*k));
	if (ip == NULL)
		return;
	/* A zone ("fe80::1%eth0") does not name another host. */
	n = strcspn(ip, "%");
	if (n >= sizeof(buf))
		return;
	memcpy(buf, ip, n);
	buf[n] = '\0';

	if (inet_pton(AF_INET, buf, &in4) == 1) {
		k->b[0] = 4;
		memcpy(&k->b[1], &in4, sizeof(in4));
	} else if (inet_pton(AF_INET6, buf, &in6) == 1) {
		if (IN6_IS_ADDR_V4MAPPED(&in6)) {
			k->b[0] = 4;
			memcpy(&k->b[1], &in6.s6_addr[12], 4);
		} else {
			k->b[0] = 6;
			memcpy(&k->b[1], in6.s6_addr, 8);
		}
	}
}

/* ---- settings -------------------------------------------------------- */

static int
nonneg(int v)
{
	return v < 0 ? 0 : v;
}

static time_t
window(time_t w)
{
	return w < 1 ? 1 : w;
}

void
limits_init(const struct limits_conf *c)
{
	lconf.conn_total = nonneg(c->conn_total);
	lconf.conn_per_ip = nonneg(c->conn_per_ip);
	lconf.conn_rate = nonneg(c->conn_rate);
	lconf.rate_window = window(c->rate_window);
	lconf.auth_failures = nonneg(c->auth_failures);
	lconf.auth_window = window(c->auth_window);
}

void
limits_set_track_max(size_t n)
{
	track_max = n ? n : LIMITS_TRACK_MAX;
}

void
limits_set_conn_max(size_t n)
{
	conn_max = n ? n : LIMITS_CONN_MAX;
}

/* ---- history (rates, AUTH failures) ---------------------------------- */

static void
hist_free(struct hist *h)
{
	RB_REMOVE(hist_tree, &hists, h);
	TAILQ_REMOVE(&lru, h, lru);
	free(h);
	nhists--;
}

/* Past this age an entry says nothing its absence would not say. */
static int
hist_expired(const struct hist *h, time_t now)
{
	time_t	 horizon;

	horizon = lconf.rate_window > lconf.auth_window ?
	    lconf.rate_window : lconf.auth_window;
	return now >= h->seen && now - h->seen >= horizon;
}

static void
hist_purge(time_t now)
{
	struct hist	*h;
	int		 i;

	for (i = 0; i < HIST_PURGE_STEP; i++) {
		if ((h = TAILQ_FIRST(&lru)) == NULL || !hist_expired(h, now))
			break;
		hist_free(h);
	}
}

/*
 * The table is full: forget the least recently active address.  This is
 * safe because history is only ever a reason to refuse: an evicted client
 * starts again with a clean slate, so the worst case is letting a client
 * through a rate or AUTH limit early, never blocking a legitimate one.
 * Live connection counts are elsewhere and never evicted.  Flooding the
 * table needs many /64s or IPv4 addresses that complete TCP handshakes.
 */
static void
hist_evict(void)
{
	struct hist	*h;

	if ((h = TAILQ_FIRST(&lru)) == NULL)
		return;
	log_debug("limits: history table full, forgetting the oldest entry");
	hist_free(h);
}

static struct hist *
hist_find(const struct addrkey *k)
{
	struct hist	 find;

	find.key = *k;
	return RB_FIND(hist_tree, &hists, &find);
}

/* The entry of k, made most recently used; created if need be. */
static struct hist *
hist_get(const struct addrkey *k, time_t now)
{
	struct hist	*h;

	hist_purge(now);
	if ((h = hist_find(k)) != NULL) {
		TAILQ_REMOVE(&lru, h, lru);
		TAILQ_INSERT_TAIL(&lru, h, lru);
		h->seen = now;
		return h;
	}
	while (nhists >= track_max && nhists > 0)
		hist_evict();
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		/* Without history we let the client through (see above). */
		log_warn("limits: calloc");
		return NULL;
	}
	h->key = *k;
	h->seen = h->rate_start = h->auth_start = h->auth_last = now;
	RB_INSERT(hist_tree, &hists, h);
	TAILQ_INSERT_TAIL(&lru, h, lru);
	nhists++;
	return h;
}

static void
count_up(uint32_t *n)
{
	if (*n < UINT32_MAX)
		(*n)++;
}

/* Counts one attempt; 1 if it is within the rate. */
static int
rate_attempt(const struct addrkey *k, time_t now)
{
	struct hist	*h;

	if ((h = hist_get(k, now)) == NULL)
		return 1;
	if (now < h->rate_start || now - h->rate_start >= lconf.rate_window) {
		h->rate_start = now;
		h->rate_count = 0;
	}
	count_up(&h->rate_count);
	return h->rate_count <= (uint32_t)lconf.conn_rate;
}

static int
auth_is_blocked(const struct hist *h, time_t now)
{
	return h->auth_count >= (uint32_t)lconf.auth_failures &&
	    now >= h->auth_last && now - h->auth_last < lconf.auth_window;
}

int
limits_auth_blocked(const char *ip, time_t now)
{
	struct addrkey	 k;
	struct hist	*h;

	if (lconf.auth_failures == 0)
		return 0;
	addr_key(ip, &k);
	if ((h = hist_find(&k)) == NULL)
		return 0;
	return auth_is_blocked(h, now);
}

void
limits_auth_failed(const char *ip, time_t now)
{
	struct addrkey	 k;
	struct hist	*h;

	if (lconf.auth_failures == 0)
		return;
	addr_key(ip, &k);
	if ((h = hist_get(&k, now)) == NULL)
		return;
	/* A block runs its course even if its counting window ends first. */
	if (!auth_is_blocked(h, now) && (now < h->auth_start ||
	    now - h->auth_start >= lconf.auth_window)) {
		h->auth_start = now;
		h->auth_count = 0;
	}
	count_up(&h->auth_count);
	h->auth_last = now;
}

size_t
limits_tracked(void)
{
	return nhists;
}

/* ---- live connections ------------------------------------------------ */

static struct host *
host_find(const struct addrkey *k)
{
	struct host	 find;

	find.key = *k;
	return RB_FIND(host_tree, &hosts, &find);
}

static struct conn *
conn_find(uint64_t owner, uint32_t session)
{
	struct conn	 find;

	find.owner = owner;
	find.session = session;
	return RB_FIND(conn_tree, &conns, &find);
}

static void
conn_release(struct conn *c)
{
	struct host	*h = c->host;

	if (--h->live == 0) {
		RB_REMOVE(host_tree, &hosts, h);
		free(h);
	}
	RB_REMOVE(conn_tree, &conns, c);
	free(c);
	nconns--;
}

static int
conn_add(uint64_t owner, uint32_t session, const struct addrkey *k)
{
	struct conn	*c;
	struct host	*h;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("limits: calloc");
		return -1;
	}
	if ((h = host_find(k)) == NULL) {
		if ((h = calloc(1, sizeof(*h))) == NULL) {
			log_warn("limits: calloc");
			free(c);
			return -1;
		}
		h->key = *k;
		RB_INSERT(host_tree, &hosts, h);
	}
	h->live++;
	c->owner = owner;
	c->session = session;
	c->host = h;
	RB_INSERT(conn_tree, &conns, c);
	nconns++;
	return 0;
}

static enum limit_verdict
conn_check(const struct addrkey *k, time_t now)
{
	struct host	*h;
	int		 rate_ok = 1;

	/* First, so that every attempt counts, even one refused below. */
	if (lconf.conn_rate > 0)
		rate_ok = rate_attempt(k, now);
	if (!rate_ok)
		return LIMIT_RATE;
	if (lconf.conn_per_ip > 0 && (h = host_find(k)) != NULL &&
	    h->live >= lconf.conn_per_ip)
		return LIMIT_PER_IP;
	if ((lconf.conn_total > 0 && nconns >= (size_t)lconf.conn_total) ||
	    nconns >= conn_max)
		return LIMIT_TOTAL;
	return LIMIT_OK;
}

enum limit_verdict
limits_connect(uint64_t owner, uint32_t session, const char *ip, time_t now)
{
	struct addrkey		 k;
	struct conn		*c;
	enum limit_verdict	 v;

	if ((c = conn_find(owner, session)) != NULL) {
		/* Its DISCONNECT was lost and the worker reused the id. */
		log_debug("limits: session %llu/%u connects again",
		    (unsigned long long)owner, session);
		conn_release(c);
	}
	addr_key(ip, &k);
	if ((v = conn_check(&k, now)) != LIMIT_OK)
		return v;
	/* Unaccounted, it could never be released: refuse instead. */
	if (conn_add(owner, session, &k) == -1)
		return LIMIT_TOTAL;
	return LIMIT_OK;
}

void
limits_disconnect(uint64_t owner, uint32_t session)
{
	struct conn	*c;

	if ((c = conn_find(owner, session)) != NULL)
		conn_release(c);
}

void
limits_owner_gone(uint64_t owner)
{
	struct conn	 find, *c, *next;

	find.owner = owner;
	find.session = 0;
	for (c = RB_NFIND(conn_tree, &conns, &find);
	    c != NULL && c->owner == owner; c = next) {
		next = RB_NEXT(conn_tree, &conns, c);
		conn_release(c);
	}
}

int
limits_connections(void)
{
	return nconns > INT32_MAX ? INT32_MAX : (int)nconns;
}

void
limits_clear(void)
{
	struct conn	*c;
	struct hist	*h;

	while ((c = RB_MIN(conn_tree, &conns)) != NULL)
		conn_release(c);
	while ((h = TAILQ_FIRST(&lru)) != NULL)
		hist_free(h);
}

const char *
limit_verdict_text(enum limit_verdict v)
{
	switch (v) {
	case LIMIT_OK:
		return "ok";
	case LIMIT_TOTAL:
		return "too many connections";
	case LIMIT_PER_IP:
		return "too many connections from your address";
	case LIMIT_RATE:
		return "connection rate limit exceeded";
	}
	return "connection limit exceeded";
}
