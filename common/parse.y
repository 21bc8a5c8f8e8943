/*
 * mtad.conf(5): the grammar and its hand-written lexer, in the manner of
 * OpenSMTPD's parse.y.  The lexer reads the file (or the embedded default
 * text) a character at a time; every error is collected as "FILE:LINE: what"
 * and parsing goes on after it, so that one run shows them all.
 */

%{
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "addr.h"
#include "config.h"
#include "log.h"
#include "pki.h"
#include "proto.h"
#include "relay.h"
#include "table.h"

#define STRING_MAX	4096	/* a word or quoted string */
#define ERRORS_MAX	1000	/* kept and shown; the rest are only counted */
#define ENTRY_KEY_MAX	512	/* as table.c: longer keys are never found */
#define WORD_SHOW_MAX	64	/* of a token, quoted in an error message */

enum ref_kind { REF_TABLE, REF_ACTION };

/* A name used before (or without) its definition: worded at the end. */
struct ref {
	enum ref_kind	 kind;
	char		 name[TABLE_NAME_MAX > ACTION_MAX ?
			    TABLE_NAME_MAX : ACTION_MAX];
	size_t		 slot;		/* its place among the errors */
};

static struct parser {
	struct config	*conf;
	const char	*path;		/* as given: prefixes every error */

	/* input */
	FILE		*fp;
	const char	*text;
	size_t		 pos;
	int		 unget[8];
	int		 nunget;
	int		 lineno;	/* of the next character */
	int		 lastline;	/* of the last token */
	int		 ntokline;	/* tokens since the last newline */
	int		 braces;	/* inside { }: no keywords, no newlines */
	int		 angle;		/* inside < >: no keywords */
	int		 at_eof;	/* the newline that ends the last line */
	int		 readerr;
	char		 word[WORD_SHOW_MAX + 1];	/* last token, for errors */
	int		 word_quoted;
	int		 word_first;	/* it was the first on its line */

	/* errors */
	char		**errv;		/* "file:line: what", in file order */
	size_t		 errn;
	int		 nerrors;
	struct ref	*refs;
	size_t		 nrefs;

	/* the statement being built */
	struct table	*tbl;		/* inline or file table */
	int		 tbl_bad;	/* bad or taken name: dropped at the end */
	int		 tbl_kind;	/* 0 none yet, 1 list, 2 key = value */
	struct match	 m;
	int		 m_from, m_for;	/* the from/for part was seen */
	int		 anon;		/* counter for anonymous tables */
	int		 flags;		/* CONFIG_SKIP_TABLE_FILES */

	/* the relay action being built */
	struct action	*ra;
	int		 ra_bad;
	int		 ra_line;	/* lines of some options, for errors */
	int		 ra_auth_line;
	int		 ra_tls_line;
	int		 ra_ca_line;

	/* the listen statement being built */
	int		 l_line;
	char		 l_addr[2][INET6_ADDRSTRLEN + 16];
	int		 l_naddr;
	int		 l_port;	/* 0: by the options (25, 465, 587) */
	int		 l_flags;	/* LISTEN_* */
	char		 l_pki[PKI_NAME_MAX];
	int		 l_pki_line;
	struct table	*l_auth;
	struct table	*l_xclient;
	int		 l_bad;

	/* the mongo action being built */
	struct action	*ma;
} p;

static void	 cfg_error(int, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 cfg_error_file(const char *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 errv_push(char *);
static void	 lex_reset(void);
static void	 stmt_abort(void);
static int	 parse_uint(const char *, long long, long long, long long *);
static int	 parse_duration(const char *, long long *);
static int	 parse_scaled(const char *, const char *, long long,
		    long long, long long *);
static int	 parse_count(int, const char *, const char *, long long,
		    long long, long long *);
static int	 name_is_valid(const char *);
static int	 net_is_valid(const char *);
static int	 path_check(int, const char *, const char *, char *, size_t);
static int	 user_check(int, const char *, const char *);
static void	 set_hostname(int, char *);
static struct listener *add_listener(int, const char *, int);
static void	 listen_begin(int, const char *);
static void	 listen_port(int, const char *);
static void	 listen_flag(int, int);
static void	 listen_pki(int, const char *);
static void	 listen_table(int, int, const char *);
static void	 listen_end(void);
static void	 pki_set(int, const char *, const char *, const char *);
static void	 set_limit(int, const char *, const char *);
static void	 store_set(int, const char *, const char *);
static void	 mongo_begin(int, char *);
static void	 mongo_table(int, int, const char *);
static void	 mongo_end(void);
static void	 pki_check_all(void);
static void	 set_retry(int, const char *, const char *);
static void	 table_begin(int, char *);
static void	 table_item(int, char *, char *);
static void	 table_file(int, char *);
static void	 table_end(void);
static void	 table_errfn_cb(void *, const char *, int, const char *, ...)
		    __attribute__((format(printf, 4, 5)));
static struct table *table_anon(int, const char *, const char *);
static struct table *table_ref(int, const char *);
static void	 src_table_check(int, struct table *);
static void	 add_action(int, char *, enum action_type, int, char *, int,
		    char *);
static void	 match_begin(void);
static void	 match_from(int, int, int, struct table *);
static void	 match_for(int, int, int, struct table *);
static void	 match_end(int, int, char *);
static void	 refs_resolve(void);
static void	 add_resolver(int, const char *);
static void	 set_relay_timeout(int, const char *, const char *);
static void	 relay_begin(int, char *);
static void	 relay_host(int, const char *);
static void	 relay_auth(int, const char *);
static void	 relay_backup(int, const char *);
static void	 relay_helo(int, const char *);
static void	 relay_src(int, const char *);
static void	 relay_tls(int, const char *);
static void	 relay_ca(int, const char *);
static void	 relay_end(void);
%}

%define api.pure full
%define parse.error custom
%define parse.lac full
%locations

%union {
	char	*string;
	int	 number;
	struct {
		int		 kind;
		struct table	*table;
		int		 line;
	} spec;
}

%code {
static int	 yylex(YYSTYPE *, YYLTYPE *);
static void	 yyerror(YYLTYPE *, const char *);
}

%token ACTION "action" ALIAS "alias" ANY "any" CHROOT "chroot"
%token CONCURRENCY "concurrency" CONTROL "control"
%token DELAYWARNING "delay-warning" DELIVER "deliver"
%token DESTCONCURRENCY "destination-concurrency"
%token DOMAIN "domain" FOR "for" LIFETIME "lifetime" MINFREE "min-free"
%token FROM "from" GROUP "group" HOSTNAME "hostname" LIMIT "limit"
%token LISTEN "listen" LOCAL "local" MAILDIR "maildir" MATCH "match"
%token MAX "max" MBOX "mbox" MESSAGESIZE "message-size" MIN "min"
%token OFF "off" ON "on" PATH "path" PIDFILE "pidfile" POLICY "policy"
%token PORT "port" QUEUE "queue" RCPT "rcpt" RECIPIENTS "recipients"
%token REJECT "reject" RETRY "retry" SANDBOX "sandbox" SMTP "smtp"
%token SOCKET "socket" SRC "src" SUBMIT "submit" TABLE "table"
%token TIMEOUT "timeout" USER "user"
%token AUTH "auth" BACKUP "backup" CA "ca" CONNECTIONS "connections"
%token HELO "helo" HOST "host" MX "mx" RELAY "relay" RESOLVER "resolver"
%token TLS "tls"
%token AUTHOPTIONAL "auth-optional" AUTHPLAINTEXT "auth-plaintext"
%token CERT "cert" KEY "key" MONGO "mongo" NORMALIZE "normalize" PKI "pki"
%token PROXYPROTOCOL "proxy-protocol" SMTPS "smtps" STORE "store"
%token SUBMISSION "submission" TLSREQUIRE "tls-require"
%token XCLIENT "xclient"
%token WORKERS "workers"
%token ERROR "invalid token"
%token <string> STRING "string"

%type <string> retrymax groupopt pathopt aliasopt
%type <number> proc neg actiontype
%type <spec> fromspec forspec

%destructor { free($$); } <string>

%%

grammar		: %empty
		| grammar '\n'
		| grammar statement '\n'
		| grammar error '\n'		{ stmt_abort(); yyerrok; }
		;

statement	: HOSTNAME STRING		{ set_hostname(@2.first_line, $2); }
		| LISTEN ON STRING		{
			listen_begin(@3.first_line, $3);
			free($3);
			$3 = NULL;	/* not for %destructor on an error */
		}
		  listenopts			{ listen_end(); }
		| LISTEN ON ANY			{
			listen_begin(@3.first_line, NULL);
		}
		  listenopts			{ listen_end(); }
		| PKI STRING CERT STRING	{
			pki_set(@2.first_line, $2, "cert", $4);
			free($2);
			free($4);
		}
		| PKI STRING KEY STRING		{
			pki_set(@2.first_line, $2, "key", $4);
			free($2);
			free($4);
		}
		| LIMIT STRING STRING		{
			set_limit(@2.first_line, $2, $3);
			free($2);
			free($3);
		}
		| LIMIT CONNECTIONS STRING	{
			set_limit(@2.first_line, "connections", $3);
			free($3);
		}
		| STORE MONGO STRING		{
			store_set(@3.first_line, "mongo", $3);
			free($3);
		}
		| STORE STRING STRING		{
			store_set(@2.first_line, $2, $3);
			free($2);
			free($3);
		}
		| ACTION STRING MONGO		{
			mongo_begin(@2.first_line, $2);
			$2 = NULL;	/* consumed */
		}
		  mongoopts			{ mongo_end(); }
		| QUEUE PATH STRING		{
			(void)path_check(@3.first_line, "queue path", $3,
			    p.conf->queue_path, sizeof(p.conf->queue_path));
			free($3);
		}
		| QUEUE LIFETIME STRING	{
			long long	n;

			if (parse_duration($3, &n) == -1 || n < 60)
				cfg_error(@3.first_line, "bad duration \"%s\" "
				    "for queue lifetime: 1m to 365d", $3);
			else
				p.conf->queue_lifetime = (time_t)n;
			free($3);
		}
		| QUEUE MINFREE STRING		{
			long long	n;

			if (parse_scaled($3, "KMG", 1024, 1LL << 50, &n) == -1 &&
			    strcmp($3, "0") != 0)
				cfg_error(@3.first_line, "bad size \"%s\" for "
				    "queue min-free: bytes with an optional K, "
				    "M or G, or 0", $3);
			else
				p.conf->queue_min_free = strcmp($3, "0") == 0 ?
				    0 : (uint64_t)n;
			free($3);
		}
		| QUEUE CONCURRENCY STRING	{
			long long	n;

			if (parse_count(@3.first_line, "queue concurrency", $3,
			    1, 10000, &n) == 0)
				p.conf->queue_concurrency = (int)n;
			free($3);
		}
		| QUEUE DESTCONCURRENCY STRING	{
			long long	n;

			if (parse_count(@3.first_line,
			    "queue destination-concurrency", $3, 1, 10000,
			    &n) == 0)
				p.conf->dest_concurrency = (int)n;
			free($3);
		}
		| QUEUE DELAYWARNING OFF	{ p.conf->delay_warning = 0; }
		| QUEUE DELAYWARNING STRING	{
			long long	n;

			if (parse_duration($3, &n) == -1 || n < 1)
				cfg_error(@3.first_line, "bad duration \"%s\" "
				    "for queue delay-warning: 1s to 365d, "
				    "or off", $3);
			else
				p.conf->delay_warning = (time_t)n;
			free($3);
		}
		| QUEUE RETRY MIN STRING retrymax {
			set_retry(@4.first_line, $4, $5);
			free($4);
			free($5);
		}
		| CHROOT STRING			{
			(void)path_check(@2.first_line, "chroot", $2,
			    p.conf->chroot_path, sizeof(p.conf->chroot_path));
			free($2);
		}
		| CONTROL SOCKET STRING groupopt {
			if (strlen($3) >= sizeof(((struct sockaddr_un *)0)->sun_path))
				cfg_error(@3.first_line, "control socket path "
				    "too long (at most %zu bytes)",
				    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			else
				(void)path_check(@3.first_line,
				    "control socket", $3, p.conf->control_path,
				    sizeof(p.conf->control_path));
			if ($4 != NULL && user_check(@4.first_line, "group",
			    $4) == 0)
				(void)strlcpy(p.conf->control_group, $4,
				    sizeof(p.conf->control_group));
			free($3);
			free($4);
		}
		| SUBMIT SOCKET STRING		{
			if (strlen($3) >= sizeof(((struct sockaddr_un *)0)->sun_path))
				cfg_error(@3.first_line, "submit socket path "
				    "too long (at most %zu bytes)",
				    sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			else
				(void)path_check(@3.first_line,
				    "submit socket", $3, p.conf->submit_path,
				    sizeof(p.conf->submit_path));
			free($3);
		}
		| PIDFILE STRING		{
			(void)path_check(@2.first_line, "pidfile", $2,
			    p.conf->pidfile, sizeof(p.conf->pidfile));
			free($2);
		}
		| USER proc STRING		{
			if (user_check(@3.first_line, "user", $3) == 0)
				(void)strlcpy(p.conf->user[$2], $3, USER_MAX);
			free($3);
		}
		| WORKERS SMTP STRING		{
			long long	n;

			if (parse_count(@3.first_line, "workers smtp", $3, 1,
			    64, &n) == 0)
				p.conf->workers_smtp = (int)n;
			free($3);
		}
		| WORKERS DELIVER STRING	{
			long long	n;

			if (parse_count(@3.first_line, "workers deliver", $3,
			    1, 64, &n) == 0)
				p.conf->workers_deliver = (int)n;
			free($3);
		}
		| LIMIT MESSAGESIZE STRING	{
			long long	n;

			if (parse_scaled($3, "KMG", 1024, 1LL << 40, &n) == -1)
				cfg_error(@3.first_line, "bad size \"%s\" for "
				    "message-size: a number of bytes with an "
				    "optional K, M or G, at most 1024G", $3);
			else
				p.conf->max_message_size = (size_t)n;
			free($3);
		}
		| LIMIT RECIPIENTS STRING	{
			long long	n;

			if (parse_count(@3.first_line, "limit recipients", $3,
			    1, 100000, &n) == 0)
				p.conf->max_rcpt = (int)n;
			free($3);
		}
		| LIMIT TIMEOUT STRING		{
			long long	n;

			if (parse_duration($3, &n) == -1 || n < 1 ||
			    n > 3600)
				cfg_error(@3.first_line, "bad duration \"%s\" "
				    "for timeout: 1s to 1h, a number of "
				    "seconds or with s, m or h", $3);
			else
				p.conf->smtp_timeout = (time_t)n;
			free($3);
		}
		| SANDBOX ON			{ p.conf->sandbox = 1; }
		| SANDBOX OFF			{ p.conf->sandbox = 0; }
		| TABLE STRING			{
			table_begin(@2.first_line, $2);
			$2 = NULL;	/* consumed: not for %destructor */
		}
		  tablesrc			{ table_end(); }
		| ACTION STRING actiontype pathopt aliasopt {
			add_action(@2.first_line, $2, $3, @4.first_line, $4,
			    @5.first_line, $5);
		}
		| MATCH				{ match_begin(); }
		  matchopts matchend
		| ACTION STRING RELAY		{
			relay_begin(@2.first_line, $2);
			$2 = NULL;	/* consumed */
		}
		  relayopts			{ relay_end(); }
		| RESOLVER STRING		{
			add_resolver(@2.first_line, $2);
			free($2);
		}
		| RELAY TIMEOUT STRING STRING	{
			set_relay_timeout(@3.first_line, $3, $4);
			free($3);
			free($4);
		}
		| RELAY PORT STRING		{
			long long	n;

			if (parse_count(@3.first_line, "relay port", $3, 1,
			    65535, &n) == 0)
				p.conf->relay_port = (int)n;
			free($3);
		}
		| RELAY CONNECTIONS STRING	{
			long long	n;

			if (parse_count(@3.first_line, "relay connections", $3,
			    1, 1000, &n) == 0)
				p.conf->relay_connections = (int)n;
			free($3);
		}
		;

relayopts	: %empty
		| relayopts relayopt
		;

listenopts	: %empty
		| listenopts listenopt
		;

listenopt	: PORT STRING			{
			listen_port(@2.first_line, $2);
			free($2);
		}
		| TLS				{ listen_flag(@1.first_line, LISTEN_TLS); }
		| TLSREQUIRE			{
			listen_flag(@1.first_line, LISTEN_TLS | LISTEN_TLS_REQUIRE);
		}
		| SMTPS				{ listen_flag(@1.first_line, LISTEN_SMTPS); }
		| PKI STRING			{
			listen_pki(@2.first_line, $2);
			free($2);
		}
		| AUTH '<' STRING '>'		{
			listen_table(@3.first_line, LISTEN_AUTH, $3);
			free($3);
		}
		| AUTHOPTIONAL '<' STRING '>'	{
			listen_table(@3.first_line, LISTEN_AUTH_OPTIONAL, $3);
			free($3);
		}
		| AUTHPLAINTEXT			{
			listen_flag(@1.first_line, LISTEN_AUTH_PLAINTEXT);
		}
		| SUBMISSION			{
			listen_flag(@1.first_line, LISTEN_SUBMISSION);
		}
		| PROXYPROTOCOL			{ listen_flag(@1.first_line, LISTEN_PROXY); }
		| XCLIENT '<' STRING '>'	{
			listen_table(@3.first_line, 0, $3);
			free($3);
		}
		| NORMALIZE			{
			listen_flag(@1.first_line, LISTEN_NORMALIZE);
		}
		;

mongoopts	: %empty
		| mongoopts mongoopt
		;

mongoopt	: ALIAS '<' STRING '>'		{
			mongo_table(@3.first_line, 0, $3);
			free($3);
		}
		| STRING '<' STRING '>'		{
			/* Not a keyword: "users" is a likely table name. */
			if (strcmp($1, "users") == 0)
				mongo_table(@3.first_line, 1, $3);
			else
				cfg_error(@1.first_line, "unknown mongo action "
				    "option \"%.64s\": alias or users", $1);
			free($1);
			free($3);
		}
		;

relayopt	: HOST STRING			{
			relay_host(@2.first_line, $2);
			free($2);
		}
		| AUTH '<' STRING '>'		{
			relay_auth(@3.first_line, $3);
			free($3);
		}
		| BACKUP			{ relay_backup(@1.first_line, NULL); }
		| BACKUP MX STRING		{
			relay_backup(@3.first_line, $3);
			free($3);
		}
		| HELO STRING			{
			relay_helo(@2.first_line, $2);
			free($2);
		}
		| SRC STRING			{
			relay_src(@2.first_line, $2);
			free($2);
		}
		| TLS STRING			{
			relay_tls(@2.first_line, $2);
			free($2);
		}
		| TLS OFF			{ relay_tls(@2.first_line, "no"); }
		| CA STRING			{
			relay_ca(@2.first_line, $2);
			free($2);
		}
		;

retrymax	: %empty			{ $$ = NULL; }
		| MAX STRING			{ $$ = $2; }
		;

groupopt	: %empty			{ $$ = NULL; }
		| GROUP STRING			{ $$ = $2; }
		;

proc		: SMTP				{ $$ = PROC_SMTP; }
		| QUEUE				{ $$ = PROC_QUEUE; }
		| DELIVER			{ $$ = PROC_DELIVER; }
		| POLICY			{ $$ = PROC_POLICY; }
		;

tablesrc	: STRING			{ table_file(@1.first_line, $1); }
		| '{' tableitems optcomma '}'
		| '{' '}'
		;

tableitems	: tableitem
		| tableitems ',' tableitem
		;

optcomma	: %empty
		| ','
		;

tableitem	: STRING			{
			table_item(@1.first_line, $1, NULL);
		}
		| STRING '=' STRING		{
			table_item(@1.first_line, $1, $3);
		}
		;

actiontype	: MBOX				{ $$ = ACTION_MBOX; }
		| MAILDIR			{ $$ = ACTION_MAILDIR; }
		;

pathopt		: %empty			{ $$ = NULL; }
		| STRING			{ $$ = $1; }
		;

aliasopt	: %empty			{ $$ = NULL; }
		| ALIAS '<' STRING '>'		{ $$ = $3; }
		;

matchopts	: %empty
		| matchopts neg FROM fromspec	{
			match_from(@3.first_line, $2, $4.kind, $4.table);
		}
		| matchopts neg FOR forspec	{
			match_for(@3.first_line, $2, $4.kind, $4.table);
		}
		;

neg		: %empty			{ $$ = 0; }
		| '!'				{ $$ = 1; }
		;

fromspec	: ANY				{ $$.kind = FROM_ANY; $$.table = NULL; }
		| LOCAL				{ $$.kind = FROM_LOCAL; $$.table = NULL; }
		| AUTH				{ $$.kind = FROM_AUTH; $$.table = NULL; }
		| AUTH '<' STRING '>'		{
			$$.kind = FROM_AUTH;
			$$.table = table_ref(@3.first_line, $3);
			free($3);
		}
		| SRC '<' STRING '>'		{
			$$.kind = FROM_SRC;
			$$.table = table_ref(@3.first_line, $3);
			src_table_check(@3.first_line, $$.table);
			free($3);
		}
		| SRC STRING			{
			$$.kind = FROM_SRC;
			$$.table = NULL;
			if (!net_is_valid($2))
				cfg_error(@2.first_line, "bad address or "
				    "network \"%s\"", $2);
			else
				$$.table = table_anon(@2.first_line, "src",
				    $2);
			free($2);
		}
		;

forspec		: ANY				{ $$.kind = FOR_ANY; $$.table = NULL; }
		| LOCAL				{ $$.kind = FOR_LOCAL; $$.table = NULL; }
		| DOMAIN '<' STRING '>'		{
			$$.kind = FOR_DOMAIN;
			$$.table = table_ref(@3.first_line, $3);
			free($3);
		}
		| DOMAIN STRING			{
			const char	*d = $2;

			$$.kind = FOR_DOMAIN;
			$$.table = NULL;
			/* "*.example.org" and ".example.org": subdomains */
			if (d[0] == '*' && d[1] == '.')
				d += 2;
			else if (d[0] == '.')
				d++;
			if (!domain_is_valid(d, 0))
				cfg_error(@2.first_line, "bad domain \"%s\"",
				    $2);
			else
				$$.table = table_anon(@2.first_line, "domain",
				    $2);
			free($2);
		}
		| RCPT '<' STRING '>'		{
			$$.kind = FOR_RCPT;
			$$.table = table_ref(@3.first_line, $3);
			free($3);
		}
		;

matchend	: ACTION STRING			{ match_end(@2.first_line, 0, $2); }
		| REJECT			{ match_end(@1.first_line, 1, NULL); }
		;

%%

struct keyword {
	const char	*name;
	int		 token;
};

/* Sorted by name: looked up with bsearch. */
static const struct keyword keywords[] = {
	{ "action",		ACTION },
	{ "alias",		ALIAS },
	{ "any",		ANY },
	{ "auth",		AUTH },
	{ "auth-optional",	AUTHOPTIONAL },
	{ "auth-plaintext",	AUTHPLAINTEXT },
	{ "backup",		BACKUP },
	{ "ca",			CA },
	{ "cert",		CERT },
	{ "chroot",		CHROOT },
	{ "concurrency",	CONCURRENCY },
	{ "connections",	CONNECTIONS },
	{ "control",		CONTROL },
	{ "delay-warning",	DELAYWARNING },
	{ "deliver",		DELIVER },
	{ "destination-concurrency", DESTCONCURRENCY },
	{ "domain",		DOMAIN },
	{ "for",		FOR },
	{ "from",		FROM },
	{ "group",		GROUP },
	{ "helo",		HELO },
	{ "host",		HOST },
	{ "hostname",		HOSTNAME },
	{ "key",		KEY },
	{ "lifetime",		LIFETIME },
	{ "limit",		LIMIT },
	{ "listen",		LISTEN },
	{ "local",		LOCAL },
	{ "maildir",		MAILDIR },
	{ "match",		MATCH },
	{ "max",		MAX },
	{ "mbox",		MBOX },
	{ "message-size",	MESSAGESIZE },
	{ "min",		MIN },
	{ "min-free",		MINFREE },
	{ "mongo",		MONGO },
	{ "mx",			MX },
	{ "normalize",		NORMALIZE },
	{ "off",		OFF },
	{ "on",			ON },
	{ "path",		PATH },
	{ "pidfile",		PIDFILE },
	{ "pki",		PKI },
	{ "policy",		POLICY },
	{ "port",		PORT },
	{ "proxy-protocol",	PROXYPROTOCOL },
	{ "queue",		QUEUE },
	{ "rcpt",		RCPT },
	{ "recipients",		RECIPIENTS },
	{ "reject",		REJECT },
	{ "relay",		RELAY },
	{ "resolver",		RESOLVER },
	{ "retry",		RETRY },
	{ "sandbox",		SANDBOX },
	{ "smtp",		SMTP },
	{ "smtps",		SMTPS },
	{ "socket",		SOCKET },
	{ "src",		SRC },
	{ "store",		STORE },
	{ "submission",		SUBMISSION },
	{ "submit",		SUBMIT },
	{ "table",		TABLE },
	{ "timeout",		TIMEOUT },
	{ "tls",		TLS },
	{ "tls-require",	TLSREQUIRE },
	{ "user",		USER },
	{ "workers",		WORKERS },
	{ "xclient",		XCLIENT },
};

static int
kw_cmp(const void *k, const void *e)
{
	return strcmp(k, ((const struct keyword *)e)->name);
}

static int
lookup(const char *s)
{
	const struct keyword	*kw;

	kw = bsearch(s, keywords, sizeof(keywords) / sizeof(keywords[0]),
	    sizeof(keywords[0]), kw_cmp);
	return kw != NULL ? kw->token : STRING;
}

/* ---- errors ------------------------------------------------------------- */

static void
errv_push(char *s)
{
	char	**v;

	p.nerrors++;
	if (p.errn > ERRORS_MAX) {
		free(s);
		return;
	}
	if ((v = reallocarray(p.errv, p.errn + 1, sizeof(*v))) == NULL) {
		/* Still counted, so the parse fails; only the text is lost. */
		free(s);
		return;
	}
	p.errv = v;
	if (p.errn == ERRORS_MAX) {
		free(s);
		if (asprintf(&s, "%s: too many errors, the rest are not shown",
		    p.path) == -1)
			s = NULL;
	}
	p.errv[p.errn++] = s;
}

static void
cfg_verror(const char *file, int line, const char *fmt, va_list ap)
{
	char	 msg[1024];
	char	*s;

	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	if (line > 0) {
		if (asprintf(&s, "%s:%d: %s", file, line, msg) == -1)
			s = NULL;
	} else if (asprintf(&s, "%s: %s", file, msg) == -1)
		s = NULL;
	errv_push(s);
}

static void
cfg_error(int line, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	cfg_verror(p.path, line, fmt, ap);
	va_end(ap);
}

static void
cfg_error_file(const char *file, int line, const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	cfg_verror(file, line, fmt, ap);
	va_end(ap);
}

/* yyerror is only called by bison for "memory exhausted". */
static void
yyerror(YYLTYPE *loc, const char *msg)
{
	cfg_error(loc->first_line, "%s", msg);
}

/* How a grammar symbol reads in a message. */
static const char *
symbol_text(yysymbol_kind_t kind, char *buf, size_t bufsz)
{
	const char	*name = yysymbol_name(kind);

	switch (kind) {
	case YYSYMBOL_YYEOF:
		return "end of file";
	case YYSYMBOL_STRING:
		return "a string";
	default:
		break;
	}
	if (strcmp(name, "'\\n'") == 0)
		return "end of line";
	if (name[0] == '\'' && strlen(name) == 3) {
		(void)snprintf(buf, bufsz, "\"%c\"", name[1]);
		return buf;
	}
	(void)snprintf(buf, bufsz, "\"%s\"", name);
	return buf;
}

static int
yyreport_syntax_error(const yypcontext_t *ctx)
{
	yysymbol_kind_t	 tok = yypcontext_token(ctx);
	yysymbol_kind_t	 expected[5];
	const YYLTYPE	*loc = yypcontext_location(ctx);
	char		 msg[512], what[WORD_SHOW_MAX + 8], buf[32];
	int		 n, i, want_string = 0, keyword;

	/* Whatever was open cannot be trusted to close: recover per line. */
	p.braces = p.angle = 0;
	if (tok == YYSYMBOL_ERROR)
		return 0;	/* the lexer has said what was wrong */
	keyword = tok >= YYSYMBOL_ACTION && tok <= YYSYMBOL_WORKERS;
	if (tok == YYSYMBOL_STRING && p.word_first && !p.word_quoted) {
		cfg_error(loc->first_line, "unknown keyword \"%s\"", p.word);
		return 0;
	}
	if (tok == YYSYMBOL_STRING)
		(void)snprintf(what, sizeof(what), "\"%s\"", p.word);
	else if (tok == YYSYMBOL_YYEOF ||
	    (p.at_eof && strcmp(yysymbol_name(tok), "'\\n'") == 0))
		(void)strlcpy(what, "end of file", sizeof(what));
	else
		(void)strlcpy(what, symbol_text(tok, buf, sizeof(buf)),
		    sizeof(what));
	(void)snprintf(msg, sizeof(msg), "syntax error: unexpected %s", what);

	n = yypcontext_expected_tokens(ctx, expected, 5);
	if (n < 0)
		n = 0;	/* more than 5: too many to be useful */
	for (i = 0; i < n; i++) {
		if (expected[i] == YYSYMBOL_STRING)
			want_string = 1;
		(void)strlcat(msg, i == 0 ? ", expecting " :
		    i == n - 1 ? " or " : ", ", sizeof(msg));
		(void)strlcat(msg, symbol_text(expected[i], buf, sizeof(buf)),
		    sizeof(msg));
	}
	if (keyword && want_string)
		(void)strlcat(msg, " (a keyword: write it in double quotes "
		    "to use it as a name)", sizeof(msg));
	cfg_error(loc->first_line, "%s", msg);
	return 0;
}

/* ---- lexer -------------------------------------------------------------- */

static int
rawc(void)
{
	int	c;

	if (p.nunget > 0)
		return p.unget[--p.nunget];
	if (p.fp != NULL) {
		if ((c = getc(p.fp)) == EOF && ferror(p.fp) && !p.readerr) {
			p.readerr = 1;
			cfg_error(p.lineno, "read error: %s", strerror(errno));
		}
		return c;
	}
	if (p.text == NULL || p.text[p.pos] == '\0')
		return EOF;
	return (unsigned char)p.text[p.pos++];
}

static void
lungetc(int c)
{
	if (c != EOF && p.nunget < (int)(sizeof(p.unget) / sizeof(p.unget[0])))
		p.unget[p.nunget++] = c;
}

/* A character, with backslash-newline joining lines. */
static int
lgetc(void)
{
	int	c, next;

	for (;;) {
		if ((c = rawc()) != '\\')
			return c;
		if ((next = rawc()) != '\n') {
			lungetc(next);
			return c;
		}
		p.lineno++;
	}
}

static void
lex_reset(void)
{
	p.braces = 0;
	p.angle = 0;
}

/* After a syntax error: drop what the broken statement had built. */
static void
stmt_abort(void)
{
	lex_reset();
	if (p.tbl != NULL) {
		table_free(p.tbl);
		p.tbl = NULL;
	}
	free(p.ra);
	p.ra = NULL;
	free(p.ma);
	p.ma = NULL;
}

static int
is_word_char(int c)
{
	if (c == EOF || c > 0x7e || c <= ' ')
		return 0;
	return strchr("{}<>!=,#\"()", c) == NULL;
}

static void
word_set(const char *s, int quoted)
{
	size_t	i;

	for (i = 0; s[i] != '\0' && i < WORD_SHOW_MAX; i++)
		p.word[i] = isprint((unsigned char)s[i]) ? s[i] : '?';
	p.word[i] = '\0';
	p.word_quoted = quoted;
}

/* Reads the rest of a quoted string; -1 after reporting why not. */
static int
lex_quoted(char *buf, size_t bufsz, int line)
{
	size_t	n = 0;
	int	c, next, toolong = 0;

	for (;;) {
		c = lgetc();
		if (c == EOF || c == '\n') {
			lungetc(c);
			cfg_error(line, "unterminated quoted string");
			return -1;
		}
		if (c == '"')
			break;
		if (c == '\\') {
			next = lgetc();
			if (next == '"' || next == '\\')
				c = next;
			else
				lungetc(next);
		}
		if (c == '\0') {
			cfg_error(line, "NUL byte in quoted string");
			toolong = -1;
			continue;
		}
		if (n + 1 >= bufsz) {
			if (toolong == 0)
				cfg_error(line, "string too long (at most %zu "
				    "bytes)", bufsz - 1);
			toolong = -1;
			continue;
		}
		buf[n++] = (char)c;
	}
	buf[n] = '\0';
	return toolong;
}

static int
lex_token(YYSTYPE *lval, YYLTYPE *lloc)
{
	char	 buf[STRING_MAX];
	size_t	 n;
	int	 c, tok, line;

top:
	while ((c = lgetc()) == ' ' || c == '\t' || c == '\r')
		;
	if (c == '#')
		while ((c = lgetc()) != '\n' && c != EOF)
			;
	line = p.lineno;
	lloc->first_line = lloc->last_line = line;
	lloc->first_column = lloc->last_column = 0;
	p.word_first = p.ntokline == 0;

	switch (c) {
	case EOF:
		lloc->first_line = lloc->last_line = p.lastline;
		if (p.ntokline > 0 || p.braces > 0) {
			/* Ends the last line when the file does not. */
			p.ntokline = 0;
			p.braces = p.angle = 0;
			p.at_eof = 1;
			return '\n';
		}
		return 0;
	case '\n':
		p.lineno++;
		p.angle = 0;
		if (p.braces > 0)
			goto top;
		p.ntokline = 0;
		p.lastline = line;
		return '\n';
	case '{':
		p.braces++;
		break;
	case '}':
		if (p.braces > 0)
			p.braces--;
		break;
	case '<':
		p.angle = 1;
		break;
	case '>':
		p.angle = 0;
		break;
	case '"':
		p.ntokline++;
		p.lastline = line;
		if (lex_quoted(buf, sizeof(buf), line) == -1)
			return ERROR;
		word_set(buf, 1);
		if ((lval->string = strdup(buf)) == NULL) {
			cfg_error(line, "%s", strerror(errno));
			return ERROR;
		}
		return STRING;
	default:
		break;
	}
	p.ntokline++;
	p.lastline = line;
	if (c == '{' || c == '}' || c == '<' || c == '>' || c == ',' ||
	    c == '=' || c == '!') {
		p.word[0] = (char)c;
		p.word[1] = '\0';
		return c;
	}
	if (!is_word_char(c)) {
		if (isprint(c))
			cfg_error(line, "unexpected character '%c'", c);
		else
			cfg_error(line, "unexpected character \\x%02x", c);
		return ERROR;
	}

	n = 0;
	do {
		if (n + 1 < sizeof(buf))
			buf[n] = (char)c;
		n++;
	} while (is_word_char(c = lgetc()));
	lungetc(c);
	if (n >= sizeof(buf)) {
		cfg_error(line, "string too long (at most %zu bytes)",
		    sizeof(buf) - 1);
		return ERROR;
	}
	buf[n] = '\0';
	word_set(buf, 0);
	if (p.braces == 0 && p.angle == 0 && (tok = lookup(buf)) != STRING)
		return tok;
	if ((lval->string = strdup(buf)) == NULL) {
		cfg_error(line, "%s", strerror(errno));
		return ERROR;
	}
	return STRING;
}

static int
yylex(YYSTYPE *lval, YYLTYPE *lloc)
{
	return lex_token(lval, lloc);
}

/* ---- values ------------------------------------------------------------- */

/* A decimal number in [min, max]; -1 if it is not one. */
static int
parse_uint(const char *s, long long min, long long max, long long *out)
{
	const char	*errstr = NULL;
	long long	 n;

	if (*s == '\0' || strspn(s, "0123456789") != strlen(s))
		return -1;
	n = strtonum(s, min, max, &errstr);
	if (errstr != NULL)
		return -1;
	*out = n;
	return 0;
}

/*
 * A number with an optional one-letter unit from `units`, each worth `base`
 * times the one before it ("KMG" with 1024), or for durations a fixed list.
 */
static int
parse_scaled(const char *s, const char *units, long long base,
    long long max, long long *out)
{
	char		 num[32];
	const char	*u;
	size_t		 n = strspn(s, "0123456789");
	long long	 v, mult = 1;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	if (s[n] != '\0') {
		if (s[n + 1] != '\0' ||
		    (u = strchr(units, toupper((unsigned char)s[n]))) == NULL)
			return -1;
		for (; u >= units; u--)
			mult *= base;
	}
	if (parse_uint(num, 0, max, &v) == -1 || v > max / mult)
		return -1;
	v *= mult;
	if (v < 1)
		return -1;
	*out = v;
	return 0;
}

static int
parse_duration(const char *s, long long *out)
{
	static const struct { char unit; long long secs; } units[] = {
		{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }
	};
	char		 num[32];
	size_t		 n = strspn(s, "0123456789"), i;
	long long	 v, mult = 1;
	const long long	 max = 365LL * 86400;

	if (n == 0 || n >= sizeof(num))
		return -1;
	memcpy(num, s, n);
	num[n] = '\0';
	if (s[n] != '\0') {
		if (s[n + 1] != '\0')
			return -1;
		for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
			if (units[i].unit == s[n])
				break;
		if (i == sizeof(units) / sizeof(units[0]))
			return -1;
		mult = units[i].secs;
	}
	if (parse_uint(num, 1, max, &v) == -1 || v > max / mult)
		return -1;
	*out = v * mult;
	return 0;
}

static int
parse_count(int line, const char *what, const char *s, long long min,
    long long max, long long *out)
{
	if (parse_uint(s, min, max, out) == 0)
		return 0;
	cfg_error(line, "bad number \"%s\" for %s: from %lld to %lld", s, what,
	    min, max);
	return -1;
}

/* Table and action names: what a log line or envelope can carry as is. */
static int
name_is_valid(const char *s)
{
	if (*s == '\0')
		return 0;
	for (; *s != '\0'; s++)
		if (!isalnum((unsigned char)*s) && strchr("-_.", *s) == NULL)
			return 0;
	return 1;
}

/* An IPv4/IPv6 address, or one with a /prefix length. */
static int
net_is_valid(const char *s)
{
	char		 base[INET6_ADDRSTRLEN + 1];
	unsigned char	 a[sizeof(struct in6_addr)];
	const char	*slash = strchr(s, '/');
	long long	 plen;
	size_t		 n = slash != NULL ? (size_t)(slash - s) : strlen(s);
	int		 v4;

	if (n >= sizeof(base))
		return 0;
	memcpy(base, s, n);
	base[n] = '\0';
	if (inet_pton(AF_INET, base, a) == 1)
		v4 = 1;
	else if (inet_pton(AF_INET6, base, a) == 1)
		v4 = 0;
	else
		return 0;
	if (slash == NULL)
		return 1;
	return parse_uint(slash + 1, 0, v4 ? 32 : 128, &plen) == 0;
}

static int
path_check(int line, const char *what, const char *s, char *out, size_t outsz)
{
	if (s[0] != '/') {
		cfg_error(line, "%s \"%s\": not an absolute path", what, s);
		return -1;
	}
	if (strlcpy(out, s, outsz) >= outsz) {
		cfg_error(line, "%s: path too long", what);
		return -1;
	}
	return 0;
}

static int
user_check(int line, const char *what, const char *s)
{
	const char	*c;

	if (*s == '\0' || strlen(s) >= USER_MAX) {
		cfg_error(line, "bad %s name \"%s\": 1 to %d characters", what,
		    s, USER_MAX - 1);
		return -1;
	}
	for (c = s; *c != '\0'; c++)
		if (!isprint((unsigned char)*c) || *c == ' ' || *c == ':' ||
		    *c == '/') {
			cfg_error(line, "bad %s name \"%s\"", what, s);
			return -1;
		}
	return 0;
}

/* ---- statements ----------------------------------------------------------- */

static void
set_hostname(int line, char *name)
{
	if (strlen(name) >= sizeof(p.conf->hostname) ||
	    !domain_is_valid(name, 0) || name[0] == '[')
		cfg_error(line, "bad hostname \"%s\"", name);
	else
		(void)strlcpy(p.conf->hostname, name,
		    sizeof(p.conf->hostname));
	free(name);
}

static struct listener *
add_listener(int line, const char *addr, int port)
{
	struct listener		*l, *o;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;
	const char		*a = addr;

	if (strcmp(a, "localhost") == 0)
		a = "127.0.0.1";
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		cfg_error(line, "%s", strerror(errno));
		return NULL;
	}
	sin = (struct sockaddr_in *)&l->ss;
	sin6 = (struct sockaddr_in6 *)&l->ss;
	if (inet_pton(AF_INET, a, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)(port > 0 ? port : 0));
		l->sslen = sizeof(*sin);
		(void)inet_ntop(AF_INET, &sin->sin_addr, l->addr,
		    sizeof(l->addr));
	} else if (inet_pton(AF_INET6, a, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)(port > 0 ? port : 0));
		l->sslen = sizeof(*sin6);
		(void)inet_ntop(AF_INET6, &sin6->sin6_addr, l->addr,
		    sizeof(l->addr));
	} else {
		cfg_error(line, "bad listen address \"%s\": an IPv4 or IPv6 "
		    "address, \"localhost\" or any", addr);
		free(l);
		return NULL;
	}
	if (port <= 0) {	/* already reported */
		free(l);
		return NULL;
	}
	l->port = port;
	l->fd = -1;
	l->lineno = line;
	TAILQ_FOREACH(o, &p.conf->listeners, entry)
		if (o->port == l->port && strcmp(o->addr, l->addr) == 0 &&
		    o->ss.ss_family == l->ss.ss_family) {
			cfg_error(line, "listen on %s port %d: already given "
			    "on line %d", l->addr, port, o->lineno);
			free(l);
			return NULL;
		}
	TAILQ_INSERT_TAIL(&p.conf->listeners, l, entry);
	return l;
}


/*
 * `listen on ADDR OPTIONS`: the options are collected first, since `port`
 * may come after the others and `any` makes two listeners of one line.
 */
static void
listen_begin(int line, const char *addr)
{
	p.l_line = line;
	p.l_naddr = 0;
	p.l_port = 0;
	p.l_flags = 0;
	p.l_pki[0] = '\0';
	p.l_pki_line = 0;
	p.l_auth = NULL;
	p.l_xclient = NULL;
	p.l_bad = 0;
	if (addr == NULL) {
		(void)strlcpy(p.l_addr[0], "0.0.0.0", sizeof(p.l_addr[0]));
		(void)strlcpy(p.l_addr[1], "::", sizeof(p.l_addr[1]));
		p.l_naddr = 2;
	} else if (strlcpy(p.l_addr[0], addr, sizeof(p.l_addr[0])) >=
	    sizeof(p.l_addr[0])) {
		cfg_error(line, "bad listen address \"%.64s\": an IPv4 or IPv6 "
		    "address, \"localhost\" or any", addr);
		p.l_bad = 1;
	} else
		p.l_naddr = 1;
}

static void
listen_port(int line, const char *s)
{
	long long	n;

	if (p.l_port != 0) {
		cfg_error(line, "listen: port given twice");
		p.l_bad = 1;
	} else if (parse_uint(s, 1, 65535, &n) == -1) {
		cfg_error(line, "bad port \"%s\": a number from 1 to 65535", s);
		p.l_bad = 1;
	} else
		p.l_port = (int)n;
}

static void
listen_flag(int line, int flag)
{
	p.l_flags |= flag;
}

static void
listen_pki(int line, const char *name)
{
	if (strlcpy(p.l_pki, name, sizeof(p.l_pki)) >= sizeof(p.l_pki)) {
		cfg_error(line, "pki name too long");
		p.l_bad = 1;
	}
	p.l_pki_line = line;
}

/* flag: LISTEN_AUTH or LISTEN_AUTH_OPTIONAL with the credentials, or 0
 * for the table of addresses allowed to use XCLIENT. */
static void
listen_table(int line, int flag, const char *name)
{
	struct table	*t = table_ref(line, name);

	if (flag == 0) {
		p.l_xclient = t;
		src_table_check(line, t);
		return;
	}
	if (p.l_flags & (LISTEN_AUTH | LISTEN_AUTH_OPTIONAL)) {
		cfg_error(line, "listen: auth and auth-optional given twice or "
		    "together");
		p.l_bad = 1;
	}
	p.l_flags |= flag;
	p.l_auth = t;
}

static struct pki *
pki_find(const char *name)
{
	struct pki	*k;

	TAILQ_FOREACH(k, &p.conf->pkis, entry)
		if (strcmp(k->name, name) == 0)
			return k;
	return NULL;
}

/* The listener's pki: named, else the one named as the host, else the
 * only one. */
static struct pki *
listen_find_pki(void)
{
	struct pki	*k;

	if (p.l_pki[0] != '\0') {
		if ((k = pki_find(p.l_pki)) == NULL)
			cfg_error(p.l_pki_line, "listen: no pki \"%s\" (a pki "
			    "must be defined before it is used)", p.l_pki);
		return k;
	}
	if ((k = pki_find(p.conf->hostname)) != NULL)
		return k;
	k = TAILQ_FIRST(&p.conf->pkis);
	if (k == NULL)
		cfg_error(p.l_line, "listen: tls, tls-require and smtps need a "
		    "certificate: define `pki NAME cert FILE` and `pki NAME "
		    "key FILE` first");
	else if (TAILQ_NEXT(k, entry) != NULL) {
		cfg_error(p.l_line, "listen: several pki are defined: say "
		    "which with `pki NAME`");
		k = NULL;
	}
	return k;
}

static int
listen_check(void)
{
	int	f = p.l_flags;

	if ((f & LISTEN_SMTPS) && (f & LISTEN_TLS)) {
		cfg_error(p.l_line, "listen: smtps is TLS from the first byte; "
		    "tls and tls-require (STARTTLS) do not apply to it");
		return -1;
	}
	if ((f & LISTEN_AUTH_PLAINTEXT) &&
	    !(f & (LISTEN_AUTH | LISTEN_AUTH_OPTIONAL))) {
		cfg_error(p.l_line, "listen: auth-plaintext needs auth <table> "
		    "or auth-optional <table>");
		return -1;
	}
	if ((f & LISTEN_SUBMISSION) && !(f & LISTEN_AUTH)) {
		cfg_error(p.l_line, "listen: a submission listener requires "
		    "AUTH: add auth <table>");
		return -1;
	}
	if ((f & (LISTEN_AUTH | LISTEN_AUTH_OPTIONAL)) &&
	    !(f & (LISTEN_TLS | LISTEN_SMTPS | LISTEN_AUTH_PLAINTEXT |
	    LISTEN_SUBMISSION))) {
		cfg_error(p.l_line, "listen: AUTH is only offered under TLS: "
		    "add tls, tls-require or smtps (or auth-plaintext to offer "
		    "it in the clear)");
		return -1;
	}
	return 0;
}

static void
listen_end(void)
{
	struct listener	*l;
	struct pki	*k = NULL;
	int		 i, port = p.l_port;

	if (p.l_bad || listen_check() == -1)
		return;
	/* Submission without smtps: STARTTLS before anything else. */
	if ((p.l_flags & LISTEN_SUBMISSION) &&
	    !(p.l_flags & (LISTEN_SMTPS | LISTEN_AUTH_PLAINTEXT)))
		p.l_flags |= LISTEN_TLS | LISTEN_TLS_REQUIRE;
	if ((p.l_flags & (LISTEN_TLS | LISTEN_SMTPS)) &&
	    (k = listen_find_pki()) == NULL)
		return;
	if (port == 0)
		port = (p.l_flags & LISTEN_SMTPS) ? 465 :
		    (p.l_flags & LISTEN_SUBMISSION) ? 587 : 25;
	for (i = 0; i < p.l_naddr; i++) {
		if ((l = add_listener(p.l_line, p.l_addr[i], port)) == NULL)
			continue;
		l->flags = p.l_flags;
		l->pki = k;
		l->auth = p.l_auth;
		l->xclient = p.l_xclient;
	}
}

static void
pki_set(int line, const char *name, const char *what, const char *file)
{
	struct pki	*k;
	char		*dst;

	if (strlen(name) >= PKI_NAME_MAX || name[0] == '\0') {
		cfg_error(line, "bad pki name \"%.64s\"", name);
		return;
	}
	if ((k = pki_find(name)) == NULL) {
		if ((k = calloc(1, sizeof(*k))) == NULL) {
			cfg_error(line, "%s", strerror(errno));
			return;
		}
		(void)strlcpy(k->name, name, sizeof(k->name));
		k->lineno = line;
		TAILQ_INSERT_TAIL(&p.conf->pkis, k, entry);
	}
	dst = strcmp(what, "cert") == 0 ? k->cert : k->key;
	if (dst[0] != '\0')
		cfg_error(line, "pki %s: %s given twice", name, what);
	else
		(void)path_check(line, what, file, dst, PATH_MAX);
}

/*
 * Each pki has both halves, and they load and match: `mtad -n` says so
 * rather than the first TLS handshake.
 */
static void
pki_check_all(void)
{
	struct pki	*k;
	char		 err[256];

	TAILQ_FOREACH(k, &p.conf->pkis, entry) {
		if (k->cert[0] == '\0' || k->key[0] == '\0') {
			cfg_error(k->lineno, "pki %s: needs both cert and key",
			    k->name);
			continue;
		}
		if (p.flags & CONFIG_SKIP_TABLE_FILES)
			continue;
		if (pki_load_check(k->cert, k->key, err, sizeof(err)) == -1)
			cfg_error(k->lineno, "pki %s: %s", k->name, err);
	}
}

/* `limit NAME VALUE` for the SMTP server's limits (mtad.conf(5)). */
static void
set_limit(int line, const char *name, const char *value)
{
	static const struct {
		const char	*name;
		int		 duration;	/* else a count */
		long long	 min, max;
	} limits[] = {
		{ "auth-failures",	0, 0, 100000 },
		{ "connection-rate",	0, 0, 1000000 },
		{ "connections",	0, 0, 1000000 },
		{ "connections-per-ip",	0, 0, 1000000 },
		{ "data-timeout",	1, 1, 3600 },
		{ "errors",		0, 1, 1000 },
		{ "greeting-delay",	1, 0, 300 },
		{ "line-length",	0, 512, 65536 },
		{ "sessions",		0, 1, 1000000 },
	};
	long long	 n;
	size_t		 i;

	for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++)
		if (strcmp(name, limits[i].name) == 0)
			break;
	if (i == sizeof(limits) / sizeof(limits[0])) {
		cfg_error(line, "unknown limit \"%.64s\": message-size, "
		    "recipients, timeout, data-timeout, errors, line-length, "
		    "sessions, connections, connections-per-ip, "
		    "connection-rate, auth-failures or greeting-delay", name);
		return;
	}
	if (limits[i].duration) {
		if ((strcmp(value, "0") == 0 ? (n = 0, 0) :
		    parse_duration(value, &n)) == -1 || n < limits[i].min ||
		    n > limits[i].max) {
			cfg_error(line, "bad duration \"%s\" for limit %s: %llds "
			    "to %llds, a number of seconds or with s, m or h",
			    value, name, limits[i].min, limits[i].max);
			return;
		}
	} else if (parse_count(line, name, value, limits[i].min,
	    limits[i].max, &n) == -1)
		return;
	if (strcmp(name, "auth-failures") == 0)
		p.conf->auth_failures = (int)n;
	else if (strcmp(name, "connection-rate") == 0)
		p.conf->conn_rate = (int)n;
	else if (strcmp(name, "connections") == 0)
		p.conf->max_conn = (int)n;
	else if (strcmp(name, "connections-per-ip") == 0)
		p.conf->max_conn_per_ip = (int)n;
	else if (strcmp(name, "data-timeout") == 0)
		p.conf->data_timeout = (time_t)n;
	else if (strcmp(name, "errors") == 0)
		p.conf->max_errors = (int)n;
	else if (strcmp(name, "greeting-delay") == 0)
		p.conf->greeting_delay = (time_t)n;
	else if (strcmp(name, "line-length") == 0)
		p.conf->max_line = (size_t)n;
	else if (strcmp(name, "sessions") == 0)
		p.conf->sessions_per_worker = (int)n;
}

/* `store mongo "URI"`, `store inline-max SIZE`, `store quota SIZE`. */
static void
store_set(int line, const char *what, const char *value)
{
	long long	n;

	if (strcmp(what, "mongo") == 0) {
		if (strncmp(value, "mongodb://", 10) != 0 &&
		    strncmp(value, "mongodb+srv://", 14) != 0)
			cfg_error(line, "store mongo: \"%.64s\" is not a "
			    "mongodb:// URI", value);
		else if (strlcpy(p.conf->store_uri, value,
		    sizeof(p.conf->store_uri)) >= sizeof(p.conf->store_uri))
			cfg_error(line, "store mongo: URI too long");
		return;
	}
	if (strcmp(what, "inline-max") != 0 && strcmp(what, "quota") != 0) {
		cfg_error(line, "unknown store option \"%.64s\": mongo, "
		    "inline-max or quota", what);
		return;
	}
	if (strcmp(value, "0") == 0)
		n = 0;
	else if (parse_scaled(value, "KMG", 1024, 1LL << 50, &n) == -1) {
		cfg_error(line, "bad size \"%s\" for store %s: bytes with an "
		    "optional K, M or G", value, what);
		return;
	}
	if (strcmp(what, "inline-max") == 0) {
		/* A BSON document is at most 16 MiB, with the rest. */
		if (n > 8 * 1024 * 1024)
			cfg_error(line, "store inline-max: at most 8M");
		else
			p.conf->store_inline_max = (size_t)n;
	} else
		p.conf->store_quota = (uint64_t)n;
}

/* `action NAME mongo [alias <t>] [users <t>]` */
static void
mongo_begin(int line, char *name)
{
	struct action	*a;

	p.ma = NULL;
	if (strlen(name) >= ACTION_MAX || !name_is_valid(name)) {
		cfg_error(line, "bad action name \"%s\": letters, digits, "
		    "\"-\", \"_\" and \".\", at most %d", name, ACTION_MAX - 1);
	} else if (config_action(p.conf, name) != NULL) {
		cfg_error(line, "action \"%s\" is already defined", name);
	} else if ((a = calloc(1, sizeof(*a))) == NULL) {
		cfg_error(line, "%s", strerror(errno));
	} else {
		(void)strlcpy(a->name, name, sizeof(a->name));
		a->type = ACTION_MONGO;
		a->lineno = line;
		p.ma = a;
	}
	free(name);
}

static void
mongo_table(int line, int users, const char *name)
{
	struct table	*t = table_ref(line, name);

	if (p.ma == NULL)
		return;
	if (users)
		p.ma->users = t;
	else
		p.ma->alias = t;
}

static void
mongo_end(void)
{
	if (p.ma == NULL)
		return;
	if (p.conf->store_uri[0] == '\0') {
		cfg_error(p.ma->lineno, "action \"%s\": mongo needs `store "
		    "mongo \"mongodb://...\"` before it", p.ma->name);
		free(p.ma);
	} else
		TAILQ_INSERT_TAIL(&p.conf->actions, p.ma, entry);
	p.ma = NULL;
}
static void
set_retry(int line, const char *min, const char *max)
{
	long long	vmin, vmax = p.conf->retry_max;
	int		bad = 0;

	if (parse_duration(min, &vmin) == -1) {
		cfg_error(line, "bad duration \"%s\": a number of seconds, or "
		    "with s, m, h or d, at most 365d", min);
		bad = 1;
	}
	if (max != NULL && parse_duration(max, &vmax) == -1) {
		cfg_error(line, "bad duration \"%s\": a number of seconds, or "
		    "with s, m, h or d, at most 365d", max);
		bad = 1;
	}
	if (bad)
		return;
	if (vmin > vmax) {
		cfg_error(line, "queue retry: min (%llds) is greater than max "
		    "(%llds)", vmin, vmax);
		return;
	}
	p.conf->retry_min = (time_t)vmin;
	p.conf->retry_max = (time_t)vmax;
}

/* ---- tables --------------------------------------------------------------- */

static void
table_begin(int line, char *name)
{
	p.tbl_bad = 0;
	p.tbl_kind = 0;
	if (strlen(name) >= TABLE_NAME_MAX || !name_is_valid(name)) {
		cfg_error(line, "bad table name \"%s\": letters, digits, "
		    "\"-\", \"_\" and \".\", at most %d", name,
		    TABLE_NAME_MAX - 1);
		p.tbl_bad = 1;
	} else if (config_table(p.conf, name) != NULL) {
		cfg_error(line, "table \"%s\" is already defined", name);
		p.tbl_bad = 1;
	}
	if ((p.tbl = table_new(p.tbl_bad ? "-" : name)) == NULL)
		cfg_error(line, "%s", strerror(errno));
	free(name);
}

static void
table_item(int line, char *key, char *value)
{
	int	kind = value != NULL ? 2 : 1;

	if (p.tbl == NULL)
		goto done;
	if (strlen(key) >= ENTRY_KEY_MAX) {
		cfg_error(line, "table %s: entry too long", p.tbl->name);
		goto done;
	}
	if (p.tbl_kind != 0 && p.tbl_kind != kind) {
		cfg_error(line, "table %s: list entries and key = value "
		    "entries cannot be mixed", p.tbl->name);
		goto done;
	}
	p.tbl_kind = kind;
	if (table_contains(p.tbl, key)) {
		cfg_error(line, "table %s: duplicate entry \"%s\"",
		    p.tbl->name, key);
		goto done;
	}
	if (table_add(p.tbl, key, value) == -1)
		cfg_error(line, "%s", strerror(errno));
done:
	free(key);
	free(value);
}

struct table_errctx {
	const char	*table;
	int		 line;
};

static void
table_errfn_cb(void *arg, const char *file, int line, const char *fmt, ...)
{
	struct table_errctx	*ctx = arg;
	char			 msg[1024];
	va_list			 ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (line == 0)	/* the file as a whole: where it was declared */
		cfg_error(ctx->line, "table %s: %s: %s", ctx->table, file,
		    msg);
	else
		cfg_error_file(file, line, "%s", msg);
}

static void
table_file(int line, char *src)
{
	struct table_errctx	ctx;

	if (p.tbl == NULL)
		goto done;
	if (strncmp(src, "mongo:", 6) == 0) {
		/* Looked up in the store's database, by _id, when asked. */
		if (!name_is_valid(src + 6) || strlen(src + 6) >=
		    sizeof(p.tbl->remote))
			cfg_error(line, "table %s: bad collection name \"%s\"",
			    p.tbl->name, src + 6);
		else if (p.conf->store_uri[0] == '\0')
			cfg_error(line, "table %s: mongo: tables need `store "
			    "mongo \"mongodb://...\"` before them",
			    p.tbl->name);
		else
			(void)strlcpy(p.tbl->remote, src + 6,
			    sizeof(p.tbl->remote));
		goto done;
	}
	if (strncmp(src, "file:", 5) != 0) {
		cfg_error(line, "table %s: unknown source \"%s\": use "
		    "file:/path, mongo:COLLECTION or { ... }", p.tbl->name, src);
		goto done;
	}
	if (src[5] != '/') {
		cfg_error(line, "table %s: \"%s\": not an absolute path",
		    p.tbl->name, src + 5);
		goto done;
	}
	if (p.flags & CONFIG_SKIP_TABLE_FILES)
		goto done;
	ctx.table = p.tbl->name;
	ctx.line = line;
	(void)table_load_file(p.tbl, src + 5, table_errfn_cb, &ctx);
done:
	free(src);
}

static void
table_end(void)
{
	if (p.tbl == NULL)
		return;
	if (p.tbl_bad) {
		table_free(p.tbl);
	} else {
		table_finish(p.tbl);
		TAILQ_INSERT_TAIL(&p.conf->tables, p.tbl, entry);
	}
	p.tbl = NULL;
}

/* `src 10.0.0.0/8` and `domain example.org`: a table of one entry. */
static struct table *
table_anon(int line, const char *what, const char *value)
{
	struct table	*t;
	char		 name[TABLE_NAME_MAX];

	/* '@' cannot appear in a declared name: no clash possible. */
	(void)snprintf(name, sizeof(name), "@%s%d", what, ++p.anon);
	if ((t = table_new(name)) == NULL || table_add(t, value, NULL) == -1) {
		cfg_error(line, "%s", strerror(errno));
		table_free(t);
		return NULL;
	}
	table_finish(t);
	TAILQ_INSERT_TAIL(&p.conf->tables, t, entry);
	return t;
}

static void
ref_add(int line, enum ref_kind kind, const char *name)
{
	struct ref	*r;

	p.nerrors++;
	if ((r = reallocarray(p.refs, p.nrefs + 1, sizeof(*r))) == NULL)
		return;
	p.refs = r;
	r = &p.refs[p.nrefs++];
	memset(r, 0, sizeof(*r));
	r->kind = kind;
	(void)strlcpy(r->name, name, sizeof(r->name));
	r->slot = (size_t)-1;
	/* Keep its place among the errors; the wording comes at the end. */
	if (p.errn < ERRORS_MAX) {
		char	**v, *s;

		if (asprintf(&s, "%s:%d: ", p.path, line) == -1)
			return;
		if ((v = reallocarray(p.errv, p.errn + 1, sizeof(*v))) ==
		    NULL) {
			free(s);
			return;
		}
		p.errv = v;
		r->slot = p.errn;
		p.errv[p.errn++] = s;
	}
}

static struct table *
table_ref(int line, const char *name)
{
	struct table	*t;

	if ((t = config_table(p.conf, name)) == NULL)
		ref_add(line, REF_TABLE, name);
	return t;
}

/* Every entry of a `from src <table>` must be an address or network. */
static void
src_table_check(int line, struct table *t)
{
	size_t	i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		if (!net_is_valid(t->entries[i].key)) {
			cfg_error(line, "table <%s>: \"%s\" is not an address "
			    "or network", t->name, t->entries[i].key);
			return;
		}
}

/* Names a reference that failed: undefined, or defined too late. */
static void
refs_resolve(void)
{
	struct ref	*r;
	size_t		 i;
	char		*s;
	int		 later;

	for (i = 0; i < p.nrefs; i++) {
		r = &p.refs[i];
		if (r->slot == (size_t)-1)
			continue;
		if (r->kind == REF_TABLE)
			later = config_table(p.conf, r->name) != NULL;
		else
			later = config_action(p.conf, r->name) != NULL;
		if (asprintf(&s, "%s%s %s%s%s is %s", p.errv[r->slot],
		    r->kind == REF_TABLE ? "table" : "action",
		    r->kind == REF_TABLE ? "<" : "\"", r->name,
		    r->kind == REF_TABLE ? ">" : "\"",
		    later ? "used before it is defined" : "not defined") == -1)
			continue;
		free(p.errv[r->slot]);
		p.errv[r->slot] = s;
	}
}

/* ---- actions and rules ---------------------------------------------------- */

static void
add_action(int line, char *name, enum action_type type, int pline,
    char *path, int aline, char *alias)
{
	struct action	*a = NULL;
	struct table	*t;
	char		 buf[DEST_MAX];
	size_t		 i;
	int		 bad = 0;

	if (strlen(name) >= ACTION_MAX || !name_is_valid(name)) {
		cfg_error(line, "bad action name \"%s\": letters, digits, "
		    "\"-\", \"_\" and \".\", at most %d", name, ACTION_MAX - 1);
		bad = 1;
	} else if (config_action(p.conf, name) != NULL) {
		cfg_error(line, "action \"%s\" is already defined", name);
		bad = 1;
	}
	if ((a = calloc(1, sizeof(*a))) == NULL) {
		cfg_error(line, "%s", strerror(errno));
		goto done;
	}
	(void)strlcpy(a->name, name, sizeof(a->name));
	a->type = type;
	a->lineno = line;
	if (path == NULL)
		path = strdup(type == ACTION_MBOX ? "/var/mail/%u" :
		    "~/Maildir");
	if (path == NULL) {
		cfg_error(line, "%s", strerror(errno));
		bad = 1;
	} else if (strlcpy(a->path, path, sizeof(a->path)) >= sizeof(a->path)) {
		cfg_error(pline, "action \"%s\": path too long", name);
		bad = 1;
	} else if (action_dest(a, "user", "/home/user", buf, sizeof(buf)) ==
	    -1 || buf[0] != '/') {
		cfg_error(pline, "action \"%s\": bad path \"%s\": an absolute "
		    "path, or one starting with ~/ or %%h, where %%u is the "
		    "user, %%h the home directory and %%%% a percent sign",
		    name, path);
		bad = 1;
	}
	if (alias != NULL && (t = table_ref(aline, alias)) != NULL) {
		a->alias = t;
		for (i = 0; i < t->n; i++)
			if (t->entries[i].value == NULL) {
				cfg_error(aline, "table <%s> cannot be an "
				    "alias table: \"%s\" has no value", alias,
				    t->entries[i].key);
				bad = 1;
				break;
			}
	}
	if (!bad) {
		TAILQ_INSERT_TAIL(&p.conf->actions, a, entry);
		a = NULL;
	}
done:
	free(a);
	free(name);
	free(path);
	free(alias);
}

/* ---- remote delivery ------------------------------------------------------ */

static void
add_resolver(int line, const char *spec)
{
	char	addr[INET6_ADDRSTRLEN];
	int	port;

	if (resolver_parse(spec, addr, sizeof(addr), &port) == -1) {
		cfg_error(line, "bad resolver \"%s\": an IPv4 or IPv6 address, "
		    "with an optional @port", spec);
		return;
	}
	if (p.conf->nresolvers >= RESOLVERS_MAX) {
		cfg_error(line, "too many resolvers (at most %d)",
		    RESOLVERS_MAX);
		return;
	}
	(void)snprintf(p.conf->resolvers[p.conf->nresolvers++], RESOLVER_LEN,
	    "%s@%d", addr, port);
}

static void
set_relay_timeout(int line, const char *what, const char *value)
{
	static const char *names[RELAY_TO_MAX] = {
		"connect", "greeting", "command", "data-init", "data-block",
		"data-end"
	};
	long long	 n;
	int		 i;

	for (i = 0; i < RELAY_TO_MAX; i++)
		if (strcmp(what, names[i]) == 0)
			break;
	if (i == RELAY_TO_MAX) {
		cfg_error(line, "unknown relay timeout \"%s\": connect, "
		    "greeting, command, data-init, data-block or data-end",
		    what);
		return;
	}
	if (parse_duration(value, &n) == -1 || n > 3600) {
		cfg_error(line, "bad duration \"%s\" for relay timeout %s: 1s "
		    "to 1h", value, what);
		return;
	}
	p.conf->relay_timeout[i] = (time_t)n;
}

static void
relay_begin(int line, char *name)
{
	p.ra_bad = 0;
	p.ra_line = line;
	p.ra_auth_line = p.ra_tls_line = p.ra_ca_line = 0;
	if (strlen(name) >= ACTION_MAX || !name_is_valid(name)) {
		cfg_error(line, "bad action name \"%s\": letters, digits, "
		    "\"-\", \"_\" and \".\", at most %d", name, ACTION_MAX - 1);
		p.ra_bad = 1;
	} else if (config_action(p.conf, name) != NULL) {
		cfg_error(line, "action \"%s\" is already defined", name);
		p.ra_bad = 1;
	}
	if ((p.ra = calloc(1, sizeof(*p.ra))) == NULL) {
		cfg_error(line, "%s", strerror(errno));
		free(name);
		return;
	}
	(void)strlcpy(p.ra->name, name, sizeof(p.ra->name));
	p.ra->type = ACTION_RELAY;
	p.ra->lineno = line;
	p.ra->relay.tls = RELAY_TLS_MAY;
	free(name);
}

static void
relay_host(int line, const char *url)
{
	char	err[256];

	if (p.ra == NULL)
		return;
	if (p.ra->relay.host[0] != '\0') {
		cfg_error(line, "action \"%s\": host given twice", p.ra->name);
		p.ra_bad = 1;
		return;
	}
	if (relay_url_parse(url, &p.ra->relay.proto, p.ra->relay.host,
	    sizeof(p.ra->relay.host), &p.ra->relay.port, err,
	    sizeof(err)) == -1) {
		cfg_error(line, "action \"%s\": bad relay host \"%s\": %s",
		    p.ra->name, url, err);
		p.ra_bad = 1;
	}
}

static void
relay_auth(int line, const char *name)
{
	struct table	*t;
	char		 user[256], pass[256];
	size_t		 i;

	if (p.ra == NULL)
		return;
	p.ra_auth_line = line;
	if ((t = table_ref(line, name)) == NULL) {
		p.ra_bad = 1;
		return;
	}
	for (i = 0; i < t->n; i++)
		if (t->entries[i].value == NULL ||
		    relay_secret_split(t->entries[i].value, user, sizeof(user),
		    pass, sizeof(pass)) == -1) {
			cfg_error(line, "table <%s> cannot be a secrets table: "
			    "the entry for \"%s\" is not \"user:password\" or "
			    "\"user password\"", name, t->entries[i].key);
			p.ra_bad = 1;
			return;
		}
	p.ra->relay.auth = t;
}

static void
relay_backup(int line, const char *mx)
{
	if (p.ra == NULL)
		return;
	p.ra->relay.backup = 1;
	if (mx == NULL)
		return;
	if (strlen(mx) >= sizeof(p.ra->relay.backup_mx) ||
	    !domain_is_valid(mx, 0)) {
		cfg_error(line, "action \"%s\": bad backup mx name \"%s\"",
		    p.ra->name, mx);
		p.ra_bad = 1;
		return;
	}
	(void)strlcpy(p.ra->relay.backup_mx, mx, sizeof(p.ra->relay.backup_mx));
}

static void
relay_helo(int line, const char *name)
{
	if (p.ra == NULL)
		return;
	if (strlen(name) >= sizeof(p.ra->relay.helo) ||
	    !domain_is_valid(name, 0) || name[0] == '[') {
		cfg_error(line, "action \"%s\": bad helo name \"%s\"",
		    p.ra->name, name);
		p.ra_bad = 1;
		return;
	}
	(void)strlcpy(p.ra->relay.helo, name, sizeof(p.ra->relay.helo));
}

static void
relay_src(int line, const char *addr)
{
	struct relay_opts	*r;
	struct sockaddr_in	*sin;
	struct sockaddr_in6	*sin6;

	if (p.ra == NULL)
		return;
	r = &p.ra->relay;
	sin = (struct sockaddr_in *)&r->src4;
	sin6 = (struct sockaddr_in6 *)&r->src6;
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1 && !r->has_src4) {
		sin->sin_family = AF_INET;
		r->has_src4 = 1;
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1 &&
	    !r->has_src6) {
		sin6->sin6_family = AF_INET6;
		r->has_src6 = 1;
	} else {
		cfg_error(line, "action \"%s\": bad source address \"%s\": "
		    "one IPv4 and one IPv6 address at most", p.ra->name, addr);
		p.ra_bad = 1;
	}
}

static void
relay_tls(int line, const char *mode)
{
	static const struct {
		const char	*name;
		enum relay_tls	 tls;
	} modes[] = {
		{ "no", RELAY_TLS_NO }, { "may", RELAY_TLS_MAY },
		{ "required", RELAY_TLS_REQUIRED }, { "verify", RELAY_TLS_VERIFY },
	};
	size_t	i;

	if (p.ra == NULL)
		return;
	p.ra_tls_line = line;
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		if (strcmp(mode, modes[i].name) == 0) {
			p.ra->relay.tls = modes[i].tls;
			return;
		}
	cfg_error(line, "action \"%s\": bad tls \"%s\": no, may, required "
	    "or verify", p.ra->name, mode);
	p.ra_bad = 1;
}

static void
relay_ca(int line, const char *path)
{
	if (p.ra == NULL)
		return;
	p.ra_ca_line = line;
	if (path_check(line, "ca", path, p.ra->relay.ca_file,
	    sizeof(p.ra->relay.ca_file)) == -1) {
		p.ra_bad = 1;
		return;
	}
	if (!(p.flags & CONFIG_SKIP_TABLE_FILES) && access(path, R_OK) == -1) {
		cfg_error(line, "action \"%s\": ca %s: %s", p.ra->name, path,
		    strerror(errno));
		p.ra_bad = 1;
	}
}

/* The options that make sense only together, checked once all are seen. */
static void
relay_end(void)
{
	struct relay_opts	*r;
	char			 user[256], pass[256];
	const struct table_entry *e;

	if (p.ra == NULL)
		return;
	r = &p.ra->relay;
	if (r->backup && r->host[0] != '\0') {
		cfg_error(p.ra_line, "action \"%s\": backup and host cannot "
		    "be combined", p.ra->name);
		p.ra_bad = 1;
	}
	if (r->auth != NULL && r->host[0] == '\0') {
		cfg_error(p.ra_auth_line, "action \"%s\": auth needs a relay "
		    "host", p.ra->name);
		p.ra_bad = 1;
	} else if (r->auth != NULL && r->proto == RELAY_PROTO_SMTP &&
	    r->tls != RELAY_TLS_REQUIRED && r->tls != RELAY_TLS_VERIFY) {
		/* A password is never sent in the clear. */
		cfg_error(p.ra_auth_line, "action \"%s\": auth needs TLS: use "
		    "smtp+tls://, smtps:// or tls required", p.ra->name);
		p.ra_bad = 1;
	} else if (r->auth != NULL &&
	    ((e = table_lookup(r->auth, r->host)) == NULL ||
	    relay_secret_split(e->value, user, sizeof(user), pass,
	    sizeof(pass)) == -1)) {
		cfg_error(p.ra_auth_line, "action \"%s\": table <%s> has no "
		    "credentials for %s", p.ra->name, r->auth->name, r->host);
		p.ra_bad = 1;
	}
	if (r->tls == RELAY_TLS_NO && r->proto != RELAY_PROTO_SMTP) {
		cfg_error(p.ra_tls_line, "action \"%s\": tls no contradicts "
		    "%s", p.ra->name, r->proto == RELAY_PROTO_SMTPS ?
		    "smtps://" : "smtp+tls://");
		p.ra_bad = 1;
	}
	if (r->proto != RELAY_PROTO_SMTP && r->tls == RELAY_TLS_MAY)
		r->tls = RELAY_TLS_REQUIRED;
	if (r->ca_file[0] == '\0')
		(void)strlcpy(r->ca_file, RELAY_CA_DEFAULT, sizeof(r->ca_file));
	if (!p.ra_bad) {
		TAILQ_INSERT_TAIL(&p.conf->actions, p.ra, entry);
		p.ra = NULL;
	}
	free(p.ra);
	p.ra = NULL;
}

static void
match_begin(void)
{
	memset(&p.m, 0, sizeof(p.m));
	p.m.from = FROM_LOCAL;
	p.m.for_ = FOR_LOCAL;
	p.m_from = p.m_for = 0;
}

static void
match_from(int line, int neg, int kind, struct table *t)
{
	if (p.m_from) {
		cfg_error(line, "match: \"from\" given twice");
		return;
	}
	p.m_from = line;
	p.m.from_neg = neg;
	p.m.from = kind;
	p.m.from_table = t;
}

static void
match_for(int line, int neg, int kind, struct table *t)
{
	if (p.m_for) {
		cfg_error(line, "match: \"for\" given twice");
		return;
	}
	p.m_for = line;
	p.m.for_neg = neg;
	p.m.for_ = kind;
	p.m.for_table = t;
}

static void
match_end(int line, int reject, char *action)
{
	struct match	*m;

	p.m.reject = reject;
	p.m.lineno = line;
	if (action != NULL &&
	    (p.m.action = config_action(p.conf, action)) == NULL)
		ref_add(line, REF_ACTION, action);
	free(action);
	if ((m = malloc(sizeof(*m))) == NULL) {
		cfg_error(line, "%s", strerror(errno));
		return;
	}
	*m = p.m;
	TAILQ_INSERT_TAIL(&p.conf->matches, m, entry);
}

/* ---- entry point ---------------------------------------------------------- */

struct config *
config_parse(const char *path, const char *text, struct config_errors *errs)
{
	return config_parse_flags(path, text, errs, 0);
}

struct config *
config_parse_flags(const char *path, const char *text,
    struct config_errors *errs, int flags)
{
	struct config	*conf;
	char		**v;
	size_t		 i;
	int		 r;

	memset(&p, 0, sizeof(p));
	p.flags = flags;
	p.path = path;
	p.lineno = 1;
	p.lastline = 1;
	if ((conf = malloc(sizeof(*conf))) == NULL) {
		log_warn("%s", path);
		return NULL;
	}
	config_defaults(conf);
	p.conf = conf;
	if (strlcpy(conf->file, path, sizeof(conf->file)) >= sizeof(conf->file))
		cfg_error(0, "%s", strerror(ENAMETOOLONG));
	else if (text != NULL)
		p.text = text;
	else if ((p.fp = fopen(path, "r")) == NULL)
		cfg_error(0, "%s", strerror(errno));

	if (p.text != NULL || p.fp != NULL) {
		r = yyparse();
		if (r == 2 && p.nerrors == 0)
			cfg_error(p.lineno, "%s", strerror(ENOMEM));
		else if (r != 0 && p.nerrors == 0)
			cfg_error(p.lineno, "syntax error");
	}
	if (p.fp != NULL)
		(void)fclose(p.fp);
	if (p.tbl != NULL) {
		table_free(p.tbl);
		p.tbl = NULL;
	}
	free(p.ma);
	p.ma = NULL;
	refs_resolve();
	pki_check_all();

	for (i = 0; i < p.errn; i++) {
		if (p.errv[i] == NULL)
			continue;
		log_warnx("%s", p.errv[i]);
		if (errs != NULL &&
		    (v = reallocarray(errs->lines, errs->n + 1,
		    sizeof(*v))) != NULL) {
			errs->lines = v;
			errs->lines[errs->n++] = p.errv[i];
			p.errv[i] = NULL;
		}
	}
	for (i = 0; i < p.errn; i++)
		free(p.errv[i]);
	free(p.errv);
	free(p.refs);
	r = p.nerrors;
	memset(&p, 0, sizeof(p));
	if (r > 0) {
		config_free(conf);
		return NULL;
	}
	return conf;
}
