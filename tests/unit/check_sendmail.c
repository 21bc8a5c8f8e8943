/*
 * sendmail(8): address lists (-t and arguments), header field names,
 * display names, the message reader (header completion, Bcc removal, line
 * ends, the lone dot, limits), DSN option values and the offline drop file.
 */
#include "autoconf.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "config.h"
#include "dropfile.h"
#include "rfc5322.h"
#include "sendmail.h"
#include "submit.h"

/* ---- address lists ------------------------------------------------------- */

#define GOT_MAX	16

struct got {
	int	 n;
	int	 ok[GOT_MAX];
	char	 addr[GOT_MAX][512];
	int	 stop_after;	/* 0: never stop */
};

static int
got_cb(void *arg, int ok, const char *addr)
{
	struct got	*g = arg;

	ck_assert_int_lt(g->n, GOT_MAX);
	g->ok[g->n] = ok;
	strlcpy(g->addr[g->n], addr, sizeof(g->addr[0]));
	g->n++;
	if (g->stop_after && g->n == g->stop_after)
		return 42;
	return 0;
}

static struct got
parse(const char *s)
{
	struct got	 g;

	memset(&g, 0, sizeof(g));
	ck_assert_int_eq(rfc5322_addrlist(s, got_cb, &g), 0);
	return g;
}

/* The list gives exactly these good addresses, in order. */
static void
expect_ok(const char *list, const char *a0, const char *a1, const char *a2)
{
	const char	*want[3] = { a0, a1, a2 };
	struct got	 g = parse(list);
	int		 i, n = 0;

	for (i = 0; i < 3; i++)
		if (want[i] != NULL)
			n++;
	ck_assert_msg(g.n == n, "%s: %d entries, expected %d", list, g.n, n);
	for (i = 0; i < n; i++) {
		ck_assert_msg(g.ok[i], "%s: entry %d \"%s\" malformed", list, i,
		    g.addr[i]);
		ck_assert_str_eq(g.addr[i], want[i]);
	}
}

/* The list holds one malformed entry (and nothing else). */
static void
expect_bad(const char *list)
{
	struct got	 g = parse(list);

	ck_assert_msg(g.n == 1, "%s: %d entries", list, g.n);
	ck_assert_msg(!g.ok[0], "%s: accepted as \"%s\"", list, g.addr[0]);
}

START_TEST(test_addr_simple)
{
	expect_ok("a@b.example", "a@b.example", NULL, NULL);
	expect_ok("root", "root", NULL, NULL);
	expect_ok("a@x.example, b@y.example", "a@x.example", "b@y.example",
	    NULL);
	expect_ok("  a@x.example  ,  ,b@y.example,", "a@x.example",
	    "b@y.example", NULL);
	expect_ok("", NULL, NULL, NULL);
	expect_ok(" \t ", NULL, NULL, NULL);
}
END_TEST

START_TEST(test_addr_display_names)
{
	expect_ok("Joe Q. Public <john.q.public@example.com>",
	    "john.q.public@example.com", NULL, NULL);
	expect_ok("\"Doe, John\" <jd@x.example>, other@y.example",
	    "jd@x.example", "other@y.example", NULL);
	expect_ok("\"Giant; \\\"Big\\\" Box\" <sysservices@example.net>",
	    "sysservices@example.net", NULL, NULL);
	expect_ok("=?UTF-8?B?SsO2cmc=?= <j@x.example>", "j@x.example", NULL,
	    NULL);
	expect_ok("J\xc3\xb6rg <j@x.example>", "j@x.example", NULL, NULL);
	expect_ok("<bare@x.example>", "bare@x.example", NULL, NULL);
}
END_TEST

START_TEST(test_addr_comments)
{
	expect_ok("jd@x.example (John, Doe)", "jd@x.example", NULL, NULL);
	expect_ok("(a (nested, comment) here) u@x.example (and <this>)",
	    "u@x.example", NULL, NULL);
	expect_ok("Pete(A nice \\) chap) <pete(his account)@silly.test(his "
	    "host)>", "pete@silly.test", NULL, NULL);
	expect_ok(" joe @ example . org ", "joe@example.org", NULL, NULL);
}
END_TEST

START_TEST(test_addr_groups)
{
	expect_ok("team: a@x.example, b@y.example;, c@z.example",
	    "a@x.example", "b@y.example", "c@z.example");
	expect_ok("undisclosed-recipients:;", NULL, NULL, NULL);
	expect_ok("A Group:Ed Jones <c@a.test>,joe@where.test,John "
	    "<jdoe@one.test>;", "c@a.test", "joe@where.test", "jdoe@one.test");
	expect_ok("Empty:; , x@y.example", "x@y.example", NULL, NULL);
}
END_TEST

START_TEST(test_addr_quoted_and_literal)
{
	expect_ok("\"john doe\"@x.example", "\"john doe\"@x.example", NULL,
	    NULL);
	expect_ok("Name <\"a,b\"@x.example>, c@y.example",
	    "\"a,b\"@x.example", "c@y.example", NULL);
	expect_ok("u@[192.0.2.1]", "u@[192.0.2.1]", NULL, NULL);
	expect_ok("<@r1.example,@r2.example:u@x.example>", "u@x.example",
	    NULL, NULL);
}
END_TEST

START_TEST(test_addr_folded)
{
	expect_ok("a@x.example,\r\n b@y.example,\n\tC <c@z.example>",
	    "a@x.example", "b@y.example", "c@z.example");
	expect_ok("Long\r\n Name\r\n <u@x.example>", "u@x.example", NULL, NULL);
}
END_TEST

START_TEST(test_addr_malformed)
{
	struct got	 g;

	expect_bad("John Smith");
	expect_bad("<a@b.example");
	expect_bad("\"unterminated@x.example");
	expect_bad("a@b.example c@d.example");
	expect_bad("<a@b.example> <c@d.example>");
	expect_bad("<>");
	expect_bad("a@");
	expect_bad("a@b.");
	expect_bad(".a@b");
	expect_bad("a..b@c");
	expect_bad("(unterminated a@b.example");
	expect_bad("a@b.example)");
	expect_bad("<@r.example u@x.example>");
	expect_bad("a@[1.2.3.4].example");

	/* one bad entry does not hide the good ones */
	g = parse("good@x.example, John Smith, other@y.example");
	ck_assert_int_eq(g.n, 3);
	ck_assert(g.ok[0] && !g.ok[1] && g.ok[2]);
	ck_assert_str_eq(g.addr[1], "John Smith");
	ck_assert_str_eq(g.addr[2], "other@y.example");

	/* shown on one line */
	g = parse("bad\r\n word");
	ck_assert_int_eq(g.n, 1);
	ck_assert(!g.ok[0]);
	ck_assert_ptr_null(strchr(g.addr[0], '\n'));
	ck_assert_ptr_null(strchr(g.addr[0], '\r'));
}
END_TEST

START_TEST(test_addr_stop)
{
	struct got	 g;

	memset(&g, 0, sizeof(g));
	g.stop_after = 2;
	ck_assert_int_eq(rfc5322_addrlist("a@x, b@x, c@x", got_cb, &g), 42);
	ck_assert_int_eq(g.n, 2);
}
END_TEST

START_TEST(test_addr_long)
{
	char		 buf[2048];
	struct got	 g;

	memset(buf, 'a', 1000);
	strlcpy(buf + 1000, "@x.example", sizeof(buf) - 1000);
	g = parse(buf);
	ck_assert_int_eq(g.n, 1);
	ck_assert(!g.ok[0]);
}
END_TEST

/* ---- field names and display names --------------------------------------- */

START_TEST(test_field_name)
{
	size_t	 colon;

	ck_assert_uint_eq(rfc5322_field_name("Subject: x", 10, &colon), 7);
	ck_assert_uint_eq(colon, 7);
	ck_assert_uint_eq(rfc5322_field_name("Subject : x", 11, &colon), 7);
	ck_assert_uint_eq(colon, 8);
	ck_assert_uint_eq(rfc5322_field_name("X-Empty:", 8, &colon), 7);
	ck_assert_uint_eq(rfc5322_field_name("Two words: x", 12, &colon), 0);
	ck_assert_uint_eq(rfc5322_field_name(": x", 3, &colon), 0);
	ck_assert_uint_eq(rfc5322_field_name(" cont: x", 8, &colon), 0);
	ck_assert_uint_eq(rfc5322_field_name("NoColon", 7, &colon), 0);
	ck_assert_uint_eq(rfc5322_field_name("Subject: x", 7, &colon), 0);
}
END_TEST

START_TEST(test_phrase)
{
	char	 out[512];

	ck_assert_int_eq(rfc5322_phrase("John Doe", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "John Doe");
	ck_assert_int_eq(rfc5322_phrase("  John   Doe ", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "John Doe");
	ck_assert_int_eq(rfc5322_phrase("Doe, John", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"Doe, John\"");
	ck_assert_int_eq(rfc5322_phrase("a \"b\" \\c", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "\"a \\\"b\\\" \\\\c\"");
	ck_assert_int_eq(rfc5322_phrase("J\xc3\xb6rg", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "=?UTF-8?B?SsO2cmc=?=");
	/* no line break can reach the header */
	ck_assert_int_eq(rfc5322_phrase("x\r\nBcc: victim@example.org", out,
	    sizeof(out)), 0);
	ck_assert_ptr_null(strchr(out, '\n'));
	ck_assert_ptr_null(strchr(out, '\r'));
	ck_assert_int_eq(rfc5322_phrase("John Doe", out, 5), -1);
}
END_TEST

START_TEST(test_phrase_long_utf8)
{
	char	 name[200], out[1024], *w;
	size_t	 i;

	/* 60 two-byte characters: the words must not cut one in half */
	for (i = 0; i < 60; i++) {
		name[2 * i] = (char)0xc3;
		name[2 * i + 1] = (char)0xa9;
	}
	name[120] = '\0';
	ck_assert_int_eq(rfc5322_phrase(name, out, sizeof(out)), 0);
	for (w = out, i = 0; (w = strstr(w, "=?UTF-8?B?")) != NULL; w++, i++)
		ck_assert_ptr_nonnull(strstr(w, "?="));
	ck_assert_uint_ge(i, 3);
	/* each word encodes an even number of bytes: 44, not 45 */
	ck_assert_ptr_nonnull(strstr(out, "=?UTF-8?B?w6nDqcOpw6nDqcOpw6nDqcOp"));
	ck_assert_ptr_null(strstr(out, "w6nD?="));
}
END_TEST

/* ---- the message reader -------------------------------------------------- */

struct result {
	int		 r;
	char		*out;		/* NUL-terminated output */
	struct msg_info	 info;
};

static struct msg_opts
opts_default(void)
{
	struct msg_opts	 o;

	memset(&o, 0, sizeof(o));
	o.dot_ends = 1;
	o.sender = "alice@host.example";
	o.hostname = "host.example";
	o.max_size = 1024 * 1024;
	o.max_rcpts = 100;
	return o;
}

static struct result
run_msg(const char *input, size_t len, const struct msg_opts *o)
{
	struct result	 res;
	struct stat	 st;
	FILE		*in;
	int		 fd;

	memset(&res, 0, sizeof(res));
	ck_assert_ptr_nonnull(in = fmemopen((void *)input, len, "r"));
	ck_assert_int_ne(fd = memfd_create("check", 0), -1);
	res.r = msg_read(in, fd, o, &res.info);
	fclose(in);
	ck_assert_int_eq(fstat(fd, &st), 0);
	if (res.r == 0)
		ck_assert_uint_eq((uint64_t)st.st_size, res.info.size);
	res.out = calloc(1, (size_t)st.st_size + 1);
	ck_assert_ptr_nonnull(res.out);
	ck_assert_int_eq(pread(fd, res.out, (size_t)st.st_size, 0),
	    st.st_size);
	close(fd);
	return res;
}

static struct result
run_str(const char *input, const struct msg_opts *o)
{
	return run_msg(input, strlen(input), o);
}

static void
result_free(struct result *res)
{
	free(res->out);
	msg_info_free(&res->info);
}

/* The header section of the output (up to and without the blank line). */
static char *
header_of(const char *out, char *buf, size_t bufsz)
{
	const char	*end = strstr(out, "\n\n");

	ck_assert_ptr_nonnull(end);
	ck_assert_uint_lt((size_t)(end - out) + 2, bufsz);
	memcpy(buf, out, (size_t)(end - out) + 1);
	buf[end - out + 1] = '\0';
	return buf;
}

START_TEST(test_msg_adds_headers)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;
	char		 h[4096];

	o.fullname = "Alice Liddell";
	res = run_str("Subject: hi\nTo: bob@host.example\n\nbody\n", &o);
	ck_assert_int_eq(res.r, 0);
	header_of(res.out, h, sizeof(h));
	ck_assert(res.info.added_from && res.info.added_date &&
	    res.info.added_msgid);
	ck_assert_ptr_nonnull(strstr(h, "Subject: hi\nTo: bob@host.example\n"));
	ck_assert_ptr_nonnull(strstr(h,
	    "\nFrom: Alice Liddell <alice@host.example>\n"));
	ck_assert_ptr_nonnull(strstr(h, "\nDate: "));
	ck_assert_ptr_nonnull(strstr(h, "\nMessage-Id: <"));
	ck_assert_ptr_nonnull(strstr(h, "@host.example>\n"));
	ck_assert_str_eq(strstr(res.out, "\n\n"), "\n\nbody\n");
	result_free(&res);
}
END_TEST

START_TEST(test_msg_keeps_existing)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;
	const char	*in = "From: Someone <s@else.example>\n"
	    "Date: Mon, 23 Nov 2026 12:00:00 +0000\n"
	    "message-id: <x@y>\n\nbody\n";

	res = run_str(in, &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert(!res.info.added_from && !res.info.added_date &&
	    !res.info.added_msgid);
	ck_assert_str_eq(res.out, in);
	result_free(&res);
}
END_TEST

START_TEST(test_msg_null_sender)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;

	o.sender = "";
	res = run_str("Subject: x\n\n", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_nonnull(strstr(res.out,
	    "\nFrom: MAILER-DAEMON@host.example\n"));
	result_free(&res);
}
END_TEST

START_TEST(test_msg_extract)
{
	struct msg_opts		 o = opts_default();
	struct result		 res;
	const struct addr_list	*l;
	char			 h[4096];

	o.extract = 1;
	res = run_str("To: Bob <bob@x.example>,\n"
	    "   \"Doe, Jane\" <jane@y.example>\n"
	    "Cc: team: c1@z.example, c2@z.example;\n"
	    "Bcc: hidden@w.example\n"
	    "bcc: Other\n <hidden2@w.example>\n"
	    "Subject: t\n\nbody\nTo: not@a.header\n", &o);
	ck_assert_int_eq(res.r, 0);
	l = msg_header_rcpts(&res.info);
	ck_assert_uint_eq(l->n, 6);
	ck_assert_str_eq(l->v[0].addr, "bob@x.example");
	ck_assert_str_eq(l->v[1].addr, "jane@y.example");
	ck_assert_str_eq(l->v[2].addr, "c1@z.example");
	ck_assert_str_eq(l->v[3].addr, "c2@z.example");
	ck_assert_str_eq(l->v[4].addr, "hidden@w.example");
	ck_assert_str_eq(l->v[5].addr, "hidden2@w.example");
	header_of(res.out, h, sizeof(h));
	/* Bcc gone, folded lines of the others kept as they were */
	ck_assert_ptr_null(strcasestr(h, "bcc"));
	ck_assert_ptr_null(strstr(h, "hidden"));
	ck_assert_ptr_nonnull(strstr(h, "To: Bob <bob@x.example>,\n"
	    "   \"Doe, Jane\" <jane@y.example>\n"));
	ck_assert_ptr_nonnull(strstr(res.out, "\n\nbody\nTo: not@a.header\n"));
	result_free(&res);
}
END_TEST

START_TEST(test_msg_bcc_removed_without_t)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;

	res = run_str("Bcc: secret@x.example\nReturn-Path: <a@b>\n"
	    "Content-Length: 3\nSubject: s\n\nb\n", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_null(strstr(res.out, "secret"));
	ck_assert_ptr_null(strstr(res.out, "Return-Path"));
	ck_assert_ptr_null(strstr(res.out, "Content-Length"));
	ck_assert_uint_eq(msg_header_rcpts(&res.info)->n, 0);
	result_free(&res);
}
END_TEST

START_TEST(test_msg_resent)
{
	struct msg_opts		 o = opts_default();
	struct result		 res;
	const struct addr_list	*l;

	o.extract = 1;
	res = run_str("To: orig@x.example\nResent-To: new@y.example\n"
	    "Resent-Bcc: newbcc@y.example\n\nb\n", &o);
	ck_assert_int_eq(res.r, 0);
	l = msg_header_rcpts(&res.info);
	ck_assert_uint_eq(l->n, 2);
	ck_assert_str_eq(l->v[0].addr, "new@y.example");
	ck_assert_str_eq(l->v[1].addr, "newbcc@y.example");
	ck_assert_ptr_null(strstr(res.out, "newbcc"));
	result_free(&res);
}
END_TEST

START_TEST(test_msg_malformed_rcpt)
{
	struct msg_opts		 o = opts_default();
	struct result		 res;
	const struct addr_list	*l;

	o.extract = 1;
	res = run_str("To: ok@x.example, Just A Name\n\n", &o);
	ck_assert_int_eq(res.r, 0);
	l = msg_header_rcpts(&res.info);
	ck_assert_uint_eq(l->n, 2);
	ck_assert(l->v[0].ok);
	ck_assert(!l->v[1].ok);
	ck_assert_str_eq(l->v[1].addr, "Just A Name");
	result_free(&res);
}
END_TEST

START_TEST(test_msg_too_many_rcpts)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;

	o.extract = 1;
	o.max_rcpts = 2;
	res = run_str("To: a@x, b@x\nCc: c@x\n\n", &o);
	ck_assert_int_eq(res.r, EX_DATAERR);
	ck_assert_ptr_nonnull(strstr(res.info.err, "too many recipients"));
	result_free(&res);
}
END_TEST

START_TEST(test_msg_line_ends)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;

	res = run_str("Subject: crlf\r\nX-A: 1\r\r\n\r\nline1\r\nline2\rline3"
	    "\nlast", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_null(strchr(res.out, '\r'));
	ck_assert_ptr_nonnull(strstr(res.out, "Subject: crlf\nX-A: 1\n"));
	ck_assert_ptr_nonnull(strstr(res.out,
	    "\n\nline1\nline2\nline3\nlast\n"));
	ck_assert_uint_eq(strlen(res.out), res.info.size);
	result_free(&res);
}
END_TEST

START_TEST(test_msg_lone_dot)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;
	const char	*in = "Subject: d\n\nbefore\n.\nafter\n";

	res = run_str(in, &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_nonnull(strstr(res.out, "\n\nbefore\n"));
	ck_assert_ptr_null(strstr(res.out, "after"));
	ck_assert_ptr_null(strstr(res.out, "\n.\n"));
	result_free(&res);

	/* CRLF and a dot that is not alone do not end it */
	res = run_str("Subject: d\r\n\r\n..x\r\n. \r\n.\r\nafter\r\n", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_nonnull(strstr(res.out, "\n\n..x\n. \n"));
	ck_assert_ptr_null(strstr(res.out, "after"));
	result_free(&res);

	o.dot_ends = 0;		/* -i */
	res = run_str(in, &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_nonnull(strstr(res.out, "\n\nbefore\n.\nafter\n"));
	result_free(&res);
}
END_TEST

START_TEST(test_msg_smtp_data)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;

	/* as in SMTP DATA: stuffed dots removed, the dot seen or not */
	o.unstuff = 1;
	res = run_str("Subject: u\r\n\r\n..one\r\n.two\r\n...\r\n.\r\n"
	    "QUIT\r\n", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert(res.info.dot_seen);
	ck_assert_ptr_nonnull(strstr(res.out, "\n\n.one\ntwo\n..\n"));
	ck_assert_ptr_null(strstr(res.out, "QUIT"));
	result_free(&res);

	res = run_str("Subject: u\r\n\r\ncut short\r\n", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert(!res.info.dot_seen);
	result_free(&res);
}
END_TEST

START_TEST(test_msg_no_header_section)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;

	res = run_str("just some text\nSubject: not a header\n", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert(res.info.added_from);
	ck_assert_ptr_nonnull(strstr(res.out,
	    "\n\njust some text\nSubject: not a header\n"));
	ck_assert_ptr_nonnull(strstr(res.out, "From: "));
	result_free(&res);

	/* an empty input is an empty message with the added header */
	res = run_str("", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert(res.info.added_date);
	ck_assert_uint_eq(res.out[strlen(res.out) - 1], '\n');
	ck_assert_ptr_nonnull(strstr(res.out, "\n\n"));
	result_free(&res);

	/* a continuation line with nothing to continue starts the body */
	res = run_str(" indented\n", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_nonnull(strstr(res.out, "\n\n indented\n"));
	result_free(&res);
}
END_TEST

START_TEST(test_msg_mbox_from_line)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;

	res = run_str("From alice Mon Nov 23 12:00:00 2026\nSubject: s\n\n"
	    "From here on\n", &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_null(strstr(res.out, "From alice"));
	ck_assert_ptr_nonnull(strstr(res.out, "Subject: s\n"));
	ck_assert_ptr_nonnull(strstr(res.out, "\n\nFrom here on\n"));
	result_free(&res);
}
END_TEST

START_TEST(test_msg_long_lines)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;
	char		*in;
	size_t		 n = 30000, i;

	/* a long folded header and a long body line survive whole */
	in = malloc(3 * n + 100);
	ck_assert_ptr_nonnull(in);
	strcpy(in, "X-Long: ");
	for (i = 0; i < n; i++)
		in[8 + i] = 'h';
	strcpy(in + 8 + n, "\n cont\n\n");
	i = strlen(in);
	memset(in + i, 'b', n);
	strcpy(in + i + n, "\n");
	res = run_str(in, &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_ptr_nonnull(strstr(res.out, "hhhh\n cont\n"));
	ck_assert_uint_eq(strspn(strstr(res.out, "\n\n") + 2, "b"), n);
	ck_assert_uint_eq(strspn(strstr(res.out, "X-Long: ") + 8, "h"), n);
	result_free(&res);
	free(in);
}
END_TEST

START_TEST(test_msg_limits)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;
	char		*in;
	size_t		 n = MSG_FIELD_MAX + 10;

	o.max_size = 100;
	res = run_str("Subject: s\n\n0123456789012345678901234567890123456789"
	    "01234567890123456789012345678901234567890123456789\n", &o);
	ck_assert_int_eq(res.r, EX_DATAERR);
	ck_assert_ptr_nonnull(strstr(res.info.err, "too large"));
	ck_assert_uint_le(res.info.size, 100);
	result_free(&res);

	o = opts_default();
	in = malloc(n + 20);
	ck_assert_ptr_nonnull(in);
	memcpy(in, "X-Huge: ", 8);
	memset(in + 8, 'x', n);
	strcpy(in + 8 + n, "\n\n");
	res = run_str(in, &o);
	ck_assert_int_eq(res.r, EX_DATAERR);
	ck_assert_ptr_nonnull(strstr(res.info.err, "header field"));
	result_free(&res);
	free(in);
}
END_TEST

START_TEST(test_msg_nul_bytes)
{
	struct msg_opts	 o = opts_default();
	struct result	 res;
	const char	 in[] = "Subject: n\n\na\0b\n";

	res = run_msg(in, sizeof(in) - 1, &o);
	ck_assert_int_eq(res.r, 0);
	ck_assert_uint_eq(res.out[res.info.size - 4], 'a');
	ck_assert_uint_eq(res.out[res.info.size - 3], '\0');
	ck_assert_uint_eq(res.out[res.info.size - 2], 'b');
	result_free(&res);
}
END_TEST

/* ---- DSN values ---------------------------------------------------------- */

START_TEST(test_dsn_values)
{
	struct submit_env	 env;
	char			 buf[400], back[200];

	memset(&env, 0, sizeof(env));
	ck_assert_int_eq(submit_set_notify(&env, "never"), 0);
	ck_assert_str_eq(env.notify, "NEVER");
	ck_assert_int_eq(submit_set_notify(&env, "delay,Success"), 0);
	ck_assert_str_eq(env.notify, "SUCCESS,DELAY");
	ck_assert_int_eq(submit_set_notify(&env, "success,failure,delay"), 0);
	ck_assert_str_eq(env.notify, "SUCCESS,FAILURE,DELAY");
	ck_assert_int_eq(submit_set_notify(&env, "never,success"), -1);
	ck_assert_int_eq(submit_set_notify(&env, "success,success"), -1);
	ck_assert_int_eq(submit_set_notify(&env, "sometimes"), -1);
	ck_assert_int_eq(submit_set_notify(&env, ""), -1);
	ck_assert_int_eq(submit_set_ret(&env, "hdrs"), 0);
	ck_assert_str_eq(env.ret, "HDRS");
	ck_assert_int_eq(submit_set_ret(&env, "body"), -1);
	ck_assert_int_eq(submit_set_envid(&env, "id+1=2 x"), 0);
	ck_assert_int_eq(submit_set_envid(&env, "bad\nid"), -1);
	ck_assert_int_eq(xtext_encode("id+1=2 x", buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "id+2B1+3D2+20x");
	ck_assert_int_eq(xtext_decode(buf, back, sizeof(back)), 0);
	ck_assert_str_eq(back, "id+1=2 x");
	ck_assert_int_eq(xtext_decode("a+2", back, sizeof(back)), -1);
	ck_assert_int_eq(xtext_decode("a+00", back, sizeof(back)), -1);
	ck_assert_int_eq(xtext_encode("abc", buf, 3), -1);
}
END_TEST

START_TEST(test_env_dedup)
{
	struct submit_env	 env;

	memset(&env, 0, sizeof(env));
	ck_assert_int_eq(submit_env_add(&env, "a@x.example"), 0);
	ck_assert_int_eq(submit_env_add(&env, "A@X.example"), 0);
	ck_assert_int_eq(submit_env_add(&env, "b@x.example"), 0);
	ck_assert_uint_eq(env.nrcpts, 2);
	submit_env_free(&env);
}
END_TEST

/* ---- offline drop files -------------------------------------------------- */

static char	 dropdir[64];

static void
drop_setup(void)
{
	strlcpy(dropdir, "/tmp/check_sendmail.XXXXXX", sizeof(dropdir));
	ck_assert_ptr_nonnull(mkdtemp(dropdir));
}

static void
drop_teardown(void)
{
	char	 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dropdir);
	ck_assert_int_eq(system(cmd), 0);
}

static int
msg_fd(const char *text)
{
	int	 fd = memfd_create("msg", 0);

	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

/* Writes text as a drop file and opens it for reading. */
static int
drop_raw(const char *text)
{
	char	 path[256];
	int	 fd;

	snprintf(path, sizeof(path), "%s/raw", dropdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	return fd;
}

START_TEST(test_drop_roundtrip)
{
	struct submit_env	 env, back;
	struct stat		 st;
	char			 name[128], err[256], path[300], body[64];
	const char		*msg = "Subject: x\n\n.dot\nbody\n";
	uint64_t		 size;
	off_t			 off;
	int			 mfd, fd;

	memset(&env, 0, sizeof(env));
	memset(&back, 0, sizeof(back));
	strlcpy(env.sender, "alice@host.example", sizeof(env.sender));
	ck_assert_int_eq(submit_env_add(&env, "bob@host.example"), 0);
	ck_assert_int_eq(submit_env_add(&env, "\"c d\"@x.example"), 0);
	ck_assert_int_eq(submit_set_notify(&env, "failure"), 0);
	ck_assert_int_eq(submit_set_ret(&env, "full"), 0);
	ck_assert_int_eq(submit_set_envid(&env, "my id"), 0);
	mfd = msg_fd(msg);
	ck_assert_int_eq(dropfile_write(dropdir, &env, mfd, strlen(msg), name,
	    sizeof(name), err, sizeof(err)), 0);
	ck_assert(name[0] != '.');
	snprintf(path, sizeof(path), "%s/%s", dropdir, name);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0600);
	snprintf(path, sizeof(path), "%s/.%s", dropdir, name);
	ck_assert_int_eq(access(path, F_OK), -1);	/* temp name gone */

	snprintf(path, sizeof(path), "%s/%s", dropdir, name);
	ck_assert_int_ne(fd = open(path, O_RDONLY), -1);
	ck_assert_int_eq(dropfile_parse(fd, &back, 10, 1000, &off, &size, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(back.sender, "alice@host.example");
	ck_assert_uint_eq(back.nrcpts, 2);
	ck_assert_str_eq(back.rcpts[1].addr, "\"c d\"@x.example");
	ck_assert_str_eq(back.notify, "FAILURE");
	ck_assert_str_eq(back.ret, "FULL");
	ck_assert_str_eq(back.envid, "my id");
	ck_assert_uint_eq(size, strlen(msg));
	ck_assert_int_eq(pread(fd, body, sizeof(body), off),
	    (ssize_t)strlen(msg));
	ck_assert(memcmp(body, msg, strlen(msg)) == 0);
	close(fd);
	close(mfd);
	submit_env_free(&env);
	submit_env_free(&back);
}
END_TEST

/* The reader refuses this envelope, and says why. */
static void
expect_refused(const char *text, const char *why)
{
	struct submit_env	 env;
	char			 err[256];
	uint64_t		 size;
	off_t			 off;
	int			 fd = drop_raw(text);

	memset(&env, 0, sizeof(env));
	ck_assert_msg(dropfile_parse(fd, &env, 3, 1000, &off, &size, err,
	    sizeof(err)) == -1, "accepted: %s", text);
	ck_assert_msg(strstr(err, why) != NULL, "\"%s\" for %s", err, text);
	close(fd);
	submit_env_free(&env);
}

START_TEST(test_drop_strict)
{
	const char	*ok = "mtad-offline 1\nsender <>\nrcpt <a@b.example>\n"
	    "size 2\n\nx\n";
	struct submit_env env;
	char		 err[256];
	uint64_t	 size;
	off_t		 off;
	int		 fd = drop_raw(ok);

	memset(&env, 0, sizeof(env));
	ck_assert_int_eq(dropfile_parse(fd, &env, 3, 1000, &off, &size, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(env.sender, "");
	close(fd);
	submit_env_free(&env);

	expect_refused("garbage\n", "not an mtad offline file");
	expect_refused("mtad-offline 2\n", "not an mtad offline file");
	expect_refused("mtad-offline 1\nsender <>\nrcpt <a@b.example>\n"
	    "size 3\n\nx\n", "size 3 announced, 2 present");
	expect_refused("mtad-offline 1\nsender <>\nrcpt <a@b.example>\n"
	    "size 2\n", "truncated");
	expect_refused("mtad-offline 1\nsender <>\nsize 2\n\nx\n",
	    "missing rcpt");
	expect_refused("mtad-offline 1\nrcpt <a@b.example>\nsize 2\n\nx\n",
	    "missing sender");
	expect_refused("mtad-offline 1\nsender <>\nrcpt <a@b.example>\n\nx\n",
	    "missing size");
	expect_refused("mtad-offline 1\nsender <>\nsender <>\n", "duplicate");
	expect_refused("mtad-offline 1\nsender <>\nhello world\n",
	    "unknown line");
	expect_refused("mtad-offline 1\nsender <>\nrcpt a@b.example\n",
	    "bad recipient");
	expect_refused("mtad-offline 1\nsender <not an address>\n",
	    "bad sender");
	expect_refused("mtad-offline 1\nsender <>\nrcpt <a@b>\nrcpt <c@d>\n"
	    "rcpt <e@f>\nrcpt <g@h>\n", "more than 3 recipients");
	expect_refused("mtad-offline 1\nsender <>\nrcpt <a@b>\nsize 2000\n\nx\n",
	    "over the 1000 limit");
	expect_refused("mtad-offline 1\r\nsender <>\r\n", "CR in the envelope");
	expect_refused("mtad-offline 1\nsender <>\r\n", "CR in the envelope");
	expect_refused("mtad-offline 1\nsender <>\nnotify sometimes\n",
	    "bad notify");
	expect_refused("mtad-offline 1\nsender <>\nsize -1\n", "bad size");
	expect_refused("", "truncated");
}
END_TEST

START_TEST(test_drop_long_line)
{
	char	*text = malloc(DROPFILE_LINE_MAX + 100);

	ck_assert_ptr_nonnull(text);
	strcpy(text, "mtad-offline 1\nrcpt <");
	memset(text + strlen(text), 'a', DROPFILE_LINE_MAX);
	strcpy(text + 21 + DROPFILE_LINE_MAX, "@b>\n");
	expect_refused(text, "line too long");
	free(text);
}
END_TEST

/* ---- the configuration as sendmail reads it ------------------------------ */

START_TEST(test_config_skip_table_files)
{
	const char	*text = "hostname \"mx.example\"\n"
	    "submit socket \"/tmp/x/submit.sock\"\n"
	    "queue path \"/tmp/x/spool\"\n"
	    "table aliases file:/nonexistent/check_sendmail/aliases\n"
	    "action \"local\" mbox alias <aliases>\n"
	    "match from local for local action \"local\"\n";
	struct config_errors	 errs = { NULL, 0 };
	struct config		*conf;
	struct table		*t;

	/* a missing table file is an error for mtad... */
	ck_assert_ptr_null(config_parse("t.conf", text, &errs));
	ck_assert_uint_eq(errs.n, 1);
	ck_assert_ptr_nonnull(strstr(errs.lines[0], "No such file"));
	config_errors_clear(&errs);
	ck_assert_ptr_null(config_parse_flags("t.conf", text, NULL, 0));

	/* ...and not even opened for sendmail */
	conf = config_parse_flags("t.conf", text, &errs,
	    CONFIG_SKIP_TABLE_FILES);
	ck_assert_ptr_nonnull(conf);
	ck_assert_uint_eq(errs.n, 0);
	ck_assert_str_eq(conf->hostname, "mx.example");
	ck_assert_str_eq(conf->submit_path, "/tmp/x/submit.sock");
	ck_assert_str_eq(conf->queue_path, "/tmp/x/spool");
	ck_assert_ptr_nonnull(t = config_table(conf, "aliases"));
	ck_assert_uint_eq(t->n, 0);
	config_free(conf);

	/* other errors still count */
	ck_assert_ptr_null(config_parse_flags("t.conf", "bogus statement\n",
	    NULL, CONFIG_SKIP_TABLE_FILES));
}
END_TEST

static Suite *
sendmail_suite(void)
{
	Suite	*s = suite_create("sendmail");
	TCase	*tc = tcase_create("addresses");
	TCase	*tm = tcase_create("message");
	TCase	*td = tcase_create("dropfile");

	tcase_add_test(tc, test_addr_simple);
	tcase_add_test(tc, test_addr_display_names);
	tcase_add_test(tc, test_addr_comments);
	tcase_add_test(tc, test_addr_groups);
	tcase_add_test(tc, test_addr_quoted_and_literal);
	tcase_add_test(tc, test_addr_folded);
	tcase_add_test(tc, test_addr_malformed);
	tcase_add_test(tc, test_addr_stop);
	tcase_add_test(tc, test_addr_long);
	tcase_add_test(tc, test_field_name);
	tcase_add_test(tc, test_phrase);
	tcase_add_test(tc, test_phrase_long_utf8);
	tcase_add_test(tc, test_config_skip_table_files);
	suite_add_tcase(s, tc);

	tcase_add_test(tm, test_msg_adds_headers);
	tcase_add_test(tm, test_msg_keeps_existing);
	tcase_add_test(tm, test_msg_null_sender);
	tcase_add_test(tm, test_msg_extract);
	tcase_add_test(tm, test_msg_bcc_removed_without_t);
	tcase_add_test(tm, test_msg_resent);
	tcase_add_test(tm, test_msg_malformed_rcpt);
	tcase_add_test(tm, test_msg_too_many_rcpts);
	tcase_add_test(tm, test_msg_line_ends);
	tcase_add_test(tm, test_msg_lone_dot);
	tcase_add_test(tm, test_msg_smtp_data);
	tcase_add_test(tm, test_msg_no_header_section);
	tcase_add_test(tm, test_msg_mbox_from_line);
	tcase_add_test(tm, test_msg_long_lines);
	tcase_add_test(tm, test_msg_limits);
	tcase_add_test(tm, test_msg_nul_bytes);
	tcase_add_test(tm, test_dsn_values);
	tcase_add_test(tm, test_env_dedup);
	suite_add_tcase(s, tm);

	tcase_add_checked_fixture(td, drop_setup, drop_teardown);
	tcase_add_test(td, test_drop_roundtrip);
	tcase_add_test(td, test_drop_strict);
	tcase_add_test(td, test_drop_long_line);
	suite_add_tcase(s, td);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(sendmail_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
