/*
 * Recipient decisions: the `match` rules in order, then for local actions
 * alias expansion and local user checks.  Pure functions of the config and
 * the user list, so that the unit tests drive them directly.
 */
#ifndef MTAD_RULESET_H
#define MTAD_RULESET_H

#include <sys/types.h>
#include <stddef.h>

#include "config.h"
#include "envelope.h"

struct rcpt_query {
	const char	*client_addr;	/* numeric IP, or "local" */
	int		 client_local;	/* loopback or local submission */
	const char	*helo;
	const char	*sender;	/* "" for <> */
	const char	*rcpt;		/* as given, without brackets */
	const char	*auth_user;	/* "" when not authenticated */
};

struct rcpt_result {
	int		 code;		/* 250, 450, 550, ... */
	char		 text[TEXT_MAX];/* enhanced code + text: "5.1.1 <x@y>: ..." */
	struct dlv	*dlv;		/* malloc'ed, ndlv entries */
	size_t		 ndlv;
};

#define ALIAS_DEPTH_MAX		16	/* chained aliases */
#define ALIAS_EXPAND_MAX	1000	/* deliveries from one recipient */

/*
 * Evaluates one recipient.  Outcomes:
 * - no rule matches: 550 5.7.1 relaying denied;
 * - a `reject` rule: 550 5.7.1;
 * - a local action: the local part (lowercased, "+detail" dropped if the
 *   whole does not resolve) goes through the action's alias table if any
 *   (chained, lists, `\user` stops expansion, loops cut), each result is a
 *   local user (must exist: else 550 5.1.1 when nothing at all resolves) or
 *   an address, which is evaluated again as from local;
 * - success: 250 2.1.5 with the deliveries in result->dlv.
 * Returns 0, or -1 on memory exhaustion (the reply is then 451 4.3.0).
 */
int	ruleset_eval(struct config *, const struct rcpt_query *,
	    struct rcpt_result *);
void	rcpt_result_clear(struct rcpt_result *);

/* Local accounts, loaded once before the policy process chroots. */
struct local_user {
	char	name[USER_MAX];
	uid_t	uid;
	char	home[PATH_MAX];
};

int			 users_load(void);	/* from getpwent(3) */
int			 users_add(const char *name, uid_t, const char *home);
void			 users_clear(void);
const struct local_user	*users_lookup(const char *name);

#endif
