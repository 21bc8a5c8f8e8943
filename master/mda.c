/*
 * The master side of local delivery: a deliver-worker asks for a delivery to
 * a local account; the master, the only process with root, forks a helper
 * that runs mda_mbox() or mda_maildir() and reports one line back through a
 * socketpair.  The destination is recomputed here from the master's own
 * configuration: a worker names an action and a user, never a path.
 */
#include "autoconf.h"

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "mda.h"
#include "stats.h"
#include "util.h"

#define MDA_RUNNING_MAX		32
#define MDA_TIMEOUT_SECS	300

struct mda_job {
	TAILQ_ENTRY(mda_job)	 entry;
	struct mda_request	 req;
	int			 deliver_slot;	/* who asked */
	pid_t			 deliver_pid;
	uint32_t		 reqid;
	pid_t			 pid;		/* helper */
	int			 fd;		/* result socket */
	struct event		*ev;
	char			 line[TEXT_MAX + 16];
	size_t			 linelen;
	int			 eof, reaped, status;
};

static TAILQ_HEAD(, mda_job)	 waiting = TAILQ_HEAD_INITIALIZER(waiting);
static TAILQ_HEAD(, mda_job)	 running = TAILQ_HEAD_INITIALIZER(running);
static int			 nrunning;

static void	mda_run_next(void);

static void
mda_reply(struct mda_job *job, int status, const char *text)
{
	struct child	*c = &master->deliver[job->deliver_slot];
	struct mbuf	 m;

	log_info("%s: to=<%s>, user=%s, mailbox=%s, status=%s (%s)",
	    job->req.msgid, job->req.dlv.rcpt, job->req.dlv.user,
	    job->req.path[0] ? job->req.path : "-", dlv_status_name(status),
	    text);
	stat_increment(status == DLV_OK ? "mda.delivered" : "mda.failed", 1);
	/* The worker that asked may have died and been replaced meanwhile. */
	if (c->pid != job->deliver_pid || c->chan == NULL)
		return;
	m_init(&m);
	m_add_u32(&m, (uint32_t)status);
	m_add_str(&m, text);
	channel_send_m(c->chan, IMSG_MDA_RESULT, job->reqid, -1, &m);
	m_free(&m);
}

static void
mda_job_free(struct mda_job *job)
{
	if (job->ev)
		event_free(job->ev);
	if (job->fd != -1)
		close(job->fd);
	if (job->req.msgfd != -1)
		close(job->req.msgfd);
	free(job);
}

/* Both the helper's line and its exit are in: report and clean up. */
static void
mda_job_finish(struct mda_job *job)
{
	char	*sp;
	int	 status;

	if (!job->eof || !job->reaped)
		return;
	TAILQ_REMOVE(&running, job, entry);
	nrunning--;
	job->line[job->linelen] = '\0';
	job->line[strcspn(job->line, "\n")] = '\0';
	if (WIFEXITED(job->status) && WEXITSTATUS(job->status) == 0 &&
	    (sp = strchr(job->line, ' ')) != NULL &&
	    job->line[0] >= '0' && job->line[0] <= '2' && sp == job->line + 1) {
		status = job->line[0] - '0';
		mda_reply(job, status, sp + 1);
	} else if (WIFSIGNALED(job->status))
		mda_reply(job, DLV_TEMPFAIL, "4.3.0 local delivery helper "
		    "was killed");
	else
		mda_reply(job, DLV_TEMPFAIL, "4.3.0 local delivery helper "
		    "failed");
	mda_job_free(job);
	mda_run_next();
}

static void
mda_result_cb(evutil_socket_t fd, short ev, void *arg)
{
	struct mda_job	*job = arg;
	ssize_t		 n;

	if (ev & EV_TIMEOUT) {
		log_warnx("%s: local delivery to %s timed out", job->req.msgid,
		    job->req.dlv.rcpt);
		kill(job->pid, SIGKILL);
		return;
	}
	n = read(fd, job->line + job->linelen,
	    sizeof(job->line) - 1 - job->linelen);
	if (n > 0) {
		job->linelen += (size_t)n;
		if (job->linelen < sizeof(job->line) - 1)
			return;
	} else if (n == -1 && errno == EAGAIN)
		return;
	job->eof = 1;
	event_del(job->ev);
	mda_job_finish(job);
}

/* In the helper: deliver, write "STATUS TEXT\n", exit. */
static void __attribute__((noreturn))
mda_helper(struct mda_job *job)
{
	char	 err[TEXT_MAX], line[TEXT_MAX + 16];
	int	 status, n;

	err[0] = '\0';
	setproctitle("local delivery %s", job->req.msgid);
	if (job->req.dlv.kind == DLV_MBOX)
		status = mda_mbox(&job->req, err, sizeof(err));
	else
		status = mda_maildir(&job->req, err, sizeof(err));
	if (status == DLV_OK && err[0] == '\0')
		strlcpy(err, "2.0.0 delivered", sizeof(err));
	n = snprintf(line, sizeof(line), "%d %s\n", status, err);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = (int)strlen(line);
	if (write(job->fd, line, (size_t)n) != n)
		_exit(1);
	_exit(0);
}

static void
mda_job_start(struct mda_job *job)
{
	struct timeval	 tv = { MDA_TIMEOUT_SECS, 0 };
	int		 sp[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1) {
		mda_reply(job, DLV_TEMPFAIL, "4.3.0 socketpair failed");
		mda_job_free(job);
		return;
	}
	switch (job->pid = fork()) {
	case -1:
		close(sp[0]);
		close(sp[1]);
		mda_reply(job, DLV_TEMPFAIL, "4.3.0 fork failed");
		mda_job_free(job);
		return;
	case 0:
		/*
		 * Keep only the message and the result socket: the helper must
		 * not hold the master's channels or listeners when it drops to
		 * the mailbox owner's account.
		 */
		{
			int	 m = fcntl(job->req.msgfd, F_DUPFD, 10);
			int	 r = fcntl(sp[1], F_DUPFD, 10);

			if (m == -1 || r == -1 || dup2(m, 3) == -1 ||
			    dup2(r, 4) == -1)
				_exit(1);
		}
		close_range(5, ~0U, 0);
		job->req.msgfd = 3;
		job->fd = 4;
		signal(SIGCHLD, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_IGN);
		signal(SIGHUP, SIG_IGN);
		mda_helper(job);
	}
	close(sp[1]);
	job->fd = sp[0];
	set_nonblock(job->fd);
	job->ev = event_new(master->base, job->fd, EV_READ | EV_PERSIST,
	    mda_result_cb, job);
	if (job->ev == NULL || event_add(job->ev, &tv) == -1)
		fatalx("mda: event_add");
	TAILQ_INSERT_TAIL(&running, job, entry);
	nrunning++;
}

static void
mda_run_next(void)
{
	struct mda_job	*job;

	while (nrunning < MDA_RUNNING_MAX &&
	    (job = TAILQ_FIRST(&waiting)) != NULL) {
		TAILQ_REMOVE(&waiting, job, entry);
		mda_job_start(job);
	}
}

/* Fills the request from the master's own view of the action and user. */
static int
mda_prepare(struct config *conf, struct mda_job *job, char *err, size_t errsz)
{
	struct action	*a;
	struct passwd	*pw;

	if ((a = config_action(conf, job->req.dlv.action)) == NULL) {
		snprintf(err, errsz, "4.3.0 action \"%s\" is not configured",
		    job->req.dlv.action);
		return DLV_TEMPFAIL;
	}
	if ((a->type == ACTION_MBOX && job->req.dlv.kind != DLV_MBOX) ||
	    (a->type == ACTION_MAILDIR && job->req.dlv.kind != DLV_MAILDIR)) {
		snprintf(err, errsz, "4.3.0 action \"%s\" changed its method",
		    a->name);
		return DLV_TEMPFAIL;
	}
	errno = 0;
	if ((pw = getpwnam(job->req.dlv.user)) == NULL) {
		if (errno != 0) {
			snprintf(err, errsz, "4.3.0 user lookup failed: %s",
			    strerror(errno));
			return DLV_TEMPFAIL;
		}
		snprintf(err, errsz, "5.1.1 user %s does not exist",
		    job->req.dlv.user);
		return DLV_PERMFAIL;
	}
	job->req.uid = pw->pw_uid;
	job->req.gid = pw->pw_gid;
	strlcpy(job->req.home, pw->pw_dir, sizeof(job->req.home));
	if (action_dest(a, pw->pw_name, pw->pw_dir, job->req.path,
	    sizeof(job->req.path)) == -1) {
		snprintf(err, errsz, "5.3.5 bad destination for action \"%s\"",
		    a->name);
		return DLV_PERMFAIL;
	}
	return DLV_OK;
}

void
mda_start(struct config *conf, struct channel *from, uint32_t reqid,
    const char *msgid, uint32_t index, const char *sender,
    const struct dlv *dlv, int fd)
{
	struct mda_job	*job;
	char		 err[TEXT_MAX];
	int		 status;

	if ((job = calloc(1, sizeof(*job))) == NULL) {
		log_warn("mda: calloc");
		close(fd);
		return;
	}
	job->fd = -1;
	job->req.msgfd = fd;
	job->reqid = reqid;
	job->deliver_slot = from->slot;
	job->deliver_pid = master->deliver[from->slot].pid;
	strlcpy(job->req.msgid, msgid, sizeof(job->req.msgid));
	strlcpy(job->req.sender, sender, sizeof(job->req.sender));
	job->req.dlv = *dlv;
	if (snprintf(job->req.marker, sizeof(job->req.marker),
	    "%s/queue/%s.mda.%u", conf->queue_path, msgid, index) >=
	    (int)sizeof(job->req.marker)) {
		mda_reply(job, DLV_TEMPFAIL, "4.3.0 spool path too long");
		mda_job_free(job);
		return;
	}
	if ((status = mda_prepare(conf, job, err, sizeof(err))) != DLV_OK) {
		mda_reply(job, status, err);
		mda_job_free(job);
		return;
	}
	TAILQ_INSERT_TAIL(&waiting, job, entry);
	mda_run_next();
}

int
mda_reap(pid_t pid, int status)
{
	struct mda_job	*job;

	TAILQ_FOREACH(job, &running, entry) {
		if (job->pid == pid) {
			job->reaped = 1;
			job->status = status;
			mda_job_finish(job);
			return 1;
		}
	}
	return 0;
}
