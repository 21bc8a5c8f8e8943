/*
 * Destinations and jobs of remote delivery.
 *
 * A destination is a relay action plus a domain (MX routing) or plus its
 * smarthost.  Its route, resolved when jobs arrive and kept for
 * MTA_ROUTE_TTL, is the list of hosts in MX order with their addresses.
 * Jobs wait on the destination; a job is served by an idle connection of
 * the destination when one can take it (RSET, then the next transaction),
 * else by a new connection while the destination has fewer than `relay
 * connections`.  A job whose recipients got a temporary failure on host k
 * goes back to the queue of the destination to be tried from host k+1:
 * every MX is tried before a recipient is deferred.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "log.h"
#include "mta.h"
#include "mta_session.h"
#include "stats.h"

#define DEST_GC_SECS	30

static struct event_base	*base;
static struct config		*conf;
static TAILQ_HEAD(, mta_relay)	 relays = TAILQ_HEAD_INITIALIZER(relays);
static TAILQ_HEAD(, mta_dest)	 dests = TAILQ_HEAD_INITIALIZER(dests);
static TAILQ_HEAD(, mta_job)	 failing = TAILQ_HEAD_INITIALIZER(failing);
static TAILQ_HEAD(, mta_job)	 all_jobs = TAILQ_HEAD_INITIALIZER(all_jobs);
static struct event		*pump_ev;	/* runs dest_pump_all */
static struct event		*gc_ev;
static int			 njobs;
static int			 shutting_down;

static void	dest_resolve(struct mta_dest *);
static void	dest_fail_jobs(struct mta_dest *);
static void	job_finish(struct mta_job *);
static void	schedule_pump(void);

struct event_base *
mta_base(void)
{
	return base;
}

const struct config *
mta_config(void)
{
	return conf;
}

/* ---- MX lists -------------------------------------------------------------- */

static int
mx_cmp(const void *a, const void *b)
{
	const struct dns_mx	*x = a, *y = b;

	return x->pref - y->pref;
}

void
mx_sort(struct dns_mx *mx, size_t n)
{
	struct dns_mx	 t;
	size_t		 i, j, k;

	qsort(mx, n, sizeof(*mx), mx_cmp);
	/* Equal preferences: a random order (Fisher-Yates per run). */
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && mx[j].pref == mx[i].pref; j++)
			;
		for (k = j - 1; k > i; k--) {
			size_t r = i + arc4random_uniform((uint32_t)(k - i + 1));

			t = mx[k];
			mx[k] = mx[r];
			mx[r] = t;
		}
	}
}

int
mx_is_null(const struct dns_mx *mx, size_t n)
{
	size_t	i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (mx[i].host[0] != '\0')
			return 0;
	return 1;
}

/* Host names compare without case and without a trailing dot. */
static int
name_eq(const char *a, const char *b)
{
	size_t	la = strlen(a), lb = strlen(b);

	if (la > 0 && a[la - 1] == '.')
		la--;
	if (lb > 0 && b[lb - 1] == '.')
		lb--;
	return la == lb && strncasecmp(a, b, la) == 0;
}

size_t
mx_select(struct dns_mx *mx, size_t n, const char *self, int *found)
{
	size_t	i;
	int	best = -1;

	*found = 0;
	for (i = 0; i < n; i++)
		if (name_eq(mx[i].host, self) &&
		    (best == -1 || mx[i].pref < best)) {
			best = mx[i].pref;
			*found = 1;
		}
	if (!*found)
		return n;
	/* Sorted: the ones before the first at our preference stay. */
	for (i = 0; i < n && mx[i].pref < best; i++)
		;
	return i;
}

int
mta_addr_is_ours(const struct sockaddr *sa)
{
	const struct listener	*l;
	const struct sockaddr_in  *a4 = (const struct sockaddr_in *)sa, *l4;
	const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)sa, *l6;

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->port != conf->relay_port ||
		    l->ss.ss_family != sa->sa_family)
			continue;
		l4 = (const struct sockaddr_in *)&l->ss;
		l6 = (const struct sockaddr_in6 *)&l->ss;
		if (sa->sa_family == AF_INET &&
		    (l4->sin_addr.s_addr == a4->sin_addr.s_addr ||
		    l4->sin_addr.s_addr == htonl(INADDR_ANY)))
			return 1;
		if (sa->sa_family == AF_INET6 &&
		    (memcmp(&l6->sin6_addr, &a6->sin6_addr,
		    sizeof(a6->sin6_addr)) == 0 ||
		    IN6_IS_ADDR_UNSPECIFIED(&l6->sin6_addr)))
			return 1;
	}
	return 0;
}

/* ---- set-up ----------------------------------------------------------------- */

static void
relay_tls_setup(struct mta_relay *r)
{
	const struct relay_opts	*o = &r->action->relay;
	unsigned long		 e;
	char			 buf[256];

	if (o->tls == RELAY_TLS_NO)
		return;
	if ((r->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		goto fail;
	(void)SSL_CTX_set_min_proto_version(r->ssl_ctx, TLS1_2_VERSION);
	if (o->tls == RELAY_TLS_VERIFY) {
		if (SSL_CTX_load_verify_locations(r->ssl_ctx, o->ca_file,
		    NULL) != 1)
			goto fail;
		SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_PEER, NULL);
	} else
		SSL_CTX_set_verify(r->ssl_ctx, SSL_VERIFY_NONE, NULL);
	return;
fail:
	(void)strlcpy(buf, "cannot make a TLS context", sizeof(buf));
	while ((e = ERR_get_error()) != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	mta_textf(r->tls_error, sizeof(r->tls_error), "%s%s%s",
	    o->tls == RELAY_TLS_VERIFY ? o->ca_file : "",
	    o->tls == RELAY_TLS_VERIFY ? ": " : "", buf);
	log_warnx("action \"%s\": TLS: %s", r->action->name, r->tls_error);
	SSL_CTX_free(r->ssl_ctx);
	r->ssl_ctx = NULL;
}

static void
pump_cb(evutil_socket_t fd, short ev, void *arg);
static void
gc_cb(evutil_socket_t fd, short ev, void *arg);

int
mta_init(struct event_base *b, struct config *c)
{
	const struct action	*a;
	struct mta_relay	*r;
	struct timeval		 tv = { DEST_GC_SECS, 0 };

	base = b;
	conf = c;
	if ((pump_ev = event_new(base, -1, 0, pump_cb, NULL)) == NULL ||
	    (gc_ev = event_new(base, -1, EV_PERSIST, gc_cb, NULL)) == NULL)
		return -1;
	evtimer_add(gc_ev, &tv);
	/* Everything that reads files happens now, before the chroot. */
	if (OPENSSL_init_ssl(OPENSSL_INIT_LOAD_SSL_STRINGS |
	    OPENSSL_INIT_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_LOAD_CONFIG,
	    NULL) != 1)
		log_warnx("mta: OpenSSL initialisation failed");
	(void)EVP_MD_get_size(EVP_md5());	/* CRAM-MD5 */
	TAILQ_FOREACH(a, &conf->actions, entry) {
		if (a->type != ACTION_RELAY)
			continue;
		if ((r = calloc(1, sizeof(*r))) == NULL)
			return -1;
		r->action = a;
		relay_tls_setup(r);
		TAILQ_INSERT_TAIL(&relays, r, entry);
	}
	if (TAILQ_EMPTY(&relays))
		return 0;
	return dns_init(base, conf);
}

/* ---- jobs ------------------------------------------------------------------- */

static struct mta_relay *
relay_find(const char *action)
{
	struct mta_relay	*r;

	TAILQ_FOREACH(r, &relays, entry)
		if (strcmp(r->action->name, action) == 0)
			return r;
	return NULL;
}

static struct mta_dest *
dest_get(struct mta_relay *r, const char *domain)
{
	const struct relay_opts	*o = &r->action->relay;
	struct mta_dest		*d;
	const char		*name = o->host[0] != '\0' ? o->host : domain;

	TAILQ_FOREACH(d, &dests, entry)
		if (d->relay == r && strcasecmp(d->domain, name) == 0)
			return d;
	if ((d = calloc(1, sizeof(*d))) == NULL)
		return NULL;
	d->relay = r;
	(void)strlcpy(d->domain, name, sizeof(d->domain));
	d->smarthost = o->host[0] != '\0';
	d->port = d->smarthost ? o->port : conf->relay_port;
	d->state = DEST_NEW;
	TAILQ_INIT(&d->jobs);
	TAILQ_INIT(&d->idle);
	TAILQ_INSERT_TAIL(&dests, d, entry);
	return d;
}

int
mta_submit(const char *action, const char *msgid, const char *sender,
    const char *envid, uint32_t ret, int fd, const struct dlv *dlv,
    const uint32_t *index, size_t n, mta_result_fn result, mta_done_fn done,
    void *arg)
{
	struct mta_job		*job;
	struct mta_relay	*r;
	struct mta_dest		*d = NULL;
	const char		*at;
	struct stat		 st;
	size_t			 i;

	if (n == 0 || n > MTA_RCPTS_PER_TX ||
	    (job = calloc(1, sizeof(*job))) == NULL)
		return -1;
	if ((job->rcpts = calloc(n, sizeof(*job->rcpts))) == NULL) {
		free(job);
		return -1;
	}
	(void)strlcpy(job->msgid, msgid, sizeof(job->msgid));
	(void)strlcpy(job->sender, sender, sizeof(job->sender));
	(void)strlcpy(job->envid, envid, sizeof(job->envid));
	job->ret = ret;
	job->fd = fd;
	job->eightbit = -1;
	job->nrcpts = job->left = n;
	job->result = result;
	job->done = done;
	job->arg = arg;
	(void)gettimeofday(&job->start, NULL);
	job->size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	for (i = 0; i < n; i++) {
		job->rcpts[i].index = index[i];
		(void)strlcpy(job->rcpts[i].addr, dlv[i].rcpt,
		    sizeof(job->rcpts[i].addr));
		job->rcpts[i].notify = dlv[i].notify;
		(void)strlcpy(job->rcpts[i].orcpt, dlv[i].orcpt,
		    sizeof(job->rcpts[i].orcpt));
		job->rcpts[i].status = DLV_TEMPFAIL;
	}
	njobs++;
	TAILQ_INSERT_TAIL(&all_jobs, job, all);
	stat_increment("deliver.relay.job", 1);
	at = strrchr(dlv[0].rcpt, '@');
	if ((r = relay_find(action)) == NULL) {
		for (i = 0; i < n; i++)
			mta_textf(job->rcpts[i].text,
			    sizeof(job->rcpts[i].text), "4.3.5 action \"%s\" "
			    "is not a relay action of this deliver-worker "
			    "(restart mtad after changing relay actions)",
			    action);
	} else if (at == NULL || at[1] == '\0')
		for (i = 0; i < n; i++)
			(void)strlcpy(job->rcpts[i].text, "5.1.3 no domain to "
			    "relay to", sizeof(job->rcpts[i].text));
	else if ((d = dest_get(r, at + 1)) == NULL)
		for (i = 0; i < n; i++)
			(void)strlcpy(job->rcpts[i].text, "4.3.0 out of memory",
			    sizeof(job->rcpts[i].text));
	if (d == NULL) {
		if (at == NULL || at[1] == '\0')
			for (i = 0; i < n; i++)
				job->rcpts[i].status = DLV_PERMFAIL;
		TAILQ_INSERT_TAIL(&failing, job, entry);
	} else {
		job->dest = d;
		TAILQ_INSERT_TAIL(&d->jobs, job, entry);
	}
	schedule_pump();
	return 0;
}

void
mta_cancel(void *arg)
{
	struct mta_job	*job;

	TAILQ_FOREACH(job, &all_jobs, all)
		if (job->arg == arg)
			job->cancelled = 1;
	schedule_pump();
}

int
mta_busy(void)
{
	return njobs;
}

static void
log_attempt(struct mta_job *job, struct mta_rcpt *rc, struct mta_session *s,
    const char *status, const char *text)
{
	struct timeval	 now, d;
	char		 relay[RELAY_HOST_MAX + 80];

	(void)gettimeofday(&now, NULL);
	timersub(&now, &job->start, &d);
	mta_session_relay_text(s, relay, sizeof(relay));
	log_info("%s: to=<%s>, relay=%s, tls=%s, delay=%lld.%01lds, "
	    "status=%s (%s)", job->msgid, rc->addr, relay,
	    s != NULL ? s->tls_info : "none", (long long)d.tv_sec,
	    (long)(d.tv_usec / 100000), status, text);
}

/* status -1: a temporary failure noted on this host, not final yet. */
void
mta_rcpt_result(struct mta_job *job, struct mta_rcpt *rc,
    struct mta_session *s, int status, const char *text)
{
	if (rc->done)
		return;
	if (status < 0) {
		log_attempt(job, rc, s, "deferred", text);
		return;
	}
	rc->done = 1;
	job->left--;
	log_attempt(job, rc, s, dlv_status_name((uint32_t)status), text);
	job->result(job->arg, rc->index, status, text);
}

/* What is left of the job fails with what each recipient last met. */
static void
job_fail_pending(struct mta_job *job)
{
	size_t		 i;
	struct mta_rcpt	*rc;

	for (i = 0; i < job->nrcpts; i++) {
		rc = &job->rcpts[i];
		if (rc->done)
			continue;
		if (rc->text[0] == '\0')
			(void)strlcpy(rc->text, "4.4.1 no host could be "
			    "reached", sizeof(rc->text));
		rc->done = 1;
		job->left--;
		job->result(job->arg, rc->index, rc->status, rc->text);
	}
}

static void
job_finish(struct mta_job *job)
{
	job_fail_pending(job);
	if (job->fd != -1)
		close(job->fd);
	TAILQ_REMOVE(&all_jobs, job, all);
	njobs--;
	job->done(job->arg);
	free(job->rcpts);
	free(job);
}

void
mta_job_exhausted(struct mta_job *job, struct mta_session *s)
{
	job_finish(job);
	schedule_pump();
}

void
mta_job_release(struct mta_job *job, struct mta_session *s)
{
	struct mta_dest	*d = job->dest;

	if (job->left == 0) {
		job_finish(job);
		return;
	}
	job->min_host = s->host + 1;
	if (job->min_host >= d->nhosts) {
		job_finish(job);
		return;
	}
	TAILQ_INSERT_HEAD(&d->jobs, job, entry);
	schedule_pump();
}

/* ---- sessions ------------------------------------------------------------- */

static struct mta_job *
job_for_session(struct mta_dest *d, const struct mta_session *s)
{
	struct mta_job	*job;

	TAILQ_FOREACH(job, &d->jobs, entry)
		if (job->min_host <= s->host)
			return job;
	return NULL;
}

void
mta_session_ready(struct mta_session *s)
{
	struct mta_dest	*d = s->dest;
	struct mta_job	*job;

	if (s->job != NULL) {
		/* A new connection: its first job. */
		job = s->job;
		s->job = NULL;
		mta_session_take(s, job);
		return;
	}
	if (!shutting_down && d->state == DEST_READY &&
	    (job = job_for_session(d, s)) != NULL &&
	    s->nmsgs < MTA_MSGS_PER_CONN) {
		TAILQ_REMOVE(&d->jobs, job, entry);
		mta_session_take(s, job);
		return;
	}
	if (shutting_down || s->nmsgs >= MTA_MSGS_PER_CONN)
		mta_session_quit(s);
	else
		mta_session_idle(s);
}

void
mta_session_gone(struct mta_session *s)
{
	s->dest->nsessions--;
	schedule_pump();
}

/* ---- routes ----------------------------------------------------------------- */

static void
route_fail(struct mta_dest *d, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
route_fail(struct mta_dest *d, int status, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	(void)vsnprintf(d->route_error, sizeof(d->route_error), fmt, ap);
	va_end(ap);
	d->route_status = status;
	d->nhosts = 0;
	d->state = DEST_READY;
	/* A temporary failure is asked again by the next job. */
	d->expires = status == DLV_TEMPFAIL ? 0 : time(NULL) + MTA_ROUTE_TTL;
	log_info("route to %s: %s", d->domain, d->route_error);
	/* The jobs that waited for this answer get it now. */
	dest_fail_jobs(d);
	schedule_pump();
}

static void
route_ready(struct mta_dest *d)
{
	d->route_status = DLV_OK;
	d->route_error[0] = '\0';
	d->state = DEST_READY;
	d->expires = time(NULL) + MTA_ROUTE_TTL;
	schedule_pump();
}

static const char *
self_name(const struct mta_dest *d)
{
	const struct relay_opts	*o = &d->relay->action->relay;

	return o->backup_mx[0] != '\0' ? o->backup_mx : conf->hostname;
}

/* Every address lookup is in: order, drop ourselves, judge. */
static void
route_addrs_done(struct mta_dest *d)
{
	size_t	i, j, total = 0, kept;
	int	temp = 0, cut = -1;

	for (i = 0; i < d->nhosts && cut == -1; i++)
		for (j = 0; j < d->hosts[i].naddrs; j++)
			if (mta_addr_is_ours((struct sockaddr *)
			    &d->hosts[i].addrs[j])) {
				cut = d->hosts[i].pref;
				break;
			}
	if (cut != -1 && !d->smarthost) {
		for (kept = 0; kept < d->nhosts && d->hosts[kept].pref < cut;
		    kept++)
			;
		d->nhosts = kept;
		if (kept == 0) {
			route_fail(d, DLV_PERMFAIL, "5.4.6 mail for %s loops "
			    "back to myself", d->domain);
			return;
		}
	}
	for (i = 0; i < d->nhosts; i++) {
		total += d->hosts[i].naddrs;
		if (d->hosts[i].a_status == DNS_TEMPFAIL ||
		    d->hosts[i].aaaa_status == DNS_TEMPFAIL)
			temp = 1;
	}
	if (total > 0) {
		route_ready(d);
		return;
	}
	if (temp)
		route_fail(d, DLV_TEMPFAIL, "4.4.3 address lookup for the "
		    "mail hosts of %s failed temporarily", d->domain);
	else if (d->smarthost)
		route_fail(d, DLV_TEMPFAIL, "4.4.4 relay host %s has no "
		    "address", d->domain);
	else if (d->implicit_mx)
		route_fail(d, DLV_PERMFAIL, "5.1.2 domain %s has no MX, A or "
		    "AAAA record", d->domain);
	else
		route_fail(d, DLV_PERMFAIL, "5.4.4 the MX hosts of %s have "
		    "no address", d->domain);
}

static void
addr_add(struct mta_host *h, const struct sockaddr_storage *ss, size_t n)
{
	size_t	i;

	for (i = 0; i < n && h->naddrs < MTA_ADDRS_MAX; i++)
		h->addrs[h->naddrs++] = ss[i];
}

/*
 * Addresses of a host: IPv6 first, as RFC 6724 prefers, then IPv4.  The
 * AAAA answer may come after the A answer: it is put in front then.
 */
static void
host_addr_cb(struct mta_dest *d, struct mta_host *h, int family,
    enum dns_status st, const struct sockaddr_storage *ss, size_t n)
{
	struct sockaddr_storage	tmp[MTA_ADDRS_MAX];
	size_t			old;

	if (family == AF_INET6) {
		h->aaaa_req = NULL;
		h->aaaa_status = st;
		old = h->naddrs;
		memcpy(tmp, h->addrs, old * sizeof(tmp[0]));
		h->naddrs = 0;
		addr_add(h, ss, n);
		addr_add(h, tmp, old);
	} else {
		h->a_req = NULL;
		h->a_status = st;
		addr_add(h, ss, n);
	}
	if (--d->dns_pending == 0)
		route_addrs_done(d);
}

static void
a_cb(void *arg, enum dns_status st, const struct sockaddr_storage *ss,
    size_t n)
{
	struct mta_host	*h = arg;

	host_addr_cb(h->dest, h, AF_INET, st, ss, n);
}

static void
aaaa_cb(void *arg, enum dns_status st, const struct sockaddr_storage *ss,
    size_t n)
{
	struct mta_host	*h = arg;

	host_addr_cb(h->dest, h, AF_INET6, st, ss, n);
}

/* A host given as an address: [IPv6], [IPv4] or a bare IPv4. */
static int
host_literal(struct mta_host *h)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)&h->addrs[0];
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&h->addrs[0];
	char			 lit[RELAY_HOST_MAX];
	const char		*p = h->name;
	size_t			 n = strlen(p);

	if (p[0] == '[' && n > 2 && p[n - 1] == ']') {
		memcpy(lit, p + 1, n - 2);
		lit[n - 2] = '\0';
		p = lit;
		if (strncasecmp(p, "IPv6:", 5) == 0)
			p += 5;
	} else if (p[0] == '[')
		return -1;
	memset(&h->addrs[0], 0, sizeof(h->addrs[0]));
	if (inet_pton(AF_INET, p, &sin->sin_addr) == 1)
		sin->sin_family = AF_INET;
	else if (inet_pton(AF_INET6, p, &sin6->sin6_addr) == 1)
		sin6->sin6_family = AF_INET6;
	else
		return h->name[0] == '[' ? -1 : 0;
	h->naddrs = 1;
	return 1;
}

static void
hosts_resolve(struct mta_dest *d)
{
	struct mta_host	*h;
	size_t		 i;
	int		 lit;

	d->dns_pending = 1;	/* held until every query is out */
	for (i = 0; i < d->nhosts; i++) {
		h = &d->hosts[i];
		h->dest = d;
		h->naddrs = 0;
		h->a_status = h->aaaa_status = DNS_OK;
		if ((lit = host_literal(h)) == 1)
			continue;
		if (lit == -1) {
			h->a_status = h->aaaa_status = DNS_NXDOMAIN;
			continue;
		}
		d->dns_pending += 2;
		h->aaaa_req = dns_query_addr(h->name, AF_INET6, aaaa_cb, h);
		h->a_req = dns_query_addr(h->name, AF_INET, a_cb, h);
		if (h->aaaa_req == NULL) {
			h->aaaa_status = DNS_TEMPFAIL;
			d->dns_pending--;
		}
		if (h->a_req == NULL) {
			h->a_status = DNS_TEMPFAIL;
			d->dns_pending--;
		}
	}
	if (--d->dns_pending == 0)
		route_addrs_done(d);
}

static void
mx_cb(void *arg, enum dns_status st, const struct dns_mx *mxs, size_t n)
{
	struct mta_dest	*d = arg;
	struct dns_mx	 mx[DNS_MX_MAX];
	size_t		 i, j, kept;
	int		 found;

	d->mx_req = NULL;
	if (st == DNS_NXDOMAIN) {
		route_fail(d, DLV_PERMFAIL, "5.1.2 domain %s not found "
		    "(NXDOMAIN)", d->domain);
		return;
	}
	if (st == DNS_TEMPFAIL) {
		route_fail(d, DLV_TEMPFAIL, "4.4.3 DNS lookup of the MX of %s "
		    "failed temporarily", d->domain);
		return;
	}
	d->implicit_mx = st == DNS_NODATA;
	if (d->implicit_mx) {
		/* RFC 5321 5.1: the domain itself, as if MX 0. */
		d->nhosts = 1;
		memset(&d->hosts[0], 0, sizeof(d->hosts[0]));
		(void)strlcpy(d->hosts[0].name, d->domain,
		    sizeof(d->hosts[0].name));
		hosts_resolve(d);
		return;
	}
	if (mx_is_null(mxs, n)) {
		route_fail(d, DLV_PERMFAIL, "5.1.10 domain %s accepts no mail "
		    "(null MX, RFC 7505)", d->domain);
		return;
	}
	/* A null MX among others is a broken zone: the others are used. */
	for (i = j = 0; i < n; i++)
		if (mxs[i].host[0] != '\0')
			mx[j++] = mxs[i];
	n = j;
	mx_sort(mx, n);
	kept = mx_select(mx, n, self_name(d), &found);
	if (kept == 0) {
		route_fail(d, DLV_PERMFAIL, d->relay->action->relay.backup ?
		    "5.4.6 mail for %s loops back to myself: no MX is "
		    "preferred over this backup MX" : "5.4.6 mail for %s "
		    "loops back to myself", d->domain);
		return;
	}
	if (!found && d->relay->action->relay.backup)
		log_info("route to %s: %s is not one of its MX hosts: "
		    "delivering to all of them", d->domain, self_name(d));
	d->nhosts = kept;
	for (i = 0; i < kept; i++) {
		memset(&d->hosts[i], 0, sizeof(d->hosts[i]));
		(void)strlcpy(d->hosts[i].name, mx[i].host,
		    sizeof(d->hosts[i].name));
		d->hosts[i].pref = mx[i].pref;
	}
	hosts_resolve(d);
}

static void
dest_resolve(struct mta_dest *d)
{
	d->state = DEST_RESOLVING;
	d->nhosts = 0;
	d->implicit_mx = 0;
	log_trace(TRACE_DELIVER, "mta: resolving %s %s", d->smarthost ?
	    "relay host" : "domain", d->domain);
	if (d->smarthost || d->domain[0] == '[') {
		d->nhosts = 1;
		memset(&d->hosts[0], 0, sizeof(d->hosts[0]));
		(void)strlcpy(d->hosts[0].name, d->domain,
		    sizeof(d->hosts[0].name));
		hosts_resolve(d);
		return;
	}
	if ((d->mx_req = dns_query_mx(d->domain, mx_cb, d)) == NULL)
		route_fail(d, DLV_TEMPFAIL, "4.3.0 out of memory");
}

/* ---- the pump ---------------------------------------------------------------- */

static void
schedule_pump(void)
{
	event_active(pump_ev, 0, 0);
}

static void
dest_fail_jobs(struct mta_dest *d)
{
	struct mta_job	*job;
	size_t		 i;

	while ((job = TAILQ_FIRST(&d->jobs)) != NULL) {
		TAILQ_REMOVE(&d->jobs, job, entry);
		for (i = 0; i < job->nrcpts; i++)
			if (!job->rcpts[i].done)
				mta_rcpt_result(job, &job->rcpts[i], NULL,
				    d->route_status, d->route_error);
		job_finish(job);
	}
}

static void
dest_pump(struct mta_dest *d)
{
	struct mta_job		*job, *next;
	struct mta_session	*s;
	int			 starved = 0;

	if (TAILQ_EMPTY(&d->jobs) || d->state == DEST_RESOLVING)
		return;
	/* Jobs nobody waits for any more do not wait for DNS either. */
	TAILQ_FOREACH(job, &d->jobs, entry)
		if (job->cancelled) {
			TAILQ_REMOVE(&d->jobs, job, entry);
			job_finish(job);
			schedule_pump();
			return;
		}
	/*
	 * A route is renewed when it is old and no connection uses it (the
	 * sessions hold indexes into it): a busy destination keeps its route
	 * until its traffic pauses.
	 */
	if (d->state == DEST_NEW ||
	    (d->expires <= time(NULL) && d->nsessions == 0)) {
		dest_resolve(d);
		return;
	}
	if (d->route_status != DLV_OK) {
		dest_fail_jobs(d);
		return;
	}
	for (job = TAILQ_FIRST(&d->jobs); job != NULL; job = next) {
		next = TAILQ_NEXT(job, entry);
		if (job->min_host >= d->nhosts || job->cancelled) {
			TAILQ_REMOVE(&d->jobs, job, entry);
			job_finish(job);
			continue;
		}
		TAILQ_FOREACH(s, &d->idle, entry)
			if (s->host >= job->min_host)
				break;
		if (s != NULL) {
			TAILQ_REMOVE(&d->jobs, job, entry);
			mta_session_take(s, job);
			/* The lists may have changed under us: again later. */
			schedule_pump();
			return;
		}
		if (d->nsessions < conf->relay_connections) {
			TAILQ_REMOVE(&d->jobs, job, entry);
			mta_session_start(d, job);
			schedule_pump();
			return;
		}
		starved = 1;
	}
	/* Full of connections none of which can serve: make room. */
	if (starved && (s = TAILQ_FIRST(&d->idle)) != NULL)
		mta_session_quit(s);
}

static void
pump_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct mta_dest	*d;
	struct mta_job	*job;

	size_t		 i;

	while ((job = TAILQ_FIRST(&failing)) != NULL) {
		TAILQ_REMOVE(&failing, job, entry);
		for (i = 0; i < job->nrcpts; i++)
			mta_rcpt_result(job, &job->rcpts[i], NULL,
			    job->rcpts[i].status, job->rcpts[i].text);
		job_finish(job);
	}
	TAILQ_FOREACH(d, &dests, entry)
		dest_pump(d);
}

static void
gc_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct mta_dest	*d, *next;
	time_t		 now = time(NULL);

	for (d = TAILQ_FIRST(&dests); d != NULL; d = next) {
		next = TAILQ_NEXT(d, entry);
		if (!TAILQ_EMPTY(&d->jobs) || d->nsessions > 0 ||
		    d->state == DEST_RESOLVING || d->expires > now)
			continue;
		TAILQ_REMOVE(&dests, d, entry);
		free(d);
	}
}

void
mta_shutdown(void)
{
	struct mta_dest		*d;
	struct mta_session	*s;

	shutting_down = 1;
	TAILQ_FOREACH(d, &dests, entry)
		while ((s = TAILQ_FIRST(&d->idle)) != NULL)
			mta_session_quit(s);
}
