#include "autoconf.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
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
