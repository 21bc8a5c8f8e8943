#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "smtp_parse.h"

static const struct {
	enum smtp_verb	 verb;
	const char	*name;
} verbs[] = {
	{ VERB_HELO,		"HELO" },
	{ VERB_EHLO,		"EHLO" },
	{ VERB_MAIL,		"MAIL" },
	{ VERB_RCPT,		"RCPT" },
	{ VERB_DATA,		"DATA" },
	{ VERB_RSET,		"RSET" },
	{ VERB_NOOP,		"NOOP" },
	{ VERB_QUIT,		"QUIT" },
	{ VERB_VRFY,		"VRFY" },
	{ VERB_EXPN,		"EXPN" },
	{ VERB_HELP,		"HELP" },
	{ VERB_STARTTLS,	"STARTTLS" },
	{ VERB_AUTH,		"AUTH" },
	{ VERB_BDAT,		"BDAT" },
	{ VERB_XCLIENT,		"XCLIENT" },
};

static int	reply(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static int	is_alnum(unsigned char);
static const char *path_close(const char *);
static const char *route_skip(const char *, int);
static int	parse_mailbox(const char *, size_t, int, int,
		    struct smtp_path *, char *, size_t);
static int	parse_param(const char **, struct smtp_path *, char *, size_t);
static int	parse_params(const char *, struct smtp_path *, char *, size_t);

int
smtp_parse_command(char *line, struct smtp_cmd *cmd)
{
	const unsigned char	*p;
	size_t			 i, n;

	cmd->verb = VERB_UNKNOWN;
	cmd->name = "";
	cmd->args = "";

	/* Controls would reach logs and replies; SMTP has no use for them. */
	for (p = (const unsigned char *)line; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			return -1;

	for (i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++) {
		n = strlen(verbs[i].name);
		if (strncasecmp(line, verbs[i].name, n) != 0)
			continue;
		if (line[n] != ' ' && line[n] != '\0')
			continue;
		cmd->verb = verbs[i].verb;
		cmd->name = verbs[i].name;
		cmd->args = line[n] == ' ' ? line + n + 1 : line + n;
		break;
	}
	return 0;
}

static int
reply(char *err, size_t errsz, const char *fmt, ...)
{
	va_list	ap;

	if (err != NULL && errsz > 0) {
		va_start(ap, fmt);
		(void)vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
	}
	return -1;
}

static int
is_alnum(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/*
 * The '>' that closes a path whose '<' is just before p, NULL if none.  A
 * quoted local part may hold '>' ("a>b"@example.org), so quotes are followed.
 */
static const char *
path_close(const char *p)
{
	int	quoted = 0;

	for (; *p != '\0'; p++) {
		if (quoted) {
			if (*p == '\\') {
				if (p[1] == '\0')
					return NULL;
				p++;
			} else if (*p == '"')
				quoted = 0;
		} else if (*p == '"')
			quoted = 1;
		else if (*p == '>')
			return p;
	}
	return NULL;
}

/*
 * RFC 5321 A-d-l: "@a,@b:" before the mailbox.  Returns what follows the ':',
 * or NULL if the route is malformed.  The route itself is dropped (RFC 5321
 * 4.1.1.3 and appendix C: accept, ignore).
 */
static const char *
route_skip(const char *p, int utf8)
{
	char	 dom[DOMAIN_MAX + 1];
	size_t	 n;

	for (;;) {
		if (*p != '@')
			return NULL;
		p++;
		n = strcspn(p, ",:");
		if (p[n] == '\0' || n >= sizeof(dom))
			return NULL;
		memcpy(dom, p, n);
		dom[n] = '\0';
		if (!domain_is_valid(dom, utf8))
			return NULL;
		p += n;
		if (*p++ == ':')
			return p;
	}
}

static int
parse_mailbox(const char *inner, size_t len, int sender, int utf8,
    struct smtp_path *path, char *err, size_t errsz)
{
	char		 buf[ADDR_MAX];
	const char	*mbox;
	const char	*what = sender ? "501 5.1.7 Bad sender" :
			    "501 5.1.3 Bad recipient";
	struct mailaddr	 tmp;

	if (len >= sizeof(buf))
		return reply(err, errsz, "%s address syntax", what);
	memcpy(buf, inner, len);
	buf[len] = '\0';

	mbox = buf;
	if (buf[0] == '@' && (mbox = route_skip(buf, utf8)) == NULL)
		return reply(err, errsz, "%s address syntax", what);

	if (mailaddr_parse(&path->mailaddr, mbox, utf8) == -1) {
		/* RFC 6531 3.7.4.1: say why when UTF-8 would have made it. */
		if (!utf8 && mailaddr_parse(&tmp, mbox, 1) == 0)
			return reply(err, errsz, "553 5.6.7 Non-ASCII %s "
			    "address requires SMTPUTF8",
			    sender ? "sender" : "recipient");
		return reply(err, errsz, "%s address syntax", what);
	}
	/* The bare <Postmaster> is a recipient only (RFC 5321 4.1.1.3). */
	if (sender && path->mailaddr.domain[0] == '\0')
		return reply(err, errsz, "%s address syntax", what);
	(void)strlcpy(path->addr, mbox, sizeof(path->addr));
	return 0;
}

/* One KEY[=VALUE] at *pp; advances *pp past it. */
static int
parse_param(const char **pp, struct smtp_path *path, char *err, size_t errsz)
{
	const char		*p = *pp;
	struct smtp_param	*prm = &path->params[path->nparams];
	size_t			 n, v;
	int			 i;

	if (!is_alnum((unsigned char)p[0]))
		return reply(err, errsz, "555 5.5.4 Unsupported parameter syntax");
	for (n = 1; is_alnum((unsigned char)p[n]) || p[n] == '-'; n++)
		;
	if (n >= sizeof(prm->key))
		return reply(err, errsz, "555 5.5.4 Parameter keyword too long");
	memcpy(prm->key, p, n);
	prm->key[n] = '\0';
	for (i = 0; prm->key[i] != '\0'; i++)
		if (prm->key[i] >= 'a' && prm->key[i] <= 'z')
			prm->key[i] -= 'a' - 'A';
	p += n;

	prm->value[0] = '\0';
	if (*p == '=') {
		p++;
		for (v = 0; (unsigned char)p[v] >= 33 &&
		    (unsigned char)p[v] <= 126 && p[v] != '='; v++)
			;
		if (v == 0)
			return reply(err, errsz,
			    "555 5.5.4 Unsupported parameter syntax");
		if (v >= sizeof(prm->value))
			return reply(err, errsz,
			    "555 5.5.4 Parameter value too long");
		memcpy(prm->value, p, v);
		prm->value[v] = '\0';
		p += v;
	}
	if (*p != ' ' && *p != '\0')
		return reply(err, errsz, "555 5.5.4 Unsupported parameter syntax");

	for (i = 0; i < path->nparams; i++)
		if (strcmp(path->params[i].key, prm->key) == 0)
			return reply(err, errsz,
			    "555 5.5.4 Duplicate parameter %s", prm->key);
	path->nparams++;
	*pp = p;
	return 0;
}

static int
parse_params(const char *p, struct smtp_path *path, char *err, size_t errsz)
{
	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			return 0;
		if (path->nparams == SMTP_PARAMS_MAX)
			return reply(err, errsz,
			    "555 5.5.4 Too many parameters");
		if (parse_param(&p, path, err, errsz) == -1)
			return -1;
	}
}

int
smtp_parse_path(const char *args, const char *prefix, int allow_null,
    int utf8, struct smtp_path *path, char *err, size_t errsz)
{
	const char	*p, *end;
	size_t		 plen;
	int		 sender;

	memset(path, 0, sizeof(*path));
	if (err != NULL && errsz > 0)
		err[0] = '\0';
	sender = strcasecmp(prefix, "FROM:") == 0;

	plen = strlen(prefix);
	p = args;
	if (strncasecmp(p, prefix, plen) != 0)
		goto syntax;
	p += plen;
	if (*p == ' ')		/* Postfix-like leniency: one, not more */
		p++;
	if (*p != '<' || (end = path_close(p + 1)) == NULL)
		goto syntax;
	/* The path must end at '>': a space or the end of the line follows. */
	if (end[1] != ' ' && end[1] != '\0')
		goto syntax;

	if (end == p + 1) {
		if (!allow_null)
			return reply(err, errsz, "501 5.1.%d Bad %s address "
			    "syntax", sender ? 7 : 3,
			    sender ? "sender" : "recipient");
	} else if (parse_mailbox(p + 1, end - (p + 1), sender, utf8, path,
	    err, errsz) == -1)
		return -1;

	return parse_params(end + 1, path, err, errsz);

 syntax:
	return reply(err, errsz, "501 5.5.4 Syntax: %s %s<address>",
	    sender ? "MAIL" : "RCPT", sender ? "FROM:" : "TO:");
}

const char *
smtp_path_param(const struct smtp_path *path, const char *key)
{
	int	i;

	for (i = 0; i < path->nparams && i < SMTP_PARAMS_MAX; i++)
		if (strcasecmp(path->params[i].key, key) == 0)
			return path->params[i].value;
	return NULL;
}
