#include "autoconf.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "log.h"
#include "marshal.h"
#include "proc.h"
#include "stats.h"

void
proc_init(struct proc_env *env, const char *title)
{
	char	 name[48];

	/* ^C in a foreground terminal reaches every process: the master decides. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	stat_reset();
	if (env->kind == PROC_SMTP || env->kind == PROC_DELIVER)
		snprintf(name, sizeof(name), "%s #%d", title, env->slot);
	else
		strlcpy(name, title, sizeof(name));
	setproctitle("%s", name);
	log_procname(name);
}

int
proc_master_common(struct channel *chan, struct imsg *imsg)
{
	struct mreader	 r;
	struct mbuf	 m;
	uint32_t	 verbose, trace;

	switch (imsg->hdr.type) {
	case IMSG_STATS_REQ:
		m_init(&m);
		stat_marshal(&m);
		channel_send_m(chan, IMSG_STATS_REP, imsg->hdr.peerid, -1, &m);
		m_free(&m);
		return 1;
	case IMSG_LOG_VERBOSE:
		m_reader(&r, imsg);
		verbose = m_get_u32(&r);
		trace = m_get_u32(&r);
		if (m_end(&r) == -1) {
			channel_malformed(chan, imsg);
			return 1;
		}
		log_setverbose((int)verbose);
		log_settrace((int)trace);
		return 1;
	}
	return 0;
}

void
proc_report_bad_peer(struct channel *master_chan, struct channel *bad)
{
	struct mbuf	 m;

	if (master_chan == NULL)
		return;
	m_init(&m);
	m_add_u32(&m, bad->peer);
	m_add_u32(&m, (uint32_t)bad->slot);
	channel_send_m(master_chan, IMSG_BAD_PEER, 0, -1, &m);
	m_free(&m);
}

int
proc_peer_connect(struct channel *chan, struct imsg *imsg, uint32_t allowed,
    enum proc_kind *kind, int *slot)
{
	struct mreader	 r;
	uint32_t	 k, s;

	m_reader(&r, imsg);
	k = m_get_u32(&r);
	s = m_get_u32(&r);
	if (m_end(&r) == -1 || k >= PROC_COUNT || !(allowed & P(k)) ||
	    s > 1024) {
		channel_malformed(chan, imsg);
		return -1;
	}
	*kind = (enum proc_kind)k;
	*slot = (int)s;
	return 0;
}
