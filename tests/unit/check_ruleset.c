#include "autoconf.h"

#include <check.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "ruleset.h"

static char			tmpdir[PATH_MAX];
static struct config		*conf;
static struct rcpt_result	 res;

#define HOST	"mx.example.org"

static const char default_rules[] =
    "match from local for local action \"local\"\n";

/* ---- helpers ---------------------------------------------------------- */

static void	xfmt(char *, size_t, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

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

/*
 * A config: hostname HOST, an alias file with `aliases`, the actions
 * "local" (mbox through the aliases), "md" (maildir, no aliases) and
 * "other" (mbox, its own alias table <other>), then `rules`.
 */
static void
setup_conf(const char *aliases, const char *rules)
{
	struct config_errors	 e = { NULL, 0 };
	char			 path[PATH_MAX], text[PATH_MAX + 4096];
	FILE			*fp;
	size_t			 i;

	xfmt(path, sizeof(path), "%s/aliases", tmpdir);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	ck_assert_int_ge(fputs(aliases, fp), 0);
	ck_assert_int_eq(fclose(fp), 0);
	xfmt(text, sizeof(text),
	    "hostname " HOST "\n"
	    "table aliases file:%s\n"
	    "table other { forward = \"carol\" }\n"
	    "action \"local\" mbox alias <aliases>\n"
	    "action md maildir\n"
	    "action other mbox \"/var/spool/other/%%u\" alias <other>\n"
	    "%s", path, rules);
	conf = config_parse("ruleset.conf", text, &e);
	for (i = 0; i < e.n; i++)
		fprintf(stderr, "config: %s\n", e.lines[i]);
	ck_assert_ptr_nonnull(conf);
	config_errors_clear(&e);
}

static void
setup_users(void)
{
	users_clear();
	ck_assert_int_eq(users_add("bob", 1001, "/home/bob"), 0);
	ck_assert_int_eq(users_add("alice", 1002, "/home/alice"), 0);
	ck_assert_int_eq(users_add("carol", 1003, "/home/carol"), 0);
	ck_assert_int_eq(users_add("root", 0, "/root"), 0);
	ck_assert_int_eq(users_add("dave+x", 1004, "/home/davex"), 0);
}

static void
teardown(void)
{
	rcpt_result_clear(&res);
	config_free(conf);
	conf = NULL;
	users_clear();
}

/* Evaluates rcpt from a client; "local" as ip means a local client. */
static int
eval_from(const char *rcpt, int local, const char *ip)
{
	struct rcpt_query	q;

	rcpt_result_clear(&res);
	memset(&q, 0, sizeof(q));
	q.client_addr = ip;
	q.client_local = local;
	q.helo = "client.example";
	q.sender = "sender@example.net";
	q.rcpt = rcpt;
	q.auth_user = "";
	ck_assert_int_eq(ruleset_eval(conf, &q, &res), 0);
	return res.code;
}

static int
eval_local(const char *rcpt)
{
	return eval_from(rcpt, 1, "127.0.0.1");
}

static int
eval_remote(const char *rcpt)
{
	return eval_from(rcpt, 0, "192.0.2.1");
}

/* The delivery for a user, or NULL. */
static const struct dlv *
dlv_for(const char *user)
{
	size_t	i;

	for (i = 0; i < res.ndlv; i++)
		if (strcmp(res.dlv[i].user, user) == 0)
			return &res.dlv[i];
	return NULL;
}

static void
expect_users(const char *first, ...)
{
	va_list		 ap;
	const char	*u;
	size_t		 n = 0;

	ck_assert_int_eq(res.code, 250);
	ck_assert_str_eq(res.text, "2.1.5 Ok");
	va_start(ap, first);
	for (u = first; u != NULL; u = va_arg(ap, const char *)) {
		ck_assert_msg(dlv_for(u) != NULL, "no delivery to %s", u);
		n++;
	}
	va_end(ap);
	ck_assert_uint_eq(res.ndlv, n);
}

static void
expect_unknown(const char *rcpt)
{
	char	want[TEXT_MAX];

	ck_assert_int_eq(res.code, 550);
	xfmt(want, sizeof(want), "5.1.1 <%s>: Recipient address rejected: "
	    "User unknown in local recipient table", rcpt);
	ck_assert_str_eq(res.text, want);
	ck_assert_uint_eq(res.ndlv, 0);
	ck_assert_ptr_null(res.dlv);
}

static void
expect_denied(const char *rcpt)
{
	char	want[TEXT_MAX];

	ck_assert_int_eq(res.code, 550);
	xfmt(want, sizeof(want), "5.7.1 <%s>: Relay access denied", rcpt);
	ck_assert_str_eq(res.text, want);
	ck_assert_uint_eq(res.ndlv, 0);
}

static void
expect_rejected(const char *rcpt)
{
	char	want[TEXT_MAX];

	ck_assert_int_eq(res.code, 550);
	xfmt(want, sizeof(want), "5.7.1 <%s>: Recipient address rejected by "
	    "policy", rcpt);
	ck_assert_str_eq(res.text, want);
	ck_assert_uint_eq(res.ndlv, 0);
}

/* ---- rules -------------------------------------------------------------- */

START_TEST(test_relay_denied)
{
	setup_conf("", default_rules);
	eval_remote("bob@example.com");
	expect_denied("bob@example.com");
	/* Not even from a local client: nothing matches a remote domain. */
	eval_local("bob@example.com");
	expect_denied("bob@example.com");
	/* A local domain from a remote client: no rule covers it either. */
	eval_remote("bob@" HOST);
	expect_denied("bob@" HOST);
}
END_TEST

START_TEST(test_no_rules_no_relay)
{
	setup_conf("", "");
	eval_local("bob@localhost");
	expect_denied("bob@localhost");
}
END_TEST

START_TEST(test_local_delivery_fields)
{
	const struct dlv	*d;

	setup_conf("", default_rules);
	eval_local("bob@" HOST);
	expect_users("bob", NULL);
	d = &res.dlv[0];
	ck_assert_uint_eq(d->kind, DLV_MBOX);
	ck_assert_str_eq(d->action, "local");
	ck_assert_str_eq(d->user, "bob");
	ck_assert_str_eq(d->dest, "/var/mail/bob");
	ck_assert_str_eq(d->rcpt, "bob@" HOST);
	ck_assert_str_eq(d->orig, "bob@" HOST);

	/* localhost and localhost.localdomain are ours too. */
	eval_local("alice@localhost");
	expect_users("alice", NULL);
	ck_assert_str_eq(res.dlv[0].rcpt, "alice@localhost");
	eval_local("alice@LOCALHOST.localdomain");
	expect_users("alice", NULL);
	ck_assert_str_eq(res.dlv[0].rcpt, "alice@localhost.localdomain");
	ck_assert_str_eq(res.dlv[0].orig, "alice@LOCALHOST.localdomain");
}
END_TEST

START_TEST(test_from_local_vs_remote)
{
	setup_conf("", default_rules);
	eval_from("bob@localhost", 1, "local");
	expect_users("bob", NULL);
	eval_from("bob@localhost", 1, "::1");
	expect_users("bob", NULL);
	eval_from("bob@localhost", 0, "10.1.2.3");
	expect_denied("bob@localhost");
}
END_TEST

START_TEST(test_from_src)
{
	setup_conf("",
	    "table nets { 10.0.0.0/8, 2001:db8::/32 }\n"
	    "match from src <nets> for any action md\n"
	    "match from src 192.0.2.5 for local action \"local\"\n");
	eval_remote("bob@localhost");		/* 192.0.2.1 */
	expect_denied("bob@localhost");
	eval_from("bob@localhost", 0, "192.0.2.5");
	expect_users("bob", NULL);
	ck_assert_uint_eq(res.dlv[0].kind, DLV_MBOX);
	eval_from("bob@example.com", 0, "10.200.0.1");
	expect_users("bob", NULL);
	ck_assert_uint_eq(res.dlv[0].kind, DLV_MAILDIR);
	ck_assert_str_eq(res.dlv[0].action, "md");
	ck_assert_str_eq(res.dlv[0].dest, "/home/bob/Maildir");
	ck_assert_str_eq(res.dlv[0].rcpt, "bob@example.com");
	eval_from("bob@example.com", 0, "2001:db8::25");
	expect_users("bob", NULL);
	eval_from("bob@example.com", 0, "2001:db9::25");
	expect_denied("bob@example.com");
	/* A local client is no source address. */
	eval_from("bob@example.com", 1, "local");
	expect_denied("bob@example.com");
}
END_TEST

START_TEST(test_for_domain_and_rcpt)
{
	setup_conf("",
	    "table doms { example.com, *.example.net }\n"
	    "table rcpts { alice@list.example }\n"
	    "match from any for domain <doms> action md\n"
	    "match from any for domain example.info action md\n"
	    "match from any for rcpt <rcpts> action \"local\"\n");
	eval_remote("carol@Example.COM");
	expect_users("carol", NULL);
	ck_assert_str_eq(res.dlv[0].rcpt, "carol@example.com");
	eval_remote("carol@deep.sub.example.net");
	expect_users("carol", NULL);
	eval_remote("carol@example.net");
	expect_denied("carol@example.net");
	eval_remote("carol@example.info");
	expect_users("carol", NULL);
	eval_remote("carol@www.example.info");
	expect_denied("carol@www.example.info");
	eval_remote("ALICE@list.example");
	expect_users("alice", NULL);
	eval_remote("bob@list.example");
	expect_denied("bob@list.example");
	/* `for domain` does not cover the bare postmaster. */
	eval_remote("postmaster");
	expect_denied("postmaster");
}
END_TEST

START_TEST(test_negations)
{
	setup_conf("",
	    "table nets { 192.0.2.0/24 }\n"
	    "match !from src <nets> !for domain example.com reject\n"
	    "match from any !for local action md\n"
	    "match !from local for local action \"local\"\n");
	/* Outside nets, not example.com: rejected. */
	eval_from("bob@example.org", 0, "198.51.100.1");
	expect_rejected("bob@example.org");
	/* Outside nets but example.com: goes on to rule 2. */
	eval_from("bob@example.com", 0, "198.51.100.1");
	expect_users("bob", NULL);
	ck_assert_uint_eq(res.dlv[0].kind, DLV_MAILDIR);
	/* Inside nets, for local: rule 2 (!for local) fails, rule 3 fits. */
	eval_from("bob@localhost", 0, "192.0.2.9");
	expect_users("bob", NULL);
	ck_assert_uint_eq(res.dlv[0].kind, DLV_MBOX);
	/* A local client is in no source table: rule 1 rejects. */
	eval_from("bob@localhost", 1, "local");
	expect_rejected("bob@localhost");
}
END_TEST

START_TEST(test_reject_and_order)
{
	setup_conf("",
	    "table bad { alice@localhost }\n"
	    "match from any for rcpt <bad> reject\n"
	    "match from local for local action \"local\"\n"
	    "match from local for local reject\n"
	    "match from any for any reject\n");
	eval_local("alice@localhost");
	expect_rejected("alice@localhost");
	/* The first rule that matches decides. */
	eval_local("bob@localhost");
	expect_users("bob", NULL);
	eval_remote("bob@example.org");
	expect_rejected("bob@example.org");
}
END_TEST

START_TEST(test_unknown_user)
{
	setup_conf("", default_rules);
	eval_local("nobody@" HOST);
	expect_unknown("nobody@" HOST);
	eval_local("Nobody@LocalHost");
	expect_unknown("Nobody@LocalHost");
}
END_TEST

START_TEST(test_bad_addresses)
{
	setup_conf("", default_rules);
	eval_local("bob");
	ck_assert_int_eq(res.code, 550);
	ck_assert_str_eq(res.text, "5.1.3 <bob>: Recipient address rejected: "
	    "Bad recipient address syntax");
	eval_local("@localhost");
	ck_assert_int_eq(res.code, 550);
	eval_local("bob@");
	ck_assert_int_eq(res.code, 550);
	eval_local("");
	ck_assert_int_eq(res.code, 550);
	ck_assert_uint_eq(res.ndlv, 0);
}
END_TEST

/* ---- aliases -------------------------------------------------------------- */

START_TEST(test_alias_to_user)
{
	const struct dlv	*d;

	setup_conf("root: bob\n", default_rules);
	eval_local("root@localhost");
	expect_users("bob", NULL);
	d = &res.dlv[0];
	ck_assert_uint_eq(d->kind, DLV_MBOX);
	ck_assert_str_eq(d->action, "local");
	ck_assert_str_eq(d->user, "bob");
	ck_assert_str_eq(d->dest, "/var/mail/bob");
	ck_assert_str_eq(d->rcpt, "bob@" HOST);
	ck_assert_str_eq(d->orig, "root@localhost");
}
END_TEST

START_TEST(test_alias_postmaster)
{
	setup_conf("postmaster: root\nroot: alice\n", default_rules);
	eval_remote("postmaster");	/* no rule for remote clients... */
	expect_denied("postmaster");
	eval_local("postmaster");
	expect_users("alice", NULL);
	ck_assert_str_eq(res.dlv[0].orig, "postmaster");
	eval_local("PostMaster");
	expect_users("alice", NULL);
	eval_local("postmaster@" HOST);
	expect_users("alice", NULL);
}
END_TEST

START_TEST(test_alias_chain_and_list)
{
	setup_conf("a: b\nb: c\nc: alice\n"
	    "team: bob, alice,\n  carol\n"
	    "all: team, root, \"bob\"\n", default_rules);
	eval_local("a@localhost");
	expect_users("alice", NULL);
	ck_assert_str_eq(res.dlv[0].rcpt, "alice@" HOST);
	eval_local("team@localhost");
	expect_users("bob", "alice", "carol", NULL);
	/* Each user once, however often reached. */
	eval_local("all@localhost");
	expect_users("bob", "alice", "carol", "root", NULL);
	ck_assert_str_eq(dlv_for("root")->dest, "/var/mail/root");
	ck_assert_str_eq(dlv_for("root")->orig, "all@localhost");
}
END_TEST

START_TEST(test_alias_loops)
{
	setup_conf("x: y\ny: x\n"
	    "p: q\nq: p, bob\n"
	    "alice: carol\ncarol: alice\n", default_rules);
	/* x -> y -> x: x is taken as a user, and there is none. */
	eval_local("x@localhost");
	expect_unknown("x@localhost");
	eval_local("p@localhost");
	expect_users("bob", NULL);
	/* alice -> carol -> alice: the account alice. */
	eval_local("alice@localhost");
	expect_users("alice", NULL);
	eval_local("carol@localhost");
	expect_users("carol", NULL);
}
END_TEST

START_TEST(test_alias_self_reference)
{
	setup_conf("bob: bob, bob@elsewhere.example\n", default_rules);
	eval_local("bob@localhost");
	/* bob@elsewhere: no rule relays it, so only the account. */
	expect_users("bob", NULL);
	ck_assert_str_eq(res.dlv[0].rcpt, "bob@" HOST);
}
END_TEST

START_TEST(test_alias_backslash)
{
	setup_conf("bob: \\bob, alice\nalice: carol\n"
	    "keep: \\alice\nghost: \\nosuchuser\n", default_rules);
	eval_local("bob@localhost");
	expect_users("bob", "carol", NULL);
	/* \alice: the account, its alias not followed. */
	eval_local("keep@localhost");
	expect_users("alice", NULL);
	eval_local("ghost@localhost");
	expect_unknown("ghost@localhost");
}
END_TEST

START_TEST(test_alias_remote_items)
{
	setup_conf("fwd: carol@localhost\n"
	    "fwd2: carol@" HOST "\n"
	    "ext: someone@remote.example\n"
	    "mixed: someone@remote.example, alice\n"
	    "viaother: forward@other.example\n"
	    "bad: @x, bob@\n",
	    "match from local for domain other.example action other\n"
	    "match from any for domain reject.example reject\n"
	    "match from local for local action \"local\"\n");
	eval_local("fwd@localhost");
	expect_users("carol", NULL);
	ck_assert_str_eq(res.dlv[0].rcpt, "carol@" HOST);
	ck_assert_str_eq(res.dlv[0].orig, "fwd@localhost");
	eval_local("fwd2@localhost");
	expect_users("carol", NULL);
	/* Not relayed: skipped, and then there is nothing. */
	eval_local("ext@localhost");
	expect_unknown("ext@localhost");
	eval_local("mixed@localhost");
	expect_users("alice", NULL);
	/* Another rule and action, with its own alias table. */
	eval_local("viaother@localhost");
	expect_users("carol", NULL);
	ck_assert_str_eq(res.dlv[0].action, "other");
	ck_assert_str_eq(res.dlv[0].dest, "/var/spool/other/carol");
	eval_local("bad@localhost");
	expect_unknown("bad@localhost");
}
END_TEST

START_TEST(test_alias_remote_evaluated_as_local)
{
	/* A remote client may send to fwd; the re-evaluation is local. */
	setup_conf("fwd: carol@forward.example\n",
	    "match from any for local action \"local\"\n"
	    "match from local for domain forward.example action md\n");
	eval_remote("fwd@" HOST);
	expect_users("carol", NULL);
	ck_assert_str_eq(res.dlv[0].action, "md");
	/* ...but directly, forward.example is not for remote clients. */
	eval_remote("carol@forward.example");
	expect_denied("carol@forward.example");
}
END_TEST

START_TEST(test_alias_rejected_item)
{
	setup_conf("r: x@reject.example, bob\n",
	    "match from any for domain reject.example reject\n"
	    "match from local for local action \"local\"\n");
	eval_local("r@localhost");
	expect_users("bob", NULL);
}
END_TEST

START_TEST(test_detail)
{
	setup_conf("root: alice\n", default_rules);
	eval_local("bob+news@localhost");
	expect_users("bob", NULL);
	/* Direct: the final address keeps the detail, as given. */
	ck_assert_str_eq(res.dlv[0].rcpt, "bob+news@localhost");
	eval_local("Root+Cron@LocalHost");
	expect_users("alice", NULL);
	ck_assert_str_eq(res.dlv[0].rcpt, "alice@" HOST);
	/* The whole name first: an account with a + in it. */
	eval_local("dave+x@localhost");
	expect_users("dave+x", NULL);
	eval_local("nobody+x@localhost");
	expect_unknown("nobody+x@localhost");
	eval_local("+x@localhost");
	expect_unknown("+x@localhost");
}
END_TEST

START_TEST(test_case_insensitive)
{
	setup_conf("Team: Bob, ALICE\n", default_rules);
	eval_local("BOB@" "MX.EXAMPLE.ORG");
	expect_users("bob", NULL);
	ck_assert_str_eq(res.dlv[0].rcpt, "bob@mx.example.org");
	ck_assert_str_eq(res.dlv[0].orig, "BOB@MX.EXAMPLE.ORG");
	eval_local("tEaM@localhost");
	expect_users("bob", "alice", NULL);
}
END_TEST

START_TEST(test_unsupported_items)
{
	setup_conf("pipe: \"|/usr/bin/procmail -a x\"\n"
	    "file: /var/log/mail.copy\n"
	    "inc: :include:/etc/mail/list\n"
	    "all: \"|/bin/cat\", /tmp/x, :include:/x\n"
	    "some: \"|/bin/cat\", bob, /tmp/x\n", default_rules);
	eval_local("pipe@localhost");
	expect_unknown("pipe@localhost");
	eval_local("file@localhost");
	expect_unknown("file@localhost");
	eval_local("inc@localhost");
	expect_unknown("inc@localhost");
	eval_local("all@localhost");
	expect_unknown("all@localhost");
	eval_local("some@localhost");
	expect_users("bob", NULL);
}
END_TEST

START_TEST(test_alias_unknown_targets)
{
	setup_conf("half: nosuch, alice\nnone: nosuch1, nosuch2\n",
	    default_rules);
	eval_local("half@localhost");
	expect_users("alice", NULL);
	eval_local("none@localhost");
	expect_unknown("none@localhost");
}
END_TEST

START_TEST(test_quoted_items)
{
	setup_conf("q: \"bob\", \"alice, carol\", \"\"\n", default_rules);
	eval_local("q@localhost");
	/* "alice, carol" is one (unknown) name: skipped. */
	expect_users("bob", NULL);
}
END_TEST

START_TEST(test_alias_depth_limit)
{
	char	aliases[4096];
	size_t	len = 0;
	int	i;

	/* a0 -> a1 -> ... -> a16 -> bob: 16 aliases nested: fine. */
	for (i = 0; i < ALIAS_DEPTH_MAX; i++)
		len += (size_t)snprintf(aliases + len, sizeof(aliases) - len,
		    "a%d: a%d\n", i, i + 1);
	len += (size_t)snprintf(aliases + len, sizeof(aliases) - len,
	    "a%d: bob\n", ALIAS_DEPTH_MAX);
	ck_assert_uint_lt(len, sizeof(aliases));
	setup_conf(aliases, default_rules);
	eval_local("a1@localhost");
	expect_users("bob", NULL);
	/* One more level is cut. */
	eval_local("a0@localhost");
	expect_unknown("a0@localhost");
}
END_TEST

START_TEST(test_alias_expansion_limit)
{
	char	*aliases;
	size_t	 len = 0, cap = 64 * 1024;
	int	 i;

	ck_assert_ptr_nonnull(aliases = malloc(cap));
	/* ALIAS_EXPAND_MAX items are fine (most unknown, bob once)... */
	len += (size_t)snprintf(aliases + len, cap - len, "ok: bob");
	for (i = 1; i < ALIAS_EXPAND_MAX; i++)
		len += (size_t)snprintf(aliases + len, cap - len, ",u%d", i);
	/* ...one more is too many: a temporary failure, no deliveries. */
	len += (size_t)snprintf(aliases + len, cap - len, "\nbig: bob");
	for (i = 1; i <= ALIAS_EXPAND_MAX; i++)
		len += (size_t)snprintf(aliases + len, cap - len, ",u%d", i);
	len += (size_t)snprintf(aliases + len, cap - len, "\n");
	ck_assert_uint_lt(len, cap);
	setup_conf(aliases, default_rules);
	free(aliases);
	eval_local("ok@localhost");
	expect_users("bob", NULL);
	eval_local("big@localhost");
	ck_assert_int_eq(res.code, 451);
	ck_assert_str_eq(res.text, "4.3.0 <big@localhost>: Alias expansion "
	    "limit exceeded, try again later");
	ck_assert_uint_eq(res.ndlv, 0);
	ck_assert_ptr_null(res.dlv);
}
END_TEST

START_TEST(test_alias_fanout_bounded)
{
	char	aliases[8192];
	size_t	len = 0;
	int	i, j;

	/*
	 * Each level lists the next one 10 times: 10^8 paths if expanded
	 * naively.  The work bound answers quickly.
	 */
	for (i = 0; i < 8; i++) {
		len += (size_t)snprintf(aliases + len, sizeof(aliases) - len,
		    "f%d: ", i);
		for (j = 0; j < 10; j++)
			len += (size_t)snprintf(aliases + len,
			    sizeof(aliases) - len, "%sf%d", j ? ", " : "",
			    i + 1);
		len += (size_t)snprintf(aliases + len, sizeof(aliases) - len,
		    "\n");
	}
	len += (size_t)snprintf(aliases + len, sizeof(aliases) - len,
	    "f8: bob\n");
	ck_assert_uint_lt(len, sizeof(aliases));
	setup_conf(aliases, default_rules);
	eval_local("f0@localhost");
	ck_assert_int_eq(res.code, 451);
	/* Two levels of 10, then bob: 210 items, within the bound. */
	eval_local("f6@localhost");
	expect_users("bob", NULL);
}
END_TEST

START_TEST(test_no_alias_table)
{
	setup_conf("bob: alice\n",
	    "match from local for local action md\n");
	/* md has no alias table: bob is bob. */
	eval_local("bob@localhost");
	expect_users("bob", NULL);
	ck_assert_str_eq(res.dlv[0].dest, "/home/bob/Maildir");
	ck_assert_str_eq(res.dlv[0].rcpt, "bob@localhost");
}
END_TEST

START_TEST(test_result_clear)
{
	setup_conf("team: bob, alice\n", default_rules);
	eval_local("team@localhost");
	ck_assert_uint_eq(res.ndlv, 2);
	rcpt_result_clear(&res);
	ck_assert_ptr_null(res.dlv);
	ck_assert_uint_eq(res.ndlv, 0);
	ck_assert_int_eq(res.code, 0);
	ck_assert_str_eq(res.text, "");
	rcpt_result_clear(&res);	/* twice is fine */
}
END_TEST

/* ---- users -------------------------------------------------------------- */

START_TEST(test_users)
{
	const struct local_user	*u;
	char			 longname[USER_MAX + 1];

	users_clear();
	ck_assert_ptr_null(users_lookup("bob"));
	ck_assert_int_eq(users_add("zed", 5, "/home/zed"), 0);
	ck_assert_int_eq(users_add("bob", 1, "/home/bob"), 0);
	ck_assert_int_eq(users_add("bob", 2, "/home/bob2"), 0);
	ck_assert_int_eq(users_add("Amy", 3, "/home/amy"), 0);
	ck_assert_ptr_nonnull(u = users_lookup("bob"));
	ck_assert_int_eq(u->uid, 1);		/* the first one wins */
	ck_assert_str_eq(u->home, "/home/bob");
	ck_assert_ptr_nonnull(u = users_lookup("zed"));
	ck_assert_int_eq(u->uid, 5);
	ck_assert_ptr_nonnull(users_lookup("Amy"));
	ck_assert_ptr_null(users_lookup("amy"));	/* exact */
	ck_assert_ptr_null(users_lookup("BOB"));
	ck_assert_ptr_null(users_lookup(""));
	ck_assert_ptr_null(users_lookup(NULL));
	/* Added after a lookup: found too. */
	ck_assert_int_eq(users_add("carl", 7, "/home/carl"), 0);
	ck_assert_ptr_nonnull(users_lookup("carl"));
	ck_assert_ptr_nonnull(users_lookup("bob"));

	memset(longname, 'x', USER_MAX);
	longname[USER_MAX] = '\0';
	ck_assert_int_eq(users_add(longname, 9, "/"), -1);
	ck_assert_int_eq(users_add("", 9, "/"), -1);
	users_clear();
	ck_assert_ptr_null(users_lookup("zed"));
}
END_TEST

START_TEST(test_users_load)
{
	const struct local_user	*u;

	ck_assert_int_eq(users_load(), 0);
	/* Every Debian system has root, uid 0. */
	ck_assert_ptr_nonnull(u = users_lookup("root"));
	ck_assert_int_eq(u->uid, 0);
	ck_assert_str_eq(u->home, "/root");
	ck_assert_ptr_null(users_lookup("no-such-user-here"));
	/* Loading again replaces, not appends. */
	ck_assert_int_eq(users_add("fake-test-user", 4242, "/x"), 0);
	ck_assert_int_eq(users_load(), 0);
	ck_assert_ptr_null(users_lookup("fake-test-user"));
	users_clear();
}
END_TEST

/* ---- driver --------------------------------------------------------------- */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static Suite *
ruleset_suite(void)
{
	Suite	*s = suite_create("ruleset");
	TCase	*tc;

	tc = tcase_create("rules");
	tcase_add_checked_fixture(tc, setup_users, teardown);
	tcase_add_test(tc, test_relay_denied);
	tcase_add_test(tc, test_no_rules_no_relay);
	tcase_add_test(tc, test_local_delivery_fields);
	tcase_add_test(tc, test_from_local_vs_remote);
	tcase_add_test(tc, test_from_src);
	tcase_add_test(tc, test_for_domain_and_rcpt);
	tcase_add_test(tc, test_negations);
	tcase_add_test(tc, test_reject_and_order);
	tcase_add_test(tc, test_unknown_user);
	tcase_add_test(tc, test_bad_addresses);
	tcase_add_test(tc, test_no_alias_table);
	tcase_add_test(tc, test_result_clear);
	suite_add_tcase(s, tc);

	tc = tcase_create("aliases");
	tcase_add_checked_fixture(tc, setup_users, teardown);
	tcase_add_test(tc, test_alias_to_user);
	tcase_add_test(tc, test_alias_postmaster);
	tcase_add_test(tc, test_alias_chain_and_list);
	tcase_add_test(tc, test_alias_loops);
	tcase_add_test(tc, test_alias_self_reference);
	tcase_add_test(tc, test_alias_backslash);
	tcase_add_test(tc, test_alias_remote_items);
	tcase_add_test(tc, test_alias_remote_evaluated_as_local);
	tcase_add_test(tc, test_alias_rejected_item);
	tcase_add_test(tc, test_detail);
	tcase_add_test(tc, test_case_insensitive);
	tcase_add_test(tc, test_unsupported_items);
	tcase_add_test(tc, test_alias_unknown_targets);
	tcase_add_test(tc, test_quoted_items);
	tcase_add_test(tc, test_alias_depth_limit);
	tcase_add_test(tc, test_alias_expansion_limit);
	tcase_add_test(tc, test_alias_fanout_bounded);
	suite_add_tcase(s, tc);

	tc = tcase_create("users");
	tcase_add_test(tc, test_users);
	tcase_add_test(tc, test_users_load);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	log_init(1, 0);
	if (snprintf(tmpdir, sizeof(tmpdir), "%s/check_ruleset.XXXXXX",
	    getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp") >=
	    (int)sizeof(tmpdir) || mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	sr = srunner_create(ruleset_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	(void)nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? 0 : 1;
}
