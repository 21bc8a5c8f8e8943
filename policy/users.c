#include "autoconf.h"

#include <sys/types.h>

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ruleset.h"

/*
 * The local accounts, read once before the policy process chroots (after
 * that /etc/passwd is out of reach).  A sorted array: lookups happen for
 * every local recipient.
 */

/* A site with more accounts than this wants a real user database. */
#define USERS_MAX	100000

static struct local_user	*users;
static size_t			 nusers, capusers;
static int			 users_sorted = 1;

struct user_order {
	const struct local_user	*u;
	size_t			 order;
};

static int
user_order_cmp(const void *a, const void *b)
{
	const struct user_order	*ua = a, *ub = b;
	int			 c;

	if ((c = strcmp(ua->u->name, ub->u->name)) != 0)
		return c;
	return (ua->order > ub->order) - (ua->order < ub->order);
}

static int
user_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct local_user *)elem)->name);
}

/*
 * Sorts by name and keeps the first of several accounts with one name,
 * as getpwnam(3) would find it.
 */
static int
users_sort(void)
{
	struct user_order	*o;
	struct local_user	*sorted;
	size_t			 i, n = 0;

	if (users_sorted)
		return 0;
	if ((o = calloc(nusers, sizeof(*o))) == NULL)
		return -1;
	if ((sorted = calloc(nusers, sizeof(*sorted))) == NULL) {
		free(o);
		return -1;
	}
	for (i = 0; i < nusers; i++) {
		o[i].u = &users[i];
		o[i].order = i;
	}
	qsort(o, nusers, sizeof(*o), user_order_cmp);
	for (i = 0; i < nusers; i++) {
		if (n > 0 && strcmp(sorted[n - 1].name, o[i].u->name) == 0)
			continue;
		sorted[n++] = *o[i].u;
	}
	free(o);
	free(users);
	users = sorted;
	nusers = n;
	capusers = nusers;
	users_sorted = 1;
	return 0;
}

int
users_add(const char *name, uid_t uid, const char *home)
{
	struct local_user	*u;
	size_t			 ncap;

	if (name == NULL || *name == '\0' || strlen(name) >= USER_MAX ||
	    home == NULL || strlen(home) >= PATH_MAX) {
		errno = EINVAL;
		return -1;
	}
	if (nusers >= USERS_MAX) {
		errno = ENOSPC;
		return -1;
	}
	if (nusers == capusers) {
		ncap = capusers ? capusers * 2 : 64;
		if ((u = reallocarray(users, ncap, sizeof(*u))) == NULL)
			return -1;
		users = u;
		capusers = ncap;
	}
	u = &users[nusers++];
	memset(u, 0, sizeof(*u));
	(void)strlcpy(u->name, name, sizeof(u->name));
	(void)strlcpy(u->home, home, sizeof(u->home));
	u->uid = uid;
	users_sorted = 0;
	return 0;
}

void
users_clear(void)
{
	free(users);
	users = NULL;
	nusers = capusers = 0;
	users_sorted = 1;
}

int
users_load(void)
{
	struct passwd	*pw;
	size_t		 skipped = 0;
	int		 r = 0;

	users_clear();
	setpwent();
	while ((pw = getpwent()) != NULL) {
		if (users_add(pw->pw_name, pw->pw_uid, pw->pw_dir) == 0)
			continue;
		if (errno == ENOMEM) {
			r = -1;
			break;
		}
		if (errno == ENOSPC) {
			log_warnx("more than %d local accounts: the others "
			    "will not receive mail", USERS_MAX);
			break;
		}
		skipped++;
	}
	endpwent();
	if (skipped > 0)
		log_warnx("%zu local accounts with an overlong name or home "
		    "directory will not receive mail", skipped);
	if (r == 0 && users_sort() == -1)
		r = -1;
	if (r == -1)
		log_warn("users_load");
	else
		log_debug("%zu local accounts", nusers);
	return r;
}

const struct local_user *
users_lookup(const char *name)
{
	if (name == NULL || nusers == 0)
		return NULL;
	if (users_sort() == -1) {
		log_warn("users_lookup");
		return NULL;
	}
	return bsearch(name, users, nusers, sizeof(*users), user_cmp);
}
