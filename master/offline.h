/*
 * Pickup of offline/ drops: messages that sendmail(8) left in the spool
 * while mtad was not running (common/dropfile.h).  The master scans the
 * directory at start and every 60 s and submits each drop over the submit
 * socket from a child that runs as the file's owner, so that the message
 * goes in exactly as if that user had sent it with mtad running.
 */
#ifndef MTAD_OFFLINE_H
#define MTAD_OFFLINE_H

#include <sys/types.h>

/* Arms the scans: the first soon after start, then every 60 s. */
void	offline_start(void);
/* A scan now (for `mtactl flush` / `sendmail -q`), not waiting for the timer. */
void	offline_scan_now(void);
/* Called on SIGCHLD for a pid that is not a worker: 1 if it was a pickup. */
int	offline_reap(pid_t, int status);

#endif
