#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "smtp_data.h"
#include "smtp_parse.h"

/* ---- commands -------------------------------------------------------- */

static enum smtp_verb
verb_of(const char *text, const char **args)
{
	static char	line[1024];
	struct smtp_cmd	cmd;

	strlcpy(line, text, sizeof(line));
	ck_assert_int_eq(smtp_parse_command(line, &cmd), 0);
	ck_assert_ptr_nonnull(cmd.name);
	ck_assert_ptr_nonnull(cmd.args);
	if (args != NULL)
		*args = cmd.args;
	return cmd.verb;
}

static const struct {
	const char	*name;
	enum smtp_verb	 verb;
} all_verbs[] = {
	{ "HELO", VERB_HELO }, { "EHLO", VERB_EHLO }, { "MAIL", VERB_MAIL },
	{ "RCPT", VERB_RCPT }, { "DATA", VERB_DATA }, { "RSET", VERB_RSET },
	{ "NOOP", VERB_NOOP }, { "QUIT", VERB_QUIT }, { "VRFY", VERB_VRFY },
	{ "EXPN", VERB_EXPN }, { "HELP", VERB_HELP },
	{ "STARTTLS", VERB_STARTTLS }, { "AUTH", VERB_AUTH },
	{ "BDAT", VERB_BDAT },
};

START_TEST(test_every_verb)
{
	char		 line[64];
	const char	*args;
	struct smtp_cmd	 cmd;
	size_t		 i, j;

	for (i = 0; i < sizeof(all_verbs) / sizeof(all_verbs[0]); i++) {
		/* Alone. */
		ck_assert_int_eq(verb_of(all_verbs[i].name, &args),
		    all_verbs[i].verb);
		ck_assert_str_eq(args, "");

		/* With an argument. */
		snprintf(line, sizeof(line), "%s some arg", all_verbs[i].name);
		ck_assert_int_eq(smtp_parse_command(line, &cmd), 0);
		ck_assert_int_eq(cmd.verb, all_verbs[i].verb);
		ck_assert_str_eq(cmd.name, all_verbs[i].name);
		ck_assert_str_eq(cmd.args, "some arg");
		/* args points into the line, it is not a copy. */
		ck_assert_ptr_eq(cmd.args, line + strlen(all_verbs[i].name) + 1);

		/* Lower case, and mixed case. */
		snprintf(line, sizeof(line), "%s x", all_verbs[i].name);
		for (j = 0; line[j] != ' '; j++)
			line[j] = (j % 2) ? line[j] : line[j] - 'A' + 'a';
		ck_assert_int_eq(smtp_parse_command(line, &cmd), 0);
		ck_assert_int_eq(cmd.verb, all_verbs[i].verb);
		ck_assert_str_eq(cmd.name, all_verbs[i].name);
		ck_assert_str_eq(cmd.args, "x");

		/* Glued to anything: unknown. */
		snprintf(line, sizeof(line), "%sX", all_verbs[i].name);
		ck_assert_int_eq(verb_of(line, NULL), VERB_UNKNOWN);
		snprintf(line, sizeof(line), "%s:", all_verbs[i].name);
		ck_assert_int_eq(verb_of(line, NULL), VERB_UNKNOWN);
		/* A prefix of the verb: unknown. */
		snprintf(line, sizeof(line), "%.3s", all_verbs[i].name);
		ck_assert_int_eq(verb_of(line, NULL), VERB_UNKNOWN);
	}
}
END_TEST

START_TEST(test_command_shapes)
{
	const char	*args;

	ck_assert_int_eq(verb_of("mail FROM:<a@b>", &args), VERB_MAIL);
	ck_assert_str_eq(args, "FROM:<a@b>");
	ck_assert_int_eq(verb_of("MAILFROM:<a@b>", NULL), VERB_UNKNOWN);
	ck_assert_int_eq(verb_of("RCPTTO:<a@b>", NULL), VERB_UNKNOWN);
	ck_assert_int_eq(verb_of("STARTTLSX", NULL), VERB_UNKNOWN);
	ck_assert_int_eq(verb_of("START", NULL), VERB_UNKNOWN);
	ck_assert_int_eq(verb_of("", &args), VERB_UNKNOWN);
	ck_assert_int_eq(verb_of(" QUIT", NULL), VERB_UNKNOWN);
	ck_assert_int_eq(verb_of("GET / HTTP/1.1", NULL), VERB_UNKNOWN);
	ck_assert_int_eq(verb_of("XCLIENT ADDR=1.2.3.4", NULL), VERB_XCLIENT);
	ck_assert_int_eq(verb_of("XFORWARD ADDR=1.2.3.4", NULL), VERB_UNKNOWN);

	/* Exactly one space is eaten: the rest belongs to the arguments. */
	ck_assert_int_eq(verb_of("HELO  two.spaces", &args), VERB_HELO);
	ck_assert_str_eq(args, " two.spaces");
	ck_assert_int_eq(verb_of("QUIT ", &args), VERB_QUIT);
	ck_assert_str_eq(args, "");

	/* 8-bit bytes are not controls (SMTPUTF8 arguments). */
	ck_assert_int_eq(verb_of("RCPT TO:<\xc3\xa9@example.org>", &args),
	    VERB_RCPT);
	ck_assert_str_eq(args, "TO:<\xc3\xa9@example.org>");
}
END_TEST

START_TEST(test_command_controls)
{
	static const char *bad[] = {
		"QUIT\r", "QUIT\n", "NOOP \r\nQUIT", "HELO a\tb", "HELO\tb",
		"MAIL FROM:<a@b>\x01", "\x1bQUIT", "NOOP \x7f", "\x7f",
		"RCPT TO:<a\x0b@b>", "\r\n", NULL
	};
	char		line[64];
	struct smtp_cmd	cmd;
	int		i, c;

	for (i = 0; bad[i] != NULL; i++) {
		strlcpy(line, bad[i], sizeof(line));
		ck_assert_msg(smtp_parse_command(line, &cmd) == -1, "#%d", i);
		/* Nothing to act upon, and no dangling pointers. */
		ck_assert_int_eq(cmd.verb, VERB_UNKNOWN);
		ck_assert_ptr_nonnull(cmd.name);
		ck_assert_ptr_nonnull(cmd.args);
	}
	/* Every control byte, anywhere. */
	for (c = 1; c < 0x20; c++) {
		snprintf(line, sizeof(line), "NOOP a%cb", c);
		ck_assert_msg(smtp_parse_command(line, &cmd) == -1, "0x%02x", c);
	}
	strlcpy(line, "NOOP ~", sizeof(line));
	ck_assert_int_eq(smtp_parse_command(line, &cmd), 0);
}
END_TEST

/* ---- paths ----------------------------------------------------------- */

static struct smtp_path	path;
static char		err[TEXT_MAX];

static int
mail(const char *args, int utf8)
{
	err[0] = 'X';
	err[1] = '\0';
	return smtp_parse_path(args, "FROM:", 1, utf8, &path, err,
	    sizeof(err));
}

static int
rcpt(const char *args, int utf8)
{
	err[0] = 'X';
	err[1] = '\0';
	return smtp_parse_path(args, "TO:", 0, utf8, &path, err, sizeof(err));
}

/* A reply line: three digits, a space, no CR or LF. */
static void
assert_reply(const char *prefix)
{
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
	    "reply \"%s\" does not start with \"%s\"", err, prefix);
	ck_assert(strchr(err, '\r') == NULL && strchr(err, '\n') == NULL);
}

START_TEST(test_mail_basic)
{
	ck_assert_int_eq(mail("FROM:<user@example.org>", 0), 0);
	ck_assert_str_eq(path.addr, "user@example.org");
	ck_assert_str_eq(path.mailaddr.local, "user");
	ck_assert_str_eq(path.mailaddr.domain, "example.org");
	ck_assert_int_eq(path.nparams, 0);

	/* Case-insensitive prefix, one space after the colon tolerated. */
	ck_assert_int_eq(mail("from:<a@b.c>", 0), 0);
	ck_assert_str_eq(path.addr, "a@b.c");
	ck_assert_int_eq(mail("From: <a@b.c>", 0), 0);
	ck_assert_str_eq(path.addr, "a@b.c");
	ck_assert_int_eq(rcpt("to: <x@y.z>", 0), 0);
	ck_assert_str_eq(path.addr, "x@y.z");
	ck_assert_int_eq(rcpt("TO:<x@y.z>", 0), 0);

	/* Quoted local part holding '>' and spaces. */
	ck_assert_int_eq(rcpt("TO:<\"a> b\"@example.org> NOTIFY=NEVER", 0), 0);
	ck_assert_str_eq(path.addr, "\"a> b\"@example.org");
	ck_assert_str_eq(path.mailaddr.local, "\"a> b\"");
	ck_assert_str_eq(smtp_path_param(&path, "NOTIFY"), "NEVER");

	ck_assert_int_eq(rcpt("TO:<u@[192.0.2.1]>", 0), 0);
	ck_assert_str_eq(path.mailaddr.domain, "[192.0.2.1]");
}
END_TEST

START_TEST(test_path_syntax_errors)
{
	static const char *bad_mail[] = {
		"", "FROM", "FROM:", "FROM:a@b.c", "FROM: a@b.c",
		"FROM:  <a@b.c>", "FROM:<a@b.c", "FROM:a@b.c>",
		"FROM :<a@b.c>", " FROM:<a@b.c>", "FROM<a@b.c>",
		"TO:<a@b.c>", "FROM:<a@b.c>x", "FROM:<a@b.c><x@y.z>",
		"FROM:<a@b.c>\tSIZE=1", "FROM:\t<a@b.c>", "FROMX:<a@b.c>",
		"FROM:<\"a@b.c>", "FROM:<\"a\\", NULL
	};
	int	i;

	for (i = 0; bad_mail[i] != NULL; i++) {
		ck_assert_msg(mail(bad_mail[i], 0) == -1, "accepted %s",
		    bad_mail[i]);
		ck_assert_str_eq(err, "501 5.5.4 Syntax: MAIL FROM:<address>");
	}
	ck_assert_int_eq(rcpt("FROM:<a@b.c>", 0), -1);
	ck_assert_str_eq(err, "501 5.5.4 Syntax: RCPT TO:<address>");
	ck_assert_int_eq(rcpt("TO:a@b.c", 0), -1);
	ck_assert_str_eq(err, "501 5.5.4 Syntax: RCPT TO:<address>");
}
END_TEST

START_TEST(test_bad_addresses)
{
	static const char *bad[] = {
		"<a@@b>", "<a b@c>", "<.a@b>", "<a@-b>", "<a@b.>",
		"<a@b..c>", "<a@[1.2.3]>", "<\"\"@b>", "<@>", "<a@>",
		"<@b>", "<a>", "<a@b >", "< a@b>", "<a\x01@b>",
		"<\xc3\xa9@\xff>", NULL
	};
	char	line[64];
	int	i;

	for (i = 0; bad[i] != NULL; i++) {
		snprintf(line, sizeof(line), "FROM:%s", bad[i]);
		ck_assert_msg(mail(line, 0) == -1, "accepted %s", line);
		ck_assert_str_eq(err, "501 5.1.7 Bad sender address syntax");
		snprintf(line, sizeof(line), "TO:%s", bad[i]);
		ck_assert_msg(rcpt(line, 1) == -1, "accepted %s", line);
		ck_assert_str_eq(err, "501 5.1.3 Bad recipient address syntax");
	}
}
END_TEST

START_TEST(test_null_path)
{
	ck_assert_int_eq(mail("FROM:<>", 0), 0);
	ck_assert_str_eq(path.addr, "");
	ck_assert_int_eq(path.nparams, 0);
	ck_assert_int_eq(mail("FROM: <> SIZE=1000", 0), 0);
	ck_assert_str_eq(path.addr, "");
	ck_assert_str_eq(smtp_path_param(&path, "SIZE"), "1000");

	ck_assert_int_eq(rcpt("TO:<>", 0), -1);
	ck_assert_str_eq(err, "501 5.1.3 Bad recipient address syntax");
	ck_assert_int_eq(smtp_parse_path("FROM:<>", "FROM:", 0, 0, &path, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "501 5.1.7 Bad sender address syntax");
}
END_TEST

START_TEST(test_postmaster)
{
	ck_assert_int_eq(rcpt("TO:<Postmaster>", 0), 0);
	ck_assert_str_eq(path.addr, "Postmaster");
	ck_assert_str_eq(path.mailaddr.domain, "");
	ck_assert_int_eq(rcpt("TO:<postmaster@example.org>", 0), 0);
	ck_assert_str_eq(path.mailaddr.domain, "example.org");
	/* Only as a recipient: a sender needs a domain. */
	ck_assert_int_eq(mail("FROM:<postmaster>", 0), -1);
	assert_reply("501 5.1.7 ");
}
END_TEST

START_TEST(test_source_route)
{
	ck_assert_int_eq(rcpt("TO:<@relay.example:user@example.org>", 0), 0);
	ck_assert_str_eq(path.addr, "user@example.org");
	ck_assert_str_eq(path.mailaddr.domain, "example.org");
	ck_assert_int_eq(mail("FROM:<@a.example,@b.example:u@c.example> "
	    "BODY=8BITMIME", 0), 0);
	ck_assert_str_eq(path.addr, "u@c.example");
	ck_assert_str_eq(smtp_path_param(&path, "BODY"), "8BITMIME");
	ck_assert_int_eq(rcpt("TO:<@[10.0.0.1]:u@d>", 0), 0);
	ck_assert_str_eq(path.addr, "u@d");

	static const char *bad[] = {
		"TO:<@a.example>", "TO:<@a.example:>", "TO:<@:u@d>",
		"TO:<@a,b:u@d>", "TO:<@a,,@b:u@d>", "TO:<@a;@b:u@d>",
		"TO:<@a.:u@d>", "TO:<@-a:u@d>", "TO:<@a:@b:u@d>",
		"TO:<@a: u@d>", NULL
	};
	for (int i = 0; bad[i] != NULL; i++) {
		ck_assert_msg(rcpt(bad[i], 0) == -1, "accepted %s", bad[i]);
		ck_assert_str_eq(err, "501 5.1.3 Bad recipient address syntax");
	}
}
END_TEST

START_TEST(test_params)
{
	const char	*v;

	ck_assert_int_eq(mail("FROM:<a@b.c> SIZE=12345 BODY=8BITMIME "
	    "SMTPUTF8 ret=hdrs ENVID=QQ314159", 0), 0);
	ck_assert_int_eq(path.nparams, 5);
	ck_assert_str_eq(path.params[0].key, "SIZE");
	ck_assert_str_eq(path.params[0].value, "12345");
	ck_assert_str_eq(path.params[2].key, "SMTPUTF8");
	ck_assert_str_eq(path.params[2].value, "");
	/* Keys are upper-cased, values kept as given. */
	ck_assert_str_eq(path.params[3].key, "RET");
	ck_assert_str_eq(path.params[3].value, "hdrs");
	ck_assert_str_eq(smtp_path_param(&path, "ENVID"), "QQ314159");
	v = smtp_path_param(&path, "SMTPUTF8");
	ck_assert_ptr_nonnull(v);
	ck_assert_str_eq(v, "");
	ck_assert_ptr_null(smtp_path_param(&path, "AUTH"));
	ck_assert_ptr_null(smtp_path_param(&path, "SIZ"));

	/* Several spaces between parameters, and trailing ones. */
	ck_assert_int_eq(mail("FROM:<a@b.c>   SIZE=1    BODY=7BIT  ", 0), 0);
	ck_assert_int_eq(path.nparams, 2);
	ck_assert_str_eq(smtp_path_param(&path, "BODY"), "7BIT");

	/* Key characters: alnum and '-', value: 33..126 but '='. */
	ck_assert_int_eq(rcpt("TO:<a@b.c> X-FOO-1=!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}~ "
	    "ORCPT=rfc822;a+2Bb@b.c", 0), 0);
	ck_assert_str_eq(smtp_path_param(&path, "X-FOO-1"),
	    "!\"#$%&'()*+,-./:;<>?@[\\]^_`{|}~");
	ck_assert_str_eq(smtp_path_param(&path, "orcpt"), "rfc822;a+2Bb@b.c");
}
END_TEST

START_TEST(test_param_errors)
{
	static const char *bad[] = {
		"FROM:<a@b.c> =1",		/* no key */
		"FROM:<a@b.c> SIZE=",		/* empty value */
		"FROM:<a@b.c> SIZE==1",
		"FROM:<a@b.c> SIZE=1=2",
		"FROM:<a@b.c> -SIZE=1",		/* key starts with '-' */
		"FROM:<a@b.c> SI_ZE=1",
		"FROM:<a@b.c> SI.ZE",
		"FROM:<a@b.c> SIZE=\xc3\xa9",	/* 8-bit value */
		"FROM:<a@b.c> SIZE=1\x7f",
		"FROM:<a@b.c> SIZE=1\t",
		"FROM:<a@b.c> SIZE=1 =",
		"FROM:<a@b.c> <x@y>",
		NULL
	};
	char	line[1024], key[64], val[300];
	int	i;

	for (i = 0; bad[i] != NULL; i++) {
		ck_assert_msg(mail(bad[i], 1) == -1, "accepted %s", bad[i]);
		ck_assert_str_eq(err, "555 5.5.4 Unsupported parameter syntax");
	}

	/* Duplicates, whatever their case. */
	ck_assert_int_eq(mail("FROM:<a@b.c> SIZE=1 size=2", 0), -1);
	assert_reply("555 5.5.4 ");
	ck_assert_ptr_nonnull(strstr(err, "Duplicate"));
	ck_assert_int_eq(rcpt("TO:<a@b.c> NOTIFY=NEVER NOTIFY=NEVER", 0), -1);
	assert_reply("555 5.5.4 ");
	ck_assert_int_eq(mail("FROM:<a@b.c> SMTPUTF8 SMTPUTF8", 0), -1);
	assert_reply("555 5.5.4 ");

	/* Key length: 31 fits struct smtp_param, 32 does not. */
	memset(key, 'K', 31);
	key[31] = '\0';
	snprintf(line, sizeof(line), "FROM:<a@b.c> %s=v", key);
	ck_assert_int_eq(mail(line, 0), 0);
	ck_assert_str_eq(path.params[0].key, key);
	memset(key, 'K', 32);
	key[32] = '\0';
	snprintf(line, sizeof(line), "FROM:<a@b.c> %s=v", key);
	ck_assert_int_eq(mail(line, 0), -1);
	assert_reply("555 5.5.4 ");

	/* Value length: 255 fits, 256 does not. */
	memset(val, 'v', 255);
	val[255] = '\0';
	snprintf(line, sizeof(line), "FROM:<a@b.c> K=%s", val);
	ck_assert_int_eq(mail(line, 0), 0);
	ck_assert_str_eq(smtp_path_param(&path, "K"), val);
	memset(val, 'v', 256);
	val[256] = '\0';
	snprintf(line, sizeof(line), "FROM:<a@b.c> K=%s", val);
	ck_assert_int_eq(mail(line, 0), -1);
	assert_reply("555 5.5.4 ");
}
END_TEST

START_TEST(test_param_count)
{
	char	line[1024], p[16];
	int	i;

	strlcpy(line, "TO:<a@b.c>", sizeof(line));
	for (i = 0; i < SMTP_PARAMS_MAX; i++) {
		snprintf(p, sizeof(p), " P%d=%d", i, i);
		strlcat(line, p, sizeof(line));
	}
	ck_assert_int_eq(rcpt(line, 0), 0);
	ck_assert_int_eq(path.nparams, SMTP_PARAMS_MAX);
	snprintf(p, sizeof(p), "P%d", SMTP_PARAMS_MAX - 1);
	ck_assert_str_eq(smtp_path_param(&path, p), "15");

	strlcat(line, " ONEMORE", sizeof(line));
	ck_assert_int_eq(rcpt(line, 0), -1);
	assert_reply("555 5.5.4 ");
	ck_assert_int_le(path.nparams, SMTP_PARAMS_MAX);
}
END_TEST

START_TEST(test_path_utf8)
{
	const char	*a = "TO:<\xc3\xa9l\xc3\xa8ve@\xc3\xa9t\xc3\xa9.example>";

	ck_assert_int_eq(rcpt(a, 1), 0);
	ck_assert_str_eq(path.addr, "\xc3\xa9l\xc3\xa8ve@\xc3\xa9t\xc3\xa9.example");
	/* Without SMTPUTF8 the client is told why. */
	ck_assert_int_eq(rcpt(a, 0), -1);
	assert_reply("553 5.6.7 ");
	ck_assert_int_eq(mail("FROM:<\xc3\xa9@example.org> SMTPUTF8", 0), -1);
	assert_reply("553 5.6.7 ");
	/* Bad UTF-8 is bad syntax, with or without. */
	ck_assert_int_eq(rcpt("TO:<\xc0\xaf@example.org>", 1), -1);
	ck_assert_str_eq(err, "501 5.1.3 Bad recipient address syntax");
	ck_assert_int_eq(rcpt("TO:<\xc0\xaf@example.org>", 0), -1);
	ck_assert_str_eq(err, "501 5.1.3 Bad recipient address syntax");
}
END_TEST

START_TEST(test_path_long)
{
	char	line[2048], local[128];

	/* An address longer than any buffer is refused, not truncated. */
	memset(line, 0, sizeof(line));
	strlcpy(line, "TO:<", sizeof(line));
	memset(line + 4, 'a', 1500);
	strlcat(line, "@b.c>", sizeof(line));
	ck_assert_int_eq(rcpt(line, 0), -1);
	ck_assert_str_eq(err, "501 5.1.3 Bad recipient address syntax");

	memset(local, 'l', 65);
	local[65] = '\0';
	snprintf(line, sizeof(line), "FROM:<%s@b.c>", local);
	ck_assert_int_eq(mail(line, 0), -1);
	ck_assert_str_eq(err, "501 5.1.7 Bad sender address syntax");
	local[64] = '\0';
	snprintf(line, sizeof(line), "FROM:<%s@b.c>", local);
	ck_assert_int_eq(mail(line, 0), 0);
}
END_TEST

START_TEST(test_err_buffer)
{
	char	small[8];

	/* A short err buffer is truncated, never overrun; NULL is allowed. */
	memset(small, 'Z', sizeof(small));
	ck_assert_int_eq(smtp_parse_path("x", "FROM:", 1, 0, &path, small,
	    sizeof(small)), -1);
	ck_assert_str_eq(small, "501 5.5");
	ck_assert_int_eq(smtp_parse_path("x", "FROM:", 1, 0, &path, NULL, 0),
	    -1);
	ck_assert_int_eq(smtp_parse_path("FROM:<a@b.c>", "FROM:", 1, 0, &path,
	    NULL, 0), 0);
}
END_TEST

/* ---- DATA ------------------------------------------------------------ */

#define IN_MAX	4096

/*
 * Every ck_assert records its location through a pipe: far too slow for the
 * hundreds of thousands of checks below, which only report failures.
 */
#define REQUIRE(cond, ...)	do {					\
	if (!(cond))							\
		ck_abort_msg(__VA_ARGS__);				\
} while (0)

struct result {
	char		out[2 * IN_MAX + 2];
	size_t		outlen;
	size_t		consumed;
	enum data_state	state;
	uint64_t	size;
	int		bare_lf;
	int		bare_cr;
};

/* Feeds in[0..len) cut at the given points, the way a socket would. */
static void
feed_cuts(const char *in, size_t len, const size_t *cuts, size_t ncuts,
    struct result *r)
{
	static char		buf[2 * IN_MAX + 2];
	struct data_parser	dp;
	size_t			from = 0, to, n, o, k;

	REQUIRE(len <= IN_MAX, "input too long");
	r->outlen = r->consumed = 0;
	data_parser_init(&dp, DM_DATA);
	for (k = 0; k <= ncuts; k++) {
		to = k < ncuts ? cuts[k] : len;
		REQUIRE(to >= from && to <= len, "bad cut");
		o = (size_t)-1;
		n = data_parser_feed(&dp, in + from, to - from, buf, &o);
		REQUIRE(n <= to - from, "consumed more than given");
		/* Documented bound on the output of one call. */
		REQUIRE(o <= 2 * (to - from) + 2, "output overflow");
		memcpy(r->out + r->outlen, buf, o);
		r->outlen += o;
		r->consumed += n;
		if (n < to - from) {
			/* Stopping early only happens at the end. */
			REQUIRE(dp.state == DS_DONE, "stopped early");
			break;
		}
		from = to;
	}
	r->state = dp.state;
	r->size = dp.size;
	r->bare_lf = dp.bare_lf;
	r->bare_cr = dp.bare_cr;
	REQUIRE(r->size == r->outlen, "size %llu, output %zu",
	    (unsigned long long)r->size, r->outlen);
}

static void
feed_all(const char *in, size_t len, struct result *r)
{
	feed_cuts(in, len, NULL, 0, r);
}

static void
feed_bytes(const char *in, size_t len, struct result *r)
{
	static size_t	cuts[IN_MAX];
	size_t		i;

	for (i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	feed_cuts(in, len, cuts, len > 0 ? len - 1 : 0, r);
}

static void
assert_same(const struct result *a, const struct result *b, const char *what)
{
	REQUIRE(a->consumed == b->consumed, "%s: consumed %zu vs %zu",
	    what, a->consumed, b->consumed);
	REQUIRE(a->outlen == b->outlen && memcmp(a->out, b->out,
	    a->outlen) == 0, "%s: output differs", what);
	REQUIRE(a->state == b->state, "%s: state %d vs %d", what, a->state,
	    b->state);
	REQUIRE(a->bare_lf == b->bare_lf && a->bare_cr == b->bare_cr,
	    "%s: flags", what);
}

static void
check_data(const char *in, const char *want_out, size_t want_consumed,
    int want_lf, int want_cr)
{
	struct result	r;

	feed_all(in, strlen(in), &r);
	ck_assert_int_eq(r.state, DS_DONE);
	ck_assert_uint_eq(r.consumed, want_consumed);
	ck_assert_uint_eq(r.outlen, strlen(want_out));
	ck_assert_mem_eq(r.out, want_out, r.outlen);
	ck_assert_int_eq(r.bare_lf, want_lf);
	ck_assert_int_eq(r.bare_cr, want_cr);
}

START_TEST(test_data_plain)
{
	const char	*msg = "Subject: hi\r\n\r\nHello.\r\nBye\r\n.\r\n";

	check_data(msg, "Subject: hi\r\n\r\nHello.\r\nBye\r\n", strlen(msg),
	    0, 0);
	/* The empty message, and a single empty line. */
	check_data(".\r\n", "", 3, 0, 0);
	check_data("\r\n.\r\n", "\r\n", 5, 0, 0);
	check_data("x\r\n.\r\n", "x\r\n", 6, 0, 0);
}
END_TEST

START_TEST(test_data_unstuff)
{
	check_data("..\r\n.\r\n", ".\r\n", 7, 0, 0);
	check_data("...\r\n.\r\n", "..\r\n", 8, 0, 0);
	check_data("a\r\n..b\r\n.x\r\n.\r\n", "a\r\n.b\r\nx\r\n", 15, 0, 0);
	/* Only the first dot of a line, only at line start. */
	check_data("a.b\r\n a.\r\n.\r\n", "a.b\r\n a.\r\n", 13, 0, 0);
	/* A stuffed ".." line followed by the end. */
	check_data("x\r\n..\r\n.\r\n", "x\r\n.\r\n", 10, 0, 0);
}
END_TEST

START_TEST(test_data_pipelining)
{
	const char	*in = "body\r\n.\r\nQUIT\r\n";
	struct result	 r;
	struct data_parser dp;
	char		 out[64];
	size_t		 o = 99, n;

	feed_all(in, strlen(in), &r);
	ck_assert_int_eq(r.state, DS_DONE);
	ck_assert_uint_eq(r.consumed, 9);
	ck_assert_mem_eq(r.out, "body\r\n", 6);
	ck_assert_uint_eq(r.outlen, 6);

	/* After DS_DONE nothing more is consumed or produced. */
	data_parser_init(&dp, DM_DATA);
	n = data_parser_feed(&dp, in, strlen(in), out, &o);
	ck_assert_uint_eq(n, 9);
	ck_assert_int_eq(dp.state, DS_DONE);
	n = data_parser_feed(&dp, in + 9, strlen(in) - 9, out, &o);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(o, 0);
	ck_assert_uint_eq(dp.size, 6);

	/* The next message right behind: only the first one is taken. */
	check_data("a\r\n.\r\nb\r\n.\r\n", "a\r\n", 6, 0, 0);
	/* Zero-length feeds are harmless. */
	data_parser_init(&dp, DM_DATA);
	ck_assert_uint_eq(data_parser_feed(&dp, "", 0, out, &o), 0);
	ck_assert_uint_eq(o, 0);
	ck_assert_int_eq(dp.state, DS_BOL);
}
END_TEST

START_TEST(test_data_splits)
{
	static const char *msgs[] = {
		"Subject: split\r\n\r\n..dot\r\nline\r\n.\r\nNEXT",
		".\r\nNEXT",
		"\r\n.\r\n",
		"a\rb\nc\r\n.\n.\r.\r\r\n..\r\n.\r\nZ",
		"x\r\n.\r\r\n.\r\n",
		"x\r\n.\rq\r\n.\r\n",
		"no end\r\n.\r",
		"no end\r\n.",
		"no end\r",
		NULL
	};
	struct result	ref, r;
	size_t		len, i, j, cuts[2];
	int		m;

	for (m = 0; msgs[m] != NULL; m++) {
		len = strlen(msgs[m]);
		feed_all(msgs[m], len, &ref);
		feed_bytes(msgs[m], len, &r);
		assert_same(&ref, &r, msgs[m]);
		for (i = 0; i <= len; i++) {
			cuts[0] = i;
			feed_cuts(msgs[m], len, cuts, 1, &r);
			assert_same(&ref, &r, msgs[m]);
			for (j = i; j <= len; j++) {
				cuts[1] = j;
				feed_cuts(msgs[m], len, cuts, 2, &r);
				assert_same(&ref, &r, msgs[m]);
			}
		}
	}
	/* And the first one ends where it should. */
	feed_all(msgs[0], strlen(msgs[0]), &ref);
	ck_assert_int_eq(ref.state, DS_DONE);
	ck_assert_uint_eq(ref.consumed, strlen(msgs[0]) - 4);
	ck_assert_mem_eq(ref.out, "Subject: split\r\n\r\n.dot\r\nline\r\n",
	    ref.outlen);
	/* An unfinished ".\r" is held back, not lost and not ended. */
	feed_all(msgs[6], strlen(msgs[6]), &ref);
	ck_assert_int_eq(ref.state, DS_DOTCR);
	ck_assert_uint_eq(ref.consumed, strlen(msgs[6]));
	ck_assert_uint_eq(ref.outlen, strlen("no end\r\n"));
}
END_TEST

static int
mem_has(const char *hay, size_t len, const char *needle)
{
	size_t	n = strlen(needle), i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

/*
 * SMTP smuggling: each of these, inside a message, must stay content.  The
 * flags tell the session that the client sends bare line ends.
 */
START_TEST(test_data_smuggling)
{
#define SEQ(s)	s, sizeof(s) - 1
	static const struct {
		const char	*seq;
		size_t		 len;
		int		 lf, cr;
	} v[] = {
		{ SEQ("\n.\n"),		1, 0 },
		{ SEQ("\n.\r\n"),		1, 0 },
		{ SEQ("\r\n.\n"),		1, 0 },
		{ SEQ("\r.\r"),		0, 1 },
		{ SEQ("\r.\r\n"),		0, 1 },
		{ SEQ("\r\n.\r"),		0, 1 },
		{ SEQ("\n.\r"),		1, 1 },
		{ SEQ("\r.\n"),		1, 1 },
		{ SEQ("\r\n.\nX\n"),	1, 0 },
		{ SEQ("\r\n\n.\n"),		1, 0 },
		{ SEQ("\n\r\n.\n"),		1, 0 },
		{ SEQ("\r\n.\0\r\n"),	0, 0 },
		{ SEQ("\r\n .\r\n"),		0, 0 },
		{ SEQ("\r\n..\r\n"),		0, 0 },
		{ SEQ("\r\n.\r\r"),		0, 1 },
		{ SEQ("\r\n\r.\r\n"),	0, 1 },
	};
#undef SEQ
	static const char *lead[] = { "", "body", "body\r\n", "\r\n" };
	static const char *evil = "MAIL FROM:<evil@example.org>\r\n"
	    "RCPT TO:<victim@example.org>\r\nDATA\r\n";
	char		in[512];
	struct result	r, rb;
	size_t		i, l, len, seqlen;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		seqlen = v[i].len;
		for (l = 0; l < sizeof(lead) / sizeof(lead[0]); l++) {
			len = 0;
			memcpy(in + len, lead[l], strlen(lead[l]));
			len += strlen(lead[l]);
			memcpy(in + len, v[i].seq, seqlen);
			len += seqlen;
			memcpy(in + len, evil, strlen(evil));
			len += strlen(evil);

			feed_all(in, len, &r);
			ck_assert_msg(r.state != DS_DONE, "ended: #%zu/%zu",
			    i, l);
			ck_assert_uint_eq(r.consumed, len);
			feed_bytes(in, len, &rb);
			assert_same(&r, &rb, "smuggling bytewise");
			ck_assert_msg(r.bare_lf == v[i].lf &&
			    r.bare_cr == v[i].cr, "flags #%zu/%zu: lf %d cr %d",
			    i, l, r.bare_lf, r.bare_cr);

			/* Then a real end: all of it is one message. */
			memcpy(in + len, "\r\n.\r\nQUIT\r\n", 11);
			feed_all(in, len + 11, &r);
			ck_assert_int_eq(r.state, DS_DONE);
			ck_assert_uint_eq(r.consumed, len + 5);
			ck_assert_mem_eq(r.out + r.outlen - 2, "\r\n", 2);
			ck_assert(mem_has(r.out, r.outlen, "MAIL FROM:<evil"));
		}
	}
}
END_TEST

START_TEST(test_data_bare_passthrough)
{
	const char	*in = "a\nb\rc\r\r\n\n.\n..\r\n.\r\n";
	struct result	 r;

	feed_all(in, strlen(in), &r);
	ck_assert_int_eq(r.state, DS_DONE);
	/*
	 * Bare ends are content and end no line: "\n.\n" keeps its dot, and
	 * so does the ".." after it.
	 */
	ck_assert_uint_eq(r.outlen, strlen("a\nb\rc\r\r\n\n.\n..\r\n"));
	ck_assert_mem_eq(r.out, "a\nb\rc\r\r\n\n.\n..\r\n", r.outlen);
	ck_assert_int_eq(r.bare_lf, 1);
	ck_assert_int_eq(r.bare_cr, 1);

	/* ".\r" followed by something else: the CR comes back as content. */
	check_data(".\rx\r\n.\r\n", "\rx\r\n", 8, 0, 1);
	check_data(".\r\r\n.\r\n", "\r\r\n", 7, 0, 1);
	check_data(".\nx\r\n.\r\n", "\nx\r\n", 8, 1, 0);
}
END_TEST

/*
 * Reference model, line by line: the end is the first CRLF.CRLF of
 * CRLF + input; a dot right after a CRLF (or at the very start) goes.
 */
static void
reference(const char *in, size_t len, struct result *r)
{
	static char	buf[IN_MAX + 2];
	size_t		i, pos, end;
	int		found = 0;

	r->outlen = 0;
	r->bare_lf = r->bare_cr = 0;
	buf[0] = '\r';
	buf[1] = '\n';
	memcpy(buf + 2, in, len);
	for (pos = 0; pos + 5 <= len + 2; pos++)
		if (memcmp(buf + pos, "\r\n.\r\n", 5) == 0) {
			found = 1;
			break;
		}
	REQUIRE(found, "no end");	/* the callers always append one */
	end = pos;		/* data is in[0..pos), CRLF included */
	r->consumed = pos + 3;
	r->state = DS_DONE;
	for (i = 0; i < end; i++) {
		if (in[i] == '.' && (i == 0 || (i >= 2 && in[i - 2] == '\r' &&
		    in[i - 1] == '\n')))
			continue;
		r->out[r->outlen++] = in[i];
	}
	for (i = 0; i < r->consumed; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			r->bare_lf = 1;
		if (in[i] == '\r' && (i + 1 >= r->consumed || in[i + 1] != '\n'))
			r->bare_cr = 1;
	}
}

/* Every string over {CR, LF, '.', 'a'} up to 9 bytes, then CRLF.CRLF. */
START_TEST(test_data_exhaustive)
{
	static const char	 alpha[4] = { '\r', '\n', '.', 'a' };
	char			 in[32];
	struct result		 want, got;
	unsigned int		 n, code, c, total, k;

	for (n = 0; n <= 9; n++) {
		total = 1u << (2 * n);
		for (code = 0; code < total; code++) {
			for (k = 0, c = code; k < n; k++, c >>= 2)
				in[k] = alpha[c & 3];
			memcpy(in + n, "\r\n.\r\nZ", 6);
			reference(in, n + 6, &want);
			feed_all(in, n + 6, &got);
			assert_same(&want, &got, "exhaustive");
			REQUIRE(got.consumed < n + 6, "ate the next command");
			if (n <= 8) {
				feed_bytes(in, n + 6, &got);
				assert_same(&want, &got, "exhaustive bytewise");
			}
		}
	}
}
END_TEST

static Suite *
smtp_parse_suite(void)
{
	Suite	*s = suite_create("smtp_parse");
	TCase	*tc;

	tc = tcase_create("command");
	tcase_add_test(tc, test_every_verb);
	tcase_add_test(tc, test_command_shapes);
	tcase_add_test(tc, test_command_controls);
	suite_add_tcase(s, tc);

	tc = tcase_create("path");
	tcase_add_test(tc, test_mail_basic);
	tcase_add_test(tc, test_path_syntax_errors);
	tcase_add_test(tc, test_bad_addresses);
	tcase_add_test(tc, test_null_path);
	tcase_add_test(tc, test_postmaster);
	tcase_add_test(tc, test_source_route);
	tcase_add_test(tc, test_params);
	tcase_add_test(tc, test_param_errors);
	tcase_add_test(tc, test_param_count);
	tcase_add_test(tc, test_path_utf8);
	tcase_add_test(tc, test_path_long);
	tcase_add_test(tc, test_err_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("data");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_data_plain);
	tcase_add_test(tc, test_data_unstuff);
	tcase_add_test(tc, test_data_pipelining);
	tcase_add_test(tc, test_data_splits);
	tcase_add_test(tc, test_data_smuggling);
	tcase_add_test(tc, test_data_bare_passthrough);
	tcase_add_test(tc, test_data_exhaustive);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(smtp_parse_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
