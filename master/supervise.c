/*
 * Forking, wiring and supervising the worker processes.
 *
 * Every pair of processes that talks gets its own socketpair, made here.  A
 * new child inherits its ends; running peers receive theirs through
 * IMSG_PEER_CONNECT.  A child that dies is restarted with backoff and rewired
 * the same way, so a crash costs the sessions of one process, never the
 * service.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "mda.h"
#include "offline.h"
#include "stats.h"

#define QUICK_DEATH_SECS	10
#define BACKOFF_MAX_SECS	60
#define SMTP_DRAIN_SECS		30
#define STOP_SECS		10

/* Which kinds of process talk to which. */
static const enum proc_kind peers_of[PROC_COUNT][3] = {
	[PROC_POLICY] =  { PROC_SMTP, PROC_QUEUE, PROC_MASTER },
	[PROC_QUEUE] =   { PROC_SMTP, PROC_DELIVER, PROC_POLICY },
	[PROC_SMTP] =    { PROC_POLICY, PROC_QUEUE, PROC_MASTER },
	[PROC_DELIVER] = { PROC_QUEUE, PROC_MASTER, PROC_MASTER },
};

enum shutdown_phase { RUNNING, DRAIN_SMTP, STOP_REST, STOPPED };
static enum shutdown_phase	 phase = RUNNING;
static struct event		*phase_timer;

static void	child_spawn(struct child *);
static void	send_pause(struct child *);
static void	child_closed(struct channel *, int);

static int
pool_size(enum proc_kind kind)
{
	switch (kind) {
	case PROC_SMTP:
		return master->conf->workers_smtp;
	case PROC_DELIVER:
		return master->conf->workers_deliver;
	case PROC_POLICY:
	case PROC_QUEUE:
		return 1;
	default:
		return 0;
	}
}

static struct child *
pool_child(enum proc_kind kind, int slot)
{
	switch (kind) {
	case PROC_POLICY:
		return &master->policy;
	case PROC_QUEUE:
		return &master->queue;
	case PROC_SMTP:
		return &master->smtp[slot];
	case PROC_DELIVER:
		return &master->deliver[slot];
	default:
		return NULL;
	}
}

/* Calls fn on every live child, old policies included. */
static void
foreach_child(void (*fn)(struct child *, void *), void *arg)
{
	enum proc_kind	 k;
	int		 i;

	for (k = PROC_POLICY; k <= PROC_DELIVER; k++)
		for (i = 0; i < pool_size(k); i++)
			if (pool_child(k, i)->pid)
				fn(pool_child(k, i), arg);
	for (i = 0; i < 4; i++)
		if (master->old_policy[i].pid)
			fn(&master->old_policy[i], arg);
}

static void
count_one(struct child *c, void *arg)
{
	(*(int *)arg)++;
}

void
supervise_foreach(void (*fn)(struct child *, void *), void *arg)
{
	foreach_child(fn, arg);
}

static void
send_pause(struct child *c)
{
	uint32_t	 p[2];

	if (c->chan == NULL)
		return;
	if (c->kind == PROC_SMTP) {
		p[0] = CTL_PAUSE_SMTP;
		p[1] = (uint32_t)master->paused_smtp;
	} else if (c->kind == PROC_QUEUE) {
		p[0] = CTL_PAUSE_DELIVERY;
		p[1] = (uint32_t)master->paused_delivery;
	} else
		return;
	channel_send(c->chan, IMSG_CTL_PAUSE, 0, -1, p, sizeof(p));
}

static void
pause_one(struct child *c, void *arg)
{
	send_pause(c);
}

void
supervise_pause(uint32_t what, int on)
{
	if (what == CTL_PAUSE_SMTP)
		master->paused_smtp = on;
	else
		master->paused_delivery = on;
	log_info("%s %s by the operator", what == CTL_PAUSE_SMTP ? "smtp" :
	    "delivery", on ? "paused" : "resumed");
	foreach_child(pause_one, NULL);
}

int
supervise_count(void)
{
	int	 n = 0;

	foreach_child(count_one, &n);
	return n;
}

struct bcast { uint32_t type, peerid; const void *data; size_t len; };

static void
send_one(struct child *c, void *arg)
{
	struct bcast	*b = arg;

	if (c->chan)
		channel_send(c->chan, b->type, b->peerid, -1, b->data, b->len);
}

void
supervise_broadcast(uint32_t type, uint32_t peerid, const void *data,
    size_t len)
{
	struct bcast	 b = { type, peerid, data, len };

	foreach_child(send_one, &b);
}

struct find { pid_t pid; struct child *found; };

static void
find_one(struct child *c, void *arg)
{
	struct find	*f = arg;

	if (c->pid == f->pid)
		f->found = c;
}

struct child *
supervise_find_pid(pid_t pid)
{
	struct find	 f = { pid, NULL };

	foreach_child(find_one, &f);
	return f.found;
}

/*
 * Makes a socketpair between the child about to be forked and every running
 * peer of the kinds it talks to; the peers get their end now.
 */
static void
wire_peers(struct child *c, struct proc_env *env)
{
	enum proc_kind	 pk;
	struct child	*p;
	struct mbuf	 m;
	int		 sp[2], i, j;

	for (j = 0; j < 3; j++) {
		pk = peers_of[c->kind][j];
		if (pk == PROC_MASTER || pk == 0)
			continue;
		for (i = 0; i < pool_size(pk); i++) {
			p = pool_child(pk, i);
			if (p->pid == 0 || p->chan == NULL || p->retiring)
				continue;
			if (env->npeers == PROC_PEERS_MAX)
				fatalx("too many peers");
			if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
			    sp) == -1)
				fatal("socketpair");
			env->peers[env->npeers].kind = pk;
			env->peers[env->npeers].slot = i;
			env->peers[env->npeers].fd = sp[0];
			env->npeers++;
			m_init(&m);
			m_add_u32(&m, c->kind);
			m_add_u32(&m, (uint32_t)c->slot);
			channel_send_m(p->chan, IMSG_PEER_CONNECT, 0, sp[1], &m);
			m_free(&m);
		}
	}
}

static int
cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

/* In the new child: close every descriptor it must not keep. */
static void
close_inherited(struct proc_env *env)
{
	struct listener	*l;
	int		 keep[PROC_PEERS_MAX + 128], n = 0, i, from = 3;

	keep[n++] = env->master_fd;
	for (i = 0; i < env->npeers; i++)
		keep[n++] = env->peers[i].fd;
	if (env->kind == PROC_SMTP)
		TAILQ_FOREACH(l, &master->conf->listeners, entry)
			if (n < (int)(sizeof(keep) / sizeof(keep[0])))
				keep[n++] = l->fd;
	qsort(keep, (size_t)n, sizeof(int), cmp_int);
	for (i = 0; i < n; i++) {
		if (keep[i] > from)
			close_range((unsigned)from, (unsigned)keep[i] - 1, 0);
		from = keep[i] + 1;
	}
	close_range((unsigned)from, ~0U, 0);
}

static void
restart_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct child	*c = arg;

	if (phase == RUNNING && c->pid == 0)
		child_spawn(c);
}

static void
child_spawn(struct child *c)
{
	struct proc_env	 env;
	struct passwd	*pw;
	int		 sp[2];
	pid_t		 pid;

	memset(&env, 0, sizeof(env));
	env.kind = c->kind;
	env.slot = c->slot;
	env.foreground = master->foreground;
	if ((pw = getpwnam(master->conf->user[c->kind])) == NULL) {
		log_warnx("user %s does not exist: %s #%d not started",
		    master->conf->user[c->kind], proc_name(c->kind), c->slot);
		return;
	}
	env.uid = pw->pw_uid;
	env.gid = pw->pw_gid;
	strlcpy(env.user, pw->pw_name, sizeof(env.user));

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1)
		fatal("socketpair");
	env.master_fd = sp[1];
	wire_peers(c, &env);

	switch (pid = fork()) {
	case -1:
		fatal("fork");
	case 0:
		close_inherited(&env);
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		if (!master->foreground) {
			closelog();
			log_init(0, LOG_MAIL);
		}
		switch (c->kind) {
		case PROC_POLICY:
			policy_main(master->conf, &env);
		case PROC_QUEUE:
			queue_main(master->conf, &env);
		case PROC_SMTP:
			smtp_main(master->conf, &env);
		case PROC_DELIVER:
			deliver_main(master->conf, &env);
		default:
			_exit(1);
		}
	}
	close(sp[1]);
	for (int i = 0; i < env.npeers; i++)
		close(env.peers[i].fd);
	c->pid = pid;
	c->started = time(NULL);
	c->chan = channel_new(master->base, sp[0], c->kind, c->slot,
	    master_dispatch, child_closed, c);
	if (c->chan == NULL)
		fatalx("channel_new");
	log_info("started %s #%d (pid %d, user %s)", proc_name(c->kind),
	    c->slot, (int)pid, env.user);
	if ((c->kind == PROC_SMTP && master->paused_smtp) ||
	    (c->kind == PROC_QUEUE && master->paused_delivery))
		send_pause(c);
}

static void
child_closed(struct channel *chan, int malformed)
{
	struct child	*c = chan->arg;

	if (malformed && c->pid) {
		log_warnx("%s #%d (pid %d) sent a malformed message: killing it",
		    proc_name(c->kind), c->slot, (int)c->pid);
		kill(c->pid, SIGKILL);
	}
	/* The channel is freed when the process is reaped. */
}

void
supervise_start(void)
{
	enum proc_kind	 order[] = { PROC_POLICY, PROC_QUEUE, PROC_DELIVER,
			    PROC_SMTP };
	size_t		 k;
	int		 i;

	for (k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
		for (i = 0; i < pool_size(order[k]); i++) {
			struct child	*c = pool_child(order[k], i);

			c->kind = order[k];
			c->slot = i;
			c->restart_ev = evtimer_new(master->base, restart_cb, c);
			child_spawn(c);
		}
	}
	phase_timer = evtimer_new(master->base, NULL, NULL);
}

static void
log_exit(struct child *c, int status)
{
	if (WIFSIGNALED(status)) {
		int	 sig = WTERMSIG(status);

		log_warnx("%s #%d (pid %d) killed by signal %d (%s)%s",
		    proc_name(c->kind), c->slot, (int)c->pid, sig,
		    strsignal(sig), sig == SIGSYS ?
		    ": a forbidden system call (seccomp)" : "");
	} else if (WEXITSTATUS(status) != 0 || phase == RUNNING)
		log_info("%s #%d (pid %d) exited with status %d",
		    proc_name(c->kind), c->slot, (int)c->pid,
		    WEXITSTATUS(status));
}

static void
schedule_restart(struct child *c)
{
	struct timeval	 tv = { 0, 100000 };
	int		 delay;

	if (time(NULL) - c->started < QUICK_DEATH_SECS)
		c->quick_deaths++;
	else
		c->quick_deaths = 0;
	if (c->quick_deaths > 0) {
		delay = 1 << (c->quick_deaths > 6 ? 6 : c->quick_deaths - 1);
		if (delay > BACKOFF_MAX_SECS)
			delay = BACKOFF_MAX_SECS;
		tv.tv_sec = delay;
		tv.tv_usec = 0;
	}
	c->restarts++;
	stat_increment("master.restart", 1);
	log_info("restarting %s #%d in %lds", proc_name(c->kind), c->slot,
	    (long)tv.tv_sec);
	evtimer_add(c->restart_ev, &tv);
}

static void	phase_advance(void);

void
supervise_reap(void)
{
	struct child	*c;
	pid_t		 pid;
	int		 status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if ((c = supervise_find_pid(pid)) == NULL) {
			if (!mda_reap(pid, status) && !offline_reap(pid, status))
				log_debug("reaped unknown pid %d", (int)pid);
			continue;
		}
		log_exit(c, status);
		channel_free(c->chan);
		c->chan = NULL;
		c->pid = 0;
		if (c->retiring) {
			c->retiring = 0;
			continue;
		}
		if (phase == RUNNING)
			schedule_restart(c);
	}
	if (phase != RUNNING)
		phase_advance();
}

static int
alive(enum proc_kind kind)
{
	int	 i, n = 0;

	for (i = 0; i < pool_size(kind); i++)
		if (pool_child(kind, i)->pid)
			n++;
	return n;
}

static void
kill_one(struct child *c, void *arg)
{
	enum proc_kind	*kind = arg;

	if (kind == NULL || c->kind == *kind)
		kill(c->pid, SIGKILL);
}

static void
shutdown_one(struct child *c, void *arg)
{
	enum proc_kind	*kind = arg;

	if ((kind == NULL || c->kind == *kind) && c->chan)
		channel_send(c->chan, IMSG_SHUTDOWN, 0, -1, NULL, 0);
}

static void
phase_timeout(evutil_socket_t fd, short ev, void *arg)
{
	enum proc_kind	 smtp = PROC_SMTP;

	log_warnx("children did not stop in time: killing them");
	foreach_child(kill_one, phase == DRAIN_SMTP ? &smtp : NULL);
}

static void
phase_enter(enum shutdown_phase p, int secs)
{
	struct timeval	 tv = { secs, 0 };

	phase = p;
	event_del(phase_timer);
	event_assign(phase_timer, master->base, -1, 0, phase_timeout, NULL);
	evtimer_add(phase_timer, &tv);
}

/*
 * Shutdown order: smtp-workers first (they finish their sessions and still
 * need policy and queue for that), then everything else.
 */
static void
phase_advance(void)
{
	if (phase == DRAIN_SMTP && alive(PROC_SMTP) == 0) {
		phase_enter(STOP_REST, STOP_SECS);
		foreach_child(shutdown_one, NULL);
	}
	if (phase == STOP_REST && supervise_count() == 0) {
		phase = STOPPED;
		event_del(phase_timer);
		event_base_loopexit(master->base, NULL);
	}
}

void
supervise_shutdown(void)
{
	enum proc_kind	 smtp = PROC_SMTP;

	if (phase != RUNNING) {
		/* A second request: no more waiting. */
		foreach_child(kill_one, NULL);
		return;
	}
	phase_enter(DRAIN_SMTP, SMTP_DRAIN_SECS);
	foreach_child(shutdown_one, &smtp);
	phase_advance();
}

int
supervise_running(void)
{
	return phase == RUNNING;
}

/*
 * A reload keeps listeners, paths, accounts and pool sizes (they need a
 * restart) and takes the new rules and tables: a new policy process is forked
 * with them and the old one finishes what it was asked and exits.
 */
int
supervise_reload(struct config *nconf)
{
	struct config	*oconf = master->conf;
	struct child	*old;
	int		 i;

	struct listener	*l;

	if (phase != RUNNING) {
		config_free(nconf);
		return -1;
	}
	while ((l = TAILQ_FIRST(&nconf->listeners)) != NULL) {
		TAILQ_REMOVE(&nconf->listeners, l, entry);
		free(l);
	}
	TAILQ_CONCAT(&nconf->listeners, &oconf->listeners, entry);
	strlcpy(nconf->queue_path, oconf->queue_path, sizeof(nconf->queue_path));
	strlcpy(nconf->chroot_path, oconf->chroot_path, sizeof(nconf->chroot_path));
	strlcpy(nconf->control_path, oconf->control_path,
	    sizeof(nconf->control_path));
	strlcpy(nconf->pidfile, oconf->pidfile, sizeof(nconf->pidfile));
	memcpy(nconf->user, oconf->user, sizeof(nconf->user));
	nconf->workers_smtp = oconf->workers_smtp;
	nconf->workers_deliver = oconf->workers_deliver;

	for (i = 0; i < 4 && master->old_policy[i].pid; i++)
		;
	if (i == 4) {
		log_warnx("reload: previous reloads still finishing, try later");
		TAILQ_CONCAT(&oconf->listeners, &nconf->listeners, entry);
		config_free(nconf);
		return -1;
	}
	master->conf = nconf;
	config_free(oconf);
	old = &master->old_policy[i];
	*old = master->policy;
	old->retiring = 1;
	if (old->chan)
		old->chan->arg = old;
	if (old->chan)
		channel_send(old->chan, IMSG_SHUTDOWN, 0, -1, NULL, 0);
	master->policy.pid = 0;
	master->policy.chan = NULL;
	master->policy.restarts = 0;
	master->policy.quick_deaths = 0;
	master->policy.restart_ev = evtimer_new(master->base, restart_cb,
	    &master->policy);
	child_spawn(&master->policy);
	log_info("configuration reloaded: new rules and tables in use");
	return 0;
}
