#include "autoconf.h"

#include <check.h>
#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth.h"
#include "log.h"
#include "smtp_auth.h"
#include "table.h"

/* base64 of a message that may hold NULs, for the client side. */
static const char *
b64(const void *msg, size_t len)
{
	static char	out[4096];

	ck_assert_int_ge(base64_encode_str(msg, len, out, sizeof(out)), 0);
	return out;
}

/* A literal with NULs inside: its size without the final NUL. */
#define B64(lit)	b64((lit), sizeof(lit) - 1)

static int
all_zero(const void *p, size_t len)
{
	const unsigned char	*c = p;
	size_t			 i;

	for (i = 0; i < len; i++)
		if (c[i] != 0)
			return 0;
	return 1;
}

/* ---- base64 ------------------------------------------------------------ */

static const struct {
	const char	*plain;
	const char	*enc;
} rfc4648[] = {
	{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
	{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
	{ "foobar", "Zm9vYmFy" },
};

START_TEST(test_base64_vectors)
{
	unsigned char	out[64];
	char		enc[64];
	size_t		i, len;

	for (i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
		ck_assert_int_eq(base64_encode_str(
		    (const unsigned char *)rfc4648[i].plain,
		    strlen(rfc4648[i].plain), enc, sizeof(enc)),
		    (int)strlen(rfc4648[i].enc));
		ck_assert_str_eq(enc, rfc4648[i].enc);
		ck_assert_int_eq(base64_decode_str(rfc4648[i].enc, out,
		    sizeof(out), &len), 0);
		ck_assert_uint_eq(len, strlen(rfc4648[i].plain));
		ck_assert_str_eq((char *)out, rfc4648[i].plain);
	}
}
END_TEST

START_TEST(test_base64_round_trip)
{
	unsigned char	in[300], out[300];
	char		enc[512];
	size_t		n, i, len;

	/* Every length, every byte value (NULs included). */
	for (n = 0; n < sizeof(in); n++) {
		for (i = 0; i < n; i++)
			in[i] = (unsigned char)(i * 37 + n);
		ck_assert_int_eq(base64_encode_str(in, n, enc, sizeof(enc)),
		    (int)((n + 2) / 3 * 4));
		ck_assert_int_eq(base64_decode_str(enc, out, sizeof(out),
		    &len), 0);
		ck_assert_uint_eq(len, n);
		ck_assert_mem_eq(out, in, n);
		ck_assert_int_eq(out[n], 0);
	}
}
END_TEST

START_TEST(test_base64_strict)
{
	static const char *const bad[] = {
		"Zg",		/* padding missing */
		"Zg=",
		"Zm9vY",
		"Zm9v\n",	/* white space */
		"Zm 9v",
		" Zm9v",
		"Zm9v\r\n",
		"Zh==",		/* bits set past the data */
		"Zm9=",
		"Z===",		/* too much padding */
		"====",
		"=Zg=",		/* padding inside */
		"Zg==Zm9v",
		"Zg=a",
		"Zm9*",		/* not in the alphabet */
		"Zm9-",		/* base64url */
		"Zm9_",
		"Zm9v\x80\x80\x80\x80",
	};
	unsigned char	out[64];
	size_t		i, len;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(base64_decode_str(bad[i], out, sizeof(out),
		    &len) == -1, "\"%s\" accepted", bad[i]);
}
END_TEST

START_TEST(test_base64_bounds)
{
	unsigned char	out[8];
	char		enc[8];
	size_t		len;

	/* Room for the data and the NUL, not one byte less. */
	ck_assert_int_eq(base64_decode_str("Zm9v", out, 3, &len), -1);
	ck_assert_int_eq(base64_decode_str("Zm9v", out, 4, &len), 0);
	ck_assert_uint_eq(len, 3);
	ck_assert_int_eq(base64_decode_str("", out, 0, &len), -1);
	ck_assert_int_eq(base64_decode_str("", out, 1, &len), 0);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(base64_encode_str((const unsigned char *)"foo", 3,
	    enc, 4), -1);
	ck_assert_int_eq(base64_encode_str((const unsigned char *)"foo", 3,
	    enc, 5), 4);
	ck_assert_int_eq(base64_encode_str((const unsigned char *)"", 0,
	    enc, 0), -1);
	ck_assert_int_eq(base64_encode_str((const unsigned char *)"", 0,
	    enc, 1), 0);
}
END_TEST

/* ---- PLAIN ------------------------------------------------------------- */

START_TEST(test_plain_initial)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];

	ck_assert_int_eq(sasl_start(&s, "PLAIN", B64("\0alice\0secret"), ch,
	    sizeof(ch)), SASL_DONE);
	ck_assert_int_eq(s.mech, SASL_PLAIN);
	ck_assert_str_eq(s.user, "alice");
	ck_assert_str_eq(s.pass, "secret");

	/* Mechanism names are case-insensitive. */
	ck_assert_int_eq(sasl_start(&s, "pLaIn", B64("\0bob\0pw"), ch,
	    sizeof(ch)), SASL_DONE);
	ck_assert_str_eq(s.user, "bob");
	ck_assert_str_eq(s.pass, "pw");

	/* Passwords keep spaces and 8-bit bytes. */
	ck_assert_int_eq(sasl_start(&s, "PLAIN",
	    B64("\0alice\0 p\xc3\xa4ss word "), ch, sizeof(ch)), SASL_DONE);
	ck_assert_str_eq(s.pass, " p\xc3\xa4ss word ");

	/* Nothing more is expected after DONE. */
	ck_assert_int_eq(sasl_step(&s, B64("\0alice\0secret"), ch,
	    sizeof(ch)), SASL_BADINPUT);
	ck_assert_int_eq(s.mech, SASL_NONE);
}
END_TEST

START_TEST(test_plain_no_initial)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];

	memset(ch, 'x', sizeof(ch));
	ck_assert_int_eq(sasl_start(&s, "PLAIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_str_eq(ch, "");	/* "334 " and nothing after */
	ck_assert_int_eq(sasl_step(&s, B64("\0alice\0secret"), ch,
	    sizeof(ch)), SASL_DONE);
	ck_assert_str_eq(s.user, "alice");
	ck_assert_str_eq(s.pass, "secret");
}
END_TEST

START_TEST(test_plain_empty_initial)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];

	/* "=" is a zero-length response: no NULs, so not a PLAIN message. */
	ck_assert_int_eq(sasl_start(&s, "PLAIN", "=", ch, sizeof(ch)),
	    SASL_BADINPUT);
	ck_assert_int_eq(s.mech, SASL_NONE);
	/* An empty continuation line likewise. */
	ck_assert_int_eq(sasl_start(&s, "PLAIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "", ch, sizeof(ch)), SASL_BADINPUT);
	/* "=" is special only as the initial response. */
	ck_assert_int_eq(sasl_start(&s, "PLAIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "=", ch, sizeof(ch)), SASL_BADINPUT);
}
END_TEST

START_TEST(test_plain_authzid)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];

	ck_assert_int_eq(sasl_start(&s, "PLAIN", B64("alice\0alice\0secret"),
	    ch, sizeof(ch)), SASL_DONE);
	ck_assert_str_eq(s.user, "alice");
	ck_assert_str_eq(s.pass, "secret");
	ck_assert_int_eq(sasl_start(&s, "PLAIN", B64("Alice\0alice\0secret"),
	    ch, sizeof(ch)), SASL_DONE);
	ck_assert_str_eq(s.user, "alice");

	/* Acting for someone else is not supported. */
	ck_assert_int_eq(sasl_start(&s, "PLAIN", B64("bob\0alice\0secret"),
	    ch, sizeof(ch)), SASL_BADINPUT);
	ck_assert_int_eq(sasl_start(&s, "PLAIN", B64("alicex\0alice\0secret"),
	    ch, sizeof(ch)), SASL_BADINPUT);
	ck_assert_int_eq(sasl_start(&s, "PLAIN", B64("alic\0alice\0secret"),
	    ch, sizeof(ch)), SASL_BADINPUT);
	ck_assert_int_eq(s.mech, SASL_NONE);
	ck_assert(all_zero(s.user, sizeof(s.user)));
	ck_assert(all_zero(s.pass, sizeof(s.pass)));
}
END_TEST

START_TEST(test_plain_layout)
{
	static const struct {
		const char	*msg;
		size_t		 len;
	} bad[] = {
#define M(lit)	{ lit, sizeof(lit) - 1 }
		M("alice secret"),		/* no NUL */
		M("\0alicesecret"),		/* one NUL */
		M("\0alice\0sec\0ret"),		/* three */
		M("\0alice\0secret\0"),
		M("\0alice\0"),			/* empty password */
		M("\0\0secret"),		/* empty authcid */
		M("\0\0"),
		M("\0"),
		M("\0ali\nce\0secret"),		/* control in the user name */
		M("\0ali\rce\0secret"),
		M("\0alice\x7f\0secret"),
#undef M
	};
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];
	size_t		i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(sasl_start(&s, "PLAIN", b64(bad[i].msg,
		    bad[i].len), ch, sizeof(ch)) == SASL_BADINPUT,
		    "message %zu accepted", i);
		ck_assert_int_eq(s.mech, SASL_NONE);
	}
	/* Not base64 at all. */
	ck_assert_int_eq(sasl_start(&s, "PLAIN", "AGFsaWNlAHNlY3JldA",
	    ch, sizeof(ch)), SASL_BADINPUT);
	ck_assert_int_eq(sasl_start(&s, "PLAIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "not base64!", ch, sizeof(ch)),
	    SASL_BADINPUT);
	ck_assert_int_eq(s.mech, SASL_NONE);
}
END_TEST

START_TEST(test_plain_overlong)
{
	struct sasl	 s;
	char		 ch[SASL_CHALLENGE_MAX];
	unsigned char	 msg[1200];
	char		*line;
	size_t		 n;

	/* The longest user name and password that fit. */
	memset(msg, 0, sizeof(msg));
	memset(msg + 1, 'u', AUTH_USER_MAX - 1);
	memset(msg + AUTH_USER_MAX + 1, 'p', AUTH_PASS_MAX - 1);
	n = 1 + (AUTH_USER_MAX - 1) + 1 + (AUTH_PASS_MAX - 1);
	ck_assert_int_eq(sasl_start(&s, "PLAIN", b64(msg, n), ch,
	    sizeof(ch)), SASL_DONE);
	ck_assert_uint_eq(strlen(s.user), AUTH_USER_MAX - 1);
	ck_assert_uint_eq(strlen(s.pass), AUTH_PASS_MAX - 1);

	/* One byte more in the user name. */
	memset(msg, 0, sizeof(msg));
	memset(msg + 1, 'u', AUTH_USER_MAX);
	memset(msg + AUTH_USER_MAX + 2, 'p', 8);
	ck_assert_int_eq(sasl_start(&s, "PLAIN",
	    b64(msg, AUTH_USER_MAX + 10), ch, sizeof(ch)), SASL_BADINPUT);

	/* One byte more in the password. */
	memset(msg, 0, sizeof(msg));
	memcpy(msg + 1, "alice", 5);
	memset(msg + 7, 'p', AUTH_PASS_MAX);
	ck_assert_int_eq(sasl_start(&s, "PLAIN",
	    b64(msg, 7 + AUTH_PASS_MAX), ch, sizeof(ch)), SASL_BADINPUT);

	/* A line longer than SASL_LINE_MAX, valid base64 or not. */
	ck_assert_ptr_nonnull(line = malloc(SASL_LINE_MAX + 8));
	memset(line, 'A', SASL_LINE_MAX + 4);
	line[SASL_LINE_MAX + 4] = '\0';
	ck_assert_int_eq(sasl_start(&s, "PLAIN", line, ch, sizeof(ch)),
	    SASL_BADINPUT);
	ck_assert_int_eq(sasl_start(&s, "PLAIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, line, ch, sizeof(ch)), SASL_BADINPUT);
	free(line);
}
END_TEST

START_TEST(test_plain_cancel)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];

	ck_assert_int_eq(sasl_start(&s, "PLAIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "*", ch, sizeof(ch)), SASL_CANCEL);
	ck_assert_int_eq(s.mech, SASL_NONE);
	/* "*" is no initial response. */
	ck_assert_int_eq(sasl_start(&s, "PLAIN", "*", ch, sizeof(ch)),
	    SASL_BADINPUT);
}
END_TEST

/* ---- LOGIN ------------------------------------------------------------- */

START_TEST(test_login_dialogue)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];

	ck_assert_int_eq(sasl_start(&s, "LOGIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_str_eq(ch, "VXNlcm5hbWU6");		/* "Username:" */
	ck_assert_int_eq(sasl_step(&s, B64("alice"), ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_str_eq(ch, "UGFzc3dvcmQ6");		/* "Password:" */
	ck_assert_int_eq(sasl_step(&s, B64("secret"), ch, sizeof(ch)),
	    SASL_DONE);
	ck_assert_int_eq(s.mech, SASL_LOGIN);
	ck_assert_str_eq(s.user, "alice");
	ck_assert_str_eq(s.pass, "secret");
	ck_assert_int_eq(sasl_step(&s, B64("more"), ch, sizeof(ch)),
	    SASL_BADINPUT);

	/* The user name as initial response, as clients send it. */
	ck_assert_int_eq(sasl_start(&s, "login", B64("bob"), ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_str_eq(ch, "UGFzc3dvcmQ6");
	ck_assert_int_eq(sasl_step(&s, B64("pw"), ch, sizeof(ch)), SASL_DONE);
	ck_assert_str_eq(s.user, "bob");
	ck_assert_str_eq(s.pass, "pw");

	/* An empty password decodes; the check refuses it later. */
	ck_assert_int_eq(sasl_start(&s, "LOGIN", B64("bob"), ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "", ch, sizeof(ch)), SASL_DONE);
	ck_assert_str_eq(s.pass, "");

	sasl_clear(&s);
	ck_assert(all_zero(&s, sizeof(s)));
}
END_TEST

START_TEST(test_login_cancel)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];

	ck_assert_int_eq(sasl_start(&s, "LOGIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "*", ch, sizeof(ch)), SASL_CANCEL);
	ck_assert_int_eq(s.mech, SASL_NONE);

	ck_assert_int_eq(sasl_start(&s, "LOGIN", B64("alice"), ch,
	    sizeof(ch)), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "*", ch, sizeof(ch)), SASL_CANCEL);
	ck_assert(all_zero(&s, sizeof(s)));
	/* Nothing under way any more. */
	ck_assert_int_eq(sasl_step(&s, B64("secret"), ch, sizeof(ch)),
	    SASL_BADINPUT);
}
END_TEST

START_TEST(test_login_bad_input)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];

	ck_assert_int_eq(sasl_start(&s, "LOGIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "YWxpY2U", ch, sizeof(ch)),
	    SASL_BADINPUT);
	ck_assert_int_eq(s.mech, SASL_NONE);

	ck_assert_int_eq(sasl_start(&s, "LOGIN", B64("alice"), ch,
	    sizeof(ch)), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "c2VjcmV0!", ch, sizeof(ch)),
	    SASL_BADINPUT);
	ck_assert(all_zero(&s, sizeof(s)));

	/* User names: not empty, no NUL, no controls, bounded. */
	ck_assert_int_eq(sasl_start(&s, "LOGIN", "=", ch, sizeof(ch)),
	    SASL_BADINPUT);
	ck_assert_int_eq(sasl_start(&s, "LOGIN", NULL, ch, sizeof(ch)),
	    SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, "", ch, sizeof(ch)), SASL_BADINPUT);
	ck_assert_int_eq(sasl_start(&s, "LOGIN", B64("ali\0ce"), ch,
	    sizeof(ch)), SASL_BADINPUT);
	ck_assert_int_eq(sasl_start(&s, "LOGIN", B64("ali\tce"), ch,
	    sizeof(ch)), SASL_BADINPUT);

	/* Passwords: no NUL, bounded. */
	ck_assert_int_eq(sasl_start(&s, "LOGIN", B64("alice"), ch,
	    sizeof(ch)), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, B64("sec\0ret"), ch, sizeof(ch)),
	    SASL_BADINPUT);
}
END_TEST

START_TEST(test_login_overlong)
{
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];
	unsigned char	buf[AUTH_PASS_MAX + 1];

	memset(buf, 'u', sizeof(buf));
	ck_assert_int_eq(sasl_start(&s, "LOGIN", b64(buf, AUTH_USER_MAX - 1),
	    ch, sizeof(ch)), SASL_CONTINUE);
	ck_assert_int_eq(sasl_start(&s, "LOGIN", b64(buf, AUTH_USER_MAX),
	    ch, sizeof(ch)), SASL_BADINPUT);

	ck_assert_int_eq(sasl_start(&s, "LOGIN", B64("alice"), ch,
	    sizeof(ch)), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, b64(buf, AUTH_PASS_MAX - 1), ch,
	    sizeof(ch)), SASL_DONE);
	ck_assert_uint_eq(strlen(s.pass), AUTH_PASS_MAX - 1);
	ck_assert_int_eq(sasl_start(&s, "LOGIN", B64("alice"), ch,
	    sizeof(ch)), SASL_CONTINUE);
	ck_assert_int_eq(sasl_step(&s, b64(buf, AUTH_PASS_MAX), ch,
	    sizeof(ch)), SASL_BADINPUT);
}
END_TEST

START_TEST(test_challenge_buffer)
{
	struct sasl	s;
	char		ch[8];

	/* A challenge that does not fit is refused, not truncated. */
	memset(ch, 'x', sizeof(ch));
	ck_assert_int_eq(sasl_start(&s, "LOGIN", NULL, ch, sizeof(ch)),
	    SASL_BADINPUT);
	ck_assert_int_eq(s.mech, SASL_NONE);
	ck_assert_int_eq(sasl_start(&s, "PLAIN", NULL, ch, 0),
	    SASL_BADINPUT);
	ck_assert_int_eq(sasl_start(&s, "PLAIN", NULL, ch, 1),
	    SASL_CONTINUE);
	ck_assert_str_eq(ch, "");
}
END_TEST

START_TEST(test_unknown_mech)
{
	static const char *const mechs[] = {
		"CRAM-MD5", "DIGEST-MD5", "SCRAM-SHA-256", "XOAUTH2",
		"PLAINX", "PLAI", "LOGIN ", "", "ANONYMOUS",
	};
	struct sasl	s;
	char		ch[SASL_CHALLENGE_MAX];
	size_t		i;

	for (i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++) {
		ck_assert_msg(sasl_start(&s, mechs[i], NULL, ch, sizeof(ch))
		    == SASL_BADMECH, "%s accepted", mechs[i]);
		ck_assert_int_eq(s.mech, SASL_NONE);
	}
	ck_assert_int_eq(sasl_start(&s, NULL, NULL, ch, sizeof(ch)),
	    SASL_BADMECH);
	ck_assert_int_eq(sasl_start(&s, "CRAM-MD5", B64("\0a\0b"), ch,
	    sizeof(ch)), SASL_BADMECH);
}
END_TEST

/* ---- auth_verify ------------------------------------------------------- */

static char *
make_hash(const char *prefix, unsigned long cost, const char *pass)
{
	static struct crypt_data	 data;
	char				 salt[CRYPT_GENSALT_OUTPUT_SIZE];
	const char			*h;
	char				*copy;

	ck_assert_ptr_nonnull(crypt_gensalt_rn(prefix, cost, NULL, 0, salt,
	    sizeof(salt)));
	ck_assert_ptr_nonnull(h = crypt_rn(pass, salt, &data, sizeof(data)));
	ck_assert_msg(strncmp(h, prefix, strlen(prefix)) == 0, "%s", h);
	ck_assert_ptr_nonnull(copy = strdup(h));
	return copy;
}

static struct table *
creds_add(struct table *t, const char *user, char *hash)
{
	ck_assert_int_eq(table_add(t, user, hash), 0);
	free(hash);
	return t;
}

static struct table *
creds_new(void)
{
	struct table	*t;

	ck_assert_ptr_nonnull(t = table_new("creds"));
	creds_add(t, "alice", make_hash("$y$", 0, "alice pw"));
	creds_add(t, "bob", make_hash("$6$", 0, "bob pw"));
	creds_add(t, "carol", make_hash("$2b$", 4, "carol pw"));
	creds_add(t, "dave", make_hash("$5$", 0, "dave pw"));
	creds_add(t, "erin", make_hash("$y$", 0, ""));
	/* MD5-crypt: computable, but not trusted. */
	creds_add(t, "frank", make_hash("$1$", 0, "frank pw"));
	ck_assert_int_eq(table_add(t, "locked", "!"), 0);
	ck_assert_int_eq(table_add(t, "nologin", "*"), 0);
	ck_assert_int_eq(table_add(t, "listonly", NULL), 0);
	ck_assert_int_eq(table_add(t, "broken", "$y$garbage"), 0);
	creds_add(t, "twoy", make_hash("$2y$", 4, "password"));
	return t;
}

START_TEST(test_verify_methods)
{
	struct table	*t = creds_new();

	ck_assert_int_eq(auth_verify(t, "alice", "alice pw"), AUTH_OK);
	ck_assert_int_eq(auth_verify(t, "bob", "bob pw"), AUTH_OK);
	ck_assert_int_eq(auth_verify(t, "carol", "carol pw"), AUTH_OK);
	ck_assert_int_eq(auth_verify(t, "dave", "dave pw"), AUTH_OK);

	ck_assert_int_eq(auth_verify(t, "alice", "alice pW"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "bob", "bob pw "), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "carol", "carol"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "dave", ""), AUTH_FAIL);
	/* Someone else's password. */
	ck_assert_int_eq(auth_verify(t, "alice", "bob pw"), AUTH_FAIL);
	table_free(t);
}
END_TEST

START_TEST(test_verify_users)
{
	struct table	*t = creds_new();
	char		 longuser[600];

	/* User names are case-insensitive, passwords are not. */
	ck_assert_int_eq(auth_verify(t, "ALICE", "alice pw"), AUTH_OK);
	ck_assert_int_eq(auth_verify(t, "Bob", "bob pw"), AUTH_OK);
	ck_assert_int_eq(auth_verify(t, "alice", "ALICE PW"), AUTH_FAIL);

	ck_assert_int_eq(auth_verify(t, "mallory", "alice pw"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "", "alice pw"), AUTH_FAIL);
	memset(longuser, 'a', sizeof(longuser) - 1);
	longuser[sizeof(longuser) - 1] = '\0';
	ck_assert_int_eq(auth_verify(t, longuser, "x"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, NULL, "x"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "alice", NULL), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(NULL, "alice", "alice pw"), AUTH_FAIL);
	table_free(t);
}
END_TEST

START_TEST(test_verify_unusable_hashes)
{
	struct table	*t = creds_new();

	ck_assert_int_eq(auth_verify(t, "locked", "!"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "locked", ""), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "nologin", "*"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "listonly", ""), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "broken", "x"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "frank", "frank pw"), AUTH_FAIL);
	/* The right (empty) password, but an empty one never passes. */
	ck_assert_int_eq(auth_verify(t, "erin", ""), AUTH_FAIL);
	/* "$2y$" is bcrypt too. */
	ck_assert_int_eq(auth_verify(t, "twoy", "password"), AUTH_OK);
	ck_assert_int_eq(auth_verify(t, "twoy", "passwor"), AUTH_FAIL);
	table_free(t);
}
END_TEST

/* A remote (MongoDB-like) backend: "down" fails, "alice" is there. */
static char	remote_hash[CRYPT_OUTPUT_SIZE];
static char	remote_asked[64];

static int
fake_remote(struct table *t, const char *key, char *value, size_t valuesz)
{
	(void)strlcpy(remote_asked, key, sizeof(remote_asked));
	if (strcmp(key, "down") == 0)
		return -1;
	if (strcmp(key, "alice") != 0)
		return 0;
	ck_assert_uint_lt(strlcpy(value, remote_hash, valuesz), valuesz);
	return 1;
}

START_TEST(test_verify_remote)
{
	struct table	*t;
	char		*h;

	h = make_hash("$y$", 0, "alice pw");
	(void)strlcpy(remote_hash, h, sizeof(remote_hash));
	free(h);
	ck_assert_ptr_nonnull(t = table_new("remote"));
	(void)strlcpy(t->remote, "credentials", sizeof(t->remote));
	table_set_remote(fake_remote);

	ck_assert_int_eq(auth_verify(t, "Alice", "alice pw"), AUTH_OK);
	ck_assert_str_eq(remote_asked, "alice");
	ck_assert_int_eq(auth_verify(t, "alice", "wrong"), AUTH_FAIL);
	ck_assert_int_eq(auth_verify(t, "mallory", "alice pw"), AUTH_FAIL);
	/* "No such user" and "cannot tell now" are different answers. */
	ck_assert_int_eq(auth_verify(t, "down", "alice pw"), AUTH_TEMPFAIL);
	ck_assert_int_eq(auth_verify(t, "alice", "alice pw"), AUTH_OK);
	table_set_remote(NULL);
	table_free(t);
}
END_TEST

/*
 * CPU time, not wall time: the hash computations are CPU-bound in this
 * process, and other jobs on a loaded machine then do not skew the ratio.
 */
static double
cpu_seconds(void)
{
	struct timespec	ts;

	ck_assert_int_eq(clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts), 0);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
seconds_to_fail(struct table *t, const char *user)
{
	double	start = cpu_seconds();

	ck_assert_int_eq(auth_verify(t, user, "guess"), AUTH_FAIL);
	return cpu_seconds() - start;
}

/*
 * The fastest of three for each user, measured in turn (noise only ever
 * adds time).  Without the dummy computation an unknown user costs
 * microseconds against milliseconds: a factor of 3 leaves room for noise.
 */
static void
assert_alike(struct table *t, const char *known_user, int known_first)
{
	double	known = 1e9, unknown = 1e9, d;
	int	i;

	for (i = 0; i < 3; i++) {
		if (known_first && (d = seconds_to_fail(t, known_user)) < known)
			known = d;
		if ((d = seconds_to_fail(t, "mallory")) < unknown)
			unknown = d;
		if (!known_first && (d = seconds_to_fail(t, known_user)) <
		    known)
			known = d;
	}
	ck_assert_msg(unknown * 3 > known && known * 3 > unknown,
	    "unknown %.4fs, known %.4fs", unknown, known);
}

/*
 * An unknown user costs about what a known one does (each test runs in a
 * fresh process, so the first lookup sees the built-in yescrypt dummy).
 */
START_TEST(test_verify_timing_unknown)
{
	struct table	*t = creds_new();

	assert_alike(t, "alice", 0);
	table_free(t);
}
END_TEST

/*
 * After a costly hash was checked, unknown users cost as much (bcrypt at
 * cost 12 takes ten times the yescrypt dummy).
 */
START_TEST(test_verify_timing_follows_cost)
{
	struct table	*t;

	ck_assert_ptr_nonnull(t = table_new("creds"));
	creds_add(t, "slow", make_hash("$2b$", 12, "slow pw"));
	assert_alike(t, "slow", 1);
	table_free(t);
}
END_TEST

static Suite *
auth_suite(void)
{
	Suite	*s = suite_create("auth");
	TCase	*tc;

	tc = tcase_create("base64");
	tcase_add_test(tc, test_base64_vectors);
	tcase_add_test(tc, test_base64_round_trip);
	tcase_add_test(tc, test_base64_strict);
	tcase_add_test(tc, test_base64_bounds);
	suite_add_tcase(s, tc);

	tc = tcase_create("sasl");
	tcase_add_test(tc, test_plain_initial);
	tcase_add_test(tc, test_plain_no_initial);
	tcase_add_test(tc, test_plain_empty_initial);
	tcase_add_test(tc, test_plain_authzid);
	tcase_add_test(tc, test_plain_layout);
	tcase_add_test(tc, test_plain_overlong);
	tcase_add_test(tc, test_plain_cancel);
	tcase_add_test(tc, test_login_dialogue);
	tcase_add_test(tc, test_login_cancel);
	tcase_add_test(tc, test_login_bad_input);
	tcase_add_test(tc, test_login_overlong);
	tcase_add_test(tc, test_challenge_buffer);
	tcase_add_test(tc, test_unknown_mech);
	suite_add_tcase(s, tc);

	tc = tcase_create("verify");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_verify_methods);
	tcase_add_test(tc, test_verify_users);
	tcase_add_test(tc, test_verify_unusable_hashes);
	tcase_add_test(tc, test_verify_remote);
	tcase_add_test(tc, test_verify_timing_unknown);
	tcase_add_test(tc, test_verify_timing_follows_cost);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	log_init(1, 0);
	sr = srunner_create(auth_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
