/*
 * What the master hands a child it forks: its identity, its channel to the
 * master, its channels to peers that were running at fork time (later ones
 * arrive as IMSG_PEER_CONNECT), and the account to drop to.
 */
#ifndef MTAD_PROC_H
#define MTAD_PROC_H

#include <sys/types.h>

#include "envelope.h"
#include "proto.h"

#define PROC_PEERS_MAX	160

struct peer_fd {
	enum proc_kind	kind;
	int		slot;
	int		fd;
};

struct proc_env {
	enum proc_kind	kind;
	int		slot;
	int		master_fd;
	struct peer_fd	peers[PROC_PEERS_MAX];
	int		npeers;
	uid_t		uid;
	gid_t		gid;
	char		user[USER_MAX];
	int		foreground;
};

struct config;

/* Entry points, one per process kind; they never return. */
void	policy_main(struct config *, struct proc_env *) __attribute__((noreturn));
void	queue_main(struct config *, struct proc_env *) __attribute__((noreturn));
void	smtp_main(struct config *, struct proc_env *) __attribute__((noreturn));
void	deliver_main(struct config *, struct proc_env *) __attribute__((noreturn));

/* Common to every child: ignore terminal signals, name the process. */
void	proc_init(struct proc_env *, const char *title);

struct channel;
struct imsg;
/*
 * What every child's master channel carries besides its own messages:
 * counter requests and the log level.  Returns 1 if it handled the frame.
 */
int	proc_master_common(struct channel *, struct imsg *);
/* Tells the master that `bad` sent garbage, so that it restarts it. */
void	proc_report_bad_peer(struct channel *master, struct channel *bad);
/*
 * Reads IMSG_PEER_CONNECT.  `allowed` is a P(kind) mask of the peers this
 * process talks to; anything else marks the master channel malformed.
 */
int	proc_peer_connect(struct channel *, struct imsg *, uint32_t allowed,
	    enum proc_kind *, int *slot);

#endif
