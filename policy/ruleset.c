#include "autoconf.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "log.h"
#include "ruleset.h"

/*
 * One recipient through the rules:
 *
 *   eval_addr      find the first matching rule for an address;
 *   resolve_local  a local part under a local action: alias, user, or the
 *                  same again without its +detail;
 *   alias_expand   each item of an alias: a user, an address (back to
 *                  eval_addr, as from local), or what we cannot deliver.
 *
 * Loops are cut by the chain of names being expanded (a name seen again is
 * taken as a local user), nesting by ALIAS_DEPTH_MAX, the total work by
 * ALIAS_EXPAND_MAX.
 */

enum outcome {
	OUT_LOCAL,	/* a local action took it (deliveries may be none) */
	OUT_NOMATCH,	/* no rule: relaying denied */
	OUT_REJECT,	/* a reject rule */
	OUT_BADADDR	/* not an address we can evaluate */
};

struct eval {
	struct config		*conf;
	const struct rcpt_query	*q;
	const char		*rcpt;		/* q->rcpt, never NULL */
	struct rcpt_result	*res;
	size_t			 cap;
	int			 steps;		/* alias items looked at */
	int			 overflow;	/* ALIAS_EXPAND_MAX reached */
	int			 oom;
	const char		*chain[ALIAS_DEPTH_MAX + 1];
	int			 nchain;
	int			 nwarn;		/* alias problems seen */
};

/*
 * A broken alias is reported each time a recipient runs into it: a few
 * lines per recipient say what is wrong without letting a client flood
 * the log through a long list.
 */
#define WARN_MAX	8

static enum outcome eval_addr(struct eval *, const char *, int, const char *,
		    int);
static int	 resolve_local(struct eval *, const struct action *,
		    const char *, int, const char *);
static int	 alias_expand(struct eval *, const struct action *,
		    const char *, int);
static void	 alias_item(struct eval *, const struct action *,
		    const char *, char *, int);
static int	 deliver_user(struct eval *, const struct action *,
		    const char *, const char *);
static int	 deliver_relay(struct eval *, const struct action *,
		    const char *, size_t);
static void	 resolve_mongo(struct eval *, const struct action *,
		    const char *, size_t, int);
static const struct match *rule_find(struct config *, int, const char *,
		    const char *, const char *, const char *);
static int	 lower_copy(const char *, size_t, char *, size_t);
static void	 ev_warn(struct eval *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static const char *next_item(const char *, char *, size_t, int *);

static int
lower_copy(const char *s, size_t len, char *out, size_t outsz)
{
	size_t	i;

	if (len >= outsz)
		return -1;
	for (i = 0; i < len; i++)
		out[i] = (char)tolower((unsigned char)s[i]);
	out[len] = '\0';
	return 0;
}

static void
ev_warn(struct eval *ev, const char *fmt, ...)
{
	char	msg[TEXT_MAX];
	va_list	ap;

	if (ev->nwarn++ >= WARN_MAX)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("rcpt <%s>: %s", ev->rcpt, msg);
}

static const struct match *
rule_find(struct config *conf, int from_local, const char *client,
    const char *auth_user, const char *addr, const char *domain)
{
	const struct match	*m;
	int			 from, for_;

	TAILQ_FOREACH(m, &conf->matches, entry) {
		switch (m->from) {
		case FROM_ANY:
			from = 1;
			break;
		case FROM_LOCAL:
			from = from_local;
			break;
		case FROM_SRC:
			from = table_match_addr(m->from_table, client);
			break;
		case FROM_AUTH:
			from = auth_user[0] != '\0' && (m->from_table == NULL ||
			    table_contains(m->from_table, auth_user));
			break;
		default:
			from = 0;
			break;
		}
		if (from == m->from_neg)
			continue;
		switch (m->for_) {
		case FOR_ANY:
			for_ = 1;
			break;
		case FOR_LOCAL:
			/* Bare <postmaster> (RFC 5321 4.5.1) has no domain. */
			for_ = *domain == '\0' ||
			    config_domain_is_local(conf, domain);
			break;
		case FOR_DOMAIN:
			for_ = table_match_domain(m->for_table, domain);
			break;
		case FOR_RCPT:
			for_ = table_contains(m->for_table, addr);
			break;
		default:
			for_ = 0;
			break;
		}
		if (for_ == m->for_neg)
			continue;
		return m;
	}
	return NULL;
}

static int
in_chain(const struct eval *ev, const char *name)
{
	int	i;

	for (i = 0; i < ev->nchain; i++)
		if (strcmp(ev->chain[i], name) == 0)
			return 1;
	return 0;
}

/*
 * A new zeroed delivery at the end of the result, not yet counted; NULL
 * when the limit is reached (ev->overflow) or memory is short (ev->oom).
 */
static struct dlv *
dlv_append(struct eval *ev)
{
	struct rcpt_result	*res = ev->res;
	struct dlv		*d;
	size_t			 ncap;

	if (res->ndlv >= ALIAS_EXPAND_MAX) {
		ev->overflow = 1;
		return NULL;
	}
	if (res->ndlv == ev->cap) {
		ncap = ev->cap ? ev->cap * 2 : 4;
		if ((d = reallocarray(res->dlv, ncap, sizeof(*d))) == NULL) {
			ev->oom = 1;
			return NULL;
		}
		res->dlv = d;
		ev->cap = ncap;
	}
	d = &res->dlv[res->ndlv];
	memset(d, 0, sizeof(*d));
	return d;
}

/*
 * Adds a delivery to the local user `name` unless already there.  direct:
 * the recipient as the client gave it, when no alias led here (NULL when
 * one did: the final address is then name@hostname).  0 if there is no
 * such user.
 */
static int
deliver_user(struct eval *ev, const struct action *a, const char *name,
    const char *direct)
{
	const struct local_user	*u;
	struct rcpt_result	*res = ev->res;
	struct dlv		*d;
	size_t			 i;
	int			 n;

	if ((u = users_lookup(name)) == NULL)
		return 0;
	for (i = 0; i < res->ndlv; i++)
		if (strcmp(res->dlv[i].user, u->name) == 0)
			return 1;
	if ((d = dlv_append(ev)) == NULL)
		return 1;
	d->kind = a->type == ACTION_MAILDIR ? DLV_MAILDIR : DLV_MBOX;
	(void)strlcpy(d->action, a->name, sizeof(d->action));
	(void)strlcpy(d->user, u->name, sizeof(d->user));
	if (action_dest(a, u->name, u->home, d->dest, sizeof(d->dest)) == -1) {
		ev_warn(ev, "action \"%s\": no mailbox path for user %s (home "
		    "\"%s\"): skipped", a->name, u->name, u->home);
		return 1;
	}
	if (direct != NULL) {
		if (lower_copy(direct, strlen(direct), d->rcpt,
		    sizeof(d->rcpt)) == -1)
			return 1;
	} else {
		n = snprintf(d->rcpt, sizeof(d->rcpt), "%s@%s", u->name,
		    ev->conf->hostname);
		if (n < 0 || (size_t)n >= sizeof(d->rcpt))
			return 1;
	}
	(void)strlcpy(d->orig, ev->rcpt, sizeof(d->orig));
	res->ndlv++;
	return 1;
}

/*
 * A relay action: one delivery to the address itself, no aliases and no
 * local user check (the remote server decides).  The local part keeps its
 * case (RFC 5321 2.4), the domain is lowercased.  0 if it cannot be relayed.
 */
static int
deliver_relay(struct eval *ev, const struct action *a, const char *addr,
    size_t llen)
{
	struct rcpt_result	*res = ev->res;
	struct dlv		*d;
	char			 rcpt[ADDR_MAX];
	size_t			 i;

	if (strlcpy(rcpt, addr, sizeof(rcpt)) >= sizeof(rcpt))
		return 0;
	str_lower(rcpt + llen);
	for (i = 0; i < res->ndlv; i++)
		if (res->dlv[i].kind == DLV_RELAY &&
		    strcmp(res->dlv[i].action, a->name) == 0 &&
		    strcmp(res->dlv[i].rcpt, rcpt) == 0)
			return 1;
	if ((d = dlv_append(ev)) == NULL)
		return 1;
	d->kind = DLV_RELAY;
	(void)strlcpy(d->action, a->name, sizeof(d->action));
	(void)strlcpy(d->dest, a->relay.host[0] != '\0' ? a->relay.host :
	    rcpt + llen + 1, sizeof(d->dest));
	(void)strlcpy(d->rcpt, rcpt, sizeof(d->rcpt));
	(void)strlcpy(d->orig, ev->rcpt, sizeof(d->orig));
	res->ndlv++;
	return 1;
}

/*
 * A mailbox of the store: the whole address, lowercased (mailboxes are
 * keys of the store, and one mailbox must not become two by case).
 */
static int
deliver_mongo(struct eval *ev, const struct action *a, const char *addr)
{
	struct rcpt_result	*res = ev->res;
	struct dlv		*d;
	size_t			 i;

	for (i = 0; i < res->ndlv; i++)
		if (res->dlv[i].kind == DLV_MONGO &&
		    strcmp(res->dlv[i].action, a->name) == 0 &&
		    strcmp(res->dlv[i].rcpt, addr) == 0)
			return 1;
	if ((d = dlv_append(ev)) == NULL)
		return 1;
	d->kind = DLV_MONGO;
	(void)strlcpy(d->action, a->name, sizeof(d->action));
	(void)snprintf(d->dest, sizeof(d->dest), "mongo:%s", a->name);
	(void)strlcpy(d->rcpt, addr, sizeof(d->rcpt));
	(void)strlcpy(d->orig, ev->rcpt, sizeof(d->orig));
	res->ndlv++;
	return 1;
}

/*
 * A recipient under a mongo action: aliases are whole addresses in the
 * action's alias table (each item an address, evaluated again as from
 * local, or a bare name meaning that name at the same domain); what is no
 * alias must be in the users table, when the action has one.  Nothing
 * added means 550 5.1.1.
 */
static void
resolve_mongo(struct eval *ev, const struct action *a, const char *addr,
    size_t llen, int depth)
{
	const struct table_entry *e;
	char			  key[ADDR_MAX], item[ADDR_MAX], full[ADDR_MAX];
	const char		 *s;
	int			  toolong;

	if (lower_copy(addr, strlen(addr), key, sizeof(key)) == -1)
		return;
	if (a->alias != NULL && !in_chain(ev, key) &&
	    (e = table_lookup(a->alias, key)) != NULL && e->value != NULL) {
		char	value[TABLE_VALUE_MAX];

		if (depth >= ALIAS_DEPTH_MAX || ev->nchain >= ALIAS_DEPTH_MAX) {
			ev_warn(ev, "alias %s: nested more than %d deep, not "
			    "expanded", key, ALIAS_DEPTH_MAX);
			return;
		}
		/* A remote table's entry lives until its next lookup. */
		(void)strlcpy(value, e->value, sizeof(value));
		ev->chain[ev->nchain++] = key;
		for (s = value; (s = next_item(s, item, sizeof(item),
		    &toolong)) != NULL;) {
			if (++ev->steps > ALIAS_EXPAND_MAX) {
				ev->overflow = 1;
				break;
			}
			if (toolong || item[0] == '\0')
				continue;
			if (strchr(item, '@') == NULL) {
				(void)snprintf(full, sizeof(full), "%s%s", item,
				    addr + llen);
				(void)eval_addr(ev, full, 1, "local", depth + 1);
			} else
				(void)eval_addr(ev, item, 1, "local", depth + 1);
			if (ev->oom || ev->overflow)
				break;
		}
		ev->nchain--;
		return;
	}
	if (a->users != NULL && !table_contains(a->users, key))
		return;
	(void)deliver_mongo(ev, a, key);
}

/*
 * The next comma-separated item of an alias value, trimmed; a fully
 * double-quoted item is unquoted (so it may hold commas).  NULL at the end.
 * *toolong is set when the item did not fit and was cut.
 */
static const char *
next_item(const char *s, char *out, size_t outsz, int *toolong)
{
	const char	*start, *end;
	size_t		 n = 0;
	int		 inq = 0;

	*toolong = 0;
	while (*s == ' ' || *s == '\t' || *s == ',')
		s++;
	if (*s == '\0')
		return NULL;
	start = s;
	for (; *s != '\0' && (inq || *s != ','); s++) {
		if (*s == '\\' && inq && s[1] != '\0')
			s++;
		else if (*s == '"')
			inq = !inq;
	}
	end = s;
	while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	if (end - start >= 2 && *start == '"' && end[-1] == '"' &&
	    (end - start == 2 || end[-2] != '\\')) {
		for (start++, end--; start < end; start++) {
			if (*start == '\\' && start + 1 < end)
				start++;
			if (n + 1 >= outsz) {
				*toolong = 1;
				break;
			}
			out[n++] = *start;
		}
	} else {
		n = (size_t)(end - start);
		if (n >= outsz) {
			*toolong = 1;
			n = outsz - 1;
		}
		memcpy(out, start, n);
	}
	out[n] = '\0';
	return s;
}

static void
alias_item(struct eval *ev, const struct action *a, const char *alias,
    char *item, int depth)
{
	char		 name[ADDR_MAX];
	enum outcome	 out;

	if (item[0] == '|') {
		ev_warn(ev, "alias %s: delivery to a command (%s) is not "
		    "supported, skipped", alias, item);
		return;
	}
	if (strncasecmp(item, ":include:", 9) == 0) {
		ev_warn(ev, "alias %s: %s is not supported, skipped", alias,
		    item);
		return;
	}
	if (item[0] == '/') {
		ev_warn(ev, "alias %s: delivery to a file (%s) is not "
		    "supported, skipped", alias, item);
		return;
	}
	if (item[0] == '\\') {
		/* \user: that account itself, no further aliasing. */
		if (lower_copy(item + 1, strlen(item + 1), name,
		    sizeof(name)) == -1 || !deliver_user(ev, a, name, NULL))
			ev_warn(ev, "alias %s: no local user \"%s\", skipped",
			    alias, item + 1);
		return;
	}
	if (strchr(item, '@') != NULL) {
		out = eval_addr(ev, item, 1, "local", depth + 1);
		if (out == OUT_NOMATCH)
			ev_warn(ev, "alias %s: %s: relaying denied, skipped",
			    alias, item);
		else if (out == OUT_REJECT)
			ev_warn(ev, "alias %s: %s: rejected by policy, skipped",
			    alias, item);
		else if (out == OUT_BADADDR)
			ev_warn(ev, "alias %s: %s: bad address, skipped", alias,
			    item);
		return;
	}
	if (lower_copy(item, strlen(item), name, sizeof(name)) == -1 ||
	    !resolve_local(ev, a, name, depth + 1, NULL))
		ev_warn(ev, "alias %s: \"%s\" is no local user or alias, "
		    "skipped", alias, item);
}

/*
 * Expands `name` if the action's alias table has it: 1 then (even when
 * nothing deliverable came out of it), 0 if it is not an alias.
 */
static int
alias_expand(struct eval *ev, const struct action *a, const char *name,
    int depth)
{
	const struct table_entry *e;
	const char		 *s;
	char			  item[ADDR_MAX];
	int			  toolong;

	if (a->alias == NULL ||
	    (e = table_lookup(a->alias, name)) == NULL || e->value == NULL)
		return 0;
	if (depth >= ALIAS_DEPTH_MAX || ev->nchain >= ALIAS_DEPTH_MAX) {
		ev_warn(ev, "alias %s: nested more than %d deep, not expanded",
		    name, ALIAS_DEPTH_MAX);
		return 1;
	}
	ev->chain[ev->nchain++] = name;
	for (s = e->value; (s = next_item(s, item, sizeof(item), &toolong)) !=
	    NULL;) {
		if (++ev->steps > ALIAS_EXPAND_MAX) {
			ev->overflow = 1;
			break;
		}
		if (toolong) {
			ev_warn(ev, "alias %s: item too long, skipped", name);
			continue;
		}
		if (item[0] == '\0')
			continue;
		alias_item(ev, a, name, item, depth);
		if (ev->oom || ev->overflow)
			break;
	}
	ev->nchain--;
	return 1;
}

/*
 * A lowercased local part under a local action.  direct: see deliver_user.
 * 0 if it is neither an alias nor a local user.
 */
static int
resolve_local(struct eval *ev, const struct action *a, const char *name,
    int depth, const char *direct)
{
	char		 base[ADDR_MAX];
	const char	*plus;

	/* A name met again in its own expansion is the account itself. */
	if (in_chain(ev, name)) {
		if (!deliver_user(ev, a, name, direct))
			ev_warn(ev, "alias loop through \"%s\", which is no "
			    "local user: cut", name);
		return 1;
	}
	if (alias_expand(ev, a, name, depth) ||
	    deliver_user(ev, a, name, direct))
		return 1;
	if ((plus = strchr(name, '+')) == NULL || plus == name)
		return 0;
	(void)lower_copy(name, (size_t)(plus - name), base, sizeof(base));
	if (in_chain(ev, base))
		return deliver_user(ev, a, base, direct);
	return alias_expand(ev, a, base, depth) ||
	    deliver_user(ev, a, base, direct);
}

static enum outcome
eval_addr(struct eval *ev, const char *addr, int from_local,
    const char *client, int depth)
{
	const struct match	*m;
	const char		*at, *domain;
	char			 local[ADDR_MAX];
	size_t			 llen;

	if (addr == NULL || *addr == '\0')
		return OUT_BADADDR;
	if ((at = strrchr(addr, '@')) == NULL) {
		/* The SMTP layer lets only a bare postmaster through. */
		if (strcasecmp(addr, "postmaster") != 0)
			return OUT_BADADDR;
		llen = strlen(addr);
		domain = "";
	} else {
		llen = (size_t)(at - addr);
		domain = at + 1;
		if (llen == 0 || *domain == '\0')
			return OUT_BADADDR;
	}
	if (lower_copy(addr, llen, local, sizeof(local)) == -1)
		return OUT_BADADDR;

	if ((m = rule_find(ev->conf, from_local, client,
	    ev->q->auth_user != NULL ? ev->q->auth_user : "", addr, domain)) ==
	    NULL)
		return OUT_NOMATCH;
	if (m->reject || m->action == NULL)
		return OUT_REJECT;
	if (m->action->type == ACTION_MONGO) {
		if (*domain == '\0')
			return OUT_BADADDR;
		resolve_mongo(ev, m->action, addr, llen, depth);
		return OUT_LOCAL;
	}
	if (m->action->type == ACTION_RELAY) {
		/* A bare <postmaster> has no domain to relay to. */
		if (*domain == '\0' || !deliver_relay(ev, m->action, addr, llen))
			return OUT_BADADDR;
		return OUT_LOCAL;
	}
	(void)resolve_local(ev, m->action, local, depth,
	    depth == 0 ? addr : NULL);
	return OUT_LOCAL;
}

/* "5.7.1 <rcpt>: Relay access denied" */
static void
reply(struct rcpt_result *res, int code, const char *status, const char *rcpt,
    const char *what)
{
	res->code = code;
	(void)snprintf(res->text, sizeof(res->text), "%s <%s>: %s", status,
	    rcpt, what);
}

int
ruleset_eval(struct config *conf, const struct rcpt_query *q,
    struct rcpt_result *res)
{
	struct eval	ev;
	enum outcome	out;
	const char	*rcpt = q->rcpt != NULL ? q->rcpt : "";

	unsigned long	lookup_errors = table_errors;

	memset(res, 0, sizeof(*res));
	memset(&ev, 0, sizeof(ev));
	ev.conf = conf;
	ev.q = q;
	ev.rcpt = rcpt;
	ev.res = res;
	out = eval_addr(&ev, q->rcpt, q->client_local,
	    q->client_addr != NULL ? q->client_addr : "", 0);

	if (table_errors != lookup_errors && !ev.oom) {
		/* A remote table could not answer: "no" would be a lie. */
		free(res->dlv);
		res->dlv = NULL;
		res->ndlv = 0;
		reply(res, 451, "4.3.0", rcpt, "Temporary lookup failure, try "
		    "again later");
		log_warnx("rcpt <%s>: a table lookup failed", rcpt);
		return 0;
	}
	if (ev.oom || ev.overflow) {
		free(res->dlv);
		res->dlv = NULL;
		res->ndlv = 0;
	}
	if (ev.oom) {
		reply(res, 451, "4.3.0", rcpt, "Temporary failure, try again "
		    "later");
		log_warnx("rcpt <%s>: out of memory", rcpt);
		return -1;
	}
	if (ev.overflow) {
		/* A local configuration problem: let the sender retry. */
		reply(res, 451, "4.3.0", rcpt, "Alias expansion limit "
		    "exceeded, try again later");
		log_warnx("rcpt <%s>: more than %d alias items or deliveries",
		    rcpt, ALIAS_EXPAND_MAX);
		return 0;
	}
	switch (out) {
	case OUT_BADADDR:
		reply(res, 550, "5.1.3", rcpt, "Recipient address rejected: "
		    "Bad recipient address syntax");
		break;
	case OUT_NOMATCH:
		reply(res, 550, "5.7.1", rcpt, "Relay access denied");
		break;
	case OUT_REJECT:
		reply(res, 550, "5.7.1", rcpt, "Recipient address rejected by "
		    "policy");
		break;
	case OUT_LOCAL:
		if (res->ndlv > 0) {
			res->code = 250;
			(void)strlcpy(res->text, "2.1.5 Ok", sizeof(res->text));
		} else
			reply(res, 550, "5.1.1", rcpt, "Recipient address "
			    "rejected: User unknown in local recipient table");
		break;
	}
	if (ev.nwarn > WARN_MAX)
		log_warnx("rcpt <%s>: %d more alias problems not shown", rcpt,
		    ev.nwarn - WARN_MAX);
	log_trace(TRACE_POLICY, "rcpt <%s>: %d %s, %zu deliveries", rcpt,
	    res->code, res->text, res->ndlv);
	return 0;
}

void
rcpt_result_clear(struct rcpt_result *res)
{
	free(res->dlv);
	memset(res, 0, sizeof(*res));
}
