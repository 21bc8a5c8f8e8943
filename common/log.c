#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int	 log_foreground = 1;
static int	 log_verbose;
static int	 log_tracemask;
static char	 log_name[32] = "mtad";
static int	 log_plain;	/* messages alone, for mtad -n */

void
log_init(int foreground, int facility)
{
	log_foreground = foreground;
	if (!foreground)
		/* LOG_NDELAY: connect to /dev/log now, before any chroot. */
		openlog("mtad", LOG_PID | LOG_NDELAY, facility);
	tzset();
}

void
log_procname(const char *name)
{
	strlcpy(log_name, name, sizeof(log_name));
}

void	log_setplain(int on) { log_plain = on; }
void	log_setverbose(int level) { log_verbose = level; }
int	log_getverbose(void) { return log_verbose; }
void	log_settrace(int mask) { log_tracemask = mask; }
int	log_gettrace(void) { return log_tracemask; }

static void
vlog(int pri, const char *fmt, va_list ap, const char *suffix)
{
	char	 msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (log_foreground && log_plain) {
		fprintf(stderr, "%s%s%s\n", msg, suffix ? ": " : "",
		    suffix ? suffix : "");
		fflush(stderr);
	} else if (log_foreground) {
		fprintf(stderr, "%s[%d]: %s%s%s\n", log_name, (int)getpid(), msg,
		    suffix ? ": " : "", suffix ? suffix : "");
		fflush(stderr);
	} else
		syslog(pri, "%s: %s%s%s", log_name, msg,
		    suffix ? ": " : "", suffix ? suffix : "");
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap, strerror(saved));
	va_end(ap);
	errno = saved;
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_ERR, fmt, ap, NULL);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_INFO, fmt, ap, NULL);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	if (log_verbose < 1)
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void
log_trace(int category, const char *fmt, ...)
{
	va_list	 ap;

	if (!(log_tracemask & category))
		return;
	va_start(ap, fmt);
	vlog(LOG_DEBUG, fmt, ap, NULL);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 saved = errno;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
