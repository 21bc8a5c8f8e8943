#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"

static int
parses(const char *s, int utf8)
{
	struct mailaddr	ma;

	return mailaddr_parse(&ma, s, utf8) == 0;
}

static int
has_8bit(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s >= 0x80)
			return 1;
	return 0;
}

/* A string of n copies of c. */
static char *
rep(char *buf, size_t bufsz, char c, size_t n)
{
	ck_assert_uint_lt(n, bufsz);
	memset(buf, c, n);
	buf[n] = '\0';
	return buf;
}

static const char *valid_ascii[] = {
	"user@example.org",
	"u@e",
	"first.last@example.org",
	"a.b.c.d@example.org",
	"user+tag@example.org",
	"!#$%&'*+-/=?^_`{|}~@example.org",
	"UPPER@EXAMPLE.ORG",
	"1234@123.example",
	"x@a-b.example",
	"x@a--b.example",
	"x@0.example",
	"x@localhost",
	"user@[127.0.0.1]",
	"user@[0.0.0.0]",
	"user@[255.255.255.255]",
	"user@[IPv6:::1]",
	"user@[ipv6:2001:db8::1]",
	"user@[IPv6:2001:db8:0:0:0:0:0:1]",
	"user@[IPv6:::ffff:192.0.2.1]",
	"\"quoted\"@example.org",
	"\"with space\"@example.org",
	"\"a@b\"@example.org",
	"\"a>b<c\"@example.org",
	"\"a.\"@example.org",
	"\".a..b\"@example.org",
	"\"esc\\\"aped\"@example.org",
	"\"back\\\\slash\"@example.org",
	"\"pair\\ space\"@example.org",
	"\"(comment)\"@example.org",
	"postmaster",
	"Postmaster",
	"POSTMASTER",
	"postmaster@example.org",
	NULL
};

static const char *invalid_ascii[] = {
	"",
	"@",
	"user",
	"user@",
	"@example.org",
	"user@@example.org",
	"us@er@example.org",
	".user@example.org",
	"user.@example.org",
	"us..er@example.org",
	"us er@example.org",
	" user@example.org",
	"user@example.org ",
	"user @example.org",
	"user@ example.org",
	"us\ter@example.org",
	"us\rer@example.org",
	"us\ner@example.org",
	"us\x7f" "er@example.org",
	"us\x01" "er@example.org",
	"us(er@example.org",
	"us)er@example.org",
	"us,er@example.org",
	"us:er@example.org",
	"us;er@example.org",
	"us<er@example.org",
	"us>er@example.org",
	"us[er@example.org",
	"us\\er@example.org",
	"us\"er@example.org",
	"user@exa mple.org",
	"user@example..org",
	"user@.example.org",
	"user@example.org.",
	"user@-example.org",
	"user@example-.org",
	"user@example.-org",
	"user@exa_mple.org",
	"user@exa+mple.org",
	"user@example.org\x7f",
	"\"\"@example.org",
	"\"unterminated@example.org",
	"\"a\"b@example.org",
	"a\"b\"@example.org",
	"\"a\".b@example.org",
	"\"ctl\x01\"@example.org",
	"\"tab\t\"@example.org",
	"\"bad\\\x01pair\"@example.org",
	"\"del\\\x7f\"@example.org",
	"\"8bit\\\xc3\xa9\"@example.org",	/* quoted-pair is ASCII only */
	"\"trailing\\\"@example.org",
	"\"q\"@@example.org",
	"\"q\"",
	"user@[127.0.0.1",
	"user@127.0.0.1]",
	"user@[]",
	"user@[256.0.0.1]",
	"user@[1.2.3]",
	"user@[1.2.3.4.5]",
	"user@[ 1.2.3.4]",
	"user@[::1]",
	"user@[IPv6:1.2.3.4]",
	"user@[IPv6:::g]",
	"user@[IPv6:1:2:3:4:5:6:7:8:9]",
	"user@[IPv4:1.2.3.4]",
	"user@[tag:content]",
	"user@[1.2.3.4]x",
	"user@x[1.2.3.4]",
	"user@[1.2.3.4].example",
	"postmaster@",
	"postmasterx",
	"\"postmaster\"",
	"postmaster ",
	"<user@example.org>",
	NULL
};

START_TEST(test_valid_ascii)
{
	int	i;

	for (i = 0; valid_ascii[i] != NULL; i++)
		ck_assert_msg(parses(valid_ascii[i], 0), "refused: %s",
		    valid_ascii[i]);
}
END_TEST

START_TEST(test_invalid_ascii)
{
	int	i;

	for (i = 0; invalid_ascii[i] != NULL; i++) {
		ck_assert_msg(!parses(invalid_ascii[i], 0), "accepted: %s",
		    invalid_ascii[i]);
		ck_assert_msg(!parses(invalid_ascii[i], 1),
		    "accepted with utf8: %s", invalid_ascii[i]);
	}
}
END_TEST

START_TEST(test_null_input)
{
	struct mailaddr	ma;

	ck_assert_int_eq(mailaddr_parse(&ma, NULL, 0), -1);
	ck_assert_int_eq(domain_is_valid(NULL, 0), 0);
}
END_TEST

START_TEST(test_split)
{
	struct mailaddr	ma;

	ck_assert_int_eq(mailaddr_parse(&ma, "First.Last@Example.ORG", 0), 0);
	ck_assert_str_eq(ma.local, "First.Last");
	ck_assert_str_eq(ma.domain, "Example.ORG");

	ck_assert_int_eq(mailaddr_parse(&ma, "\"a@b c\"@[10.0.0.1]", 0), 0);
	ck_assert_str_eq(ma.local, "\"a@b c\"");
	ck_assert_str_eq(ma.domain, "[10.0.0.1]");

	ck_assert_int_eq(mailaddr_parse(&ma, "\"x\\\"y\"@h", 0), 0);
	ck_assert_str_eq(ma.local, "\"x\\\"y\"");
	ck_assert_str_eq(ma.domain, "h");

	ck_assert_int_eq(mailaddr_parse(&ma, "PostMaster", 0), 0);
	ck_assert_str_eq(ma.local, "PostMaster");
	ck_assert_str_eq(ma.domain, "");

	/* A failed parse leaves nothing behind. */
	ck_assert_int_eq(mailaddr_parse(&ma, "bad@@x", 0), -1);
	ck_assert_str_eq(ma.local, "");
	ck_assert_str_eq(ma.domain, "");
}
END_TEST

START_TEST(test_localpart_length)
{
	char	local[128], addr[256];

	rep(local, sizeof(local), 'a', LOCALPART_MAX);
	snprintf(addr, sizeof(addr), "%s@example.org", local);
	ck_assert(parses(addr, 0));
	rep(local, sizeof(local), 'a', LOCALPART_MAX + 1);
	snprintf(addr, sizeof(addr), "%s@example.org", local);
	ck_assert(!parses(addr, 0));

	/* Quotes count: the limit is on the local part as sent. */
	rep(local, sizeof(local), 'q', LOCALPART_MAX - 2);
	snprintf(addr, sizeof(addr), "\"%s\"@example.org", local);
	ck_assert(parses(addr, 0));
	rep(local, sizeof(local), 'q', LOCALPART_MAX - 1);
	snprintf(addr, sizeof(addr), "\"%s\"@example.org", local);
	ck_assert(!parses(addr, 0));

	/* Octets, not characters: 32 two-byte characters fit, 33 do not. */
	local[0] = '\0';
	for (int i = 0; i < 32; i++)
		strlcat(local, "\xc3\xa9", sizeof(local));
	snprintf(addr, sizeof(addr), "%s@example.org", local);
	ck_assert(parses(addr, 1));
	strlcat(local, "\xc3\xa9", sizeof(local));
	snprintf(addr, sizeof(addr), "%s@example.org", local);
	ck_assert(!parses(addr, 1));
}
END_TEST

START_TEST(test_label_length)
{
	char	label[128], addr[512];

	rep(label, sizeof(label), 'l', 63);
	snprintf(addr, sizeof(addr), "u@%s.example", label);
	ck_assert(parses(addr, 0));
	ck_assert(domain_is_valid(label, 0));
	rep(label, sizeof(label), 'l', 64);
	snprintf(addr, sizeof(addr), "u@%s.example", label);
	ck_assert(!parses(addr, 0));
	ck_assert(!domain_is_valid(label, 0));
}
END_TEST

/* A domain of exactly n octets made of labels "aaa...". */
static void
make_domain(char *buf, size_t bufsz, size_t n)
{
	size_t	i;

	ck_assert_uint_lt(n, bufsz);
	for (i = 0; i < n; i++)
		buf[i] = (i % 50 == 49) ? '.' : 'a';
	if (buf[n - 1] == '.')
		buf[n - 2] = '.', buf[n - 1] = 'a';
	buf[n] = '\0';
}

START_TEST(test_domain_length)
{
	char	dom[300], addr[400];

	make_domain(dom, sizeof(dom), DOMAIN_MAX);
	ck_assert_uint_eq(strlen(dom), DOMAIN_MAX);
	ck_assert(domain_is_valid(dom, 0));
	snprintf(addr, sizeof(addr), "u@%s", dom);
	ck_assert(parses(addr, 0));

	make_domain(dom, sizeof(dom), DOMAIN_MAX + 1);
	ck_assert(!domain_is_valid(dom, 0));
	snprintf(addr, sizeof(addr), "u@%s", dom);
	ck_assert(!parses(addr, 0));

	/* Longest local part with longest domain still fits struct mailaddr. */
	{
		char		local[80];
		struct mailaddr	ma;
		char		out[ADDR_MAX];

		make_domain(dom, sizeof(dom), DOMAIN_MAX);
		rep(local, sizeof(local), 'x', LOCALPART_MAX);
		snprintf(addr, sizeof(addr), "%s@%s", local, dom);
		ck_assert_int_eq(mailaddr_parse(&ma, addr, 0), 0);
		ck_assert_int_eq(mailaddr_format(&ma, out, sizeof(out)), 0);
		ck_assert_str_eq(out, addr);
	}
}
END_TEST

START_TEST(test_domain_is_valid)
{
	ck_assert(domain_is_valid("example.org", 0));
	ck_assert(domain_is_valid("a", 0));
	ck_assert(domain_is_valid("1.2.3.4", 0));	/* LDH-wise fine */
	ck_assert(domain_is_valid("[1.2.3.4]", 0));
	ck_assert(domain_is_valid("[IPv6:fe80::1]", 0));
	ck_assert(!domain_is_valid("", 0));
	ck_assert(!domain_is_valid(".", 0));
	ck_assert(!domain_is_valid("a.", 0));
	ck_assert(!domain_is_valid(".a", 0));
	ck_assert(!domain_is_valid("a..b", 0));
	ck_assert(!domain_is_valid("-a", 0));
	ck_assert(!domain_is_valid("a-", 0));
	ck_assert(!domain_is_valid("a b", 0));
	ck_assert(!domain_is_valid("a\nb", 0));
	ck_assert(!domain_is_valid("a@b", 0));
	ck_assert(!domain_is_valid("[1.2.3.4", 0));
	ck_assert(!domain_is_valid("[IPv6:1.2.3.4]", 0));
	ck_assert(!domain_is_valid("\xc3\xa9t\xc3\xa9.example", 0));
	ck_assert(domain_is_valid("\xc3\xa9t\xc3\xa9.example", 1));
	ck_assert(!domain_is_valid("-\xc3\xa9.example", 1));
	ck_assert(!domain_is_valid("\xc3.example", 1));
}
END_TEST

static const char *valid_utf8_only[] = {
	"\xc3\xa9l\xc3\xa8ve@example.org",			/* élève */
	"user@\xc3\xa9t\xc3\xa9.example",			/* été */
	"\xe7\x94\xa8\xe6\x88\xb7@\xe4\xbe\x8b\xe5\xad\x90.\xe5\xb9\xbf\xe5\x91\x8a",
	"\xf0\x9f\x98\x80@example.org",				/* emoji */
	"\"\xc3\xa9 quoted\"@example.org",
	"x@xn--bcher-kva.example",				/* A-label is ASCII */
	NULL
};

static const char *invalid_utf8[] = {
	"\xc0\xaf@example.org",			/* overlong '/' */
	"\xc1\xbf@example.org",			/* overlong */
	"\xe0\x80\xaf@example.org",		/* overlong 3-byte */
	"\xe0\x9f\xbf@example.org",		/* overlong 3-byte, top */
	"\xf0\x80\x80\xaf@example.org",		/* overlong 4-byte */
	"\xf0\x8f\xbf\xbf@example.org",		/* overlong 4-byte, top */
	"\xed\xa0\x80@example.org",		/* U+D800 surrogate */
	"\xed\xbf\xbf@example.org",		/* U+DFFF surrogate */
	"\xf4\x90\x80\x80@example.org",		/* above U+10FFFF */
	"\xf5\x80\x80\x80@example.org",
	"\xff@example.org",
	"\xfe@example.org",
	"\x80@example.org",			/* lone continuation */
	"\xbf@example.org",
	"\xc3@example.org",			/* truncated 2-byte */
	"\xe2\x82@example.org",			/* truncated 3-byte */
	"\xf0\x9f\x98@example.org",		/* truncated 4-byte */
	"u@example.org\xc3",			/* truncated at the end */
	"u@example.org\xe2\x82",
	"\xc3\x28@example.org",			/* bad continuation */
	"\xe2\x28\xa1@example.org",
	"\xf0\x9f\x28\x80@example.org",
	NULL
};

START_TEST(test_utf8_addresses)
{
	int	i;

	for (i = 0; valid_utf8_only[i] != NULL; i++) {
		ck_assert_msg(parses(valid_utf8_only[i], 1),
		    "refused with utf8: %s", valid_utf8_only[i]);
		if (has_8bit(valid_utf8_only[i]))
			ck_assert_msg(!parses(valid_utf8_only[i], 0),
			    "accepted without utf8: %s", valid_utf8_only[i]);
	}
	for (i = 0; invalid_utf8[i] != NULL; i++) {
		ck_assert_msg(!parses(invalid_utf8[i], 1), "accepted: #%d", i);
		ck_assert_msg(!parses(invalid_utf8[i], 0),
		    "accepted w/o utf8: #%d", i);
	}
	/* Plain ASCII works the same either way. */
	ck_assert(parses("plain@example.org", 1));
	ck_assert(parses("\"q s\"@[IPv6:::1]", 1));
}
END_TEST

START_TEST(test_utf8_is_valid)
{
	int	i;

	ck_assert(utf8_is_valid("", 0));
	ck_assert(utf8_is_valid("ascii ~", 7));
	ck_assert(utf8_is_valid("\xc2\x80", 2));		/* U+0080 */
	ck_assert(utf8_is_valid("\xdf\xbf", 2));		/* U+07FF */
	ck_assert(utf8_is_valid("\xe0\xa0\x80", 3));		/* U+0800 */
	ck_assert(utf8_is_valid("\xed\x9f\xbf", 3));		/* U+D7FF */
	ck_assert(utf8_is_valid("\xee\x80\x80", 3));		/* U+E000 */
	ck_assert(utf8_is_valid("\xef\xbf\xbf", 3));		/* U+FFFF */
	ck_assert(utf8_is_valid("\xf0\x90\x80\x80", 4));	/* U+10000 */
	ck_assert(utf8_is_valid("\xf4\x8f\xbf\xbf", 4));	/* U+10FFFF */

	ck_assert(!utf8_is_valid("a\0b", 3));			/* NUL */
	ck_assert(!utf8_is_valid("a\tb", 3));
	ck_assert(!utf8_is_valid("a\r\n", 3));
	ck_assert(!utf8_is_valid("\x1f", 1));
	/* Truncation inside the given length, even if more bytes follow. */
	ck_assert(!utf8_is_valid("\xc3\xa9", 1));
	ck_assert(!utf8_is_valid("\xe2\x82\xac", 2));
	ck_assert(!utf8_is_valid("\xf0\x9f\x98\x80", 3));
	ck_assert(utf8_is_valid("\xe2\x82\xac", 3));

	for (i = 0; invalid_utf8[i] != NULL; i++)
		ck_assert_msg(!utf8_is_valid(invalid_utf8[i],
		    strlen(invalid_utf8[i])), "valid: #%d", i);
}
END_TEST

/* Every 2-byte sequence is judged like a reference decoder would. */
START_TEST(test_utf8_exhaustive_2byte)
{
	unsigned int	a, b;
	char		s[2];
	int		want;

	for (a = 0x80; a <= 0xff; a++)
		for (b = 0; b <= 0xff; b++) {
			s[0] = (char)a;
			s[1] = (char)b;
			want = a >= 0xc2 && a <= 0xdf && b >= 0x80 && b <= 0xbf;
			if (utf8_is_valid(s, 2) != want)
				ck_abort_msg("%02x %02x", a, b);
		}
}
END_TEST

/* Every 3-byte lead with every second byte: overlongs and surrogates. */
START_TEST(test_utf8_exhaustive_3byte)
{
	unsigned int	a, b, cp;
	char		s[3];
	int		want;

	for (a = 0xe0; a <= 0xef; a++)
		for (b = 0x80; b <= 0xbf; b++) {
			s[0] = (char)a;
			s[1] = (char)b;
			s[2] = (char)0x80;
			cp = ((a & 0x0f) << 12) | ((b & 0x3f) << 6);
			want = cp >= 0x800 && !(cp >= 0xd800 && cp <= 0xdfff);
			if (utf8_is_valid(s, 3) != want)
				ck_abort_msg("%02x %02x", a, b);
		}
}
END_TEST

START_TEST(test_format)
{
	struct mailaddr	ma;
	char		buf[ADDR_MAX], small[8];

	ck_assert_int_eq(mailaddr_parse(&ma, "\"a b\"@Example.org", 0), 0);
	ck_assert_int_eq(mailaddr_format(&ma, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "\"a b\"@Example.org");

	ck_assert_int_eq(mailaddr_parse(&ma, "postmaster", 0), 0);
	ck_assert_int_eq(mailaddr_format(&ma, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "postmaster");

	ck_assert_int_eq(mailaddr_parse(&ma, "abc@d.e", 0), 0);
	/* "abc@d.e" is 7 octets: fits in 8, not in 7. */
	ck_assert_int_eq(mailaddr_format(&ma, small, 8), 0);
	ck_assert_str_eq(small, "abc@d.e");
	ck_assert_int_eq(mailaddr_format(&ma, small, 7), -1);
	ck_assert_int_eq(mailaddr_format(&ma, small, 0), -1);

	/* Round trip. */
	for (int i = 0; valid_ascii[i] != NULL; i++) {
		ck_assert_int_eq(mailaddr_parse(&ma, valid_ascii[i], 0), 0);
		ck_assert_int_eq(mailaddr_format(&ma, buf, sizeof(buf)), 0);
		ck_assert_str_eq(buf, valid_ascii[i]);
	}
}
END_TEST

START_TEST(test_str_lower)
{
	char	s[] = "MiXeD@Ex-AMPLE.ORG \xc3\x89";

	str_lower(s);
	ck_assert_str_eq(s, "mixed@ex-ample.org \xc3\x89");
}
END_TEST

static Suite *
addr_suite(void)
{
	Suite	*s = suite_create("addr");
	TCase	*tc = tcase_create("core");

	tcase_add_test(tc, test_valid_ascii);
	tcase_add_test(tc, test_invalid_ascii);
	tcase_add_test(tc, test_null_input);
	tcase_add_test(tc, test_split);
	tcase_add_test(tc, test_localpart_length);
	tcase_add_test(tc, test_label_length);
	tcase_add_test(tc, test_domain_length);
	tcase_add_test(tc, test_domain_is_valid);
	tcase_add_test(tc, test_utf8_addresses);
	tcase_add_test(tc, test_utf8_is_valid);
	tcase_add_test(tc, test_utf8_exhaustive_2byte);
	tcase_add_test(tc, test_utf8_exhaustive_3byte);
	tcase_add_test(tc, test_format);
	tcase_add_test(tc, test_str_lower);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(addr_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
