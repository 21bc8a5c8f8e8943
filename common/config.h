/*
 * The parsed configuration.  The master parses /etc/mtad/mtad.conf (or the
 * embedded defaults) before forking; children inherit it.  A reload parses a
 * new one and replaces the policy process, which holds the rules.
 */
#ifndef MTAD_CONFIG_H
#define MTAD_CONFIG_H

#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <limits.h>
#include <stddef.h>
#include <time.h>

#include "envelope.h"
#include "proto.h"
#include "table.h"

#define PKI_NAME_MAX	256

/* `pki NAME cert FILE` / `pki NAME key FILE`: a certificate and its key. */
struct pki {
	TAILQ_ENTRY(pki)	 entry;
	char			 name[PKI_NAME_MAX];
	char			 cert[PATH_MAX];
	char			 key[PATH_MAX];
	int			 lineno;
};

/* Listener options (mtad.conf(5), `listen on ... OPTIONS`). */
#define LISTEN_TLS		0x0001	/* STARTTLS offered */
#define LISTEN_TLS_REQUIRE	0x0002	/* STARTTLS before MAIL and AUTH */
#define LISTEN_SMTPS		0x0004	/* TLS from the first byte (465) */
#define LISTEN_AUTH		0x0008	/* AUTH required before MAIL */
#define LISTEN_AUTH_OPTIONAL	0x0010	/* AUTH offered, not required */
#define LISTEN_AUTH_PLAINTEXT	0x0020	/* AUTH offered without TLS too */
#define LISTEN_SUBMISSION	0x0040	/* message submission (RFC 6409) */
#define LISTEN_PROXY		0x0080	/* PROXY protocol header first */
#define LISTEN_NORMALIZE	0x0100	/* bare CR/LF in DATA as line ends */

struct listener {
	TAILQ_ENTRY(listener)	 entry;
	struct sockaddr_storage	 ss;
	socklen_t		 sslen;
	char			 addr[128];	/* as text, for logs */
	int			 port;
	int			 fd;		/* bound by the master */
	int			 lineno;
	int			 flags;		/* LISTEN_* */
	struct pki		*pki;		/* for tls, tls-require, smtps */
	struct table		*auth;		/* credentials: user = crypt hash */
	struct table		*xclient;	/* addresses allowed XCLIENT */
	void			*ssl_ctx;	/* SSL_CTX, made by the smtp-worker */
};

enum action_type {
	ACTION_MBOX = 1,
	ACTION_MAILDIR,
	ACTION_RELAY,		/* remote SMTP: MX routing or a smarthost */
	ACTION_MONGO		/* the MongoDB mail store (`store mongo`) */
};

/* TLS policy of a relay action. */
enum relay_tls {
	RELAY_TLS_MAY = 0,	/* STARTTLS when offered (the default) */
	RELAY_TLS_NO,		/* never */
	RELAY_TLS_REQUIRED,	/* TLS or no delivery, certificate not checked */
	RELAY_TLS_VERIFY	/* TLS with a valid certificate for the name */
};

/* How the smarthost of a relay action is reached. */
enum relay_proto {
	RELAY_PROTO_SMTP = 0,	/* smtp://: STARTTLS as the tls policy says */
	RELAY_PROTO_STARTTLS,	/* smtp+tls://: STARTTLS required */
	RELAY_PROTO_SMTPS	/* smtps://: TLS from the first byte */
};

#define RELAY_HOST_MAX	256
#define RELAY_CA_DEFAULT	"/etc/ssl/certs/ca-certificates.crt"

/* The options of `action NAME relay ...` (see mtad.conf(5)). */
struct relay_opts {
	char			 host[RELAY_HOST_MAX];	/* smarthost; "" = MX */
	int			 port;		/* of the smarthost */
	enum relay_proto	 proto;
	struct table		*auth;		/* secrets: host user:password */
	int			 backup;	/* backup MX for the domain */
	char			 backup_mx[RELAY_HOST_MAX]; /* "" = hostname */
	char			 helo[RELAY_HOST_MAX];	/* "" = hostname */
	struct sockaddr_storage	 src4, src6;	/* source addresses */
	int			 has_src4, has_src6;
	enum relay_tls		 tls;
	char			 ca_file[PATH_MAX];	/* for tls verify */
};

struct action {
	TAILQ_ENTRY(action)	 entry;
	char			 name[ACTION_MAX];
	enum action_type	 type;
	/*
	 * Destination template: %u is replaced by the user name, %h and a
	 * leading ~ by the home directory.  Defaults: "/var/mail/%u" (mbox),
	 * "~/Maildir" (maildir).
	 */
	char			 path[DEST_MAX];
	struct table		*alias;		/* NULL: no alias expansion */
	struct relay_opts	 relay;		/* ACTION_RELAY */
	struct table		*users;		/* ACTION_MONGO: valid mailboxes,
						   NULL: any address */
	int			 lineno;
};

enum from_kind { FROM_ANY, FROM_LOCAL, FROM_SRC, FROM_AUTH };
enum for_kind { FOR_ANY, FOR_LOCAL, FOR_DOMAIN, FOR_RCPT };

struct match {
	TAILQ_ENTRY(match)	 entry;
	int			 from_neg;	/* `!from ...` */
	enum from_kind		 from;
	struct table		*from_table;	/* FROM_SRC; FROM_AUTH: the
						   users, NULL = any user */
	int			 for_neg;
	enum for_kind		 for_;
	struct table		*for_table;	/* FOR_DOMAIN, FOR_RCPT */
	struct action		*action;	/* NULL when reject */
	int			 reject;
	int			 lineno;
};

/* Remote delivery timeouts (RFC 5321 4.5.3.2), by phase. */
enum relay_timeout {
	RELAY_TO_CONNECT = 0,	/* TCP connection */
	RELAY_TO_GREETING,	/* the 220 banner: 5m */
	RELAY_TO_COMMAND,	/* EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET: 5m */
	RELAY_TO_DATA_INIT,	/* the 354 reply to DATA: 2m */
	RELAY_TO_DATA_BLOCK,	/* each write of the content: 3m */
	RELAY_TO_DATA_END,	/* the reply to the final dot: 10m */
	RELAY_TO_MAX
};

#define RESOLVERS_MAX	8
#define RESOLVER_LEN	64	/* "ADDRESS@PORT" */

struct config {
	char			 file[PATH_MAX];	/* where it came from */
	char			 hostname[256];
	char			 queue_path[PATH_MAX];
	char			 chroot_path[PATH_MAX];	/* empty dir for chroots */
	char			 control_path[PATH_MAX];
	char			 submit_path[PATH_MAX];	/* local submission */
	char			 pidfile[PATH_MAX];
	char			 user[PROC_COUNT][USER_MAX]; /* by enum proc_kind */
	char			 control_group[USER_MAX];
	int			 workers_smtp;
	int			 workers_deliver;
	time_t			 retry_min;	/* first retry delay, seconds */
	time_t			 retry_max;	/* backoff ceiling */
	time_t			 queue_lifetime;	/* then it bounces */
	time_t			 delay_warning;	/* 0: none */
	uint64_t		 queue_min_free;	/* bytes; else 452 4.3.1 */
	int			 queue_concurrency;	/* batches in flight */
	int			 dest_concurrency;	/* per destination */
	size_t			 max_message_size;
	int			 max_rcpt;	/* recipients per message */
	time_t			 smtp_timeout;	/* idle / command timeout */
	time_t			 data_timeout;	/* between reads during DATA */
	int			 max_errors;	/* bad commands before 421 */
	size_t			 max_line;	/* a command line, CRLF included */
	int			 sessions_per_worker;
	int			 max_conn;	/* in total; 0 = unlimited */
	int			 max_conn_per_ip; /* 0 = unlimited */
	int			 conn_rate;	/* per IP per minute; 0 = off */
	int			 auth_failures;	/* per IP per 5 minutes */
	time_t			 greeting_delay; /* early talker detection */

	/* the MongoDB store (`store ...`) */
	char			 store_uri[1024];	/* "" = no store */
	size_t			 store_inline_max; /* raw message inline below */
	uint64_t		 store_quota;	/* for new mailboxes; 0 = none */
	int			 sandbox;	/* 0: no seccomp (debugging) */

	/* remote delivery (deliver-worker) */
	char			 resolvers[RESOLVERS_MAX][RESOLVER_LEN];
	int			 nresolvers;	/* 0: /etc/resolv.conf */
	time_t			 relay_timeout[RELAY_TO_MAX];
	int			 relay_port;	/* of MX hosts: 25 */
	int			 relay_connections; /* per destination */

	TAILQ_HEAD(, pki)	 pkis;
	TAILQ_HEAD(, listener)	 listeners;
	TAILQ_HEAD(, table)	 tables;
	TAILQ_HEAD(, action)	 actions;
	TAILQ_HEAD(, match)	 matches;
};

/* Collects parse errors as "file:line: what is wrong" lines. */
struct config_errors {
	char	**lines;
	size_t	  n;
};

/*
 * Parses `path`; if `text` is not NULL it is parsed instead of the file's
 * content (the embedded defaults), `path` only naming it in messages.  Returns
 * NULL when there were errors: each is in `errs` (if not NULL) and logged with
 * log_warnx.  File tables are loaded here too.
 */
struct config	*config_parse(const char *path, const char *text,
		    struct config_errors *errs);
/*
 * config_parse with flags.  CONFIG_SKIP_TABLE_FILES: `table NAME file:PATH`
 * makes an empty table and the file is not opened, so that a tool running
 * as an unprivileged user (sendmail) can read the paths and names it needs
 * without access to table files; such a configuration must not be used to
 * answer lookups.
 */
#define CONFIG_SKIP_TABLE_FILES	0x01
struct config	*config_parse_flags(const char *path, const char *text,
		    struct config_errors *errs, int flags);
void		 config_free(struct config *);
void		 config_errors_clear(struct config_errors *);
/* Sets every default: called by config_parse before reading. */
void		 config_defaults(struct config *);
/*
 * The built-in configuration used when /etc/mtad/mtad.conf is absent:
 * listen on 127.0.0.1 port 2525, mbox delivery for local users from local
 * clients, through /etc/aliases when that file exists.
 */
const char	*config_embedded_text(void);

struct table	*config_table(struct config *, const char *name);
struct action	*config_action(struct config *, const char *name);
/* Is `domain` one of ours: the hostname, localhost, localhost.localdomain. */
int		 config_domain_is_local(const struct config *, const char *domain);

/*
 * Expand an action's destination template for a user: %u user, %h or a
 * leading ~ home directory, %% a percent sign.  -1 if it does not fit or the
 * template is bad.
 */
int		 action_dest(const struct action *, const char *user,
		    const char *home, char *out, size_t outsz);

#endif
