#include "autoconf.h"

#include <sys/stat.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "proto.h"
#include "table.h"

static char	tmpdir[PATH_MAX];

/* ---- helpers ---------------------------------------------------------- */

static void	xfmt(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* snprintf that insists the result fits. */
static void
xfmt(char *buf, size_t bufsz, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, bufsz, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	ck_assert_int_lt(n, (int)bufsz);
}

static void
tmp_path(const char *name, char *out, size_t outsz)
{
	ck_assert_int_lt(snprintf(out, outsz, "%s/%s", tmpdir, name),
	    (int)outsz);
}

static void
write_file(const char *name, const char *content, char *path, size_t pathsz)
{
	FILE	*fp;

	tmp_path(name, path, pathsz);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	ck_assert_int_eq(fputs(content, fp) >= 0, 1);
	ck_assert_int_eq(fclose(fp), 0);
}

static int
has_line(const struct config_errors *e, const char *line)
{
	size_t	i;

	for (i = 0; i < e->n; i++)
		if (strcmp(e->lines[i], line) == 0)
			return 1;
	return 0;
}

static int
has_prefix(const struct config_errors *e, const char *prefix)
{
	size_t	i;

	for (i = 0; i < e->n; i++)
		if (strncmp(e->lines[i], prefix, strlen(prefix)) == 0)
			return 1;
	return 0;
}

static void
dump(const struct config_errors *e)
{
	size_t	i;

	for (i = 0; i < e->n; i++)
		fprintf(stderr, "  error: %s\n", e->lines[i]);
}

/*
 * Writes `content` as a config file, parses it and insists on failure with
 * the exact error line "PATH:LINE: msg" (msg NULL: any message on that line;
 * msg ending in '*': that prefix).
 */
static void
expect_error(const char *content, int line, const char *msg)
{
	struct config_errors	 e = { NULL, 0 };
	struct config		*conf;
	char			 path[PATH_MAX], want[PATH_MAX + 512];
	size_t			 n;

	write_file("err.conf", content, path, sizeof(path));
	conf = config_parse(path, NULL, &e);
	ck_assert_ptr_null(conf);
	ck_assert_uint_ge(e.n, 1);
	if (msg == NULL) {
		xfmt(want, sizeof(want), "%s:%d: ", path, line);
		if (!has_prefix(&e, want))
			dump(&e);
		ck_assert_msg(has_prefix(&e, want), "no error at line %d",
		    line);
	} else if ((n = strlen(msg)) > 0 && msg[n - 1] == '*') {
		xfmt(want, sizeof(want), "%s:%d: %.*s", path, line,
		    (int)(n - 1), msg);
		if (!has_prefix(&e, want))
			dump(&e);
		ck_assert_msg(has_prefix(&e, want), "missing: %s", want);
	} else {
		xfmt(want, sizeof(want), "%s:%d: %s", path, line,
		    msg);
		if (!has_line(&e, want))
			dump(&e);
		ck_assert_msg(has_line(&e, want), "missing: %s", want);
	}
	config_errors_clear(&e);
}

static struct config *
parse_ok(const char *name, const char *text)
{
	struct config_errors	 e = { NULL, 0 };
	struct config		*conf;

	conf = config_parse(name, text, &e);
	if (conf == NULL)
		dump(&e);
	ck_assert_ptr_nonnull(conf);
	ck_assert_uint_eq(e.n, 0);
	config_errors_clear(&e);
	return conf;
}

static size_t
count_listeners(struct config *conf)
{
	struct listener	*l;
	size_t		 n = 0;

	TAILQ_FOREACH(l, &conf->listeners, entry)
		n++;
	return n;
}

static struct match *
nth_match(struct config *conf, int n)
{
	struct match	*m;

	TAILQ_FOREACH(m, &conf->matches, entry)
		if (n-- == 0)
			return m;
	return NULL;
}

/* ---- #3 and #6 statements: pki, listener options, limits, store -------- */

/* A self-signed certificate and its key in the temp dir; `other` gets a
 * second key that matches nothing. */
static void
make_pki(char *cert, char *key, char *other, size_t sz)
{
	EVP_PKEY	*pk, *pk2;
	X509		*x;
	FILE		*fp;

	tmp_path("cert.pem", cert, sz);
	tmp_path("key.pem", key, sz);
	tmp_path("other.pem", other, sz);
	pk = EVP_EC_gen("P-256");
	pk2 = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(pk);
	ck_assert_ptr_nonnull(pk2);
	ck_assert_ptr_nonnull(x = X509_new());
	ck_assert_int_eq(X509_set_version(x, 2), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
	ck_assert_int_eq(X509_set_pubkey(x, pk), 1);
	ck_assert_int_eq(X509_NAME_add_entry_by_txt(X509_get_subject_name(x),
	    "CN", MBSTRING_ASC, (const unsigned char *)"mx.test", -1, -1, 0),
	    1);
	ck_assert_int_eq(X509_set_issuer_name(x, X509_get_subject_name(x)), 1);
	ck_assert_int_gt(X509_sign(x, pk, EVP_sha256()), 0);
	ck_assert_ptr_nonnull(fp = fopen(cert, "w"));
	ck_assert_int_eq(PEM_write_X509(fp, x), 1);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_ptr_nonnull(fp = fopen(key, "w"));
	ck_assert_int_eq(PEM_write_PrivateKey(fp, pk, NULL, NULL, 0, NULL,
	    NULL), 1);
	ck_assert_int_eq(fclose(fp), 0);
	ck_assert_ptr_nonnull(fp = fopen(other, "w"));
	ck_assert_int_eq(PEM_write_PrivateKey(fp, pk2, NULL, NULL, 0, NULL,
	    NULL), 1);
	ck_assert_int_eq(fclose(fp), 0);
	X509_free(x);
	EVP_PKEY_free(pk);
	EVP_PKEY_free(pk2);
}

static struct listener *
listener_on_port(struct config *conf, int port)
{
	struct listener	*l;

	TAILQ_FOREACH(l, &conf->listeners, entry)
		if (l->port == port)
			return l;
	return NULL;
}

START_TEST(test_listener_options)
{
	char		 cert[PATH_MAX], key[PATH_MAX], other[PATH_MAX];
	char		 text[8192];
	struct config	*conf;
	struct listener	*l;

	make_pki(cert, key, other, sizeof(cert));
	xfmt(text, sizeof(text),
	    "hostname mx.test\n"
	    "pki other cert \"%s\"\npki other key \"%s\"\n"
	    "pki mx.test cert \"%s\"\npki mx.test key \"%s\"\n"
	    "table creds { alice = \"$6$x$y\" }\n"
	    "table proxies { 10.0.0.0/8 }\n"
	    "listen on 127.0.0.1 tls\n"
	    "listen on 127.0.0.1 smtps auth <creds> pki other\n"
	    "listen on 127.0.0.1 submission auth <creds>\n"
	    "listen on 127.0.0.1 port 2525 auth-optional <creds> "
	    "auth-plaintext proxy-protocol xclient <proxies> normalize\n",
	    cert, key, cert, key);
	conf = parse_ok("opts.conf", text);
	ck_assert_ptr_nonnull(l = listener_on_port(conf, 25));
	ck_assert_int_eq(l->flags, LISTEN_TLS);
	ck_assert_str_eq(l->pki->name, "mx.test");	/* named as the host */
	ck_assert_ptr_nonnull(l = listener_on_port(conf, 465));
	ck_assert_int_eq(l->flags, LISTEN_SMTPS | LISTEN_AUTH);
	ck_assert_str_eq(l->pki->name, "other");
	ck_assert_str_eq(l->auth->name, "creds");
	ck_assert_ptr_nonnull(l = listener_on_port(conf, 587));
	ck_assert_int_eq(l->flags, LISTEN_SUBMISSION | LISTEN_AUTH |
	    LISTEN_TLS | LISTEN_TLS_REQUIRE);
	ck_assert_ptr_nonnull(l = listener_on_port(conf, 2525));
	ck_assert_int_eq(l->flags, LISTEN_AUTH_OPTIONAL | LISTEN_AUTH_PLAINTEXT |
	    LISTEN_PROXY | LISTEN_NORMALIZE);
	ck_assert_ptr_null(l->pki);
	ck_assert_str_eq(l->xclient->name, "proxies");
	config_free(conf);
}
END_TEST

START_TEST(test_limits_and_store)
{
	struct config	*conf;
	struct action	*a;
	struct table	*t;

	conf = parse_ok("limits.conf",
	    "limit errors 3\nlimit line-length 1000\nlimit timeout 1m\n"
	    "limit data-timeout 2m\nlimit sessions 50\nlimit connections 7\n"
	    "limit connections-per-ip 0\nlimit connection-rate 30\n"
	    "limit auth-failures 4\nlimit greeting-delay 2s\n"
	    "store mongo \"mongodb://127.0.0.1:27017/mail\"\n"
	    "store inline-max 64K\nstore quota 1G\n"
	    "table users mongo:accounts\n"
	    "table al { a@x.test = b@x.test }\n"
	    "action \"st\" mongo alias <al> users <users>\n"
	    "match from auth <users> for any action \"st\"\n");
	ck_assert_int_eq(conf->max_errors, 3);
	ck_assert_uint_eq(conf->max_line, 1000);
	ck_assert_int_eq(conf->smtp_timeout, 60);
	ck_assert_int_eq(conf->data_timeout, 120);
	ck_assert_int_eq(conf->sessions_per_worker, 50);
	ck_assert_int_eq(conf->max_conn, 7);
	ck_assert_int_eq(conf->max_conn_per_ip, 0);
	ck_assert_int_eq(conf->conn_rate, 30);
	ck_assert_int_eq(conf->auth_failures, 4);
	ck_assert_int_eq(conf->greeting_delay, 2);
	ck_assert_str_eq(conf->store_uri, "mongodb://127.0.0.1:27017/mail");
	ck_assert_uint_eq(conf->store_inline_max, 64 * 1024);
	ck_assert_uint_eq(conf->store_quota, 1024ULL * 1024 * 1024);
	ck_assert_ptr_nonnull(t = config_table(conf, "users"));
	ck_assert_str_eq(t->remote, "accounts");
	ck_assert_ptr_nonnull(a = config_action(conf, "st"));
	ck_assert_int_eq(a->type, ACTION_MONGO);
	ck_assert_ptr_eq(a->users, t);
	ck_assert_str_eq(a->alias->name, "al");
	ck_assert_int_eq(nth_match(conf, 0)->from, FROM_AUTH);
	ck_assert_ptr_eq(nth_match(conf, 0)->from_table, t);
	config_free(conf);
	/* Defaults: data-timeout follows timeout (0). */
	conf = parse_ok("d.conf", "");
	ck_assert_int_eq(conf->data_timeout, 0);
	ck_assert_int_eq(conf->max_conn_per_ip, 100);
	ck_assert_uint_eq(conf->store_inline_max, 256 * 1024);
	config_free(conf);
}
END_TEST

START_TEST(test_error_new_statements)
{
	char	cert[PATH_MAX], key[PATH_MAX], other[PATH_MAX], text[8192];

	make_pki(cert, key, other, sizeof(cert));
	expect_error("table c { a = b }\nlisten on 127.0.0.1 auth <c>\n", 2,
	    "listen: AUTH is only offered under TLS: add tls, tls-require or "
	    "smtps (or auth-plaintext to offer it in the clear)");
	expect_error("listen on 127.0.0.1 tls\n", 1, "listen: tls, "
	    "tls-require and smtps need a certificate*");
	expect_error("listen on 127.0.0.1 smtps tls\n", 1, "listen: smtps is "
	    "TLS from the first byte*");
	expect_error("listen on 127.0.0.1 submission\n", 1, "listen: a "
	    "submission listener requires AUTH: add auth <table>");
	expect_error("listen on 127.0.0.1 auth-plaintext\n", 1, "listen: "
	    "auth-plaintext needs*");
	expect_error("limit frobs 3\n", 1, "unknown limit \"frobs\"*");
	expect_error("limit line-length 100\n", 1, "bad number \"100\"*");
	expect_error("store mongo \"http://x\"\n", 1, "store mongo: "
	    "\"http://x\" is not a mongodb:// URI");
	expect_error("store quota lots\n", 1, "bad size \"lots\" for store "
	    "quota*");
	expect_error("action s mongo\n", 1, "action \"s\": mongo needs*");
	expect_error("table t mongo:x\n", 1, "table t: mongo: tables need*");
	expect_error("store mongo \"mongodb://h/\"\naction s mongo usrs <t>\n",
	    2, "unknown mongo action option \"usrs\": alias or users");
	xfmt(text, sizeof(text), "pki p cert \"%s\"\n", cert);
	expect_error(text, 1, "pki p: needs both cert and key");
	xfmt(text, sizeof(text), "pki p cert \"%s\"\npki p key \"%s\"\n", cert,
	    other);
	{
		char	want[3 * PATH_MAX];

		xfmt(want, sizeof(want), "pki p: key %s does not match "
		    "certificate %s", other, cert);
		expect_error(text, 1, want);
	}
	xfmt(text, sizeof(text), "pki p cert \"%s.none\"\npki p key \"%s\"\n",
	    cert, key);
	expect_error(text, 1, "pki p: cannot load certificate*");
}
END_TEST

/* ---- defaults and good files ------------------------------------------ */

START_TEST(test_defaults)
{
	struct config	*conf;
	char		 host[256];

	ck_assert_ptr_nonnull(conf = malloc(sizeof(*conf)));
	config_defaults(conf);
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	host[sizeof(host) - 1] = '\0';
	ck_assert_str_eq(conf->hostname, host);
	ck_assert_str_eq(conf->queue_path, MTAD_SPOOLDIR);
	ck_assert_str_eq(conf->chroot_path, MTAD_EMPTYDIR);
	ck_assert_str_eq(conf->control_path, MTAD_RUNDIR "/control.sock");
	ck_assert_str_eq(conf->pidfile, MTAD_RUNDIR "/mtad.pid");
	ck_assert_str_eq(conf->control_group, "mtactl");
	ck_assert_str_eq(conf->user[PROC_SMTP], "mtad-smtp");
	ck_assert_str_eq(conf->user[PROC_QUEUE], "mtad-queue");
	ck_assert_str_eq(conf->user[PROC_DELIVER], "mtad-deliver");
	ck_assert_str_eq(conf->user[PROC_POLICY], "mtad-policy");
	ck_assert_int_eq(conf->workers_smtp, 2);
	ck_assert_int_eq(conf->workers_deliver, 2);
	ck_assert_int_eq(conf->retry_min, 300);
	ck_assert_int_eq(conf->retry_max, 3600);
	ck_assert_uint_eq(conf->max_message_size, 35 * 1024 * 1024);
	ck_assert_int_eq(conf->max_rcpt, 1000);
	ck_assert_int_eq((int)conf->smtp_timeout, 300);
	ck_assert_int_eq(conf->sandbox, 1);
	ck_assert(TAILQ_EMPTY(&conf->listeners));
	ck_assert(TAILQ_EMPTY(&conf->tables));
	ck_assert(TAILQ_EMPTY(&conf->actions));
	ck_assert(TAILQ_EMPTY(&conf->matches));
	config_free(conf);
}
END_TEST

START_TEST(test_empty_file_gives_defaults)
{
	struct config	*conf;

	conf = parse_ok("empty.conf", "# nothing but a comment\n\n   \n");
	ck_assert_str_eq(conf->file, "empty.conf");
	ck_assert_int_eq(conf->workers_smtp, 2);
	ck_assert_uint_eq(conf->max_message_size, 35 * 1024 * 1024);
	ck_assert(TAILQ_EMPTY(&conf->listeners));
	config_free(conf);
	conf = parse_ok("void.conf", "");
	config_free(conf);
}
END_TEST

START_TEST(test_every_directive)
{
	struct config		*conf;
	struct config_errors	 e = { NULL, 0 };
	struct listener		*l;
	struct table		*t;
	struct action		*a;
	struct match		*m;
	const struct table_entry *te;
	char			 aliases[PATH_MAX], cpath[PATH_MAX];
	char			 text[4096];

	write_file("every.aliases", "root: bob\n", aliases, sizeof(aliases));
	xfmt(text, sizeof(text),
	    "# every directive\n"
	    "hostname mx.example.org\n"
	    "listen on 127.0.0.1 port 2525\n"
	    "listen on ::1\n"
	    "listen on localhost port 2526\n"
	    "listen on any port 2527\n"
	    "queue path \"/var/tmp/q\"\n"
	    "queue retry min 30s max 2d\n"
	    "chroot \"/var/empty\"\n"
	    "control socket \"/run/x/ctl.sock\" group wheel\n"
	    "pidfile \"/run/x/pid\"\n"
	    "user smtp s1\n"
	    "user queue q1\n"
	    "user deliver d1\n"
	    "user policy p1\n"
	    "workers smtp 4\n"
	    "workers deliver 64\n"
	    "limit message-size 10M\n"
	    "limit recipients 50\n"
	    "sandbox off\n"
	    "table aliases file:%s\n"
	    "table doms { example.org, \"*.Example.NET\" }\n"
	    "table map { a = b, c = \"d, e\" }\n"
	    "table nets { 10.0.0.0/8, ::1 }\n"
	    "action \"local\" mbox alias <aliases>\n"
	    "action md maildir \"~/Mail/%%u\"\n"
	    "action mb2 mbox\n"
	    "match from any for domain <doms> action md\n"
	    "match !from src <nets> !for rcpt <map> reject\n"
	    "match for domain example.com from src 192.168.0.0/16 action mb2\n"
	    "match for any action \"local\"\n"
	    "match from local for local action \"local\"\n"
	    "match reject\n"
	    "limit timeout 2m\n", aliases);
	write_file("every.conf", text, cpath, sizeof(cpath));
	conf = config_parse(cpath, NULL, &e);
	if (conf == NULL)
		dump(&e);
	ck_assert_ptr_nonnull(conf);
	ck_assert_str_eq(conf->file, cpath);

	ck_assert_str_eq(conf->hostname, "mx.example.org");
	ck_assert_uint_eq(count_listeners(conf), 5);
	l = TAILQ_FIRST(&conf->listeners);
	ck_assert_str_eq(l->addr, "127.0.0.1");
	ck_assert_int_eq(l->port, 2525);
	ck_assert_int_eq(l->ss.ss_family, AF_INET);
	ck_assert_int_eq(ntohs(((struct sockaddr_in *)&l->ss)->sin_port), 2525);
	ck_assert_int_eq(l->sslen, sizeof(struct sockaddr_in));
	ck_assert_int_eq(l->fd, -1);
	ck_assert_int_eq(l->lineno, 3);
	l = TAILQ_NEXT(l, entry);
	ck_assert_str_eq(l->addr, "::1");
	ck_assert_int_eq(l->port, 25);
	ck_assert_int_eq(l->ss.ss_family, AF_INET6);
	ck_assert_int_eq(l->sslen, sizeof(struct sockaddr_in6));
	l = TAILQ_NEXT(l, entry);
	ck_assert_str_eq(l->addr, "127.0.0.1");
	ck_assert_int_eq(l->port, 2526);
	l = TAILQ_NEXT(l, entry);
	ck_assert_str_eq(l->addr, "0.0.0.0");
	ck_assert_int_eq(l->port, 2527);
	l = TAILQ_NEXT(l, entry);
	ck_assert_str_eq(l->addr, "::");
	ck_assert_int_eq(l->port, 2527);

	ck_assert_str_eq(conf->queue_path, "/var/tmp/q");
	ck_assert_int_eq(conf->retry_min, 30);
	ck_assert_int_eq(conf->retry_max, 2 * 86400);
	ck_assert_str_eq(conf->chroot_path, "/var/empty");
	ck_assert_str_eq(conf->control_path, "/run/x/ctl.sock");
	ck_assert_str_eq(conf->control_group, "wheel");
	ck_assert_str_eq(conf->pidfile, "/run/x/pid");
	ck_assert_str_eq(conf->user[PROC_SMTP], "s1");
	ck_assert_str_eq(conf->user[PROC_QUEUE], "q1");
	ck_assert_str_eq(conf->user[PROC_DELIVER], "d1");
	ck_assert_str_eq(conf->user[PROC_POLICY], "p1");
	ck_assert_int_eq(conf->workers_smtp, 4);
	ck_assert_int_eq(conf->workers_deliver, 64);
	ck_assert_uint_eq(conf->max_message_size, 10 * 1024 * 1024);
	ck_assert_int_eq(conf->max_rcpt, 50);
	ck_assert_int_eq((int)conf->smtp_timeout, 120);
	ck_assert_int_eq(conf->sandbox, 0);

	ck_assert_ptr_nonnull(t = config_table(conf, "aliases"));
	ck_assert_str_eq(t->path, aliases);
	ck_assert_ptr_nonnull(te = table_lookup(t, "root"));
	ck_assert_str_eq(te->value, "bob");
	ck_assert_ptr_nonnull(t = config_table(conf, "doms"));
	ck_assert_uint_eq(t->n, 2);
	ck_assert_str_eq(t->path, "");
	ck_assert(table_contains(t, "*.example.net"));
	ck_assert(table_match_domain(t, "a.EXAMPLE.net"));
	ck_assert_ptr_nonnull(t = config_table(conf, "map"));
	ck_assert_ptr_nonnull(te = table_lookup(t, "c"));
	ck_assert_str_eq(te->value, "d, e");
	ck_assert_ptr_null(config_table(conf, "nosuch"));

	ck_assert_ptr_nonnull(a = config_action(conf, "local"));
	ck_assert_int_eq(a->type, ACTION_MBOX);
	ck_assert_str_eq(a->path, "/var/mail/%u");
	ck_assert_ptr_eq(a->alias, config_table(conf, "aliases"));
	ck_assert_ptr_nonnull(a = config_action(conf, "md"));
	ck_assert_int_eq(a->type, ACTION_MAILDIR);
	ck_assert_str_eq(a->path, "~/Mail/%u");
	ck_assert_ptr_null(a->alias);
	ck_assert_ptr_nonnull(a = config_action(conf, "mb2"));
	ck_assert_str_eq(a->path, "/var/mail/%u");
	ck_assert_ptr_null(config_action(conf, "nosuch"));

	ck_assert_ptr_nonnull(m = nth_match(conf, 0));
	ck_assert_int_eq(m->from, FROM_ANY);
	ck_assert_int_eq(m->for_, FOR_DOMAIN);
	ck_assert_ptr_eq(m->for_table, config_table(conf, "doms"));
	ck_assert_ptr_eq(m->action, config_action(conf, "md"));
	ck_assert_int_eq(m->reject, 0);
	ck_assert_int_eq(m->lineno, 28);
	ck_assert_ptr_nonnull(m = nth_match(conf, 1));
	ck_assert_int_eq(m->from_neg, 1);
	ck_assert_int_eq(m->from, FROM_SRC);
	ck_assert_ptr_eq(m->from_table, config_table(conf, "nets"));
	ck_assert_int_eq(m->for_neg, 1);
	ck_assert_int_eq(m->for_, FOR_RCPT);
	ck_assert_int_eq(m->reject, 1);
	ck_assert_ptr_null(m->action);
	ck_assert_ptr_nonnull(m = nth_match(conf, 2));
	ck_assert_int_eq(m->from_neg, 0);
	ck_assert_int_eq(m->from, FROM_SRC);
	ck_assert(table_match_addr(m->from_table, "192.168.3.4"));
	ck_assert(!table_match_addr(m->from_table, "10.0.0.1"));
	ck_assert_int_eq(m->for_, FOR_DOMAIN);
	ck_assert(table_match_domain(m->for_table, "Example.COM"));
	ck_assert_ptr_eq(m->action, config_action(conf, "mb2"));
	ck_assert_ptr_nonnull(m = nth_match(conf, 3));
	ck_assert_int_eq(m->from, FROM_LOCAL);	/* the default */
	ck_assert_int_eq(m->for_, FOR_ANY);
	ck_assert_ptr_nonnull(m = nth_match(conf, 4));
	ck_assert_int_eq(m->from, FROM_LOCAL);
	ck_assert_int_eq(m->for_, FOR_LOCAL);
	ck_assert_ptr_nonnull(m = nth_match(conf, 5));
	ck_assert_int_eq(m->from, FROM_LOCAL);
	ck_assert_int_eq(m->for_, FOR_LOCAL);
	ck_assert_int_eq(m->reject, 1);
	ck_assert_ptr_null(nth_match(conf, 6));
	config_free(conf);
}
END_TEST

START_TEST(test_values)
{
	static const struct {
		const char	*text;
		size_t		 size;
		time_t		 min, max;
	} ok[] = {
		{ "limit message-size 100\nqueue retry min 30\n", 100, 30, 3600 },
		{ "limit message-size 512K\nqueue retry min 2m max 3m\n",
		    512 * 1024, 120, 180 },
		{ "limit message-size 512k\nqueue retry min 1h max 1h\n",
		    512 * 1024, 3600, 3600 },
		{ "limit message-size 1G\nqueue retry min 1d max 7d\n",
		    1024UL * 1024 * 1024, 86400, 7 * 86400 },
		{ "limit message-size 35M\nqueue retry min 5m\n",
		    35UL * 1024 * 1024, 300, 3600 },
	};
	struct config	*conf;
	size_t		 i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		conf = parse_ok("values.conf", ok[i].text);
		ck_assert_uint_eq(conf->max_message_size, ok[i].size);
		ck_assert_int_eq(conf->retry_min, ok[i].min);
		ck_assert_int_eq(conf->retry_max, ok[i].max);
		config_free(conf);
	}
}
END_TEST

START_TEST(test_lexer)
{
	struct config		*conf;
	const struct table_entry *te;
	struct table		*t;
	struct config_errors	 e = { NULL, 0 };

	conf = config_parse("lex.conf",
	    "hostname \\\n  mx.example.org   # a continued line\n"
	    "table t { a, b,\n  c,\n}\n"
	    "table q { k = \"quote \\\" and \\\\ backslash\", "
	    "u = \"\\\\bob, x\" }\n"
	    "listen on 127.0.0.1 port \"2525\"\r\n"
	    "action \"local\" mbox\n"
	    "match from local for local action local2\t#\n"
	    "action local2 mbox", &e);	/* no final newline */
	ck_assert_ptr_null(conf);
	/* Line 9: the continued line and the multi-line table counted. */
	ck_assert_uint_eq(e.n, 1);
	ck_assert_str_eq(e.lines[0], "lex.conf:9: action \"local2\" is used "
	    "before it is defined");
	config_errors_clear(&e);
	conf = parse_ok("lex.conf",
	    "hostname \\\n  mx.example.org   # a continued line\n"
	    "table t { a, b,\n  c,\n}\n"
	    "table q { k = \"quote \\\" and \\\\ backslash\", "
	    "u = \"\\\\bob, x\" }\n"
	    "listen on 127.0.0.1 port \"2525\"\r\n"
	    "action local2 mbox\n"
	    "match from local for local action local2\t#\n"
	    "sandbox on");	/* no final newline */
	ck_assert_str_eq(conf->hostname, "mx.example.org");
	ck_assert_ptr_nonnull(t = config_table(conf, "t"));
	ck_assert_uint_eq(t->n, 3);
	ck_assert(table_contains(t, "c"));
	ck_assert_ptr_nonnull(t = config_table(conf, "q"));
	ck_assert_ptr_nonnull(te = table_lookup(t, "k"));
	ck_assert_str_eq(te->value, "quote \" and \\ backslash");
	ck_assert_ptr_nonnull(te = table_lookup(t, "u"));
	ck_assert_str_eq(te->value, "\\bob, x");
	ck_assert_int_eq(TAILQ_FIRST(&conf->listeners)->port, 2525);
	ck_assert_ptr_eq(nth_match(conf, 0)->action,
	    config_action(conf, "local2"));
	config_free(conf);
}
END_TEST

/* ---- the embedded default ----------------------------------------------- */

static const char embedded_with[] =
    "listen on 127.0.0.1 port 2525\n"
    "table aliases file:/etc/aliases\n"
    "action \"local\" mbox alias <aliases>\n"
    "match from local for local action \"local\"\n";
static const char embedded_without[] =
    "listen on 127.0.0.1 port 2525\n"
    "action \"local\" mbox\n"
    "match from local for local action \"local\"\n";

static void
check_embedded(struct config *conf, int with_aliases)
{
	struct listener	*l;
	struct action	*a;
	struct match	*m;

	ck_assert_uint_eq(count_listeners(conf), 1);
	l = TAILQ_FIRST(&conf->listeners);
	ck_assert_str_eq(l->addr, "127.0.0.1");
	ck_assert_int_eq(l->port, 2525);
	ck_assert_ptr_nonnull(a = config_action(conf, "local"));
	ck_assert_int_eq(a->type, ACTION_MBOX);
	ck_assert_str_eq(a->path, "/var/mail/%u");
	if (with_aliases)
		ck_assert_ptr_eq(a->alias, config_table(conf, "aliases"));
	else
		ck_assert_ptr_null(a->alias);
	ck_assert_ptr_nonnull(m = nth_match(conf, 0));
	ck_assert_int_eq(m->from, FROM_LOCAL);
	ck_assert_int_eq(m->for_, FOR_LOCAL);
	ck_assert_ptr_eq(m->action, a);
	ck_assert_ptr_null(nth_match(conf, 1));
}

START_TEST(test_embedded_follows_etc_aliases)
{
	const char	*text = config_embedded_text();
	struct config	*conf;
	int		 with = access("/etc/aliases", F_OK) == 0;

	ck_assert_str_eq(text, with ? embedded_with : embedded_without);
	if (with && access("/etc/aliases", R_OK) != 0)
		return;		/* exists but unreadable to this user */
	conf = parse_ok("(embedded)", text);
	check_embedded(conf, with);
	config_free(conf);
}
END_TEST

START_TEST(test_embedded_with_aliases)
{
	struct config	*conf;
	char		 aliases[PATH_MAX], text[1024];
	const char	*p;

	write_file("emb.aliases", "postmaster: root\nroot: bob\n", aliases,
	    sizeof(aliases));
	/* The same text with the alias file moved where we can write. */
	ck_assert_ptr_nonnull(p = strstr(embedded_with, "/etc/aliases"));
	xfmt(text, sizeof(text), "%.*s%s%s",
	    (int)(p - embedded_with), embedded_with, aliases,
	    p + strlen("/etc/aliases"));
	conf = parse_ok("(embedded)", text);
	check_embedded(conf, 1);
	ck_assert(table_contains(config_table(conf, "aliases"), "postmaster"));
	config_free(conf);
}
END_TEST

START_TEST(test_embedded_without_aliases)
{
	struct config		*conf;
	struct config_errors	 e = { NULL, 0 };

	conf = parse_ok("(embedded)", embedded_without);
	check_embedded(conf, 0);
	config_free(conf);

	/* The variant with the table needs the file. */
	if (access("/etc/aliases", F_OK) == 0)
		return;
	ck_assert_ptr_null(config_parse("(embedded)", embedded_with, &e));
	ck_assert_uint_eq(e.n, 1);
	ck_assert_str_eq(e.lines[0], "(embedded):2: table aliases: "
	    "/etc/aliases: No such file or directory");
	config_errors_clear(&e);
}
END_TEST

/* ---- errors ------------------------------------------------------------- */

START_TEST(test_error_missing_file)
{
	struct config_errors	 e = { NULL, 0 };
	char			 path[PATH_MAX], want[PATH_MAX + 64];

	tmp_path("does-not-exist.conf", path, sizeof(path));
	ck_assert_ptr_null(config_parse(path, NULL, &e));
	ck_assert_uint_eq(e.n, 1);
	xfmt(want, sizeof(want), "%s: No such file or directory",
	    path);
	ck_assert_str_eq(e.lines[0], want);
	config_errors_clear(&e);
	ck_assert_ptr_null(e.lines);
	ck_assert_uint_eq(e.n, 0);
}
END_TEST

START_TEST(test_error_syntax)
{
	expect_error("listen on\n", 1, "syntax error: unexpected end of line, "
	    "expecting \"any\" or a string");
	expect_error("\n\nlisten 127.0.0.1\n", 3, "syntax error*");
	expect_error("sandbox maybe\n", 1, "syntax error: unexpected "
	    "\"maybe\", expecting \"off\" or \"on\"");
	expect_error("hostname a b\n", 1, "syntax error: unexpected \"b\", "
	    "expecting end of line");
	expect_error("table t { a, b\nhostname x\n", 2, "syntax error*");
	/* Recovery after a broken table, then more statements. */
	expect_error("table t { a, b\nhostname x\ntable u { c }\n"
	    "table t { d }\nsandbox maybe\n", 5, "syntax error*");
	expect_error("table t { a\n", 1, "syntax error: unexpected end of "
	    "file*");
	expect_error("match from local for local\n", 1, "syntax error*");
	expect_error("match from local action x reject\n", 1,
	    "syntax error*");
	expect_error("action local mbox\n", 1, "syntax error: unexpected "
	    "\"local\", expecting a string (a keyword: write it in double "
	    "quotes to use it as a name)");
	expect_error("hostname \"unterminated\nsandbox on\n", 1,
	    "unterminated quoted string");
	expect_error("sandbox on\nhostname ex\x01mple\n", 2,
	    "unexpected character \\x01");
	expect_error("listen on 127.0.0.1 (port 25)\n", 1,
	    "unexpected character '('");
}
END_TEST

START_TEST(test_error_unknown_keyword)
{
	expect_error("sandbox on\nfrobnicate yes\n", 2,
	    "unknown keyword \"frobnicate\"");
	expect_error("  Hostname x\n", 1, "unknown keyword \"Hostname\"");
}
END_TEST

START_TEST(test_error_string_too_long)
{
	char	text[6000];

	memcpy(text, "hostname ", 9);
	memset(text + 9, 'a', 5000);
	memcpy(text + 5009, "\n", 2);
	expect_error(text, 1, "string too long (at most 4095 bytes)");
	memcpy(text, "hostname \"", 10);
	memset(text + 10, 'a', 5000);
	memcpy(text + 5010, "\"\n", 3);
	expect_error(text, 1, "string too long (at most 4095 bytes)");
}
END_TEST

START_TEST(test_error_duplicates)
{
	expect_error("table t { a }\ntable x { b }\ntable t { c }\n", 3,
	    "table \"t\" is already defined");
	expect_error("action a mbox\naction a maildir\n", 2,
	    "action \"a\" is already defined");
	expect_error("table t { a, a }\n", 1, "table t: duplicate entry \"a\"");
	expect_error("table t { a = 1, A = 2 }\n", 1,
	    "table t: duplicate entry \"A\"");
	expect_error("table t { a, b = c }\n", 1, "table t: list entries and "
	    "key = value entries cannot be mixed");
	expect_error("listen on 127.0.0.1\nlisten on localhost port 25\n", 2,
	    "listen on 127.0.0.1 port 25: already given on line 1");
	expect_error("match from any from local reject\n", 1,
	    "match: \"from\" given twice");
	expect_error("match for any !for local reject\n", 1,
	    "match: \"for\" given twice");
}
END_TEST

START_TEST(test_error_references)
{
	expect_error("sandbox on\naction a mbox alias <nosuch>\n", 2,
	    "table <nosuch> is not defined");
	expect_error("match from any action nosuch\n", 1,
	    "action \"nosuch\" is not defined");
	expect_error("action a mbox alias <al>\ntable al { x = y }\n", 1,
	    "table <al> is used before it is defined");
	expect_error("match for domain <d> reject\ntable d { x }\n", 1,
	    "table <d> is used before it is defined");
	expect_error("match from src <s> reject\n", 1,
	    "table <s> is not defined");
	expect_error("match for rcpt <r> reject\n", 1,
	    "table <r> is not defined");
	expect_error("match from any action a\naction a mbox\n", 1,
	    "action \"a\" is used before it is defined");
	expect_error("table l { x, y }\naction a mbox alias <l>\n", 2,
	    "table <l> cannot be an alias table: \"x\" has no value");
	expect_error("table s { 10.0.0.0/8, example.org }\n"
	    "match from src <s> reject\n", 2,
	    "table <s>: \"example.org\" is not an address or network");
}
END_TEST

START_TEST(test_error_values)
{
	expect_error("listen on 1.2.3.999\n", 1, "bad listen address "
	    "\"1.2.3.999\": an IPv4 or IPv6 address, \"localhost\" or any");
	expect_error("listen on example.org\n", 1, "bad listen address*");
	expect_error("listen on 127.0.0.1 port 0\n", 1,
	    "bad port \"0\": a number from 1 to 65535");
	expect_error("listen on 127.0.0.1 port 65536\n", 1,
	    "bad port \"65536\": a number from 1 to 65535");
	expect_error("listen on 127.0.0.1 port 2x\n", 1, "bad port \"2x\"*");
	expect_error("listen on 127.0.0.1 port -1\n", 1, "bad port \"-1\"*");
	expect_error("queue retry min 5x\n", 1, "bad duration \"5x\": a "
	    "number of seconds, or with s, m, h or d, at most 365d");
	expect_error("queue retry min 0\n", 1, "bad duration \"0\"*");
	expect_error("queue retry min 1m max 5mm\n", 1,
	    "bad duration \"5mm\"*");
	expect_error("queue retry min 400d\n", 1, "bad duration \"400d\"*");
	expect_error("queue retry min 10m max 5m\n", 1,
	    "queue retry: min (600s) is greater than max (300s)");
	expect_error("queue retry min 2h\n", 1,
	    "queue retry: min (7200s) is greater than max (3600s)");
	expect_error("limit message-size 12Q\n", 1, "bad size \"12Q\" for "
	    "message-size: a number of bytes with an optional K, M or G, "
	    "at most 1024G");
	expect_error("limit message-size 0\n", 1, "bad size \"0\"*");
	expect_error("limit message-size 2000G\n", 1, "bad size \"2000G\"*");
	expect_error("limit message-size 99999999999999999999999\n", 1,
	    "bad size*");
	expect_error("workers smtp 0\n", 1,
	    "bad number \"0\" for workers smtp: from 1 to 64");
	expect_error("workers deliver 65\n", 1,
	    "bad number \"65\" for workers deliver: from 1 to 64");
	expect_error("limit timeout 2h\n", 1,
	    "bad duration \"2h\" for timeout: 1s to 1h, a number of seconds "
	    "or with s, m or h");
	expect_error("limit recipients many\n", 1,
	    "bad number \"many\" for limit recipients: from 1 to 100000");
	expect_error("hostname bad..name\n", 1, "bad hostname \"bad..name\"");
	expect_error("queue path \"relative\"\n", 1,
	    "queue path \"relative\": not an absolute path");
	expect_error("chroot \"x\"\n", 1, "chroot \"x\": not an absolute path");
	expect_error("pidfile \"x\"\n", 1, "pidfile \"x\": not an absolute path");
	expect_error("control socket \"/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa/s\"\n",
	    1, "control socket path too long*");
	expect_error("control socket \"/run/c.sock\" group \"\"\n", 1,
	    "bad group name \"\": 1 to 63 characters");
	expect_error("user smtp \"a b\"\n", 1, "bad user name \"a b\"");
	expect_error("table \"a b\" { x }\n", 1, "bad table name \"a b\"*");
	expect_error("action \"a/b\" mbox\n", 1, "bad action name \"a/b\"*");
	expect_error("action a mbox \"relative/%u\"\n", 1,
	    "action \"a\": bad path \"relative/%u\"*");
	expect_error("action a maildir \"/var/mail/%x\"\n", 1,
	    "action \"a\": bad path \"/var/mail/%x\"*");
	expect_error("action a maildir \"/var/mail/%\"\n", 1,
	    "action \"a\": bad path*");
	expect_error("match from src 1.2.3.4/33 reject\n", 1,
	    "bad address or network \"1.2.3.4/33\"");
	expect_error("match from src nonsense reject\n", 1,
	    "bad address or network \"nonsense\"");
	expect_error("match for domain bad..domain reject\n", 1,
	    "bad domain \"bad..domain\"");
	expect_error("table t http://example.org/x\n", 1,
	    "table t: unknown source \"http://example.org/x\"*");
	expect_error("table t file:relative\n", 1,
	    "table t: \"relative\": not an absolute path");
}
END_TEST

START_TEST(test_error_table_files)
{
	char	aliases[PATH_MAX], text[PATH_MAX * 2], want[PATH_MAX * 3];
	char	path[PATH_MAX];
	struct config_errors e = { NULL, 0 };

	xfmt(text, sizeof(text),
	    "table aliases file:%s/nonexistent\n", tmpdir);
	xfmt(want, sizeof(want), "table aliases: %s/nonexistent: "
	    "No such file or directory", tmpdir);
	expect_error(text, 1, want);

	/* A directory cannot be read as a table. */
	xfmt(text, sizeof(text), "sandbox on\ntable d file:%s\n",
	    tmpdir);
	xfmt(want, sizeof(want), "table d: %s: Is a directory",
	    tmpdir);
	expect_error(text, 2, want);

	/* A bad line inside a table file: its own file and line. */
	write_file("bad.aliases", "# comment\nroot: bob\n  \n"
	    "  continued, line\nempty:\n", aliases, sizeof(aliases));
	write_file("bad2.aliases", "   orphan continuation\nok: x\n",
	    path, sizeof(path));
	xfmt(text, sizeof(text), "table a file:%s\n"
	    "table b file:%s\nlisten on 127.0.0.1 port 0\n", aliases, path);
	write_file("tf.conf", text, path, sizeof(path));
	ck_assert_ptr_null(config_parse(path, NULL, &e));
	ck_assert_uint_eq(e.n, 3);
	xfmt(want, sizeof(want), "%s:5: no value for \"empty\"",
	    aliases);
	ck_assert_str_eq(e.lines[0], want);
	tmp_path("bad2.aliases", aliases, sizeof(aliases));
	xfmt(want, sizeof(want), "%s:1: continuation line without "
	    "an entry before it", aliases);
	ck_assert_str_eq(e.lines[1], want);
	xfmt(want, sizeof(want), "%s:3: bad port \"0\": a number "
	    "from 1 to 65535", path);
	ck_assert_str_eq(e.lines[2], want);
	config_errors_clear(&e);
}
END_TEST

START_TEST(test_error_unreadable_table)
{
	char	path[PATH_MAX], text[PATH_MAX * 2], want[PATH_MAX * 2];

	if (geteuid() == 0)
		return;		/* root reads anything */
	write_file("secret.aliases", "a: b\n", path, sizeof(path));
	ck_assert_int_eq(chmod(path, 0), 0);
	xfmt(text, sizeof(text), "table s file:%s\n", path);
	xfmt(want, sizeof(want), "table s: %s: Permission denied",
	    path);
	expect_error(text, 1, want);
}
END_TEST

START_TEST(test_all_errors_reported)
{
	struct config_errors	 e = { NULL, 0 };
	char			 path[PATH_MAX], want[PATH_MAX + 128];

	write_file("many.conf",
	    "listen on 127.0.0.1 port 0\n"		/* 1 */
	    "bogus\n"					/* 2 */
	    "action a mbox alias <late>\n"		/* 3 */
	    "workers smtp 100\n"			/* 4 */
	    "table late { x = y }\n"			/* 5 */
	    "sandbox on\n"				/* 6: fine */
	    "queue retry min 1h max 1m\n"		/* 7 */
	    "match from any action nope\n",		/* 8 */
	    path, sizeof(path));
	ck_assert_ptr_null(config_parse(path, NULL, &e));
	if (e.n != 6)
		dump(&e);
	ck_assert_uint_eq(e.n, 6);
	/* In the order of the file, the late references included. */
	xfmt(want, sizeof(want), "%s:1: ", path);
	ck_assert_int_eq(strncmp(e.lines[0], want, strlen(want)), 0);
	xfmt(want, sizeof(want), "%s:2: unknown keyword \"bogus\"",
	    path);
	ck_assert_str_eq(e.lines[1], want);
	xfmt(want, sizeof(want), "%s:3: table <late> is used before "
	    "it is defined", path);
	ck_assert_str_eq(e.lines[2], want);
	xfmt(want, sizeof(want), "%s:4: ", path);
	ck_assert_int_eq(strncmp(e.lines[3], want, strlen(want)), 0);
	xfmt(want, sizeof(want), "%s:7: ", path);
	ck_assert_int_eq(strncmp(e.lines[4], want, strlen(want)), 0);
	xfmt(want, sizeof(want), "%s:8: action \"nope\" is not "
	    "defined", path);
	ck_assert_str_eq(e.lines[5], want);
	config_errors_clear(&e);

	/* errs may be NULL: the parse still fails. */
	ck_assert_ptr_null(config_parse(path, NULL, NULL));
}
END_TEST

START_TEST(test_error_text_and_path)
{
	struct config_errors	 e = { NULL, 0 };

	/* With text, the path only names it. */
	ck_assert_ptr_null(config_parse("/nonexistent/named.conf",
	    "\n\nworkers smtp x\n", &e));
	ck_assert_uint_eq(e.n, 1);
	ck_assert_str_eq(e.lines[0], "/nonexistent/named.conf:3: bad number "
	    "\"x\" for workers smtp: from 1 to 64");
	config_errors_clear(&e);
}
END_TEST

/* ---- config helpers ------------------------------------------------------- */

START_TEST(test_domain_is_local)
{
	struct config	*conf;

	conf = parse_ok("h.conf", "hostname mx.Example.ORG\n");
	ck_assert(config_domain_is_local(conf, "mx.example.org"));
	ck_assert(config_domain_is_local(conf, "MX.EXAMPLE.ORG"));
	ck_assert(config_domain_is_local(conf, "localhost"));
	ck_assert(config_domain_is_local(conf, "LocalHost"));
	ck_assert(config_domain_is_local(conf, "localhost.localdomain"));
	ck_assert(!config_domain_is_local(conf, "example.org"));
	ck_assert(!config_domain_is_local(conf, "x.mx.example.org"));
	ck_assert(!config_domain_is_local(conf, ""));
	ck_assert(!config_domain_is_local(conf, NULL));
	config_free(conf);
}
END_TEST

START_TEST(test_action_dest)
{
	struct action	a;
	char		out[64];

	memset(&a, 0, sizeof(a));
	(void)strlcpy(a.path, "/var/mail/%u", sizeof(a.path));
	ck_assert_int_eq(action_dest(&a, "bob", "/home/bob", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "/var/mail/bob");
	(void)strlcpy(a.path, "~/Maildir", sizeof(a.path));
	ck_assert_int_eq(action_dest(&a, "bob", "/home/bob", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "/home/bob/Maildir");
	(void)strlcpy(a.path, "%h/M/%u/100%%", sizeof(a.path));
	ck_assert_int_eq(action_dest(&a, "bob", "/home/bob", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "/home/bob/M/bob/100%");
	(void)strlcpy(a.path, "/x/~/y", sizeof(a.path));
	ck_assert_int_eq(action_dest(&a, "bob", "/home/bob", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "/x/~/y");
	/* Bad templates, bad users, no room. */
	(void)strlcpy(a.path, "/var/mail/%x", sizeof(a.path));
	ck_assert_int_eq(action_dest(&a, "bob", "/home/bob", out,
	    sizeof(out)), -1);
	(void)strlcpy(a.path, "/var/mail/%", sizeof(a.path));
	ck_assert_int_eq(action_dest(&a, "bob", "/home/bob", out,
	    sizeof(out)), -1);
	(void)strlcpy(a.path, "/var/mail/%u", sizeof(a.path));
	ck_assert_int_eq(action_dest(&a, "../etc", "/", out, sizeof(out)), -1);
	ck_assert_int_eq(action_dest(&a, "..", "/", out, sizeof(out)), -1);
	ck_assert_int_eq(action_dest(&a, "", "/", out, sizeof(out)), -1);
	ck_assert_int_eq(action_dest(&a, "bob", "/h", out, 13), -1);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(action_dest(&a, "bob", "/h", out, 14), 0);
	ck_assert_str_eq(out, "/var/mail/bob");
	(void)strlcpy(a.path, "~/Maildir", sizeof(a.path));
	ck_assert_int_eq(action_dest(&a, "bob", "", out, sizeof(out)), -1);
}
END_TEST

/* ---- tables --------------------------------------------------------------- */

struct errs {
	char	lines[16][512];
	int	n;
};

static void
collect(void *arg, const char *file, int line, const char *fmt, ...)
{
	struct errs	*e = arg;
	char		 msg[256];
	va_list		 ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->n < 16)
		xfmt(e->lines[e->n++], sizeof(e->lines[0]),
		    "%d: %s", line, msg);
}

static struct table *
load(const char *content, struct errs *e, int *nerr)
{
	struct table	*t;
	char		 path[PATH_MAX];

	write_file("t.table", content, path, sizeof(path));
	memset(e, 0, sizeof(*e));
	ck_assert_ptr_nonnull(t = table_new("t"));
	*nerr = table_load_file(t, path, collect, e);
	ck_assert_str_eq(t->path, path);
	return t;
}

static const char *
value_of(struct table *t, const char *key)
{
	const struct table_entry *te = table_lookup(t, key);

	ck_assert_msg(te != NULL, "no key %s", key);
	return te->value != NULL ? te->value : "(list)";
}

START_TEST(test_table_aliases_format)
{
	struct table	*t;
	struct errs	 e;
	int		 n;

	t = load("# /etc/aliases\n"
	    "\n"
	    "postmaster:    root\n"
	    "Root: bob, alice\n"
	    "team: bob,\n"
	    "\talice,\n"
	    "   # a comment between continuation lines\n"
	    "\n"
	    "  \"carol d\"\n"
	    "nospace:bob\n"
	    "pipe: \"|/usr/bin/x -y\"\n"
	    "crlf: dos\r\n"
	    "last: x", &e, &n);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(e.n, 0);
	ck_assert_uint_eq(t->n, 7);
	ck_assert_str_eq(value_of(t, "postmaster"), "root");
	ck_assert_str_eq(value_of(t, "root"), "bob, alice");
	ck_assert_str_eq(value_of(t, "ROOT"), "bob, alice");
	ck_assert_str_eq(value_of(t, "team"), "bob, alice, \"carol d\"");
	ck_assert_str_eq(value_of(t, "nospace"), "bob");
	ck_assert_str_eq(value_of(t, "pipe"), "\"|/usr/bin/x -y\"");
	ck_assert_str_eq(value_of(t, "crlf"), "dos");
	ck_assert_str_eq(value_of(t, "last"), "x");
	ck_assert_ptr_null(table_lookup(t, "bob"));
	ck_assert_ptr_null(table_lookup(t, "# /etc/aliases"));
	table_free(t);
}
END_TEST

START_TEST(test_table_list_and_map)
{
	struct table	*t;
	struct errs	 e;
	int		 n;

	t = load("example.org\n*.example.net\n  \n10.0.0.0/8\n::1\n"
	    "fe80::/10 link-local\n", &e, &n);
	ck_assert_int_eq(n, 0);
	ck_assert_uint_eq(t->n, 5);
	ck_assert_str_eq(value_of(t, "example.org"), "(list)");
	ck_assert_str_eq(value_of(t, "::1"), "(list)");
	ck_assert_str_eq(value_of(t, "fe80::/10"), "link-local");
	ck_assert(table_match_addr(t, "10.9.8.7"));
	ck_assert(table_match_addr(t, "fe80::1234"));
	table_free(t);

	t = load("key value with  spaces  \nk2\tv2\n", &e, &n);
	ck_assert_int_eq(n, 0);
	ck_assert_str_eq(value_of(t, "key"), "value with  spaces");
	ck_assert_str_eq(value_of(t, "k2"), "v2");
	table_free(t);
}
END_TEST

START_TEST(test_table_bad_lines)
{
	struct table	*t;
	struct errs	 e;
	char		*big;
	size_t		 i;
	int		 n;

	t = load("  leading: continuation\n"
	    "# fine\n"
	    "a: 1\n"
	    "b:\n"
	    "c:   \n"
	    "d: 4\n", &e, &n);
	ck_assert_int_eq(n, 3);
	ck_assert_int_eq(e.n, 3);
	ck_assert_str_eq(e.lines[0], "1: continuation line without an entry "
	    "before it");
	ck_assert_str_eq(e.lines[1], "4: no value for \"b\"");
	ck_assert_str_eq(e.lines[2], "5: no value for \"c\"");
	ck_assert_uint_eq(t->n, 2);	/* the good lines are kept */
	ck_assert_str_eq(value_of(t, "d"), "4");
	table_free(t);

	/* An overlong line, a NUL byte: reported, the rest still read. */
	ck_assert_ptr_nonnull(big = malloc(20000));
	memcpy(big, "a: 1\nlong: ", 11);
	for (i = 11; i < 10000; i++)
		big[i] = 'x';
	memcpy(big + i, "\nz: 26\n", 8);
	t = load(big, &e, &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(e.lines[0], "2: line too long (more than 8191 bytes)");
	ck_assert_uint_eq(t->n, 2);
	ck_assert_str_eq(value_of(t, "z"), "26");
	table_free(t);
	free(big);

	{
		char		 path[PATH_MAX];
		FILE		*fp;
		static const char data[] = "a: 1\nb: x\0y\nc: 3\n";

		tmp_path("nul.table", path, sizeof(path));
		ck_assert_ptr_nonnull(fp = fopen(path, "w"));
		ck_assert_uint_eq(fwrite(data, 1, sizeof(data) - 1, fp),
		    sizeof(data) - 1);
		ck_assert_int_eq(fclose(fp), 0);
		memset(&e, 0, sizeof(e));
		ck_assert_ptr_nonnull(t = table_new("nul"));
		ck_assert_int_eq(table_load_file(t, path, collect, &e), 1);
		ck_assert_str_eq(e.lines[0], "2: NUL byte in line");
		ck_assert_uint_eq(t->n, 2);
		table_free(t);
	}
}
END_TEST

START_TEST(test_table_duplicates_first_wins)
{
	struct table	*t;
	struct errs	 e;
	int		 n;

	t = load("a: first\nb: x\nA: second\na: third\n", &e, &n);
	ck_assert_int_eq(n, 0);		/* a warning, not an error */
	ck_assert_uint_eq(t->n, 2);
	ck_assert_str_eq(value_of(t, "a"), "first");
	table_free(t);
}
END_TEST

START_TEST(test_table_missing_file)
{
	struct table	*t;
	struct errs	 e;
	char		 path[PATH_MAX];

	memset(&e, 0, sizeof(e));
	tmp_path("none.table", path, sizeof(path));
	ck_assert_ptr_nonnull(t = table_new("t"));
	ck_assert_int_eq(table_load_file(t, path, collect, &e), 1);
	ck_assert_str_eq(e.lines[0], "0: No such file or directory");
	ck_assert_uint_eq(t->n, 0);
	/* Without a callback it only logs. */
	ck_assert_int_eq(table_load_file(t, path, NULL, NULL), 1);
	table_free(t);
}
END_TEST

START_TEST(test_table_inline_api)
{
	struct table	*t;
	char		 name[TABLE_NAME_MAX + 10];

	ck_assert_ptr_nonnull(t = table_new("x"));
	ck_assert_ptr_null(table_lookup(t, "a"));
	ck_assert_int_eq(table_add(t, "Zed", "Value"), 0);
	ck_assert_int_eq(table_add(t, "alpha", NULL), 0);
	ck_assert_int_eq(table_add(t, "MIKE", "m"), 0);
	ck_assert_int_eq(t->sorted, 0);
	table_finish(t);
	ck_assert_int_eq(t->sorted, 1);
	ck_assert_str_eq(t->entries[0].key, "alpha");
	ck_assert_str_eq(t->entries[1].key, "mike");
	ck_assert_str_eq(t->entries[2].key, "zed");
	ck_assert_str_eq(value_of(t, "ZED"), "Value");	/* value as given */
	ck_assert(table_contains(t, "Alpha"));
	ck_assert(!table_contains(t, "alph"));
	ck_assert(!table_contains(t, ""));
	/* Lazily sorted again after an add. */
	ck_assert_int_eq(table_add(t, "bravo", NULL), 0);
	ck_assert(table_contains(t, "BRAVO"));
	table_free(t);
	table_free(NULL);

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	ck_assert_ptr_null(table_new(name));
}
END_TEST

START_TEST(test_match_domain)
{
	struct table	*t;

	ck_assert_ptr_nonnull(t = table_new("d"));
	ck_assert_int_eq(table_add(t, "example.org", NULL), 0);
	ck_assert_int_eq(table_add(t, "*.example.net", NULL), 0);
	ck_assert_int_eq(table_add(t, ".example.com", NULL), 0);
	table_finish(t);

	ck_assert(table_match_domain(t, "example.org"));
	ck_assert(table_match_domain(t, "EXAMPLE.Org"));
	ck_assert(!table_match_domain(t, "sub.example.org"));
	ck_assert(!table_match_domain(t, "xexample.org"));

	ck_assert(table_match_domain(t, "a.example.net"));
	ck_assert(table_match_domain(t, "a.b.c.EXAMPLE.NET"));
	ck_assert(!table_match_domain(t, "example.net"));
	ck_assert(!table_match_domain(t, "aexample.net"));

	ck_assert(table_match_domain(t, "mx.example.com"));
	ck_assert(table_match_domain(t, "a.mx.example.com"));
	ck_assert(!table_match_domain(t, "example.com"));

	ck_assert(!table_match_domain(t, "org"));
	ck_assert(!table_match_domain(t, ""));
	ck_assert(!table_match_domain(t, NULL));
	ck_assert(!table_match_domain(t, "."));
	ck_assert(!table_match_domain(NULL, "example.org"));
	table_free(t);
}
END_TEST

START_TEST(test_match_addr)
{
	struct table	*t;

	ck_assert_ptr_nonnull(t = table_new("a"));
	ck_assert_int_eq(table_add(t, "192.0.2.7", NULL), 0);
	ck_assert_int_eq(table_add(t, "10.0.0.0/8", NULL), 0);
	ck_assert_int_eq(table_add(t, "172.16.0.0/12", NULL), 0);
	ck_assert_int_eq(table_add(t, "198.51.100.128/25", NULL), 0);
	ck_assert_int_eq(table_add(t, "2001:DB8::/32", NULL), 0);
	ck_assert_int_eq(table_add(t, "::1", NULL), 0);
	ck_assert_int_eq(table_add(t, "fe80::1:0/127", NULL), 0);
	ck_assert_int_eq(table_add(t, "not-an-address", NULL), 0);
	ck_assert_int_eq(table_add(t, "203.0.113.0/xx", NULL), 0);
	table_finish(t);

	ck_assert(table_match_addr(t, "192.0.2.7"));
	ck_assert(!table_match_addr(t, "192.0.2.8"));
	ck_assert(table_match_addr(t, "10.0.0.0"));
	ck_assert(table_match_addr(t, "10.255.255.255"));
	ck_assert(!table_match_addr(t, "11.0.0.0"));
	ck_assert(!table_match_addr(t, "9.255.255.255"));
	ck_assert(table_match_addr(t, "172.31.0.1"));
	ck_assert(!table_match_addr(t, "172.32.0.1"));
	ck_assert(table_match_addr(t, "198.51.100.128"));
	ck_assert(table_match_addr(t, "198.51.100.255"));
	ck_assert(!table_match_addr(t, "198.51.100.127"));
	ck_assert(table_match_addr(t, "2001:db8::1"));
	ck_assert(table_match_addr(t, "2001:db8:ffff::"));
	ck_assert(!table_match_addr(t, "2001:db9::1"));
	ck_assert(table_match_addr(t, "::1"));
	ck_assert(table_match_addr(t, "0:0:0:0:0:0:0:1"));
	ck_assert(!table_match_addr(t, "::2"));
	ck_assert(table_match_addr(t, "fe80::1:1"));
	ck_assert(!table_match_addr(t, "fe80::1:2"));
	/* A v4 client seen on a dual-stack socket. */
	ck_assert(table_match_addr(t, "::ffff:10.1.2.3"));
	ck_assert(!table_match_addr(t, "::ffff:11.1.2.3"));
	/* Malformed entries never match; malformed input neither. */
	ck_assert(!table_match_addr(t, "203.0.113.1"));
	ck_assert(!table_match_addr(t, "not-an-address"));
	ck_assert(!table_match_addr(t, "local"));
	ck_assert(!table_match_addr(t, ""));
	ck_assert(!table_match_addr(t, NULL));
	table_free(t);

	ck_assert_ptr_nonnull(t = table_new("all"));
	ck_assert_int_eq(table_add(t, "0.0.0.0/0", NULL), 0);
	ck_assert(table_match_addr(t, "1.2.3.4"));
	ck_assert(!table_match_addr(t, "2001:db8::1"));	/* v4 only */
	table_free(t);
	ck_assert_ptr_nonnull(t = table_new("all6"));
	ck_assert_int_eq(table_add(t, "::/0", NULL), 0);
	ck_assert(table_match_addr(t, "2001:db8::1"));
	ck_assert(table_match_addr(t, "1.2.3.4"));	/* as ::ffff:1.2.3.4 */
	table_free(t);
}
END_TEST

/* ---- driver --------------------------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)chmod(path, 0700);
	return remove(path);
}

static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_empty_file_gives_defaults);
	tcase_add_test(tc, test_every_directive);
	tcase_add_test(tc, test_values);
	tcase_add_test(tc, test_lexer);
	tcase_add_test(tc, test_embedded_follows_etc_aliases);
	tcase_add_test(tc, test_embedded_with_aliases);
	tcase_add_test(tc, test_embedded_without_aliases);
	tcase_add_test(tc, test_domain_is_local);
	tcase_add_test(tc, test_action_dest);
	tcase_add_test(tc, test_listener_options);
	tcase_add_test(tc, test_limits_and_store);
	suite_add_tcase(s, tc);

	tc = tcase_create("errors");
	tcase_add_test(tc, test_error_missing_file);
	tcase_add_test(tc, test_error_syntax);
	tcase_add_test(tc, test_error_unknown_keyword);
	tcase_add_test(tc, test_error_string_too_long);
	tcase_add_test(tc, test_error_duplicates);
	tcase_add_test(tc, test_error_references);
	tcase_add_test(tc, test_error_values);
	tcase_add_test(tc, test_error_table_files);
	tcase_add_test(tc, test_error_unreadable_table);
	tcase_add_test(tc, test_all_errors_reported);
	tcase_add_test(tc, test_error_text_and_path);
	tcase_add_test(tc, test_error_new_statements);
	suite_add_tcase(s, tc);

	tc = tcase_create("tables");
	tcase_add_test(tc, test_table_aliases_format);
	tcase_add_test(tc, test_table_list_and_map);
	tcase_add_test(tc, test_table_bad_lines);
	tcase_add_test(tc, test_table_duplicates_first_wins);
	tcase_add_test(tc, test_table_missing_file);
	tcase_add_test(tc, test_table_inline_api);
	tcase_add_test(tc, test_match_domain);
	tcase_add_test(tc, test_match_addr);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	log_init(1, 0);
	if (snprintf(tmpdir, sizeof(tmpdir), "%s/check_config.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp") >=
	    (int)sizeof(tmpdir) || mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	(void)nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? 0 : 1;
}
