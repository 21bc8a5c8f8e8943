/*
 * The store's MIME side (deliver-worker/store_mime.c): messages parsed
 * into the fields of their `messages` document, without a database.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "store_mime.h"

static struct store_mime	 M;

static void
parse(const char *msg)
{
	ck_assert_int_eq(store_mime_parse(msg, strlen(msg), &M), 0);
}

static void
teardown(void)
{
	store_mime_free(&M);
}

/* The string at a dotted path of a document ("from.0.address"). */
static const char *
str_at(const bson_t *b, const char *path)
{
	bson_iter_t	 it, child;

	ck_assert_msg(bson_iter_init(&it, b) &&
	    bson_iter_find_descendant(&it, path, &child), "no %s", path);
	ck_assert_msg(BSON_ITER_HOLDS_UTF8(&child), "%s is not a string",
	    path);
	return bson_iter_utf8(&child, NULL);
}

static int
has(const bson_t *b, const char *path)
{
	bson_iter_t	 it, child;

	return bson_iter_init(&it, b) &&
	    bson_iter_find_descendant(&it, path, &child);
}

static uint32_t
count_of(const bson_t *b, const char *path)
{
	bson_iter_t	 it, child, sub;
	uint32_t	 n = 0;

	ck_assert(bson_iter_init(&it, b));
	if (path == NULL) {
		while (bson_iter_next(&it))
			n++;
		return n;
	}
	ck_assert_msg(bson_iter_find_descendant(&it, path, &child), "no %s",
	    path);
	ck_assert(BSON_ITER_HOLDS_ARRAY(&child));
	ck_assert(bson_iter_recurse(&child, &sub));
	while (bson_iter_next(&sub))
		n++;
	return n;
}

static const char plain[] =
    "Received: from client.test ([127.0.0.1])\r\n"
    "\tby mx.test (mtad) with ESMTP id 0123456789abcdef\r\n"
    "From: \"Alice Example\" <alice@client.test>\r\n"
    "To: bob@mx.test, \"Carol\" <carol@mx.test>\r\n"
    "Cc: Team: dave@mx.test, erin@mx.test;\r\n"
    "Subject: Hello\r\n"
    "\tfolded subject\r\n"
    "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
    "Message-Id: <plain.1@client.test>\r\n"
    "In-Reply-To: <prev@client.test>\r\n"
    "References: <first@client.test> <prev@client.test>\r\n"
    "\r\n"
    "Line one.\r\n"
    "Line two.\r\n";

START_TEST(test_plain_headers)
{
	bson_iter_t	 it;

	parse(plain);
	ck_assert_str_eq(str_at(&M.headers, "subject"),
	    "Hello\tfolded subject");
	ck_assert_str_eq(str_at(&M.headers, "from.0.name"), "Alice Example");
	ck_assert_str_eq(str_at(&M.headers, "from.0.address"),
	    "alice@client.test");
	ck_assert_uint_eq(count_of(&M.headers, "to"), 2);
	ck_assert_str_eq(str_at(&M.headers, "to.0.address"), "bob@mx.test");
	ck_assert_str_eq(str_at(&M.headers, "to.1.name"), "Carol");
	/* A group is flattened into its members. */
	ck_assert_uint_eq(count_of(&M.headers, "cc"), 2);
	ck_assert_str_eq(str_at(&M.headers, "cc.1.address"), "erin@mx.test");
	ck_assert_str_eq(str_at(&M.headers, "message_id"),
	    "plain.1@client.test");
	ck_assert_str_eq(str_at(&M.headers, "in_reply_to"), "prev@client.test");
	ck_assert_uint_eq(count_of(&M.headers, "references"), 2);
	ck_assert_str_eq(str_at(&M.headers, "references.0"),
	    "first@client.test");
	ck_assert(bson_iter_init_find(&it, &M.headers, "date"));
	ck_assert(BSON_ITER_HOLDS_DATE_TIME(&it));
	/* 2026-11-23T12:00:00Z */
	ck_assert_int_eq(bson_iter_date_time(&it), 1795435200000LL);
}
END_TEST

START_TEST(test_plain_header_list)
{
	parse(plain);
	ck_assert_uint_eq(count_of(&M.header_list, NULL), 9);
	ck_assert_str_eq(str_at(&M.header_list, "0.name"), "Received");
	/* Raw (not decoded), folding removed, nothing else changed. */
	ck_assert_str_eq(str_at(&M.header_list, "0.value"),
	    "from client.test ([127.0.0.1])\tby mx.test (mtad) with ESMTP "
	    "id 0123456789abcdef");
	ck_assert_str_eq(str_at(&M.header_list, "4.name"), "Subject");
	ck_assert_str_eq(str_at(&M.header_list, "4.value"),
	    "Hello\tfolded subject");
}
END_TEST

START_TEST(test_plain_body)
{
	bson_t	 doc = BSON_INITIALIZER;

	parse(plain);
	ck_assert_ptr_nonnull(M.text);
	ck_assert_str_eq(M.text, "Line one.\r\nLine two.\r\n");
	ck_assert_ptr_null(M.html);
	ck_assert_uint_eq(M.natt, 0);
	ck_assert_int_eq(store_mime_append(&M, NULL, &doc), 0);
	ck_assert_str_eq(str_at(&doc, "text"), "Line one.\r\nLine two.\r\n");
	ck_assert_uint_eq(count_of(&doc, "attachments"), 0);
	ck_assert(has(&doc, "html"));
	ck_assert(!has(&doc, "truncated"));
	bson_destroy(&doc);
}
END_TEST

static const char alternative[] =
    "From: a@client.test\r\n"
    "To: b@mx.test\r\n"
    "Subject: alt\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/alternative; boundary=\"XX\"\r\n"
    "\r\n"
    "preamble\r\n"
    "--XX\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "Caf=E9 cr=E8me\r\n"
    "--XX\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "PHA+Q2Fmw6k8L3A+\r\n"
    "--XX--\r\n";

START_TEST(test_alternative)
{
	parse(alternative);
	/* The CRLF before a boundary belongs to the boundary. */
	ck_assert_str_eq(M.text, "Caf\xc3\xa9 cr\xc3\xa8me");
	ck_assert_str_eq(M.html, "<p>Caf\xc3\xa9</p>");
	ck_assert_uint_eq(M.natt, 0);
	ck_assert_uint_eq(count_of(&M.headers, "cc"), 0);
	ck_assert(has(&M.headers, "date"));	/* null when absent */
	ck_assert(!has(&M.headers, "from.1"));
}
END_TEST

/* "Subject: =?CHARSET?B?...?=" and its UTF-8 decoding. */
static const struct {
	const char	*encoded;
	const char	*utf8;
} subjects[] = {
	{ "=?ISO-8859-1?B?Q2Fm6SBjcuhtZQ==?=", "Café crème" },
	{ "=?ISO-8859-1?Q?Caf=E9_cr=E8me?=", "Café crème" },
	{ "=?ISO-8859-15?B?UHJpeDogNSCk?=", "Prix: 5 €" },
	{ "=?KOI8-R?B?8NLJ18XUIM3J0g==?=", "Привет мир" },
	{ "=?windows-1252?B?k1NtYXJ0lCBxdW90ZXMgliBkYXNo?=",
	  "“Smart” quotes – dash" },
	{ "=?ISO-2022-JP?B?GyRCRnxLXDhsJE43b0w+GyhC?=", "日本語の件名" },
	{ "=?GB2312?B?1tDOxNb3zOI=?=", "中文主题" },
	{ "=?Shift_JIS?B?g2WDWINnjI+WvA==?=", "テスト件名" },
	{ "=?UTF-8?B?w5xuw69jw7Zkw6kg4pyT?=", "Ünïcödé ✓" },
	/* adjacent encoded words join without the space between them */
	{ "=?UTF-8?Q?a?= =?UTF-8?Q?b?=", "ab" },
};

START_TEST(test_subject_charsets)
{
	char	 msg[512];
	int	 n;

	n = snprintf(msg, sizeof(msg), "From: =?KOI8-R?B?8NLJ18XU?= "
	    "<x@client.test>\r\nSubject: %s\r\n\r\nbody\r\n",
	    subjects[_i].encoded);
	ck_assert(n > 0 && (size_t)n < sizeof(msg));
	parse(msg);
	ck_assert_str_eq(str_at(&M.headers, "subject"), subjects[_i].utf8);
	ck_assert_str_eq(str_at(&M.headers, "from.0.name"), "Привет");
	/* The header list keeps the encoded form. */
	ck_assert_str_eq(str_at(&M.header_list, "1.value"),
	    subjects[_i].encoded);
}
END_TEST

static const char attachment[] =
    "From: a@client.test\r\n"
    "Subject: att\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=b1\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "See attached.\r\n"
    "--b1\r\n"
    "Content-Type: Application/Octet-Stream\r\n"
    "Content-Disposition: attachment;\r\n"
    " filename*=utf-8''r%C3%A9sum%C3%A9.bin\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "AAECA/8=\r\n"
    "--b1\r\n"
    "Content-Type: image/png; name=\"dot.png\"\r\n"
    "Content-Disposition: inline\r\n"
    "Content-Id: <img1@client.test>\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0=\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; name=notes.txt\r\n"
    "Content-Disposition: attachment; filename=notes.txt\r\n"
    "\r\n"
    "not a body\r\n"
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner\r\n"
    "\r\n"
    "inner body\r\n"
    "--b1--\r\n";

START_TEST(test_attachments)
{
	static const unsigned char bin[] = { 0, 1, 2, 3, 0xff };
	bson_value_t	 ids[4];
	bson_t		 doc = BSON_INITIALIZER;
	bson_iter_t	 it;
	int		 i;

	parse(attachment);
	ck_assert_str_eq(M.text, "See attached.");
	ck_assert_uint_eq(M.natt, 4);
	ck_assert_str_eq(M.att[0].filename, "résumé.bin");
	ck_assert_str_eq(M.att[0].content_type, "application/octet-stream");
	ck_assert_str_eq(M.att[0].disposition, "attachment");
	ck_assert_uint_eq(M.att[0].size, sizeof(bin));
	ck_assert_mem_eq(M.att[0].data, bin, sizeof(bin));
	ck_assert_str_eq(M.att[1].filename, "dot.png");
	ck_assert_str_eq(M.att[1].content_type, "image/png");
	ck_assert_str_eq(M.att[1].disposition, "inline");
	ck_assert_str_eq(M.att[1].content_id, "img1@client.test");
	ck_assert_uint_eq(M.att[1].size, 5);
	/* A text part with a file name is an attachment, not the body. */
	ck_assert_str_eq(M.att[2].filename, "notes.txt");
	ck_assert_uint_eq(M.att[2].size, strlen("not a body"));
	ck_assert_str_eq(M.att[3].content_type, "message/rfc822");
	ck_assert_ptr_nonnull(strstr((char *)M.att[3].data, "inner body"));

	for (i = 0; i < 4; i++) {
		ids[i].value_type = BSON_TYPE_INT32;
		ids[i].value.v_int32 = 100 + i;
	}
	ck_assert_int_eq(store_mime_append(&M, ids, &doc), 0);
	ck_assert_uint_eq(count_of(&doc, "attachments"), 4);
	ck_assert_str_eq(str_at(&doc, "attachments.0.filename"),
	    "résumé.bin");
	ck_assert(bson_iter_init(&it, &doc));
	ck_assert(bson_iter_find_descendant(&it, "attachments.2.gridfs_id",
	    &it));
	ck_assert_int_eq(bson_iter_int32(&it), 102);
	ck_assert(bson_iter_init(&it, &doc));
	ck_assert(bson_iter_find_descendant(&it, "attachments.0.size", &it));
	ck_assert_int_eq(bson_iter_int64(&it), 5);
	bson_destroy(&doc);
}
END_TEST

/* 8-bit junk where UTF-8 is due: valid UTF-8 comes out, nothing fails. */
START_TEST(test_bad_bytes)
{
	static const char msg[] =
	    "Subject: caf\xe9 \xff\xfe\r\n"
	    "X-Nul: a\x01z\r\n"
	    "Content-Type: text/plain; charset=x-no-such-charset\r\n"
	    "\r\n"
	    "caf\xe9\r\n";
	const char	*s;

	parse(msg);
	s = str_at(&M.headers, "subject");
	ck_assert(g_utf8_validate(s, -1, NULL));
	ck_assert_ptr_nonnull(strstr(s, "caf"));
	ck_assert(g_utf8_validate(str_at(&M.header_list, "0.value"), -1,
	    NULL));
	ck_assert_ptr_nonnull(M.text);
	ck_assert(g_utf8_validate(M.text, -1, NULL));
	ck_assert_uint_eq(strlen(M.text), M.text_len);
}
END_TEST

START_TEST(test_utf8_clean)
{
	size_t	 n;
	char	*s;

	s = store_utf8_clean("a\0b\xc3\xa9\xff", 6, &n);
	ck_assert_str_eq(s, "ab\xc3\xa9\xef\xbf\xbd");
	ck_assert_uint_eq(n, strlen(s));
	g_free(s);
	/* A truncated sequence at the end. */
	s = store_utf8_clean("x\xe2\x9c", 3, &n);
	ck_assert_str_eq(s, "x\xef\xbf\xbd\xef\xbf\xbd");
	g_free(s);
	s = store_utf8_clean("", 0, &n);
	ck_assert_str_eq(s, "");
	ck_assert_uint_eq(n, 0);
	g_free(s);
}
END_TEST

/* Inputs that are not mail at all parse to something harmless. */
START_TEST(test_garbage)
{
	static const char *const inputs[] = {
		"", "\r\n", "no colon here\r\n\r\n", "\x00\x01\x02",
		"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
		"Content-Type: multipart/mixed\r\n\r\n--x\r\n--x--\r\n",
		"From: <<<@@@>>>, ,,, \"unterminated\r\nSubject: =?x?q?\r\n\r\n",
		"Subject: =?UTF-8?B?####?=\r\nDate: not a date\r\n\r\n",
	};
	size_t	 i;
	bson_t	 doc;

	for (i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
		if (store_mime_parse(inputs[i], strlen(inputs[i]), &M) == 0) {
			bson_init(&doc);
			ck_assert_int_eq(store_mime_append(&M, NULL, &doc), 0);
			bson_destroy(&doc);
		}
		store_mime_free(&M);
	}
}
END_TEST

/* Deep nesting: bounded walk, no crash. */
START_TEST(test_deep_nesting)
{
	GString	*g = g_string_new("Subject: deep\r\n");
	int	 i;

	for (i = 0; i < 2000; i++)
		g_string_append_printf(g, "Content-Type: multipart/mixed; "
		    "boundary=b%d\r\n\r\n--b%d\r\n", i, i);
	g_string_append(g, "Content-Type: text/plain\r\n\r\ndeep text\r\n");
	ck_assert_int_eq(store_mime_parse(g->str, g->len, &M), 0);
	ck_assert_str_eq(str_at(&M.headers, "subject"), "deep");
	/* Too deep to be walked: no body taken, none invented. */
	ck_assert_ptr_null(M.text);
	g_string_free(g, TRUE);
}
END_TEST

/* A text body past STORE_BODY_MAX is cut on a character and flagged. */
START_TEST(test_body_bound)
{
	GString	*g = g_string_new("Subject: big\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	bson_t	 doc = BSON_INITIALIZER;
	bson_iter_t it;
	size_t	 i;

	for (i = 0; i < STORE_BODY_MAX / 60 + 10; i++)
		g_string_append(g, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
		    "0123456789012345678901234567890123456789012345678\r\n");
	ck_assert_int_eq(store_mime_parse(g->str, g->len, &M), 0);
	ck_assert(M.text_truncated);
	ck_assert_uint_le(M.text_len, STORE_BODY_MAX);
	ck_assert_uint_gt(M.text_len, STORE_BODY_MAX - 8);
	ck_assert(g_utf8_validate(M.text, (gssize)M.text_len, NULL));
	ck_assert_int_eq(store_mime_append(&M, NULL, &doc), 0);
	ck_assert(bson_iter_init_find(&it, &doc, "truncated"));
	ck_assert(bson_iter_as_bool(&it));
	bson_destroy(&doc);
	g_string_free(g, TRUE);
}
END_TEST

/* Many attachments: the first STORE_PARTS_MAX are kept. */
START_TEST(test_parts_bound)
{
	GString	*g = g_string_new("Subject: many\r\n"
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	int	 i;

	for (i = 0; i < STORE_PARTS_MAX + 20; i++)
		g_string_append_printf(g, "--b\r\nContent-Type: "
		    "application/x-%d\r\n\r\n%d\r\n", i, i);
	g_string_append(g, "--b--\r\n");
	ck_assert_int_eq(store_mime_parse(g->str, g->len, &M), 0);
	ck_assert_uint_eq(M.natt, STORE_PARTS_MAX);
	ck_assert(M.att_dropped);
	ck_assert_str_eq(M.att[7].content_type, "application/x-7");
	g_string_free(g, TRUE);
}
END_TEST

static Suite *
store_suite(void)
{
	Suite	*s = suite_create("store");
	TCase	*tc = tcase_create("mime");

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_plain_headers);
	tcase_add_test(tc, test_plain_header_list);
	tcase_add_test(tc, test_plain_body);
	tcase_add_test(tc, test_alternative);
	tcase_add_loop_test(tc, test_subject_charsets, 0,
	    sizeof(subjects) / sizeof(subjects[0]));
	tcase_add_test(tc, test_attachments);
	tcase_add_test(tc, test_bad_bytes);
	tcase_add_test(tc, test_utf8_clean);
	tcase_add_test(tc, test_garbage);
	tcase_add_test(tc, test_deep_nesting);
	tcase_add_test(tc, test_body_bound);
	tcase_add_test(tc, test_parts_bound);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(store_suite());
	int	 failed;

	store_mime_init();
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
