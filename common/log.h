/* Logging: syslog (facility mail) when daemonized, stderr in the foreground. */
#ifndef MTAD_LOG_H
#define MTAD_LOG_H

#include <stdarg.h>

/* Trace categories, switchable at run time (mtactl log verbose). */
#define TRACE_IMSG	0x01
#define TRACE_SMTP	0x02
#define TRACE_QUEUE	0x04
#define TRACE_POLICY	0x08
#define TRACE_DELIVER	0x10

void	log_init(int foreground, int facility);
void	log_procname(const char *name);
/* Messages without the "name[pid]: " prefix (for mtad -n). */
void	log_setplain(int);
void	log_setverbose(int level);
int	log_getverbose(void);
void	log_settrace(int mask);
int	log_gettrace(void);

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_trace(int, const char *, ...) __attribute__((format(printf, 2, 3)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
