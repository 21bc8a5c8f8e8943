#include "autoconf.h"

/*
 * The fs spool: envelope files (serialize/parse) and the queue_backend_fs
 * operations, including what load() does with the debris of a crash.
 */

#include <sys/stat.h>
#include <sys/types.h>
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "envelope_file.h"
#include "queue.h"
#include "util.h"



#define FS	(&queue_backend_fs)
/* snprintf into an array, failing the test if it does not fit. */
#define FMT(buf, ...)	ck_assert_int_lt(snprintf((buf), sizeof(buf), \
			    __VA_ARGS__), (int)sizeof(buf))

/* ---- helpers --------------------------------------------------------------- */

static void
fill_dlv(struct dlv *d, uint32_t kind, const char *user)
{
	memset(d, 0, sizeof(*d));
	d->kind = kind;
	strlcpy(d->action, "local", sizeof(d->action));
	strlcpy(d->user, user, sizeof(d->user));
	FMT(d->dest, "/var/mail/%s", user);
	FMT(d->rcpt, "%s@example.org", user);
	FMT(d->orig, "%s@Example.ORG", user);
}

static struct qmsg *
make_msg(const char *msgid, uint64_t size, int nrcpts)
{
	struct qmsg	*m;
	struct dlv	 d;
	char		 user[32];
	int		 i;

	ck_assert_ptr_nonnull(m = qmsg_new());
	strlcpy(m->msgid, msgid, sizeof(m->msgid));
	m->created = 1700000000;
	m->size = size;
	strlcpy(m->sender, "alice@example.org", sizeof(m->sender));
	strlcpy(m->helo, "mail.example.org", sizeof(m->helo));
	strlcpy(m->client_addr, "192.0.2.1", sizeof(m->client_addr));
	strlcpy(m->client_name, "mail.example.org", sizeof(m->client_name));
	strlcpy(m->auth_user, "alice", sizeof(m->auth_user));
	strlcpy(m->proto, "ESMTPS", sizeof(m->proto));
	for (i = 0; i < nrcpts; i++) {
		FMT(user, "user%d", i);
		fill_dlv(&d, i % 2 ? DLV_MAILDIR : DLV_MBOX, user);
		ck_assert_int_eq(qmsg_add_rcpt(m, &d), 0);
	}
	return m;
}

static void
assert_dlv_eq(const struct dlv *a, const struct dlv *b)
{
	ck_assert_uint_eq(a->kind, b->kind);
	ck_assert_uint_eq(a->notify, b->notify);
	ck_assert_str_eq(a->orcpt, b->orcpt);
	ck_assert_str_eq(a->action, b->action);
	ck_assert_str_eq(a->user, b->user);
	ck_assert_str_eq(a->dest, b->dest);
	ck_assert_str_eq(a->rcpt, b->rcpt);
	ck_assert_str_eq(a->orig, b->orig);
}

/* Everything that is persisted; in flight comes back as pending. */
static void
assert_msg_eq(const struct qmsg *a, const struct qmsg *b)
{
	uint32_t	 i;

	ck_assert_str_eq(a->msgid, b->msgid);
	ck_assert_int_eq(a->created, b->created);
	ck_assert_uint_eq(a->size, b->size);
	ck_assert_str_eq(a->sender, b->sender);
	ck_assert_str_eq(a->helo, b->helo);
	ck_assert_str_eq(a->client_addr, b->client_addr);
	ck_assert_str_eq(a->client_name, b->client_name);
	ck_assert_str_eq(a->auth_user, b->auth_user);
	ck_assert_str_eq(a->proto, b->proto);
	ck_assert_uint_eq(a->flags, b->flags);
	ck_assert_str_eq(a->envid, b->envid);
	ck_assert_uint_eq(a->ret, b->ret);
	ck_assert_uint_eq(a->nrcpts, b->nrcpts);
	for (i = 0; i < a->nrcpts; i++) {
		const struct qrcpt *ra = &a->rcpts[i], *rb = &b->rcpts[i];

		ck_assert_uint_eq(rb->index, i);
		ck_assert_int_eq(rb->state, ra->state == RS_INFLIGHT ?
		    RS_PENDING : ra->state);
		ck_assert_uint_eq(ra->dsn, rb->dsn);
		ck_assert_uint_eq(ra->attempts, rb->attempts);
		ck_assert_int_eq(ra->next_try, rb->next_try);
		ck_assert_int_eq(ra->last_try, rb->last_try);
		ck_assert_str_eq(ra->last_error, rb->last_error);
		assert_dlv_eq(&ra->dlv, &rb->dlv);
	}
}

static struct qmsg *
roundtrip(const struct qmsg *m)
{
	struct qmsg	*p;
	char		*buf, err[256];
	size_t		 len;

	ck_assert_ptr_nonnull(buf = envelope_serialize(m, &len));
	ck_assert_uint_eq(strlen(buf), len);
	p = envelope_parse(buf, len, err, sizeof(err));
	ck_assert_msg(p != NULL, "parse: %s\n%s", err, buf);
	free(buf);
	assert_msg_eq(m, p);
	return p;
}

/* ---- envelope: round trips ------------------------------------------------- */

START_TEST(test_roundtrip_basic)
{
	struct qmsg	*m, *p;

	m = make_msg("0123456789abcdef", 4242, 3);
	m->rcpts[0].state = RS_DELIVERED;
	m->rcpts[1].state = RS_FAILED;
	m->rcpts[1].attempts = 7;
	m->rcpts[1].next_try = 1700003600;
	m->rcpts[1].last_try = 1700001800;
	strlcpy(m->rcpts[1].last_error, "550 5.1.1 no such user",
	    sizeof(m->rcpts[1].last_error));
	m->rcpts[2].state = RS_INFLIGHT;
	m->inflight = 1;

	p = roundtrip(m);
	ck_assert_int_eq(p->rcpts[2].state, RS_PENDING);
	ck_assert_int_eq(p->inflight, 0);
	qmsg_free(p);
	qmsg_free(m);
}
END_TEST

START_TEST(test_roundtrip_awkward)
{
	struct qmsg	*m, *p;
	char		*buf;
	size_t		 len, i;
	int		 lines = 0;

	m = make_msg("fedcba9876543210", 0, 2);
	m->sender[0] = '\0';		/* <> */
	m->helo[0] = '\0';
	strlcpy(m->client_name, "100% sure\r\nX-Injected: yes",
	    sizeof(m->client_name));
	strlcpy(m->auth_user, "J\xc3\xbcrgen \xe6\x97\xa5\xe6\x9c\xac",
	    sizeof(m->auth_user));
	strlcpy(m->proto, "%41%", sizeof(m->proto));
	strlcpy(m->rcpts[0].dlv.user, "a b\tc\x01\x7f", sizeof(m->rcpts[0].dlv.user));
	strlcpy(m->rcpts[0].dlv.dest, "/home/x y/Mail dir/", sizeof(m->rcpts[0].dlv.dest));
	strlcpy(m->rcpts[0].last_error, "line1\nline2 %00 end",
	    sizeof(m->rcpts[0].last_error));
	m->rcpts[0].dlv.action[0] = '\0';
	m->rcpts[0].dlv.orig[0] = '\0';
	/* Full buffers of bytes that triple when escaped. */
	memset(m->rcpts[1].dlv.dest, '%', DEST_MAX - 1);
	m->rcpts[1].dlv.dest[DEST_MAX - 1] = '\0';
	memset(m->rcpts[1].dlv.rcpt, ' ', ADDR_MAX - 1);
	m->rcpts[1].dlv.rcpt[ADDR_MAX - 1] = '\0';
	memset(m->rcpts[1].last_error, '\n', TEXT_MAX - 1);
	m->rcpts[1].last_error[TEXT_MAX - 1] = '\0';
	memset(m->sender, '\xe9', ADDR_MAX - 1);
	m->sender[ADDR_MAX - 1] = '\0';
	memset(m->envid, '+', sizeof(m->envid) - 1);
	m->envid[sizeof(m->envid) - 1] = '\0';
	memset(m->rcpts[1].dlv.orcpt, '\t', ORCPT_MAX - 1);
	m->rcpts[1].dlv.orcpt[ORCPT_MAX - 1] = '\0';
	strlcpy(m->rcpts[0].dlv.orcpt, "rfc822;a b%20c\r\n",
	    sizeof(m->rcpts[0].dlv.orcpt));
	m->rcpts[1].attempts = UINT32_MAX;
	m->rcpts[1].next_try = INT64_MAX;
	m->size = UINT64_C(1) << 40;

	p = roundtrip(m);
	qmsg_free(p);

	/* The text is line-safe: only printable or 8-bit bytes, 17 lines. */
	ck_assert_ptr_nonnull(buf = envelope_serialize(m, &len));
	ck_assert(strncmp(buf, "version 1\n", 10) == 0);
	ck_assert(len >= 4 && strcmp(buf + len - 4, "end\n") == 0);
	for (i = 0; i < len; i++) {
		unsigned char c = buf[i];

		if (c == '\n')
			lines++;
		else
			ck_assert_msg(c >= 0x20 && c != 0x7f,
			    "byte 0x%02x at %zu", c, i);
	}
	ck_assert_int_eq(lines, 14 + 2 + 1);
	ck_assert_ptr_null(strstr(buf, "X-Injected: yes"));
	ck_assert_ptr_nonnull(strstr(buf, "\nsender \xe9\xe9"));
	ck_assert_ptr_nonnull(strstr(buf, "\nhelo \n"));
	free(buf);
	qmsg_free(m);
}
END_TEST

START_TEST(test_serialize_format)
{
	struct qmsg	*m;
	char		*buf;
	size_t		 len;

	m = make_msg("00000000000000ff", 12, 2);
	m->flags = MSG_F_HELD | MSG_F_DOUBLE;
	strlcpy(m->envid, "QQ 314%", sizeof(m->envid));
	m->ret = DSN_RET_HDRS;
	m->rcpts[0].state = RS_INFLIGHT;
	m->rcpts[0].attempts = 2;
	m->rcpts[0].dsn = RCPT_DSN_WARNED;
	m->rcpts[0].dlv.notify = DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY;
	strlcpy(m->rcpts[0].dlv.orcpt, "rfc822;User0@example.org",
	    sizeof(m->rcpts[0].dlv.orcpt));
	/* The second keeps the defaults: no DSN at all, empty orcpt. */
	m->rcpts[1].state = RS_FAILED;
	ck_assert_ptr_nonnull(buf = envelope_serialize(m, &len));
	ck_assert_str_eq(buf,
	    "version 1\n"
	    "msgid 00000000000000ff\n"
	    "created 1700000000\n"
	    "size 12\n"
	    "sender alice@example.org\n"
	    "helo mail.example.org\n"
	    "client_addr 192.0.2.1\n"
	    "client_name mail.example.org\n"
	    "auth_user alice\n"
	    "proto ESMTPS\n"
	    "flags 5\n"
	    "envid QQ%20314%25\n"
	    "ret 2\n"
	    "rcpts 2\n"
	    "rcpt 0 pending 2 0 0 1 local user0 /var/mail/user0 "
	    "user0@example.org user0@Example.ORG  12 "
	    "rfc822;User0@example.org 1\n"
	    "rcpt 1 failed 0 0 0 2 local user1 /var/mail/user1 "
	    "user1@example.org user1@Example.ORG  0  0\n"
	    "end\n");
	free(buf);
	qmsg_free(m);
}
END_TEST

/*
 * Every valid flags and ret value, and across the recipients every valid
 * notify (none, NEVER alone, any set of the other three) and dsn value.
 */
START_TEST(test_roundtrip_dsn_values)
{
	static const uint32_t notify[] = {
		0, DSN_NOTIFY_NEVER, DSN_NOTIFY_SUCCESS, DSN_NOTIFY_FAILURE,
		DSN_NOTIFY_DELAY, DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE,
		DSN_NOTIFY_SUCCESS | DSN_NOTIFY_DELAY,
		DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY,
		DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE | DSN_NOTIFY_DELAY,
	};
	const size_t	 nnotify = sizeof(notify) / sizeof(notify[0]);
	struct qmsg	*m, *p;
	uint32_t	 flags, ret, i;

	for (flags = 0; flags <= (MSG_F_HELD | MSG_F_DSN | MSG_F_DOUBLE);
	    flags++) {
		for (ret = DSN_RET_NONE; ret <= DSN_RET_HDRS; ret++) {
			m = make_msg("0123456789abcdef", 77, nnotify);
			m->flags = flags;
			m->ret = ret;
			FMT(m->envid, "env-%u-%u", flags, ret);
			for (i = 0; i < nnotify; i++) {
				m->rcpts[i].dlv.notify = notify[i];
				m->rcpts[i].dsn = (i + flags) %
				    ((RCPT_DSN_WARNED | RCPT_DSN_DONE) + 1);
				if (i % 2)
					FMT(m->rcpts[i].dlv.orcpt,
					    "rfc822;u%u@Example.org", i);
			}
			p = roundtrip(m);
			qmsg_free(p);
			qmsg_free(m);
		}
	}
}
END_TEST

START_TEST(test_qmsg_rcpts)
{
	struct qmsg	*m;
	struct dlv	 d;
	char		 user[32];
	uint32_t	 i;

	ck_assert_ptr_nonnull(m = qmsg_new());
	ck_assert_uint_eq(m->nrcpts, 0);
	for (i = 0; i < 1000; i++) {
		FMT(user, "u%u", i);
		fill_dlv(&d, DLV_MBOX, user);
		ck_assert_int_eq(qmsg_add_rcpt(m, &d), 0);
	}
	ck_assert_uint_eq(m->nrcpts, 1000);
	for (i = 0; i < 1000; i++) {
		FMT(user, "u%u", i);
		ck_assert_uint_eq(m->rcpts[i].index, i);
		ck_assert_int_eq(m->rcpts[i].state, RS_PENDING);
		ck_assert_uint_eq(m->rcpts[i].attempts, 0);
		ck_assert_str_eq(m->rcpts[i].dlv.user, user);
	}
	qmsg_free(m);
	qmsg_free(NULL);

	ck_assert_str_eq(rcpt_state_name(RS_PENDING), "pending");
	ck_assert_str_eq(rcpt_state_name(RS_INFLIGHT), "inflight");
	ck_assert_str_eq(rcpt_state_name(RS_DELIVERED), "delivered");
	ck_assert_str_eq(rcpt_state_name(RS_FAILED), "failed");
	ck_assert_str_eq(rcpt_state_name((enum rcpt_state)42), "unknown");
}
END_TEST

/* ---- envelope: parse errors ------------------------------------------------ */

static const char *const base_lines[] = {
	"version 1",					/* 1 */
	"msgid 0123456789abcdef",			/* 2 */
	"created 1700000000",				/* 3 */
	"size 10",					/* 4 */
	"sender a@b",					/* 5 */
	"helo h",					/* 6 */
	"client_addr 127.0.0.1",			/* 7 */
	"client_name localhost",			/* 8 */
	"auth_user ",					/* 9 */
	"proto ESMTP",					/* 10 */
	"flags 2",					/* 11 */
	"envid QQ%2B1",					/* 12 */
	"ret 1",					/* 13 */
	"rcpts 1",					/* 14 */
	"rcpt 0 pending 0 0 0 1 local bob /var/mail/bob bob@x bob@x  6 "
	    "rfc822;bob@x 1",				/* 15 */
	"end",						/* 16 */
};
#define NBASE	(sizeof(base_lines) / sizeof(base_lines[0]))

/* The base text with line `lineno` replaced (NULL: removed). */
static char *
text_with(size_t lineno, const char *repl)
{
	char	*buf;
	size_t	 i, cap = 64 * 1024, len = 0;

	ck_assert_ptr_nonnull(buf = malloc(cap));
	buf[0] = '\0';
	for (i = 1; i <= NBASE; i++) {
		const char *l = i == lineno ? repl : base_lines[i - 1];

		if (l == NULL)
			continue;
		len += snprintf(buf + len, cap - len, "%s\n", l);
		ck_assert_uint_lt(len, cap);
	}
	return buf;
}

static void
expect_error(const char *text, size_t len, int line, const char *what)
{
	struct qmsg	*m;
	char		 err[256], prefix[32];

	memset(err, 'X', sizeof(err));
	m = envelope_parse(text, len, err, sizeof(err));
	ck_assert_msg(m == NULL, "parsed, expected line %d: %s\n%s", line,
	    what, text);
	FMT(prefix, "line %d: ", line);
	ck_assert_msg(strncmp(err, prefix, strlen(prefix)) == 0,
	    "error \"%s\", expected \"%s%s\"", err, prefix, what);
	ck_assert_msg(strstr(err, what) != NULL,
	    "error \"%s\", expected \"%s%s\"", err, prefix, what);
}

struct bad_case {
	size_t		 lineno;	/* base line replaced */
	const char	*repl;		/* NULL: line removed */
	int		 errline;	/* reported line */
	const char	*what;		/* substring of the error */
};

/* The last three rcpt values: notify, orcpt and dsn, all empty or none. */
#define NO_DSN	" 0  0"
#define X10	"xxxxxxxxxx"
#define X100	X10 X10 X10 X10 X10 X10 X10 X10 X10 X10
/* The rcpt line up to notify, and after it. */
#define R_HEAD	"rcpt 0 pending 0 0 0 1 local bob /m bob@x bob@x  "
#define R_TAIL	" rfc822;bob@x 0"

static const struct bad_case bad_cases[] = {
	{ 1, "version 2", 1, "unknown version" },
	{ 1, "version 1 ", 1, "unknown version" },
	{ 1, "version 1\r", 1, "unknown version" },
	{ 1, "msgid 0123456789abcdef", 1, "unknown version" },
	{ 2, "msgid 0123456789abcde", 2, "bad msgid" },
	{ 2, "msgid 0123456789abcdef0", 2, "bad msgid" },
	{ 2, "msgid 0123456789abcdeg", 2, "bad msgid" },
	{ 2, "msgid ../../etc/passw", 2, "bad msgid" },
	{ 2, "msgid ", 2, "bad msgid" },
	{ 3, "created -1", 3, "bad created" },
	{ 3, "created 12x", 3, "bad created" },
	{ 3, "created +12", 3, "bad created" },
	{ 3, "created ", 3, "bad created" },
	{ 3, "created 9223372036854775808", 3, "bad created" },
	{ 4, "size 18446744073709551616", 4, "bad size" },
	{ 4, "size 0x10", 4, "bad size" },
	{ 5, "sendr a@b", 5, "unknown key" },
	{ 5, "Sender a@b", 5, "unknown key" },
	{ 5, "sender", 5, "no value" },
	{ 5, "", 5, "no value" },
	{ 5, "sender a b", 5, "unexpected space" },
	{ 5, "sender a\tb", 5, "control character" },
	{ 5, "sender a%zzb", 5, "bad escape" },
	{ 5, "sender a%4", 5, "bad escape" },
	{ 5, "sender a%00b", 5, "escaped NUL" },
	{ 6, "sender x@y", 6, "duplicate sender" },
	{ 6, NULL, 15, "missing helo" },
	{ 2, NULL, 15, "missing msgid" },
	{ 4, NULL, 15, "missing size" },
	{ 10, "proto ESMTPSAAAAAAAAAAAAAAAAAAAA", 10, "too long" },
	/* flags: MSG_F_* bits only. */
	{ 11, "flags 8", 11, "bad flags 8: unknown bits 0x8" },
	{ 11, "flags 15", 11, "bad flags 15: unknown bits 0x8" },
	{ 11, "flags 4294967295", 11, "unknown bits 0xfffffff8" },
	{ 11, "flags 4294967296", 11, "bad flags \"4294967296\"" },
	{ 11, "flags -1", 11, "bad flags" },
	{ 11, "flags 0x1", 11, "bad flags" },
	{ 11, "flags ", 11, "bad flags" },
	{ 11, "flags 1 2", 11, "unexpected space" },
	{ 11, NULL, 15, "missing flags" },
	{ 12, "flags 0", 12, "duplicate flags" },
	/* envid: escaped text of at most 100 bytes. */
	{ 12, "envid a%zz", 12, "envid: bad escape" },
	{ 12, "envid " X100 "x", 12, "envid: bad escape or too long" },
	{ 12, "envid " X10 X10 X10 "%2B%2B%2B%2B%2B%2B%2B%2B%2B%2B" X10 X10
	    X10 X10 X10 X10 "x", 12, "envid: bad escape or too long" },
	{ 12, "envid a%00", 12, "envid: escaped NUL" },
	{ 12, "envid a\x01", 12, "envid: unescaped control" },
	{ 12, "envid a b", 12, "unexpected space" },
	{ 12, NULL, 15, "missing envid" },
	{ 13, "envid x", 13, "duplicate envid" },
	/* ret: a DSN_RET_* value. */
	{ 13, "ret 3", 13, "bad ret \"3\"" },
	{ 13, "ret 4294967298", 13, "bad ret" },
	{ 13, "ret -1", 13, "bad ret" },
	{ 13, "ret FULL", 13, "bad ret" },
	{ 13, "ret ", 13, "bad ret" },
	{ 13, NULL, 15, "missing ret" },
	{ 14, "ret 0", 14, "duplicate ret" },
	{ 14, "rcpts 0", 14, "no recipients" },
	{ 14, "rcpts 100001", 14, "too many recipients" },
	{ 14, "rcpts 4294967296", 14, "bad rcpts" },
	{ 14, "rcpts 2", 16, "1 recipients, 2 declared" },
	{ 14, NULL, 14, "rcpt before rcpts" },
	{ 15, NULL, 15, "0 recipients, 1 declared" },
	{ 15, "rcpt 1 pending 0 0 0 1 local bob /m bob@x bob@x " NO_DSN, 15,
	    "recipient index 1" },
	{ 15, "rcpt x pending 0 0 0 1 local bob /m bob@x bob@x " NO_DSN, 15,
	    "bad recipient index" },
	{ 15, "rcpt 0 inflight 0 0 0 1 local bob /m bob@x bob@x " NO_DSN, 15,
	    "bad recipient state" },
	{ 15, "rcpt 0 sent 0 0 0 1 local bob /m bob@x bob@x " NO_DSN, 15,
	    "bad recipient state" },
	{ 15, "rcpt 0 pending 4294967296 0 0 1 local bob /m bob@x bob@x "
	    NO_DSN, 15, "bad attempts" },
	{ 15, "rcpt 0 pending 0 -5 0 1 local bob /m bob@x bob@x " NO_DSN, 15,
	    "bad next_try" },
	{ 15, "rcpt 0 pending 0 0 z 1 local bob /m bob@x bob@x " NO_DSN, 15,
	    "bad last_try" },
	{ 15, "rcpt 0 pending 0 0 0 99 local bob /m bob@x bob@x " NO_DSN, 15,
	    "bad delivery kind" },
	{ 15, "rcpt 0 pending 0 0 0 0 local bob /m bob@x bob@x " NO_DSN, 15,
	    "bad delivery kind" },
	{ 15, "rcpt 0 pending 0 0 0 4294967297 local bob /m bob@x bob@x "
	    NO_DSN, 15, "bad delivery kind" },
	/* The twelve values of the recipient line before DSN. */
	{ 15, "rcpt 0 pending 0 0 0 1 local bob /m bob@x bob@x ", 15,
	    "12 fields, 15 expected" },
	{ 15, "rcpt 0 pending 0 0 0 1 local bob /m bob@x bob@x  0 ", 15,
	    "14 fields, 15 expected" },
	{ 15, "rcpt 0 pending 0 0 0 1 local bob /m bob@x bob@x " NO_DSN " ",
	    15, "more than 15 fields" },
	{ 15, "rcpt 0 pending 0 0 0 1 local bob /m  bob@x " NO_DSN, 15,
	    "empty recipient address" },
	{ 15, "rcpt 0 pending 0 0 0 1 local bob /m bob@x bob@x a%zz" NO_DSN,
	    15, "last_error: bad escape" },
	{ 15, "rcpt ", 15, "1 fields" },
	/* notify: DSN_NOTIFY_* bits, NEVER alone. */
	{ 15, R_HEAD "16" R_TAIL, 15, "bad notify 16: unknown bits 0x10" },
	{ 15, R_HEAD "31" R_TAIL, 15, "bad notify 31: unknown bits 0x10" },
	{ 15, R_HEAD "3" R_TAIL, 15, "bad notify 3: NEVER with other" },
	{ 15, R_HEAD "9" R_TAIL, 15, "bad notify 9: NEVER with other" },
	{ 15, R_HEAD "15" R_TAIL, 15, "bad notify 15: NEVER with other" },
	{ 15, R_HEAD "x" R_TAIL, 15, "bad notify \"x\"" },
	{ 15, R_HEAD "-2" R_TAIL, 15, "bad notify" },
	{ 15, R_HEAD "4294967298" R_TAIL, 15, "bad notify" },
	{ 15, R_HEAD "" R_TAIL, 15, "bad notify" },
	/* orcpt: escaped text shorter than ORCPT_MAX. */
	{ 15, R_HEAD "0 rfc822;a%zz 0", 15, "orcpt: bad escape" },
	{ 15, R_HEAD "0 rfc822;a%00b 0", 15, "orcpt: escaped NUL" },
	{ 15, R_HEAD "0 rfc822;a\tb 0", 15, "orcpt: unescaped control" },
	{ 15, R_HEAD "0 " X100 X100 X100 X100 X100 X100 " 0", 15,
	    "orcpt: bad escape or too long" },
	/* dsn: RCPT_DSN_* bits. */
	{ 15, R_HEAD "0 rfc822;bob@x 4", 15, "bad dsn 4: unknown bits 0x4" },
	{ 15, R_HEAD "0 rfc822;bob@x 7", 15, "bad dsn 7: unknown bits 0x4" },
	{ 15, R_HEAD "0 rfc822;bob@x -1", 15, "bad dsn \"-1\"" },
	{ 15, R_HEAD "0 rfc822;bob@x DONE", 15, "bad dsn" },
	{ 15, R_HEAD "0 rfc822;bob@x ", 15, "bad dsn" },
	{ 15, "rcpt 0 pending 0 0 0 1 local bob /m bob@x bob@x " NO_DSN "\n"
	    "rcpt 1 pending 0 0 0 1 local bob /m bob@x bob@x " NO_DSN, 16,
	    "more recipients than the 1 declared" },
	{ 16, "end\nmore", 17, "data after end" },
	{ 16, "end\n", 17, "data after end" },
	{ 16, NULL, 16, "truncated: no end line" },
	{ 16, "end ", 16, "unknown key" },
};

START_TEST(test_parse_errors)
{
	const struct bad_case	*c = &bad_cases[_i];
	char			*text;

	text = text_with(c->lineno, c->repl);
	expect_error(text, strlen(text), c->errline, c->what);
	free(text);
}
END_TEST

START_TEST(test_parse_base_ok)
{
	struct qmsg	*m;
	char		*text, err[256];

	/* The base text the error cases mutate is itself valid. */
	text = text_with(0, NULL);
	m = envelope_parse(text, strlen(text), err, sizeof(err));
	ck_assert_msg(m != NULL, "%s", err);
	ck_assert_str_eq(m->msgid, "0123456789abcdef");
	ck_assert_uint_eq(m->size, 10);
	ck_assert_str_eq(m->auth_user, "");
	ck_assert_uint_eq(m->flags, MSG_F_DSN);
	ck_assert_str_eq(m->envid, "QQ+1");
	ck_assert_uint_eq(m->ret, DSN_RET_FULL);
	ck_assert_uint_eq(m->nrcpts, 1);
	ck_assert_uint_eq(m->rcpts[0].dlv.kind, DLV_MBOX);
	ck_assert_str_eq(m->rcpts[0].dlv.rcpt, "bob@x");
	ck_assert_str_eq(m->rcpts[0].last_error, "");
	ck_assert_uint_eq(m->rcpts[0].dlv.notify,
	    DSN_NOTIFY_SUCCESS | DSN_NOTIFY_FAILURE);
	ck_assert_str_eq(m->rcpts[0].dlv.orcpt, "rfc822;bob@x");
	ck_assert_uint_eq(m->rcpts[0].dsn, RCPT_DSN_WARNED);
	qmsg_free(m);
	free(text);
}
END_TEST

START_TEST(test_parse_errors_raw)
{
	char	*text, *big;
	size_t	 len;

	expect_error("", 0, 1, "truncated: no end line");
	expect_error("version 1", 9, 1, "truncated: no end of line");
	expect_error("version 1\n", 10, 2, "truncated: no end line");

	/* A NUL byte inside a value. */
	text = text_with(0, NULL);
	len = strlen(text);
	text[strlen("version 1\nmsgid 0123456789abcdef\ncreated 17")] = '\0';
	expect_error(text, len, 3, "NUL byte");
	free(text);

	/* The last line without its newline. */
	text = text_with(0, NULL);
	len = strlen(text);
	expect_error(text, len - 1, 16, "truncated: no end of line");
	free(text);

	/* An overlong line, and a file beyond ENVELOPE_MAX. */
	ck_assert_ptr_nonnull(big = malloc(ENVELOPE_MAX + 2));
	memset(big, 'a', 20000);
	memcpy(big, "sender ", 7);
	big[20000] = '\0';
	text = text_with(5, big);
	expect_error(text, strlen(text), 5, "line too long");
	free(text);
	memset(big, '\n', ENVELOPE_MAX + 1);
	expect_error(big, ENVELOPE_MAX + 1, 0, "larger than");
	free(big);
}
END_TEST

/* A file cut anywhere must not parse as a message with fewer recipients. */
START_TEST(test_parse_truncated)
{
	struct qmsg	*m, *p;
	char		*buf, err[256];
	size_t		 len, cut;

	m = make_msg("0123456789abcdef", 100, 5);
	ck_assert_ptr_nonnull(buf = envelope_serialize(m, &len));
	for (cut = 0; cut < len; cut++) {
		p = envelope_parse(buf, cut, err, sizeof(err));
		ck_assert_msg(p == NULL, "parsed when cut at %zu", cut);
		ck_assert_msg(strstr(err, "truncated") != NULL,
		    "cut at %zu: %s", cut, err);
	}
	ck_assert_ptr_nonnull(p = envelope_parse(buf, len, err, sizeof(err)));
	qmsg_free(p);
	free(buf);
	qmsg_free(m);
}
END_TEST

/* Random damage: never a crash (ASan/UBSan watch), always a verdict. */
START_TEST(test_parse_garbage)
{
	struct qmsg	*m, *p;
	char		*good, *buf, err[256];
	size_t		 len, i;
	int		 round, k, failed = 0;

	srandom(12345);
	m = make_msg("0123456789abcdef", 100, 3);
	ck_assert_ptr_nonnull(good = envelope_serialize(m, &len));
	ck_assert_ptr_nonnull(buf = malloc(len));
	for (round = 0; round < 5000; round++) {
		memcpy(buf, good, len);
		for (k = 0; k < 1 + round % 4; k++)
			buf[random() % len] = round % 3 ? random() % 256 :
			    " \n%0-9a"[random() % 7];
		err[0] = '\0';
		p = envelope_parse(buf, len, err, sizeof(err));
		if (p == NULL) {
			ck_assert(strncmp(err, "line ", 5) == 0);
			failed++;
		}
		qmsg_free(p);
	}
	ck_assert_int_gt(failed, 2500);
	for (round = 0; round < 2000; round++) {
		size_t n = random() % len;

		for (i = 0; i < n; i++)
			buf[i] = random() % 256;
		p = envelope_parse(buf, n, err, sizeof(err));
		ck_assert_ptr_null(p);
	}
	free(buf);
	free(good);
	qmsg_free(m);
}
END_TEST

/* ---- fs backend: fixture --------------------------------------------------- */

static char	 root[64];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
fs_setup(void)
{
	strlcpy(root, "/tmp/check_envelope.XXXXXX", sizeof(root));
	ck_assert_ptr_nonnull(mkdtemp(root));
	ck_assert_int_eq(FS->init(root), 0);
}

static void
fs_teardown(void)
{
	(void)nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
path_exists(const char *rel)
{
	char		 p[256];
	struct stat	 st;

	FMT(p, "%s/%s", root, rel);
	return lstat(p, &st) == 0;
}

static mode_t
path_mode(const char *rel)
{
	char		 p[256];
	struct stat	 st;

	FMT(p, "%s/%s", root, rel);
	ck_assert_int_eq(lstat(p, &st), 0);
	return st.st_mode & 07777;
}

static int
dir_count(const char *rel)
{
	char		 p[256];
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	FMT(p, "%s/%s", root, rel);
	ck_assert_ptr_nonnull(d = opendir(p));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

static void
rm_file(const char *rel)
{
	char	 p[256];

	FMT(p, "%s/%s", root, rel);
	ck_assert_int_eq(unlink(p), 0);
}

static void
put_file(const char *rel, const char *data, size_t len)
{
	char	 p[256];
	int	 fd;

	FMT(p, "%s/%s", root, rel);
	ck_assert_int_ge(fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static char *
get_file(const char *rel, size_t *lenp)
{
	char		 p[256], *buf;
	struct stat	 st;
	int		 fd;

	FMT(p, "%s/%s", root, rel);
	ck_assert_int_ge(fd = open(p, O_RDONLY), 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_ptr_nonnull(buf = malloc(st.st_size + 1));
	ck_assert_int_eq(read(fd, buf, st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	*lenp = st.st_size;
	return buf;
}

/* Receives a message through the backend: create, write, commit_stage. */
static struct qmsg *
receive(const char *body, int nrcpts)
{
	char		 id[MSGID_SIZE];
	struct qmsg	*m;
	size_t		 len = strlen(body);
	int		 fd;

	fd = FS->message_create(id);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, body, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
	m = make_msg(id, len, nrcpts);
	ck_assert_int_eq(FS->commit_stage(m), 0);
	return m;
}

struct loaded {
	struct qmsg	*v[1024];
	int		 n;
};

static void
collect(struct qmsg *m, void *arg)
{
	struct loaded	*l = arg;

	ck_assert_int_lt(l->n, 1024);
	l->v[l->n++] = m;
}

static struct qmsg *
loaded_find(struct loaded *l, const char *msgid)
{
	int	 i;

	for (i = 0; i < l->n; i++)
		if (strcmp(l->v[i]->msgid, msgid) == 0)
			return l->v[i];
	return NULL;
}

static void
loaded_free(struct loaded *l)
{
	while (l->n > 0)
		qmsg_free(l->v[--l->n]);
}

/* Restarts the backend on the same root, as the queue does after a crash. */
static int
reload(struct loaded *l)
{
	ck_assert_int_eq(FS->init(root), 0);
	memset(l, 0, sizeof(*l));
	return FS->load(collect, l);
}

/* Captures stderr (the log, in the foreground) into root/log. */
static void
capture_log_start(int *saved)
{
	char	 p[256];
	int	 fd;

	fflush(stderr);
	FMT(p, "%s/log", root);
	ck_assert_int_ge(fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600), 0);
	ck_assert_int_ge(*saved = dup(2), 0);
	ck_assert_int_eq(dup2(fd, 2), 2);
	close(fd);
}

static char *
capture_log_end(int saved)
{
	size_t	 len;

	fflush(stderr);
	ck_assert_int_eq(dup2(saved, 2), 2);
	close(saved);
	return get_file("log", &len);
}

/* ---- fs backend: tests ----------------------------------------------------- */

START_TEST(test_fs_uninitialized)
{
	char	 id[MSGID_SIZE];

	/* Each Check test runs in a fresh fork: no init happened here. */
	ck_assert_int_eq(FS->message_create(id), -1);
	ck_assert_int_eq(FS->sync(), -1);
	ck_assert_int_eq(FS->message_fd("0123456789abcdef"), -1);
}
END_TEST

START_TEST(test_fs_init)
{
	char	 p[256];

	/* Missing directories are created, 0700. */
	ck_assert_str_eq(FS->name, "fs");
	ck_assert(path_exists("incoming") && path_exists("queue") &&
	    path_exists("corrupt"));
	ck_assert_uint_eq(path_mode("queue"), 0700);
	ck_assert_uint_eq(path_mode("incoming"), 0700);
	ck_assert_uint_eq(path_mode("corrupt"), 0700);

	/* Existing ones are kept with their content. */
	put_file("queue/keep", "x", 1);
	ck_assert_int_eq(FS->init(root), 0);
	ck_assert(path_exists("queue/keep"));

	/* A file where a directory should be, or no spool at all: refused. */
	FMT(p, "%s/corrupt", root);
	ck_assert_int_eq(rmdir(p), 0);
	put_file("corrupt", "x", 1);
	ck_assert_int_eq(FS->init(root), -1);
	ck_assert_int_eq(FS->message_create(p), -1);	/* not initialized */
	ck_assert_int_eq(FS->init("/nonexistent/spool/dir"), -1);
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(FS->init(root), 0);
}
END_TEST

START_TEST(test_fs_create)
{
	char	 ids[50][MSGID_SIZE], rel[1024];
	int	 i, j, fd;

	for (i = 0; i < 50; i++) {
		ck_assert_int_ge(fd = FS->message_create(ids[i]), 0);
		ck_assert(msgid_is_valid(ids[i]));
		/* Write-only, close-on-exec. */
		ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_WRONLY);
		ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		close(fd);
		FMT(rel, "incoming/%s", ids[i]);
		ck_assert(path_exists(rel));
		ck_assert_uint_eq(path_mode(rel), 0600);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(ids[i], ids[j]);
	}
	ck_assert_int_eq(dir_count("incoming"), 50);
	ck_assert_int_eq(FS->message_abort(ids[0]), 0);
	ck_assert_int_eq(dir_count("incoming"), 49);
	ck_assert_int_eq(FS->message_abort(ids[0]), -1);
}
END_TEST

START_TEST(test_fs_commit)
{
	struct qmsg	*m, *p;
	char		 rel[64], *buf, data[64], err[256];
	size_t		 len;
	ssize_t		 n;
	int		 fd;

	m = receive("Subject: hi\r\n\r\nhello\r\n", 2);
	/* Staged: already in queue/, nothing left in incoming/. */
	ck_assert_int_eq(FS->sync(), 0);
	ck_assert_int_eq(dir_count("incoming"), 0);
	ck_assert_int_eq(dir_count("queue"), 2);
	FMT(rel, "queue/%s", m->msgid);
	ck_assert_uint_eq(path_mode(rel), 0600);
	FMT(rel, "queue/%s.env", m->msgid);
	ck_assert_uint_eq(path_mode(rel), 0600);

	/* The envelope file is the serialized envelope. */
	buf = get_file(rel, &len);
	ck_assert_ptr_nonnull(p = envelope_parse(buf, len, err, sizeof(err)));
	assert_msg_eq(m, p);
	qmsg_free(p);
	free(buf);

	/* Read back through a read-only fd. */
	ck_assert_int_ge(fd = FS->message_fd(m->msgid), 0);
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	n = read(fd, data, sizeof(data) - 1);
	ck_assert_int_eq(n, (ssize_t)m->size);
	data[n] = '\0';
	ck_assert_str_eq(data, "Subject: hi\r\n\r\nhello\r\n");
	ck_assert_int_eq(write(fd, "x", 1), -1);
	close(fd);

	/* Nothing staged: a no-op. */
	ck_assert_int_eq(FS->sync(), 0);
	qmsg_free(m);
}
END_TEST

START_TEST(test_fs_commit_size_mismatch)
{
	struct qmsg	*m;
	char		 id[MSGID_SIZE], rel[64];
	int		 fd;

	ck_assert_int_ge(fd = FS->message_create(id), 0);
	ck_assert_int_eq(write(fd, "12345", 5), 5);
	close(fd);
	m = make_msg(id, 6, 1);
	ck_assert_int_eq(FS->commit_stage(m), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* Nothing committed, the reception is still there to abort. */
	ck_assert_int_eq(dir_count("queue"), 0);
	FMT(rel, "incoming/%s", id);
	ck_assert(path_exists(rel));
	ck_assert_int_eq(dir_count("incoming"), 1);
	ck_assert_int_eq(FS->message_abort(id), 0);
	ck_assert_int_eq(dir_count("incoming"), 0);

	/* No incoming message at all. */
	ck_assert_int_eq(FS->commit_stage(m), -1);
	ck_assert_int_eq(dir_count("queue"), 0);
	qmsg_free(m);
}
END_TEST

/* A msgid clash with a committed message must not replace it. */
START_TEST(test_fs_commit_no_replace)
{
	struct qmsg	*m, *m2;
	char		 rel[64], *buf;
	size_t		 len;

	m = receive("first\n", 1);
	ck_assert_int_eq(FS->sync(), 0);
	FMT(rel, "incoming/%s", m->msgid);
	put_file(rel, "second!\n", 8);
	m2 = make_msg(m->msgid, 8, 1);
	ck_assert_int_eq(FS->commit_stage(m2), -1);
	ck_assert_int_eq(errno, EEXIST);
	FMT(rel, "queue/%s", m->msgid);
	buf = get_file(rel, &len);
	ck_assert_str_eq(buf, "first\n");
	free(buf);
	qmsg_free(m2);
	qmsg_free(m);
}
END_TEST

START_TEST(test_fs_bad_msgid)
{
	static const char *const bad[] = {
		"", "../../etc/passwd", "0123456789abcdef0", "0123456789abcde",
		"0123456789abcde/", "0123456789ABCDEG",
	};
	struct qmsg	*m;
	size_t		 i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		errno = 0;
		ck_assert_int_eq(FS->message_abort(bad[i]), -1);
		ck_assert_int_eq(errno, EINVAL);
		ck_assert_int_eq(FS->message_delete(bad[i], 1), -1);
		ck_assert_int_eq(FS->message_fd(bad[i]), -1);
		ck_assert_int_eq(errno, EINVAL);
	}
	m = make_msg("0123456789abcdef", 0, 1);
	strlcpy(m->msgid, "../queue/x", sizeof(m->msgid));
	ck_assert_int_eq(FS->commit_stage(m), -1);
	ck_assert_int_eq(FS->envelope_update(m), -1);
	ck_assert_int_eq(FS->message_abort(NULL), -1);
	qmsg_free(m);
}
END_TEST

START_TEST(test_fs_envelope_update)
{
	struct qmsg	*m, *p, *ghost;
	struct loaded	 l;

	m = receive("body\n", 2);
	ck_assert_int_eq(FS->sync(), 0);
	m->rcpts[0].state = RS_DELIVERED;
	m->rcpts[1].state = RS_PENDING;
	m->rcpts[1].attempts = 3;
	m->rcpts[1].last_try = 1700000100;
	m->rcpts[1].next_try = 1700000900;
	strlcpy(m->rcpts[1].last_error, "451 4.3.0 try later",
	    sizeof(m->rcpts[1].last_error));
	/* DSN progress is what an update must not lose. */
	m->flags = MSG_F_HELD;
	m->rcpts[0].dsn = RCPT_DSN_DONE;
	m->rcpts[1].dsn = RCPT_DSN_WARNED;
	ck_assert_int_eq(FS->envelope_update(m), 0);
	ck_assert_int_eq(dir_count("queue"), 2);	/* no .tmp left */

	ck_assert_int_eq(reload(&l), 1);
	ck_assert_ptr_nonnull(p = loaded_find(&l, m->msgid));
	assert_msg_eq(m, p);
	ck_assert_str_eq(p->rcpts[1].last_error, "451 4.3.0 try later");
	ck_assert_uint_eq(p->flags, MSG_F_HELD);
	ck_assert_uint_eq(p->rcpts[0].dsn, RCPT_DSN_DONE);
	ck_assert_uint_eq(p->rcpts[1].dsn, RCPT_DSN_WARNED);
	loaded_free(&l);

	/* No envelope springs up for a message that is not committed. */
	ghost = make_msg("00000000deadbeef", 5, 1);
	ck_assert_int_eq(FS->envelope_update(ghost), -1);
	ck_assert(!path_exists("queue/00000000deadbeef.env"));
	ck_assert(!path_exists("queue/00000000deadbeef.env.tmp"));
	qmsg_free(ghost);
	qmsg_free(m);
}
END_TEST

START_TEST(test_fs_delete)
{
	struct qmsg	*a, *b;
	struct loaded	 l;

	a = receive("aaa\n", 1);
	b = receive("bbbb\n", 1);
	ck_assert_int_eq(FS->sync(), 0);
	ck_assert_int_eq(dir_count("queue"), 4);
	ck_assert_int_eq(FS->message_delete(a->msgid, 1), 0);
	ck_assert_int_eq(dir_count("queue"), 2);
	ck_assert_int_eq(FS->message_fd(a->msgid), -1);
	ck_assert_int_eq(FS->message_delete(a->msgid, 1), -1);
	ck_assert_int_eq(errno, ENOENT);

	ck_assert_int_eq(reload(&l), 1);
	ck_assert_str_eq(l.v[0]->msgid, b->msgid);
	loaded_free(&l);
	ck_assert_int_eq(dir_count("corrupt"), 0);
	qmsg_free(a);
	qmsg_free(b);
}
END_TEST

/* Delivery intent markers (ID.mda.N) live and die with their message. */
START_TEST(test_fs_markers)
{
	struct qmsg	*a;
	struct loaded	 l;
	char		 rel[64], stale[64];

	a = receive("aaa\n", 2);
	ck_assert_int_eq(FS->sync(), 0);
	snprintf(rel, sizeof(rel), "queue/%s.mda.1", a->msgid);
	put_file(rel, "mbox 1 2 3 4\n", 13);
	snprintf(stale, sizeof(stale), "queue/%s.mda.0", "00000000cafebabe");
	put_file(stale, "maildir\n", 8);

	/* Load keeps the marker of a queued message, drops an orphan. */
	ck_assert_int_eq(reload(&l), 1);
	loaded_free(&l);
	ck_assert(path_exists(rel));
	ck_assert(!path_exists(stale));
	ck_assert_int_eq(dir_count("corrupt"), 0);

	/* Delete takes the markers along. */
	ck_assert_int_eq(FS->message_delete(a->msgid, a->nrcpts), 0);
	ck_assert(!path_exists(rel));
	ck_assert_int_eq(dir_count("queue"), 0);
	qmsg_free(a);
}
END_TEST

/*
 * The spool after a crash, one message in every state it can be left in.
 * Only committed, consistent messages load; nothing is deleted that might
 * have been acknowledged.
 */
START_TEST(test_fs_load_after_crash)
{
	struct qmsg	*good, *tmpd, *nomsg, *sized, *garb, *other, *p, *x;
	struct loaded	 l;
	char		 rel[64], rel2[64], *buf, *log;
	size_t		 len;
	int		 fd, saved;
	char		 id[MSGID_SIZE];

	good = receive("good message\n", 2);
	tmpd = receive("updated message\n", 1);
	nomsg = receive("will lose its message\n", 1);
	sized = receive("will change size\n", 1);
	garb = receive("will get a bad envelope\n", 1);
	other = receive("envelope of someone else\n", 1);
	ck_assert_int_eq(FS->sync(), 0);

	/* Incoming leftovers: a reception cut short, a commit cut short. */
	ck_assert_int_ge(fd = FS->message_create(id), 0);
	ck_assert_int_eq(write(fd, "partial", 7), 7);
	close(fd);
	FMT(rel, "incoming/%s.env", id);
	put_file(rel, "version 1\n", 10);
	put_file("incoming/1111111111111111.env", "version 1\n", 10);

	/* Message renamed into queue/, envelope not: never committed. */
	put_file("queue/2222222222222222", "orphan\n", 7);
	/* An envelope update cut short: the tmp goes, the envelope stays. */
	FMT(rel, "queue/%s.env.tmp", tmpd->msgid);
	put_file(rel, "version 1\nmsgid", 15);
	/* Envelope without message. */
	FMT(rel, "queue/%s", nomsg->msgid);
	rm_file(rel);
	/* Size mismatch. */
	FMT(rel, "queue/%s", sized->msgid);
	put_file(rel, "x", 1);
	/* Garbage envelope. */
	FMT(rel, "queue/%s.env", garb->msgid);
	put_file(rel, "version 1\nmsgid \x01\x02\n", 19);
	/* An envelope naming another msgid than its file name. */
	FMT(rel, "queue/%s.env", good->msgid);
	FMT(rel2, "queue/%s.env", other->msgid);
	buf = get_file(rel, &len);
	put_file(rel2, buf, len);
	free(buf);
	/* Something that is not ours at all. */
	put_file("queue/README", "hello\n", 6);

	capture_log_start(&saved);
	ck_assert_int_eq(reload(&l), 2);
	log = capture_log_end(saved);

	ck_assert_ptr_nonnull(p = loaded_find(&l, good->msgid));
	assert_msg_eq(good, p);
	ck_assert_ptr_nonnull(p = loaded_find(&l, tmpd->msgid));
	assert_msg_eq(tmpd, p);
	loaded_free(&l);

	/* incoming/ is empty, queue/ holds exactly the two good messages. */
	ck_assert_int_eq(dir_count("incoming"), 0);
	ck_assert_int_eq(dir_count("queue"), 4);
	/* corrupt/: orphan, nomsg.env, sized + env, garb + env, other + env,
	 * README. */
	ck_assert_int_eq(dir_count("corrupt"), 9);
	ck_assert(path_exists("corrupt/2222222222222222"));
	ck_assert(path_exists("corrupt/README"));
	for (x = nomsg; x != NULL; x = x == nomsg ? sized : x == sized ? garb :
	    x == garb ? other : NULL) {
		FMT(rel, "corrupt/%s.env", x->msgid);
		ck_assert_msg(path_exists(rel), "%s", rel);
		FMT(rel, "corrupt/%s", x->msgid);
		ck_assert_msg(path_exists(rel) == (x != nomsg), "%s", rel);
		/* One warning naming the file and why. */
		FMT(rel, "queue/%s.env: moved to corrupt/: ",
		    x->msgid);
		ck_assert_msg(strstr(log, rel) != NULL, "%s not in log:\n%s",
		    rel, log);
	}
	ck_assert_ptr_nonnull(strstr(log, "message file missing"));
	ck_assert_ptr_nonnull(strstr(log, "message has 1 bytes, envelope says 17"));
	ck_assert_ptr_nonnull(strstr(log, "line 2: "));
	ck_assert_ptr_nonnull(strstr(log, "envelope of msgid"));
	ck_assert_ptr_nonnull(strstr(log, "queue/2222222222222222: moved to "
	    "corrupt/: message without envelope"));
	ck_assert_ptr_nonnull(strstr(log, "queue/README: moved to corrupt/: "
	    "unknown file"));
	FMT(rel, "incoming/%s: removed", id);
	ck_assert_ptr_nonnull(strstr(log, rel));
	ck_assert_ptr_nonnull(strstr(log, "incoming/1111111111111111.env: "
	    "removed"));
	FMT(rel, "queue/%s.env.tmp: removed", tmpd->msgid);
	ck_assert_ptr_nonnull(strstr(log, rel));
	free(log);

	/* A second start finds a clean spool and changes nothing. */
	ck_assert_int_eq(reload(&l), 2);
	loaded_free(&l);
	ck_assert_int_eq(dir_count("corrupt"), 9);

	qmsg_free(good);
	qmsg_free(tmpd);
	qmsg_free(nomsg);
	qmsg_free(sized);
	qmsg_free(garb);
	qmsg_free(other);
}
END_TEST

/* corrupt/ keeps everything: a second file of the same name gets a suffix. */
START_TEST(test_fs_corrupt_never_replaced)
{
	struct loaded	 l;
	char		*buf;
	size_t		 len;

	put_file("queue/3333333333333333", "first\n", 6);
	ck_assert_int_eq(reload(&l), 0);
	put_file("queue/3333333333333333", "second\n", 7);
	ck_assert_int_eq(reload(&l), 0);
	put_file("queue/3333333333333333", "third\n", 6);
	ck_assert_int_eq(reload(&l), 0);
	ck_assert_int_eq(dir_count("corrupt"), 3);
	buf = get_file("corrupt/3333333333333333", &len);
	ck_assert_str_eq(buf, "first\n");
	free(buf);
	buf = get_file("corrupt/3333333333333333.1", &len);
	ck_assert_str_eq(buf, "second\n");
	free(buf);
	buf = get_file("corrupt/3333333333333333.2", &len);
	ck_assert_str_eq(buf, "third\n");
	free(buf);
}
END_TEST

/* Oversized or non-file envelopes are moved aside, not read. */
START_TEST(test_fs_load_odd_files)
{
	struct loaded	 l;
	char		 p[256], *big;

	ck_assert_ptr_nonnull(big = calloc(1, ENVELOPE_MAX + 1));
	put_file("queue/4444444444444444", "m", 1);
	put_file("queue/4444444444444444.env", big, ENVELOPE_MAX + 1);
	free(big);
	FMT(p, "%s/queue/5555555555555555.env", root);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	FMT(p, "%s/incoming/subdir", root);
	ck_assert_int_eq(mkdir(p, 0700), 0);

	ck_assert_int_eq(reload(&l), 0);
	ck_assert_int_eq(dir_count("queue"), 0);
	ck_assert(path_exists("corrupt/4444444444444444"));
	ck_assert(path_exists("corrupt/4444444444444444.env"));
	ck_assert(path_exists("corrupt/5555555555555555.env"));
	/* Not a file: not ours to remove. */
	ck_assert(path_exists("incoming/subdir"));
}
END_TEST

static void
many_commits(int n)
{
	struct qmsg	*m, **all;
	struct loaded	 l;
	char		 body[64];
	int		 i, j;

	ck_assert_ptr_nonnull(all = calloc(n, sizeof(*all)));
	for (i = 0; i < n; i++) {
		FMT(body, "message number %d\n", i);
		all[i] = receive(body, 1 + i % 3);
	}
	ck_assert_int_eq(FS->sync(), 0);
	ck_assert_int_eq(dir_count("queue"), 2 * n);
	ck_assert_int_eq(dir_count("incoming"), 0);

	ck_assert_int_eq(reload(&l), n);
	for (i = 0; i < n; i++) {
		m = loaded_find(&l, all[i]->msgid);
		ck_assert_ptr_nonnull(m);
		assert_msg_eq(all[i], m);
		for (j = 0; j < i; j++)
			ck_assert_str_ne(all[i]->msgid, all[j]->msgid);
	}
	loaded_free(&l);
	for (i = 0; i < n; i++)
		qmsg_free(all[i]);
	free(all);
}

START_TEST(test_fs_many_one_sync)
{
	many_commits(500);
}
END_TEST

START_TEST(test_fs_many_fsync_fallback)
{
	struct qmsg	*m;

	/* The path taken where syncfs(2) is missing. */
	queue_fs_test_nosyncfs(1);
	many_commits(200);
	/* A staged message deleted before the sync is not an error. */
	m = receive("short-lived\n", 1);
	ck_assert_int_eq(FS->message_delete(m->msgid, m->nrcpts), 0);
	ck_assert_int_eq(FS->sync(), 0);
	queue_fs_test_nosyncfs(0);
	qmsg_free(m);
}
END_TEST

/* ---- suite ----------------------------------------------------------------- */

static Suite *
envelope_suite(void)
{
	Suite	*s = suite_create("envelope");
	TCase	*tc;

	tc = tcase_create("file");
	tcase_add_test(tc, test_roundtrip_basic);
	tcase_add_test(tc, test_roundtrip_awkward);
	tcase_add_test(tc, test_serialize_format);
	tcase_add_test(tc, test_roundtrip_dsn_values);
	tcase_add_test(tc, test_qmsg_rcpts);
	tcase_add_test(tc, test_parse_base_ok);
	tcase_add_loop_test(tc, test_parse_errors, 0,
	    sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_test(tc, test_parse_errors_raw);
	tcase_add_test(tc, test_parse_truncated);
	tcase_add_test(tc, test_parse_garbage);
	suite_add_tcase(s, tc);

	tc = tcase_create("fs-uninitialized");
	tcase_add_test(tc, test_fs_uninitialized);
	suite_add_tcase(s, tc);

	tc = tcase_create("fs");
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, fs_setup, fs_teardown);
	tcase_add_test(tc, test_fs_init);
	tcase_add_test(tc, test_fs_create);
	tcase_add_test(tc, test_fs_commit);
	tcase_add_test(tc, test_fs_commit_size_mismatch);
	tcase_add_test(tc, test_fs_commit_no_replace);
	tcase_add_test(tc, test_fs_bad_msgid);
	tcase_add_test(tc, test_fs_envelope_update);
	tcase_add_test(tc, test_fs_delete);
	tcase_add_test(tc, test_fs_markers);
	tcase_add_test(tc, test_fs_load_after_crash);
	tcase_add_test(tc, test_fs_corrupt_never_replaced);
	tcase_add_test(tc, test_fs_load_odd_files);
	tcase_add_test(tc, test_fs_many_one_sync);
	tcase_add_test(tc, test_fs_many_fsync_fallback);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(envelope_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
