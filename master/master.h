/*
 * The master: root, reads the configuration, binds listeners, forks and
 * supervises the worker pools, runs the control socket and the privileged
 * local deliveries.
 */
#ifndef MTAD_MASTER_H
#define MTAD_MASTER_H

#include <sys/types.h>
#include <event2/event.h>
#include <time.h>

#include "channel.h"
#include "config.h"
#include "proc.h"

#define POOL_MAX	64

struct child {
	enum proc_kind	 kind;
	int		 slot;
	pid_t		 pid;		/* 0 when not running */
	struct channel	*chan;
	time_t		 started;
	int		 restarts;
	int		 quick_deaths;	/* consecutive deaths soon after start */
	struct event	*restart_ev;
	int		 retiring;	/* replaced by a reload: do not restart */
};

struct master {
	struct config		*conf;
	struct event_base	*base;
	int			 foreground;
	int			 shutting_down;
	time_t			 started;
	struct child		 policy;
	struct child		 queue;
	struct child		 smtp[POOL_MAX];
	struct child		 deliver[POOL_MAX];
	/* policy processes replaced by a reload, still finishing */
	struct child		 old_policy[4];
	int			 paused_smtp;
	int			 paused_delivery;
};

extern struct master	*master;

/* supervise.c */
void	supervise_start(void);
void	supervise_reap(void);
void	supervise_shutdown(void);
/* Takes over a new configuration: 0, or -1 if it could not (then freed). */
int	supervise_reload(struct config *);
int	supervise_running(void);	/* not shutting down */
struct child *supervise_find_pid(pid_t);
void	supervise_broadcast(uint32_t type, uint32_t peerid, const void *, size_t);
int	supervise_count(void);
void	supervise_foreach(void (*)(struct child *, void *), void *);
/* mtactl pause/resume: remembered, and told to restarted children too. */
void	supervise_pause(uint32_t what, int on);

/* control.c */
int	control_init(void);
void	control_close(void);
/* A reply from a child for control client `id`. */
void	control_relay(uint32_t id, struct imsg *);
void	control_stats_reply(uint32_t reqid, struct imsg *);

/* Parses the configuration again and reloads: 0, or -1 (old one kept). */
int	master_reload(void);

/* master_dispatch: imsg from a child on its master channel. */
void	master_dispatch(struct channel *, struct imsg *);

#endif
