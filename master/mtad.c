/*
 * mtad: the master process.  Everything here runs as root: configuration,
 * listeners, directories, then the event loop that supervises the children.
 */
#include "autoconf.h"

#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <netinet/in.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "mda.h"
#include "offline.h"
#include "stats.h"
#include "util.h"

struct master	*master;

static const char	*conffile;
static int		 conffile_explicit;
static int		 pidfile_fd = -1;

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: mtad [-dnv] [-f file] [-T trace]\n");
	exit(2);
}

static struct config *
load_config(void)
{
	if (!conffile_explicit && access(conffile, F_OK) == -1 &&
	    errno == ENOENT) {
		log_info("%s does not exist: using the embedded defaults",
		    conffile);
		return config_parse("(embedded defaults)",
		    config_embedded_text(), NULL);
	}
	return config_parse(conffile, NULL, NULL);
}

/* Every account named in the configuration must exist before we fork. */
static int
check_users(struct config *conf)
{
	enum proc_kind	 k;
	int		 bad = 0;

	for (k = PROC_POLICY; k <= PROC_DELIVER; k++) {
		if (getpwnam(conf->user[k]) == NULL) {
			log_warnx("user %s (for the %s process) does not exist:"
			    " create it with `useradd --system --no-create-home"
			    " --shell /usr/sbin/nologin %s`", conf->user[k],
			    proc_name(k), conf->user[k]);
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

static void
make_dirs(struct config *conf)
{
	static const char	*spooldirs[] = { "incoming", "queue", "corrupt",
				    "offline" };
	struct passwd		*pw;
	struct stat		 st;
	char			 path[PATH_MAX];
	size_t			 i;

	if ((pw = getpwnam(conf->user[PROC_QUEUE])) == NULL)
		fatalx("user %s vanished", conf->user[PROC_QUEUE]);
	if (mkdir_owned(conf->queue_path, 0711, pw->pw_uid, pw->pw_gid) == -1)
		fatal("cannot create %s", conf->queue_path);
	for (i = 0; i < sizeof(spooldirs) / sizeof(spooldirs[0]); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", conf->queue_path,
		    spooldirs[i]) >= (int)sizeof(path))
			fatalx("spool path too long");
		if (mkdir_owned(path, 0700, pw->pw_uid, pw->pw_gid) == -1)
			fatal("cannot create %s", path);
	}
	/* offline/ takes drops from unprivileged local submission. */
	if (snprintf(path, sizeof(path), "%s/offline", conf->queue_path) >=
	    (int)sizeof(path))
		fatalx("spool path too long");
	if (chmod(path, 01733) == -1)
		fatal("chmod %s", path);

	if (mkdir_owned(conf->chroot_path, 0755, 0, 0) == -1)
		fatal("cannot create %s", conf->chroot_path);
	if (stat(conf->chroot_path, &st) == -1 || (st.st_mode & 022))
		fatalx("%s must not be writable by others", conf->chroot_path);
}

/*
 * The local submission socket: SMTP over AF_UNIX, open to every local user
 * (sendmail(8) speaks it); the smtp-workers learn the caller's uid from it.
 */
static void
add_submit_listener(struct config *conf)
{
	struct listener		*l;
	struct sockaddr_un	*sun;
	char			 dir[PATH_MAX], *slash;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		fatal("calloc");
	sun = (struct sockaddr_un *)&l->ss;
	sun->sun_family = AF_UNIX;
	if (strlcpy(sun->sun_path, conf->submit_path, sizeof(sun->sun_path)) >=
	    sizeof(sun->sun_path))
		fatalx("submit socket path too long");
	l->sslen = sizeof(*sun);
	strlcpy(l->addr, conf->submit_path, sizeof(l->addr));
	l->fd = -1;
	strlcpy(dir, conf->submit_path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir_owned(dir, 0755, (uid_t)-1, (gid_t)-1) == -1)
			fatal("cannot create %s", dir);
	}
	if (unlink(conf->submit_path) == -1 && errno != ENOENT)
		fatal("unlink %s", conf->submit_path);
	TAILQ_INSERT_TAIL(&conf->listeners, l, entry);
}

static void
bind_listeners(struct config *conf)
{
	struct listener	*l;
	int		 on = 1;

	add_submit_listener(conf);
	TAILQ_FOREACH(l, &conf->listeners, entry) {
		l->fd = socket(l->ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
		    SOCK_CLOEXEC, 0);
		if (l->fd == -1)
			fatal("socket for %s port %d", l->addr, l->port);
		if (l->ss.ss_family != AF_UNIX && setsockopt(l->fd, SOL_SOCKET,
		    SO_REUSEADDR, &on, sizeof(on)) == -1)
			fatal("setsockopt SO_REUSEADDR");
		if (l->ss.ss_family == AF_INET6 && setsockopt(l->fd,
		    IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) == -1)
			fatal("setsockopt IPV6_V6ONLY");
		if (bind(l->fd, (struct sockaddr *)&l->ss, l->sslen) == -1)
			fatal("cannot listen on %s port %d", l->addr, l->port);
		if (listen(l->fd, 1024) == -1)
			fatal("listen on %s port %d", l->addr, l->port);
		if (l->ss.ss_family == AF_UNIX) {
			if (chmod(l->addr, 0666) == -1)
				fatal("chmod %s", l->addr);
			log_info("local submission on %s", l->addr);
		} else
			log_info("listening on %s port %d", l->addr, l->port);
	}
}

/* Many sessions per smtp-worker need many descriptors. */
static void
raise_fd_limit(void)
{
	struct rlimit	 rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return;
	if (rl.rlim_max < 65536) {
		rl.rlim_max = 65536;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1 &&
		    getrlimit(RLIMIT_NOFILE, &rl) == -1)
			return;
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
		log_warn("setrlimit RLIMIT_NOFILE");
}

/* An flock'ed pidfile: a second mtad refuses to start, kill -9 frees it. */
static void
lock_pidfile(const char *path)
{
	char	 dir[PATH_MAX], *slash;

	strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
		*slash = '\0';
		if (mkdir_owned(dir, 0755, (uid_t)-1, (gid_t)-1) == -1)
			fatal("cannot create %s", dir);
	}
	pidfile_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (pidfile_fd == -1)
		fatal("cannot open %s", path);
	if (flock(pidfile_fd, LOCK_EX | LOCK_NB) == -1) {
		if (errno == EWOULDBLOCK)
			fatalx("mtad is already running (%s is locked)", path);
		fatal("flock %s", path);
	}
}

static void
write_pidfile(void)
{
	char	 buf[32];
	int	 n;

	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(pidfile_fd, 0) == -1 ||
	    pwrite(pidfile_fd, buf, (size_t)n, 0) != n)
		log_warn("cannot write pidfile");
}

int
master_reload(void)
{
	struct config	*conf;

	if ((conf = load_config()) == NULL) {
		log_warnx("reload failed: keeping the running configuration");
		return -1;
	}
	return supervise_reload(conf);
}

static void
dispatch_bad_peer(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	struct child	*c;
	uint32_t	 kind, slot;

	m_reader(&r, imsg);
	kind = m_get_u32(&r);
	slot = m_get_u32(&r);
	if (m_end(&r) == -1 || kind >= PROC_COUNT || slot >= POOL_MAX) {
		channel_malformed(chan, imsg);
		return;
	}
	if (kind == PROC_POLICY)
		c = &master->policy;
	else if (kind == PROC_QUEUE)
		c = &master->queue;
	else if (kind == PROC_SMTP)
		c = &master->smtp[slot];
	else if (kind == PROC_DELIVER)
		c = &master->deliver[slot];
	else {
		channel_malformed(chan, imsg);
		return;
	}
	if (c->pid) {
		log_warnx("%s #%d reports %s #%u misbehaving: killing it",
		    proc_name(chan->peer), chan->slot, proc_name(kind), slot);
		kill(c->pid, SIGKILL);
	}
}

static void
dispatch_mda(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	struct dlv	 dlv;
	char		 msgid[MSGID_SIZE], sender[ADDR_MAX];
	uint32_t	 index;

	m_reader(&r, imsg);
	m_get_str(&r, msgid, sizeof(msgid));
	index = m_get_u32(&r);
	m_get_str(&r, sender, sizeof(sender));
	dlv_get(&r, &dlv);
	if (m_end(&r) == -1 || !msgid_is_valid(msgid)) {
		channel_malformed(chan, imsg);
		return;
	}
	mda_start(master->conf, chan, imsg->hdr.peerid, msgid, index, sender,
	    &dlv, imsg->fd);
	imsg->fd = -1;
}

/* Messages from children on their master channel. */
void
master_dispatch(struct channel *chan, struct imsg *imsg)
{
	switch (imsg->hdr.type) {
	case IMSG_STATS_REP:
		control_stats_reply(imsg->hdr.peerid, imsg);
		break;
	case IMSG_BAD_PEER:
		dispatch_bad_peer(chan, imsg);
		break;
	case IMSG_MDA_DELIVER:
		dispatch_mda(chan, imsg);
		break;
	case IMSG_CTL_QUEUE_ENTRY:
	case IMSG_CTL_TEXT:
	case IMSG_CTL_RESULT:
	case IMSG_CTL_END:
		control_relay(imsg->hdr.peerid, imsg);
		break;
	default:
		log_warnx("unexpected %s from %s #%d",
		    imsg_type_name(imsg->hdr.type), proc_name(chan->peer),
		    chan->slot);
		channel_malformed(chan, imsg);
	}
}

static void
on_signal(evutil_socket_t sig, short ev, void *arg)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		if (master->shutting_down) {
			log_info("second signal: stopping now");
			supervise_shutdown();
			return;
		}
		log_info("received %s: shutting down",
		    sig == SIGTERM ? "SIGTERM" : "SIGINT");
		control_close();
		supervise_shutdown();
		break;
	case SIGHUP:
		log_info("received SIGHUP: reloading %s", conffile);
		(void)master_reload();
		break;
	case SIGCHLD:
		supervise_reap();
		break;
	}
}

static void
cleanup(void)
{
	unlink(master->conf->submit_path);
	unlink(master->conf->control_path);
	unlink(master->conf->pidfile);
}

int
main(int argc, char *argv[])
{
	struct event	*sigs[5];
	int		 ch, checkonly = 0, foreground = 0, verbose = 0;
	int		 trace = 0, i;
	struct config	*conf;
	extern char	**environ;

	setproctitle_init(argc, argv, environ);
	conffile = MTAD_CONFFILE;
	while ((ch = getopt(argc, argv, "df:nT:v")) != -1) {
		switch (ch) {
		case 'd':
			foreground = 1;
			break;
		case 'f':
			conffile = optarg;
			conffile_explicit = 1;
			break;
		case 'n':
			checkonly = 1;
			break;
		case 'T':
			if (strcmp(optarg, "all") == 0)
				trace = ~0;
			else if (strcmp(optarg, "imsg") == 0)
				trace |= TRACE_IMSG;
			else if (strcmp(optarg, "smtp") == 0)
				trace |= TRACE_SMTP;
			else if (strcmp(optarg, "queue") == 0)
				trace |= TRACE_QUEUE;
			else if (strcmp(optarg, "policy") == 0)
				trace |= TRACE_POLICY;
			else if (strcmp(optarg, "deliver") == 0)
				trace |= TRACE_DELIVER;
			else
				usage();
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	log_init(1, LOG_MAIL);
	log_setplain(checkonly);
	log_setverbose(verbose);
	log_settrace(trace);
	if ((conf = load_config()) == NULL) {
		fprintf(stderr, "mtad: %s: configuration has errors\n", conffile);
		exit(1);
	}
	if (checkonly) {
		if (geteuid() == 0 && check_users(conf) == -1)
			exit(1);
		printf("configuration OK\n");
		exit(0);
	}
	if (geteuid() != 0)
		errx(1, "need root privileges");
	if (check_users(conf) == -1)
		exit(1);

	lock_pidfile(conf->pidfile);
	make_dirs(conf);
	raise_fd_limit();
	bind_listeners(conf);

	if (!foreground) {
		if (daemon(0, 0) == -1)
			fatal("daemon");
		log_init(0, LOG_MAIL);
	}
	write_pidfile();
	signal(SIGPIPE, SIG_IGN);

	if ((master = calloc(1, sizeof(*master))) == NULL)
		fatal("calloc");
	master->conf = conf;
	master->foreground = foreground;
	master->started = time(NULL);
	if ((master->base = event_base_new()) == NULL)
		fatalx("event_base_new");
	setproctitle("master");
	log_procname("master");
	log_info("mtad %s starting (configuration %s)", PACKAGE_VERSION,
	    conf->file);

	sigs[0] = evsignal_new(master->base, SIGTERM, on_signal, NULL);
	sigs[1] = evsignal_new(master->base, SIGINT, on_signal, NULL);
	sigs[2] = evsignal_new(master->base, SIGHUP, on_signal, NULL);
	sigs[3] = evsignal_new(master->base, SIGCHLD, on_signal, NULL);
	sigs[4] = NULL;
	for (i = 0; sigs[i]; i++)
		if (evsignal_add(sigs[i], NULL) == -1)
			fatalx("evsignal_add");

	if (control_init() == -1)
		fatalx("cannot open the control socket %s", conf->control_path);
	supervise_start();
	offline_start();
	event_base_dispatch(master->base);

	cleanup();
	log_info("mtad stopped");
	return 0;
}
