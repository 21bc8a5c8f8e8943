#include "autoconf.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "table.h"

#define EMBEDDED_ALIASES	"/etc/aliases"

static int	 dest_append(char *, size_t, size_t *, const char *, size_t);

void
config_defaults(struct config *conf)
{
	memset(conf, 0, sizeof(*conf));
	if (gethostname(conf->hostname, sizeof(conf->hostname)) == -1 ||
	    conf->hostname[0] == '\0')
		(void)strlcpy(conf->hostname, "localhost",
		    sizeof(conf->hostname));
	conf->hostname[sizeof(conf->hostname) - 1] = '\0';
	(void)strlcpy(conf->queue_path, MTAD_SPOOLDIR, sizeof(conf->queue_path));
	(void)strlcpy(conf->chroot_path, MTAD_EMPTYDIR,
	    sizeof(conf->chroot_path));
	(void)strlcpy(conf->control_path, MTAD_RUNDIR "/control.sock",
	    sizeof(conf->control_path));
	(void)strlcpy(conf->submit_path, MTAD_RUNDIR "/submit.sock",
	    sizeof(conf->submit_path));
	(void)strlcpy(conf->pidfile, MTAD_RUNDIR "/mtad.pid",
	    sizeof(conf->pidfile));
	(void)strlcpy(conf->user[PROC_MASTER], "root", USER_MAX);
	(void)strlcpy(conf->user[PROC_SMTP], "mtad-smtp", USER_MAX);
	(void)strlcpy(conf->user[PROC_QUEUE], "mtad-queue", USER_MAX);
	(void)strlcpy(conf->user[PROC_DELIVER], "mtad-deliver", USER_MAX);
	(void)strlcpy(conf->user[PROC_POLICY], "mtad-policy", USER_MAX);
	(void)strlcpy(conf->control_group, "mtactl",
	    sizeof(conf->control_group));
	conf->workers_smtp = 2;
	conf->workers_deliver = 2;
	conf->retry_min = 5 * 60;
	conf->retry_max = 60 * 60;
	conf->max_message_size = 35 * 1024 * 1024;
	conf->max_rcpt = 1000;
	conf->queue_lifetime = 4 * 86400;
	conf->delay_warning = 0;
	conf->queue_min_free = 64ULL * 1024 * 1024;
	conf->queue_concurrency = 100;
	conf->dest_concurrency = 20;
	conf->smtp_timeout = 300;	/* RFC 5321 4.5.3.2 */
	conf->data_timeout = 0;	/* as smtp_timeout */
	conf->max_errors = 10;
	conf->max_line = 4096;	/* RFC 5321 says 512; ESMTP params need more */
	conf->sessions_per_worker = 16384;
	conf->max_conn = 20000;
	conf->max_conn_per_ip = 100;
	conf->conn_rate = 0;
	conf->auth_failures = 5;
	conf->greeting_delay = 0;
	conf->store_inline_max = 256 * 1024;
	conf->store_quota = 0;
	conf->sandbox = 1;
	/* RFC 5321 4.5.3.2; the connect timeout is Postfix's. */
	conf->relay_timeout[RELAY_TO_CONNECT] = 30;
	conf->relay_timeout[RELAY_TO_GREETING] = 300;
	conf->relay_timeout[RELAY_TO_COMMAND] = 300;
	conf->relay_timeout[RELAY_TO_DATA_INIT] = 120;
	conf->relay_timeout[RELAY_TO_DATA_BLOCK] = 180;
	conf->relay_timeout[RELAY_TO_DATA_END] = 600;
	conf->relay_port = 25;
	conf->relay_connections = 10;
	TAILQ_INIT(&conf->pkis);
	TAILQ_INIT(&conf->listeners);
	TAILQ_INIT(&conf->tables);
	TAILQ_INIT(&conf->actions);
	TAILQ_INIT(&conf->matches);
}

/*
 * Listener sockets belong to the master, which may hand them over to the
 * next configuration on reload: freeing a config never closes them.
 */
void
config_free(struct config *conf)
{
	struct listener	*l;
	struct table	*t;
	struct action	*a;
	struct match	*m;
	struct pki	*k;

	if (conf == NULL)
		return;
	while ((k = TAILQ_FIRST(&conf->pkis)) != NULL) {
		TAILQ_REMOVE(&conf->pkis, k, entry);
		free(k);
	}
	while ((l = TAILQ_FIRST(&conf->listeners)) != NULL) {
		TAILQ_REMOVE(&conf->listeners, l, entry);
		free(l);
	}
	while ((m = TAILQ_FIRST(&conf->matches)) != NULL) {
		TAILQ_REMOVE(&conf->matches, m, entry);
		free(m);
	}
	while ((a = TAILQ_FIRST(&conf->actions)) != NULL) {
		TAILQ_REMOVE(&conf->actions, a, entry);
		free(a);
	}
	while ((t = TAILQ_FIRST(&conf->tables)) != NULL) {
		TAILQ_REMOVE(&conf->tables, t, entry);
		table_free(t);
	}
	free(conf);
}

void
config_errors_clear(struct config_errors *errs)
{
	size_t	i;

	if (errs == NULL)
		return;
	for (i = 0; i < errs->n; i++)
		free(errs->lines[i]);
	free(errs->lines);
	errs->lines = NULL;
	errs->n = 0;
}

/*
 * Decided at each call, not once: /etc/aliases may appear between a start
 * and a reload.
 */
const char *
config_embedded_text(void)
{
	static const char with_aliases[] =
	    "listen on 127.0.0.1 port 2525\n"
	    "table aliases file:" EMBEDDED_ALIASES "\n"
	    "action \"local\" mbox alias <aliases>\n"
	    "match from local for local action \"local\"\n";
	static const char without_aliases[] =
	    "listen on 127.0.0.1 port 2525\n"
	    "action \"local\" mbox\n"
	    "match from local for local action \"local\"\n";

	if (access(EMBEDDED_ALIASES, F_OK) == 0)
		return with_aliases;
	return without_aliases;
}

struct table *
config_table(struct config *conf, const char *name)
{
	struct table	*t;

	TAILQ_FOREACH(t, &conf->tables, entry)
		if (strcmp(t->name, name) == 0)
			return t;
	return NULL;
}

struct action *
config_action(struct config *conf, const char *name)
{
	struct action	*a;

	TAILQ_FOREACH(a, &conf->actions, entry)
		if (strcmp(a->name, name) == 0)
			return a;
	return NULL;
}

int
config_domain_is_local(const struct config *conf, const char *domain)
{
	if (domain == NULL)
		return 0;
	return strcasecmp(domain, conf->hostname) == 0 ||
	    strcasecmp(domain, "localhost") == 0 ||
	    strcasecmp(domain, "localhost.localdomain") == 0;
}

static int
dest_append(char *out, size_t outsz, size_t *len, const char *s, size_t n)
{
	if (*len + n + 1 > outsz)
		return -1;
	memcpy(out + *len, s, n);
	*len += n;
	out[*len] = '\0';
	return 0;
}

int
action_dest(const struct action *a, const char *user, const char *home,
    char *out, size_t outsz)
{
	const char	*p = a->path;
	size_t		 len = 0;
	int		 r = 0;

	if (outsz == 0)
		return -1;
	out[0] = '\0';
	/* A user name never holds a slash; refuse one that would escape. */
	if (user == NULL || *user == '\0' || strchr(user, '/') != NULL ||
	    strcmp(user, ".") == 0 || strcmp(user, "..") == 0)
		return -1;
	if (*p == '~' && (p[1] == '/' || p[1] == '\0')) {
		if (home == NULL || *home == '\0')
			return -1;
		r = dest_append(out, outsz, &len, home, strlen(home));
		p++;
	}
	for (; r == 0 && *p != '\0'; p++) {
		if (*p != '%') {
			r = dest_append(out, outsz, &len, p, 1);
			continue;
		}
		switch (*++p) {
		case 'u':
			r = dest_append(out, outsz, &len, user, strlen(user));
			break;
		case 'h':
			if (home == NULL || *home == '\0')
				return -1;
			r = dest_append(out, outsz, &len, home, strlen(home));
			break;
		case '%':
			r = dest_append(out, outsz, &len, "%", 1);
			break;
		default:	/* unknown escape, or a lone % at the end */
			r = -1;
			break;
		}
	}
	if (r == -1) {
		out[0] = '\0';
		return -1;
	}
	return 0;
}
