/*
 * Remote delivery: the SMTP reply parser, EHLO capabilities, DATA
 * dot-stuffing, AUTH encodings, MX sorting and selection, DNS answer
 * parsing, smarthost URLs, secrets and resolver arguments.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "dns.h"
#include "mta.h"
#include "mta_session.h"
#include "relay.h"
#include "ruleset.h"

/* ---- replies ----------------------------------------------------------- */

static int
feed(struct mta_reply *r, const char *line)
{
	return mta_reply_line(r, line, strlen(line));
}

START_TEST(test_reply_single_line)
{
	struct mta_reply	r;

	mta_reply_init(&r);
	ck_assert_int_eq(feed(&r, "250 2.1.0 Ok"), 1);
	ck_assert_int_eq(r.code, 250);
	ck_assert_str_eq(r.text, "250 2.1.0 Ok");
}
END_TEST

START_TEST(test_reply_multi_line)
{
	struct mta_reply	r;

	mta_reply_init(&r);
	ck_assert_int_eq(feed(&r, "550-5.1.1 no such"), 0);
	ck_assert_int_eq(feed(&r, "550-5.1.1 user"), 0);
	ck_assert_int_eq(feed(&r, "550 5.1.1 here"), 1);
	ck_assert_int_eq(r.code, 550);
	ck_assert_int_eq(r.nlines, 3);
	ck_assert_str_eq(r.text, "550 5.1.1 no such 5.1.1 user 5.1.1 here");
}
END_TEST

START_TEST(test_reply_bare_code)
{
	struct mta_reply	r;

	mta_reply_init(&r);
	ck_assert_int_eq(feed(&r, "354"), 1);
	ck_assert_int_eq(r.code, 354);
	ck_assert_str_eq(r.text, "354");
}
END_TEST

START_TEST(test_reply_malformed)
{
	static const char *bad[] = {
		"", "25", "25x ok", "250x ok", "150 ok", "650 ok", "abc",
		"250_ok",
	};
	struct mta_reply	r;
	size_t			i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mta_reply_init(&r);
		ck_assert_msg(feed(&r, bad[i]) == -1, "accepted \"%s\"", bad[i]);
	}
	/* A continuation with another code. */
	mta_reply_init(&r);
	ck_assert_int_eq(feed(&r, "250-first"), 0);
	ck_assert_int_eq(feed(&r, "251 second"), -1);
}
END_TEST

START_TEST(test_reply_limits)
{
	struct mta_reply	r;
	char			long_line[3 * MTA_REPLY_MAX];
	int			i;

	/* Too many lines. */
	mta_reply_init(&r);
	for (i = 0; i < MTA_REPLY_LINES_MAX; i++)
		ck_assert_int_eq(feed(&r, "250-x"), 0);
	ck_assert_int_eq(feed(&r, "250 x"), -1);
	/* A long text is cut, not overflowed; controls are masked. */
	mta_reply_init(&r);
	memset(long_line, 'a', sizeof(long_line) - 1);
	long_line[sizeof(long_line) - 1] = '\0';
	memcpy(long_line, "250 \x01", 5);
	ck_assert_int_eq(feed(&r, long_line), 1);
	ck_assert_uint_eq(strlen(r.text), MTA_REPLY_MAX - 1);
	ck_assert_int_eq(r.text[4], '?');
}
END_TEST

START_TEST(test_reply_status)
{
	struct mta_reply	r;
	char			st[16];

	mta_reply_init(&r);
	feed(&r, "550 5.1.1 no such user");
	mta_reply_status(&r, st, sizeof(st));
	ck_assert_str_eq(st, "5.1.1");

	mta_reply_init(&r);
	feed(&r, "452 4.5.3 too many");
	mta_reply_status(&r, st, sizeof(st));
	ck_assert_str_eq(st, "4.5.3");

	/* No enhanced code, or one of another class: from the reply code. */
	mta_reply_init(&r);
	feed(&r, "550 mailbox unavailable");
	mta_reply_status(&r, st, sizeof(st));
	ck_assert_str_eq(st, "5.0.0");
	mta_reply_init(&r);
	feed(&r, "451 5.1.1 confused");
	mta_reply_status(&r, st, sizeof(st));
	ck_assert_str_eq(st, "4.0.0");
	mta_reply_init(&r);
	feed(&r, "550 5.1.1234 bad");
	mta_reply_status(&r, st, sizeof(st));
	ck_assert_str_eq(st, "5.0.0");
}
END_TEST

/* ---- EHLO --------------------------------------------------------------- */

START_TEST(test_caps)
{
	struct mta_caps	c;

	memset(&c, 0, sizeof(c));
	mta_caps_line(&c, "PIPELINING");
	mta_caps_line(&c, "8bitmime");
	mta_caps_line(&c, "SIZE 10240000");
	mta_caps_line(&c, "STARTTLS");
	mta_caps_line(&c, "DSN");
	mta_caps_line(&c, "SMTPUTF8");
	mta_caps_line(&c, "ENHANCEDSTATUSCODES");
	mta_caps_line(&c, "AUTH PLAIN LOGIN CRAM-MD5 GSSAPI");
	mta_caps_line(&c, "X-UNKNOWN something");
	ck_assert(c.pipelining && c.eightbitmime && c.starttls && c.dsn &&
	    c.smtputf8 && c.enhanced && c.size_offered);
	ck_assert_uint_eq(c.size, 10240000);
	ck_assert_int_eq(c.auth, MTA_AUTH_PLAIN | MTA_AUTH_LOGIN |
	    MTA_AUTH_CRAM_MD5);
}
END_TEST

START_TEST(test_caps_variants)
{
	struct mta_caps	c;

	memset(&c, 0, sizeof(c));
	mta_caps_line(&c, "SIZE");
	ck_assert(c.size_offered);
	ck_assert_uint_eq(c.size, 0);
	mta_caps_line(&c, "SIZE junk");
	ck_assert_uint_eq(c.size, 0);
	mta_caps_line(&c, "AUTH=LOGIN");
	ck_assert_int_eq(c.auth, MTA_AUTH_LOGIN);
	/* Not the words themselves: no capability. */
	memset(&c, 0, sizeof(c));
	mta_caps_line(&c, "PIPELININGX");
	mta_caps_line(&c, "AUTH PLAINX");
	mta_caps_line(&c, "");
	ck_assert(!c.pipelining);
	ck_assert_int_eq(c.auth, 0);
}
END_TEST

/* ---- DATA ------------------------------------------------------------------ */

static char *
stuff_all(const char *const *chunks, size_t n)
{
	static char	out[4096];
	char		buf[1024];
	size_t		i, len = 0, w;
	int		state = MTA_DOT_INIT;
	const char	*end;

	for (i = 0; i < n; i++) {
		w = mta_dotstuff(chunks[i], strlen(chunks[i]), buf, &state);
		memcpy(out + len, buf, w);
		len += w;
	}
	end = mta_dot_end(state);
	memcpy(out + len, end, strlen(end));
	len += strlen(end);
	out[len] = '\0';
	return out;
}

START_TEST(test_dotstuff)
{
	const char *a[] = { ".leading\r\nmid.dle\r\n..two\r\n" };
	const char *b[] = { "line\r\n", ".", "split\r\n" };
	const char *c[] = { "bare\nlf\n" };
	const char *d[] = { "no end" };
	const char *e[] = { "ends in cr\r" };
	const char *f[] = { "" };

	ck_assert_str_eq(stuff_all(a, 1),
	    "..leading\r\nmid.dle\r\n...two\r\n.\r\n");
	ck_assert_str_eq(stuff_all(b, 3), "line\r\n..split\r\n.\r\n");
	ck_assert_str_eq(stuff_all(c, 1), "bare\r\nlf\r\n.\r\n");
	ck_assert_str_eq(stuff_all(d, 1), "no end\r\n.\r\n");
	ck_assert_str_eq(stuff_all(e, 1), "ends in cr\r\n.\r\n");
	ck_assert_str_eq(stuff_all(f, 1), ".\r\n");
}
END_TEST

/* ---- AUTH -------------------------------------------------------------------- */

START_TEST(test_auth_plain)
{
	char	out[128];

	ck_assert_int_eq(mta_auth_plain("user1", "s3cret", out, sizeof(out)),
	    0);
	ck_assert_str_eq(out, "AHVzZXIxAHMzY3JldA==");
	ck_assert_int_eq(mta_auth_plain("user1", "s3cret", out, 8), -1);
}
END_TEST

START_TEST(test_auth_cram_md5)
{
	char	out[128];

	/* RFC 2195, section 2 */
	ck_assert_int_eq(mta_auth_cram_md5("tim", "tanstaaftanstaaf",
	    "PDE4OTYuNjk3MTcwOTUyQHBvc3RvZmZpY2UucmVzdG9uLm1jaS5uZXQ+", out,
	    sizeof(out)), 0);
	ck_assert_str_eq(out, "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw");
	/* Not base64. */
	ck_assert_int_eq(mta_auth_cram_md5("tim", "x", "abc", out,
	    sizeof(out)), -1);
	ck_assert_int_eq(mta_auth_cram_md5("tim", "x", "", out,
	    sizeof(out)), -1);
}
END_TEST

/* ---- MX ---------------------------------------------------------------------- */

static void
mx_set(struct dns_mx *mx, const char *host, int pref)
{
	strlcpy(mx->host, host, sizeof(mx->host));
	mx->pref = pref;
}

START_TEST(test_mx_sort)
{
	struct dns_mx	mx[4];
	int		seen_a_first = 0, seen_b_first = 0, i;

	for (i = 0; i < 200; i++) {
		mx_set(&mx[0], "c", 30);
		mx_set(&mx[1], "a", 10);
		mx_set(&mx[2], "b", 10);
		mx_set(&mx[3], "z", 5);
		mx_sort(mx, 4);
		ck_assert_str_eq(mx[0].host, "z");
		ck_assert_int_eq(mx[1].pref, 10);
		ck_assert_int_eq(mx[2].pref, 10);
		ck_assert_str_eq(mx[3].host, "c");
		if (strcmp(mx[1].host, "a") == 0)
			seen_a_first = 1;
		else
			seen_b_first = 1;
	}
	/* Equal preferences come in both orders (RFC 5321 5.1). */
	ck_assert(seen_a_first && seen_b_first);
}
END_TEST

START_TEST(test_mx_select)
{
	struct dns_mx	mx[4];
	int		found;

	mx_set(&mx[0], "mx1.example.org", 10);
	mx_set(&mx[1], "mx2.example.org", 20);
	mx_set(&mx[2], "Backup.Example.ORG.", 30);
	mx_set(&mx[3], "mx4.example.org", 30);
	/* Ourselves and everything not preferred over us go. */
	ck_assert_uint_eq(mx_select(mx, 4, "backup.example.org", &found), 2);
	ck_assert(found);
	/* Not listed: every host stays. */
	ck_assert_uint_eq(mx_select(mx, 4, "other.example.org", &found), 4);
	ck_assert(!found);
	/* The best MX: nothing is left (a loop). */
	ck_assert_uint_eq(mx_select(mx, 4, "mx1.example.org", &found), 0);
	ck_assert(found);
}
END_TEST

START_TEST(test_mx_null)
{
	struct dns_mx	mx[2];

	mx_set(&mx[0], "", 0);
	ck_assert(mx_is_null(mx, 1));
	mx_set(&mx[1], "mx.example.org", 10);
	ck_assert(!mx_is_null(mx, 2));
	ck_assert(!mx_is_null(mx, 0));
}
END_TEST

/* ---- DNS answers ------------------------------------------------------------- */

/*
 * A response for example.org MX: three MX (names compressed or not, the
 * best last), one A.
 */
static const unsigned char mx_answer[] = {
	0x12, 0x34, 0x81, 0x80, 0x00, 0x01, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00,
	/* question: example.org MX IN (offset 12) */
	7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 3, 'o', 'r', 'g', 0,
	0x00, 0x0f, 0x00, 0x01,
	/* MX 10 mx1.example.org */
	0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01, 0, 0, 0x0e, 0x10, 0x00, 0x08,
	0x00, 0x0a, 3, 'm', 'x', '1', 0xc0, 0x0c,
	/* MX 20 other.net */
	0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01, 0, 0, 0x0e, 0x10, 0x00, 0x0d,
	0x00, 0x14, 5, 'o', 't', 'h', 'e', 'r', 3, 'n', 'e', 't', 0,
	/* MX 5 best.example.org */
	0xc0, 0x0c, 0x00, 0x0f, 0x00, 0x01, 0, 0, 0x0e, 0x10, 0x00, 0x09,
	0x00, 0x05, 4, 'b', 'e', 's', 't', 0xc0, 0x0c,
	/* A 192.0.2.1 (another type: skipped for MX) */
	0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0, 0, 0x0e, 0x10, 0x00, 0x04,
	192, 0, 2, 1,
};

START_TEST(test_dns_parse_mx)
{
	struct dns_mx	mx[4];

	ck_assert_int_eq(dns_parse_mx(mx_answer, sizeof(mx_answer), mx, 4), 3);
	ck_assert_str_eq(mx[0].host, "mx1.example.org");
	ck_assert_int_eq(mx[0].pref, 10);
	ck_assert_str_eq(mx[1].host, "other.net");
	ck_assert_int_eq(mx[1].pref, 20);
	ck_assert_str_eq(mx[2].host, "best.example.org");
	ck_assert_int_eq(mx[2].pref, 5);
	/* Bounded by max, keeping the preferred ones. */
	ck_assert_int_eq(dns_parse_mx(mx_answer, sizeof(mx_answer), mx, 2), 2);
	ck_assert_str_eq(mx[0].host, "mx1.example.org");
	ck_assert_str_eq(mx[1].host, "best.example.org");
	ck_assert_int_eq(dns_parse_mx(mx_answer, sizeof(mx_answer), mx, 1), 1);
	ck_assert_str_eq(mx[0].host, "best.example.org");
}
END_TEST

START_TEST(test_dns_parse_addr)
{
	struct sockaddr_storage	 ss[2];
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss[0];
	char			 buf[INET_ADDRSTRLEN];

	ck_assert_int_eq(dns_parse_addr(mx_answer, sizeof(mx_answer), AF_INET,
	    ss, 2), 1);
	ck_assert_int_eq(sin->sin_family, AF_INET);
	inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf));
	ck_assert_str_eq(buf, "192.0.2.1");
	ck_assert_int_eq(dns_parse_addr(mx_answer, sizeof(mx_answer),
	    AF_INET6, ss, 2), 0);
}
END_TEST

START_TEST(test_dns_parse_malformed)
{
	unsigned char	 pkt[sizeof(mx_answer)];
	struct dns_mx	 mx[4];
	size_t		 n;

	/* Every truncation is refused, never read past. */
	for (n = 0; n < sizeof(mx_answer); n++)
		ck_assert_msg(dns_parse_mx(mx_answer, n, mx, 4) == -1,
		    "length %zu", n);
	/* A compression pointer to itself. */
	memcpy(pkt, mx_answer, sizeof(pkt));
	pkt[29] = 0xc0;
	pkt[30] = 29;
	ck_assert_int_eq(dns_parse_mx(pkt, sizeof(pkt), mx, 4), -1);
	/* An rdlength past the end. */
	memcpy(pkt, mx_answer, sizeof(pkt));
	pkt[40] = 0xff;
	ck_assert_int_eq(dns_parse_mx(pkt, sizeof(pkt), mx, 4), -1);
}
END_TEST

/* ---- settings -------------------------------------------------------------- */

START_TEST(test_url_parse)
{
	enum relay_proto	 proto;
	char			 host[RELAY_HOST_MAX], err[128];
	int			 port;

	ck_assert_int_eq(relay_url_parse("smtp://Mail.Example.org", &proto,
	    host, sizeof(host), &port, err, sizeof(err)), 0);
	ck_assert_int_eq(proto, RELAY_PROTO_SMTP);
	ck_assert_str_eq(host, "mail.example.org");
	ck_assert_int_eq(port, 25);
	ck_assert_int_eq(relay_url_parse("smtp+tls://h.example:587", &proto,
	    host, sizeof(host), &port, err, sizeof(err)), 0);
	ck_assert_int_eq(proto, RELAY_PROTO_STARTTLS);
	ck_assert_int_eq(port, 587);
	ck_assert_int_eq(relay_url_parse("smtps://h.example", &proto, host,
	    sizeof(host), &port, err, sizeof(err)), 0);
	ck_assert_int_eq(proto, RELAY_PROTO_SMTPS);
	ck_assert_int_eq(port, 465);
	ck_assert_int_eq(relay_url_parse("smtp://[2001:db8::1]:2525", &proto,
	    host, sizeof(host), &port, err, sizeof(err)), 0);
	ck_assert_str_eq(host, "[2001:db8::1]");
	ck_assert_int_eq(port, 2525);
	ck_assert_int_eq(relay_url_parse("smtp://192.0.2.7:26", &proto, host,
	    sizeof(host), &port, err, sizeof(err)), 0);
	ck_assert_str_eq(host, "192.0.2.7");
}
END_TEST

START_TEST(test_url_parse_bad)
{
	static const char *bad[] = {
		"ftp://h", "smtp://", "smtp://:25", "smtp://h:0", "smtp://h:65536",
		"smtp://h:x", "smtp://[::1", "smtp://[nonsense]", "smtp://a b",
		"smtp://[::1]x", "h.example", "smtp://h:25:25",
	};
	enum relay_proto	 proto;
	char			 host[RELAY_HOST_MAX], err[128];
	size_t			 i;
	int			 port;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(relay_url_parse(bad[i], &proto, host,
		    sizeof(host), &port, err, sizeof(err)) == -1,
		    "accepted %s", bad[i]);
		ck_assert(err[0] != '\0');
	}
}
END_TEST

START_TEST(test_secret_split)
{
	char	user[64], pass[64];

	ck_assert_int_eq(relay_secret_split("bob:pa:ss word", user,
	    sizeof(user), pass, sizeof(pass)), 0);
	ck_assert_str_eq(user, "bob");
	ck_assert_str_eq(pass, "pa:ss word");
	ck_assert_int_eq(relay_secret_split("bob   pa:ss", user, sizeof(user),
	    pass, sizeof(pass)), 0);
	ck_assert_str_eq(user, "bob");
	ck_assert_str_eq(pass, "pa:ss");
	ck_assert_int_eq(relay_secret_split("bob", user, sizeof(user), pass,
	    sizeof(pass)), -1);
	ck_assert_int_eq(relay_secret_split("bob:", user, sizeof(user), pass,
	    sizeof(pass)), -1);
	ck_assert_int_eq(relay_secret_split(":pw", user, sizeof(user), pass,
	    sizeof(pass)), -1);
	ck_assert_int_eq(relay_secret_split("bob:password", user, 3, pass,
	    sizeof(pass)), -1);
}
END_TEST

START_TEST(test_resolver_parse)
{
	char	addr[64];
	int	port;

	ck_assert_int_eq(resolver_parse("127.0.0.1@5353", addr, sizeof(addr),
	    &port), 0);
	ck_assert_str_eq(addr, "127.0.0.1");
	ck_assert_int_eq(port, 5353);
	ck_assert_int_eq(resolver_parse("::1", addr, sizeof(addr), &port), 0);
	ck_assert_int_eq(port, 53);
	ck_assert_int_eq(resolver_parse("dns.example", addr, sizeof(addr),
	    &port), -1);
	ck_assert_int_eq(resolver_parse("127.0.0.1@", addr, sizeof(addr),
	    &port), -1);
	ck_assert_int_eq(resolver_parse("127.0.0.1@99999", addr, sizeof(addr),
	    &port), -1);
}
END_TEST

/* ---- configuration and rules ------------------------------------------------ */

static struct config *
parse(const char *text, struct config_errors *e)
{
	return config_parse("test.conf", text, e);
}

static int
has_error(const struct config_errors *e, const char *what)
{
	size_t	i;

	for (i = 0; i < e->n; i++)
		if (strstr(e->lines[i], what) != NULL)
			return 1;
	return 0;
}

START_TEST(test_config_relay)
{
	struct config_errors	 e = { NULL, 0 };
	struct config		*c;
	struct action		*a;

	c = parse("hostname mx.example.org\n"
	    "resolver 127.0.0.1@5353\n"
	    "resolver ::1\n"
	    "relay timeout data-end 2m\n"
	    "relay port 2525\n"
	    "relay connections 3\n"
	    "table secrets { smtp.example.net = \"u:p w\" }\n"
	    "action out relay helo out.example.org src 192.0.2.1 "
	    "src 2001:db8::1 tls verify\n"
	    "action smart relay host smtps://Smtp.Example.Net auth <secrets>\n"
	    "action bk relay backup mx mx2.example.org\n"
	    "match from local for any action out\n", &e);
	ck_assert_msg(c != NULL, "%s", e.n ? e.lines[0] : "?");
	ck_assert_int_eq(c->nresolvers, 2);
	ck_assert_str_eq(c->resolvers[0], "127.0.0.1@5353");
	ck_assert_str_eq(c->resolvers[1], "::1@53");
	ck_assert_int_eq(c->relay_timeout[RELAY_TO_DATA_END], 120);
	ck_assert_int_eq(c->relay_timeout[RELAY_TO_GREETING], 300);
	ck_assert_int_eq(c->relay_port, 2525);
	ck_assert_int_eq(c->relay_connections, 3);
	ck_assert_ptr_nonnull(a = config_action(c, "out"));
	ck_assert_int_eq(a->type, ACTION_RELAY);
	ck_assert_str_eq(a->relay.helo, "out.example.org");
	ck_assert(a->relay.has_src4 && a->relay.has_src6);
	ck_assert_int_eq(a->relay.tls, RELAY_TLS_VERIFY);
	ck_assert_str_eq(a->relay.ca_file, RELAY_CA_DEFAULT);
	ck_assert_ptr_nonnull(a = config_action(c, "smart"));
	ck_assert_str_eq(a->relay.host, "smtp.example.net");
	ck_assert_int_eq(a->relay.port, 465);
	ck_assert_int_eq(a->relay.proto, RELAY_PROTO_SMTPS);
	/* TLS on connect: at least "required". */
	ck_assert_int_eq(a->relay.tls, RELAY_TLS_REQUIRED);
	ck_assert_ptr_nonnull(a->relay.auth);
	ck_assert_ptr_nonnull(a = config_action(c, "bk"));
	ck_assert(a->relay.backup);
	ck_assert_str_eq(a->relay.backup_mx, "mx2.example.org");
	config_free(c);
}
END_TEST

START_TEST(test_config_relay_errors)
{
	struct config_errors	 e = { NULL, 0 };
	struct config		*c;

	c = parse("resolver dns.example.org\n"
	    "relay timeout forever 1m\n"
	    "relay timeout greeting 2h\n"
	    "relay port 0\n"
	    "table s { h.example = \"user:pw\" }\n"
	    "table nopw { h.example = \"user\" }\n"
	    "action a relay host ftp://h.example\n"
	    "action b relay host smtp://h.example auth <s>\n"
	    "action c relay auth <s>\n"
	    "action d relay backup host smtp://h.example\n"
	    "action e relay tls maybe\n"
	    "action f relay src 192.0.2.1 src 192.0.2.2\n"
	    "action g relay host smtp+tls://h.example auth <nopw>\n"
	    "action h relay host smtp+tls://other.example auth <s>\n"
	    "action i relay host smtps://h.example tls no\n"
	    "action j relay ca /nonexistent/ca.pem tls verify\n"
	    "action k relay helo \"bad name\"\n", &e);
	ck_assert_ptr_null(c);
	ck_assert(has_error(&e, "bad resolver \"dns.example.org\""));
	ck_assert(has_error(&e, "unknown relay timeout \"forever\""));
	ck_assert(has_error(&e, "relay timeout greeting"));
	ck_assert(has_error(&e, "relay port"));
	ck_assert(has_error(&e, "bad relay host \"ftp://h.example\""));
	ck_assert(has_error(&e, "auth needs TLS"));
	ck_assert(has_error(&e, "auth needs a relay host"));
	ck_assert(has_error(&e, "backup and host cannot be combined"));
	ck_assert(has_error(&e, "bad tls \"maybe\""));
	ck_assert(has_error(&e, "bad source address \"192.0.2.2\""));
	ck_assert(has_error(&e, "cannot be a secrets table"));
	ck_assert(has_error(&e, "no credentials for other.example"));
	ck_assert(has_error(&e, "tls no contradicts smtps://"));
	ck_assert(has_error(&e, "ca /nonexistent/ca.pem"));
	ck_assert(has_error(&e, "bad helo name"));
	config_errors_clear(&e);
}
END_TEST

START_TEST(test_ruleset_relay)
{
	struct config_errors	 e = { NULL, 0 };
	struct rcpt_query	 q;
	struct rcpt_result	 res;
	struct config		*c;

	users_clear();
	ck_assert_int_eq(users_add("alice", 1000, "/home/alice"), 0);
	c = parse("hostname mx.example.org\n"
	    "table aliases { alice = \"bob@remote.example\" }\n"
	    "action \"local\" mbox alias <aliases>\n"
	    "action out relay\n"
	    "match from local for local action \"local\"\n"
	    "match from local for any action out\n", &e);
	ck_assert_ptr_nonnull(c);
	memset(&q, 0, sizeof(q));
	q.client_addr = "127.0.0.1";
	q.client_local = 1;
	q.sender = "";
	q.auth_user = "";
	/* One delivery to the address itself: local part case kept. */
	q.rcpt = "Bob.Smith@Remote.EXAMPLE";
	ck_assert_int_eq(ruleset_eval(c, &q, &res), 0);
	ck_assert_int_eq(res.code, 250);
	ck_assert_uint_eq(res.ndlv, 1);
	ck_assert_int_eq(res.dlv[0].kind, DLV_RELAY);
	ck_assert_str_eq(res.dlv[0].action, "out");
	ck_assert_str_eq(res.dlv[0].rcpt, "Bob.Smith@remote.example");
	ck_assert_str_eq(res.dlv[0].orig, "Bob.Smith@Remote.EXAMPLE");
	rcpt_result_clear(&res);
	/* An alias to a remote address goes out through the relay rule. */
	q.rcpt = "alice@mx.example.org";
	ck_assert_int_eq(ruleset_eval(c, &q, &res), 0);
	ck_assert_int_eq(res.code, 250);
	ck_assert_uint_eq(res.ndlv, 1);
	ck_assert_int_eq(res.dlv[0].kind, DLV_RELAY);
	ck_assert_str_eq(res.dlv[0].rcpt, "bob@remote.example");
	rcpt_result_clear(&res);
	/* Not from a local client: no rule, never an open relay. */
	q.client_addr = "192.0.2.9";
	q.client_local = 0;
	q.rcpt = "bob@remote.example";
	ck_assert_int_eq(ruleset_eval(c, &q, &res), 0);
	ck_assert_int_eq(res.code, 550);
	ck_assert_uint_eq(res.ndlv, 0);
	rcpt_result_clear(&res);
	config_free(c);
	users_clear();
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("mta");
	TCase	*tc;
	SRunner	*sr;
	int	 failed;

	tc = tcase_create("reply");
	tcase_add_test(tc, test_reply_single_line);
	tcase_add_test(tc, test_reply_multi_line);
	tcase_add_test(tc, test_reply_bare_code);
	tcase_add_test(tc, test_reply_malformed);
	tcase_add_test(tc, test_reply_limits);
	tcase_add_test(tc, test_reply_status);
	suite_add_tcase(s, tc);
	tc = tcase_create("ehlo");
	tcase_add_test(tc, test_caps);
	tcase_add_test(tc, test_caps_variants);
	suite_add_tcase(s, tc);
	tc = tcase_create("data");
	tcase_add_test(tc, test_dotstuff);
	suite_add_tcase(s, tc);
	tc = tcase_create("auth");
	tcase_add_test(tc, test_auth_plain);
	tcase_add_test(tc, test_auth_cram_md5);
	suite_add_tcase(s, tc);
	tc = tcase_create("mx");
	tcase_add_test(tc, test_mx_sort);
	tcase_add_test(tc, test_mx_select);
	tcase_add_test(tc, test_mx_null);
	suite_add_tcase(s, tc);
	tc = tcase_create("dns");
	tcase_add_test(tc, test_dns_parse_mx);
	tcase_add_test(tc, test_dns_parse_addr);
	tcase_add_test(tc, test_dns_parse_malformed);
	suite_add_tcase(s, tc);
	tc = tcase_create("settings");
	tcase_add_test(tc, test_url_parse);
	tcase_add_test(tc, test_url_parse_bad);
	tcase_add_test(tc, test_secret_split);
	tcase_add_test(tc, test_resolver_parse);
	tcase_add_test(tc, test_config_relay);
	tcase_add_test(tc, test_config_relay_errors);
	tcase_add_test(tc, test_ruleset_relay);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
