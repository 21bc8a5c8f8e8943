#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_data.h"

/*
 * The message-byte state machine in its four modes.  check_smtp_parse.c
 * covers DM_DATA in depth; here every mode is held to the same properties:
 * any way of cutting the input gives the same result, the end of DATA is
 * only CRLF.CRLF, normalizing leaves no bare CR or LF, BDAT is byte-exact.
 */

#define IN_MAX	4096

/* ck_assert records every check through a pipe: too slow for the loops. */
#define REQUIRE(cond, ...)	do {					\
	if (!(cond))							\
		ck_abort_msg(__VA_ARGS__);				\
} while (0)

static const enum data_mode all_modes[] = {
	DM_DATA, DM_DATA_NORMALIZE, DM_RAW, DM_RAW_NORMALIZE
};
#define NMODES	(sizeof(all_modes) / sizeof(all_modes[0]))

struct result {
	char		out[2 * IN_MAX + 4];
	size_t		outlen;
	size_t		consumed;
	enum data_state	state;
	uint64_t	size;
	int		bare_lf;
	int		bare_cr;
};

static int
is_raw_mode(enum data_mode m)
{
	return m == DM_RAW || m == DM_RAW_NORMALIZE;
}

static int
is_norm_mode(enum data_mode m)
{
	return m == DM_DATA_NORMALIZE || m == DM_RAW_NORMALIZE;
}

/*
 * Feeds in[0..len) cut at the given points, the way a socket (or a series
 * of BDAT chunks) would, then, in the raw modes, finishes: the whole
 * input is one message.
 */
static void
feed_cuts(enum data_mode mode, const char *in, size_t len,
    const size_t *cuts, size_t ncuts, struct result *r)
{
	static char		buf[2 * IN_MAX + 2];
	struct data_parser	dp;
	size_t			from = 0, to, n, o, k;

	REQUIRE(len <= IN_MAX, "input too long");
	r->outlen = r->consumed = 0;
	data_parser_init(&dp, mode);
	for (k = 0; k <= ncuts; k++) {
		to = k < ncuts ? cuts[k] : len;
		REQUIRE(to >= from && to <= len, "bad cut");
		o = (size_t)-1;
		n = data_parser_feed(&dp, in + from, to - from, buf, &o);
		REQUIRE(n <= to - from, "consumed more than given");
		/* The documented bound on the output of one call. */
		REQUIRE(o <= 2 * (to - from) + 2, "output overflow: %zu for %zu",
		    o, to - from);
		memcpy(r->out + r->outlen, buf, o);
		r->outlen += o;
		r->consumed += n;
		if (n < to - from) {
			REQUIRE(!is_raw_mode(mode), "raw mode stopped early");
			REQUIRE(dp.state == DS_DONE, "stopped early");
			break;
		}
		from = to;
	}
	if (is_raw_mode(mode)) {
		REQUIRE(dp.state != DS_DONE, "raw mode ended by itself");
		n = data_parser_finish(&dp, buf);
		REQUIRE(n <= 2, "finish wrote %zu", n);
		REQUIRE(dp.state == DS_DONE, "not done after finish");
		memcpy(r->out + r->outlen, buf, n);
		r->outlen += n;
	}
	r->state = dp.state;
	r->size = dp.size;
	r->bare_lf = dp.bare_lf;
	r->bare_cr = dp.bare_cr;
	REQUIRE(r->size == r->outlen, "size %llu, output %zu",
	    (unsigned long long)r->size, r->outlen);
}

static void
feed_all(enum data_mode mode, const char *in, size_t len, struct result *r)
{
	feed_cuts(mode, in, len, NULL, 0, r);
}

static void
feed_bytes(enum data_mode mode, const char *in, size_t len, struct result *r)
{
	static size_t	cuts[IN_MAX];
	size_t		i;

	for (i = 0; i + 1 < len; i++)
		cuts[i] = i + 1;
	feed_cuts(mode, in, len, cuts, len > 0 ? len - 1 : 0, r);
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
	REQUIRE(a->size == b->size, "%s: size", what);
	REQUIRE(a->bare_lf == b->bare_lf && a->bare_cr == b->bare_cr,
	    "%s: flags %d/%d vs %d/%d", what, a->bare_lf, a->bare_cr,
	    b->bare_lf, b->bare_cr);
}

/* 1 if out holds a CR not followed by LF or an LF not preceded by CR. */
static int
has_bare(const char *out, size_t len)
{
	size_t	i;

	for (i = 0; i < len; i++) {
		if (out[i] == '\r' && (i + 1 == len || out[i + 1] != '\n'))
			return 1;
		if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r'))
			return 1;
	}
	return 0;
}

static int
mem_has(const char *hay, size_t len, const char *needle)
{
	size_t	n = strlen(needle), i;

	for (i = 0; i + n <= len; i++)
		if (memcmp(hay + i, needle, n) == 0)
			return 1;
	return 0;
}

/* Whole input: the expected end, output and flags. */
static void
check_mode(enum data_mode mode, const char *in, size_t inlen,
    const char *want, size_t want_consumed, int want_lf, int want_cr)
{
	struct result	r;

	feed_all(mode, in, inlen, &r);
	ck_assert_int_eq(r.state, DS_DONE);
	ck_assert_uint_eq(r.consumed, want_consumed);
	ck_assert_uint_eq(r.outlen, strlen(want));
	ck_assert_mem_eq(r.out, want, r.outlen);
	ck_assert_int_eq(r.bare_lf, want_lf);
	ck_assert_int_eq(r.bare_cr, want_cr);
}

#define CHECK(mode, in, want, consumed, lf, cr)				\
	check_mode(mode, in, sizeof(in) - 1, want, consumed, lf, cr)

/* ---- every mode on clean input --------------------------------------- */

START_TEST(test_clean_message)
{
	static const char	in[] = "Subject: hi\r\n\r\nHello.\r\n";
	static const char	dotted[] = "Subject: hi\r\n\r\nHello.\r\n.\r\n";
	size_t			m;

	for (m = 0; m < NMODES; m++) {
		if (is_raw_mode(all_modes[m]))
			CHECK(all_modes[m], in, in, sizeof(in) - 1, 0, 0);
		else
			CHECK(all_modes[m], dotted, in, sizeof(dotted) - 1, 0,
			    0);
	}
	/* The empty message. */
	CHECK(DM_DATA_NORMALIZE, ".\r\n", "", 3, 0, 0);
	CHECK(DM_RAW, "", "", 0, 0, 0);
	CHECK(DM_RAW_NORMALIZE, "", "", 0, 0, 0);
}
END_TEST

START_TEST(test_init_resets)
{
	struct data_parser	dp;
	char			out[16];
	size_t			o;

	data_parser_init(&dp, DM_RAW);
	ck_assert_uint_eq(data_parser_feed(&dp, "a\nb\r", 4, out, &o), 4);
	ck_assert_int_eq(dp.bare_lf, 1);
	ck_assert_int_eq(dp.state, DS_CR);
	data_parser_init(&dp, DM_DATA_NORMALIZE);
	ck_assert_int_eq(dp.mode, DM_DATA_NORMALIZE);
	ck_assert_int_eq(dp.state, DS_BOL);
	ck_assert_int_eq(dp.bare_lf, 0);
	ck_assert_int_eq(dp.bare_cr, 0);
	ck_assert_uint_eq(dp.size, 0);
	/* Zero-length feeds are harmless in every mode. */
	o = 99;
	ck_assert_uint_eq(data_parser_feed(&dp, "", 0, out, &o), 0);
	ck_assert_uint_eq(o, 0);
	ck_assert_int_eq(dp.state, DS_BOL);
}
END_TEST

/* ---- DATA, normalizing ------------------------------------------------ */

START_TEST(test_normalize_line_ends)
{
	/* Every kind of bare end becomes CRLF; CRLF stays one CRLF. */
	CHECK(DM_DATA_NORMALIZE, "a\nb\r\n.\r\n", "a\r\nb\r\n", 8, 1, 0);
	CHECK(DM_DATA_NORMALIZE, "a\rb\r\n.\r\n", "a\r\nb\r\n", 8, 0, 1);
	CHECK(DM_DATA_NORMALIZE, "a\r\r\nb\r\n.\r\n", "a\r\n\r\nb\r\n", 10,
	    0, 1);
	CHECK(DM_DATA_NORMALIZE, "a\n\nb\r\n.\r\n", "a\r\n\r\nb\r\n", 9, 1,
	    0);
	CHECK(DM_DATA_NORMALIZE, "a\r\rb\r\n.\r\n", "a\r\n\r\nb\r\n", 9, 0,
	    1);
	CHECK(DM_DATA_NORMALIZE, "\n\r\r\n.\r\n", "\r\n\r\n\r\n", 7, 1, 1);
	CHECK(DM_DATA_NORMALIZE, "a\n\r\n.\r\n", "a\r\n\r\n", 7, 1, 0);
	/* A line of LF ends only, as a sloppy client sends it. */
	CHECK(DM_DATA_NORMALIZE, "To: x\nSubject: y\n\nbody\n\r\n.\r\n",
	    "To: x\r\nSubject: y\r\n\r\nbody\r\n\r\n", 28, 1, 0);
	/* The strict mode writes the same input as it is, flagged. */
	CHECK(DM_DATA, "a\n\rb\r\n.\r\n", "a\n\rb\r\n", 9, 1, 1);
}
END_TEST

START_TEST(test_normalize_dots)
{
	/* Stuffing is removed at real line starts, as in DM_DATA. */
	CHECK(DM_DATA_NORMALIZE, "..a\r\n..\r\n.\r\n", ".a\r\n.\r\n", 12, 0,
	    0);
	CHECK(DM_DATA_NORMALIZE, "x\r\n...\r\n.\r\n", "x\r\n..\r\n", 11, 0,
	    0);
	/* After a bare LF or CR the line start is not real: dots stay. */
	CHECK(DM_DATA_NORMALIZE, "x\n..y\r\n.\r\n", "x\r\n..y\r\n", 10, 1,
	    0);
	CHECK(DM_DATA_NORMALIZE, "x\r.y\r\n.\r\n", "x\r\n.y\r\n", 9, 0, 1);
	CHECK(DM_DATA, "x\n..y\r\n.\r\n", "x\n..y\r\n", 10, 1, 0);
	/*
	 * A "." at a real line start followed by a bare end: the dot was
	 * stuffing, the end becomes CRLF, the next line keeps its dots.
	 */
	CHECK(DM_DATA_NORMALIZE, ".\n.x\r\n.\r\n", "\r\n.x\r\n", 9, 1, 0);
	CHECK(DM_DATA_NORMALIZE, ".\rx\r\n.\r\n", "\r\nx\r\n", 8, 0, 1);
	CHECK(DM_DATA_NORMALIZE, ".\r\r\n.\r\n", "\r\n\r\n", 7, 0, 1);
	CHECK(DM_DATA_NORMALIZE, ".\r\r\r\n.\r\n", "\r\n\r\n\r\n", 8, 0, 1);
}
END_TEST

START_TEST(test_data_pipelining_modes)
{
	static const char	in[] = "a\nb\r\n.\r\nQUIT\r\n";
	struct result		r;

	/* The bytes after the end are left for the next command. */
	feed_all(DM_DATA_NORMALIZE, in, sizeof(in) - 1, &r);
	ck_assert_int_eq(r.state, DS_DONE);
	ck_assert_uint_eq(r.consumed, 8);
	ck_assert_uint_eq(r.outlen, 6);
	ck_assert_mem_eq(r.out, "a\r\nb\r\n", 6);
	feed_all(DM_DATA, in, sizeof(in) - 1, &r);
	ck_assert_uint_eq(r.consumed, 8);
	ck_assert_mem_eq(r.out, "a\nb\r\n", 5);
	/* Two messages back to back: only the first one is taken. */
	CHECK(DM_DATA_NORMALIZE, "a\r\n.\r\nb\r\n.\r\n", "a\r\n", 6, 0, 0);
}
END_TEST

/* ---- smuggling ---------------------------------------------------------- */

/*
 * Each fake end between "x" and "y", then a real end: the strict output
 * keeps the bytes, the normalized one has only CRLF.
 */
static const struct {
	const char	*seq;
	const char	*strict;	/* output of x SEQ y CRLF . CRLF */
	const char	*norm;
	int		 lf, cr;
} smuggle[] = {
	{ "\n.\n",	"x\n.\ny\r\n",	"x\r\n.\r\ny\r\n",	1, 0 },
	{ "\n.\r\n",	"x\n.\r\ny\r\n",	"x\r\n.\r\ny\r\n",	1, 0 },
	{ "\r\n.\n",	"x\r\n\ny\r\n",	"x\r\n\r\ny\r\n",	1, 0 },
	{ "\r.\r",	"x\r.\ry\r\n",	"x\r\n.\r\ny\r\n",	0, 1 },
	{ "\r.\r\n",	"x\r.\r\ny\r\n",	"x\r\n.\r\ny\r\n",	0, 1 },
	{ "\r\n.\r",	"x\r\n\ry\r\n",	"x\r\n\r\ny\r\n",	0, 1 },
	{ "\n.\r",	"x\n.\ry\r\n",	"x\r\n.\r\ny\r\n",	1, 1 },
	{ "\r.\n",	"x\r.\ny\r\n",	"x\r\n.\r\ny\r\n",	1, 1 },
	{ "\n\n.\n\n",	"x\n\n.\n\ny\r\n", "x\r\n\r\n.\r\n\r\ny\r\n", 1, 0 },
	{ "\r\r.\r\r",	"x\r\r.\r\ry\r\n", "x\r\n\r\n.\r\n\r\ny\r\n", 0, 1 },
	{ "\r\n.\r\r\n", "x\r\n\r\r\ny\r\n", "x\r\n\r\n\r\ny\r\n",	0, 1 },
};
#define NSMUGGLE	(sizeof(smuggle) / sizeof(smuggle[0]))

START_TEST(test_smuggling_fake_ends)
{
	char		in[256];
	struct result	r;
	size_t		i, len;

	for (i = 0; i < NSMUGGLE; i++) {
		len = (size_t)snprintf(in, sizeof(in), "x%sy\r\n.\r\nNEXT",
		    smuggle[i].seq);
		ck_assert_uint_lt(len, sizeof(in));
		check_mode(DM_DATA, in, len, smuggle[i].strict, len - 4,
		    smuggle[i].lf, smuggle[i].cr);
		check_mode(DM_DATA_NORMALIZE, in, len, smuggle[i].norm,
		    len - 4, smuggle[i].lf, smuggle[i].cr);
		feed_all(DM_DATA_NORMALIZE, in, len, &r);
		ck_assert_msg(!has_bare(r.out, r.outlen), "bare in #%zu", i);
	}
}
END_TEST

/* The fake end, then a whole smuggled transaction: all of it is content. */
START_TEST(test_smuggling_commands)
{
	static const char *lead[] = { "", "body", "body\r\n", "\r\n", "\n" };
	static const char *evil = "MAIL FROM:<evil@example.org>\r\n"
	    "RCPT TO:<victim@example.org>\r\nDATA\r\n"
	    "Subject: smuggled\r\n\r\nevil\r\n";
	static const enum data_mode modes[] = { DM_DATA, DM_DATA_NORMALIZE };
	char		in[512];
	struct result	r, rb;
	size_t		i, l, m, len;

	for (m = 0; m < 2; m++)
	for (i = 0; i < NSMUGGLE; i++)
	for (l = 0; l < sizeof(lead) / sizeof(lead[0]); l++) {
		len = (size_t)snprintf(in, sizeof(in), "%s%s%s", lead[l],
		    smuggle[i].seq, evil);
		ck_assert_uint_lt(len, sizeof(in));

		/* No end yet: everything taken, nothing ended. */
		feed_all(modes[m], in, len, &r);
		REQUIRE(r.state != DS_DONE, "ended: mode %zu #%zu/%zu", m, i,
		    l);
		REQUIRE(r.consumed == len, "consumed %zu of %zu", r.consumed,
		    len);
		feed_bytes(modes[m], in, len, &rb);
		assert_same(&r, &rb, "smuggling bytewise");

		/* Then the real end: one message, the rest left over. */
		memcpy(in + len, "\r\n.\r\nQUIT\r\n", 11);
		feed_all(modes[m], in, len + 11, &r);
		REQUIRE(r.state == DS_DONE, "no end: mode %zu #%zu/%zu", m, i,
		    l);
		REQUIRE(r.consumed == len + 5, "consumed %zu, want %zu",
		    r.consumed, len + 5);
		REQUIRE(mem_has(r.out, r.outlen, evil + 4),
		    "smuggled text lost: mode %zu #%zu/%zu", m, i, l);
		REQUIRE(r.outlen >= 2 &&
		    memcmp(r.out + r.outlen - 2, "\r\n", 2) == 0, "tail");
		REQUIRE(r.bare_lf || r.bare_cr, "not flagged");
		if (modes[m] == DM_DATA_NORMALIZE)
			REQUIRE(!has_bare(r.out, r.outlen),
			    "bare end in normalized output #%zu/%zu", i, l);
		feed_bytes(modes[m], in, len + 11, &rb);
		assert_same(&r, &rb, "smuggling end bytewise");
	}
}
END_TEST

/* ---- BDAT ---------------------------------------------------------------- */

START_TEST(test_raw_is_byte_exact)
{
	static const char	in[] = "Subject: x\r\n\r\n.\r\n..dots\r\n.\r\n"
	    "after\r\n";
	struct result		r;

	/* No unstuffing, no end marker: the length is the message. */
	CHECK(DM_RAW, in, in, sizeof(in) - 1, 0, 0);
	CHECK(DM_RAW_NORMALIZE, in, in, sizeof(in) - 1, 0, 0);
	/* A chunk that does not end with CRLF is fine too. */
	CHECK(DM_RAW, "no newline", "no newline", 10, 0, 0);
	/* Binary bytes pass. */
	feed_all(DM_RAW, "a\0b\377", 4, &r);
	ck_assert_uint_eq(r.outlen, 4);
	ck_assert_mem_eq(r.out, "a\0b\377", 4);
}
END_TEST

START_TEST(test_raw_bare)
{
	CHECK(DM_RAW, "a\nb\r\n", "a\nb\r\n", 5, 1, 0);
	CHECK(DM_RAW, "a\rb\r\n", "a\rb\r\n", 5, 0, 1);
	CHECK(DM_RAW_NORMALIZE, "a\nb\r\n", "a\r\nb\r\n", 5, 1, 0);
	CHECK(DM_RAW_NORMALIZE, "a\rb\r\n", "a\r\nb\r\n", 5, 0, 1);
	CHECK(DM_RAW_NORMALIZE, "\r\r\n\n.\n", "\r\n\r\n\r\n.\r\n", 6, 1,
	    1);
	/* A CR at the very end of the message is bare. */
	CHECK(DM_RAW, "a\r", "a\r", 2, 0, 1);
	CHECK(DM_RAW_NORMALIZE, "a\r", "a\r\n", 2, 0, 1);
}
END_TEST

/* CR at the end of one chunk, LF at the start of the next: one CRLF. */
START_TEST(test_raw_chunk_boundary)
{
	struct data_parser	dp;
	char			out[16];
	size_t			o, m;

	for (m = 2; m < NMODES; m++) {
		data_parser_init(&dp, all_modes[m]);
		ck_assert_uint_eq(data_parser_feed(&dp, "ab\r", 3, out, &o), 3);
		ck_assert_uint_eq(o, 3);
		ck_assert_mem_eq(out, "ab\r", 3);
		ck_assert_int_eq(dp.state, DS_CR);
		ck_assert_int_eq(dp.bare_cr, 0);
		ck_assert_uint_eq(data_parser_feed(&dp, "\ncd", 3, out, &o), 3);
		ck_assert_uint_eq(o, 3);
		ck_assert_mem_eq(out, "\ncd", 3);
		ck_assert_int_eq(dp.bare_cr, 0);
		ck_assert_int_eq(dp.bare_lf, 0);
		ck_assert_uint_eq(data_parser_finish(&dp, out), 0);
		ck_assert_uint_eq(dp.size, 6);
	}

	/* CR, then a chunk that does not start with LF: bare. */
	data_parser_init(&dp, DM_RAW);
	(void)data_parser_feed(&dp, "a\r", 2, out, &o);
	ck_assert_uint_eq(data_parser_feed(&dp, "b", 1, out, &o), 1);
	ck_assert_uint_eq(o, 1);
	ck_assert_int_eq(dp.bare_cr, 1);

	data_parser_init(&dp, DM_RAW_NORMALIZE);
	(void)data_parser_feed(&dp, "a\r", 2, out, &o);
	ck_assert_uint_eq(data_parser_feed(&dp, "b", 1, out, &o), 1);
	ck_assert_uint_eq(o, 2);
	ck_assert_mem_eq(out, "\nb", 2);
	ck_assert_int_eq(dp.bare_cr, 1);
	ck_assert_uint_eq(dp.size, 4);

	/* LF alone at the start of a chunk after a non-CR: bare. */
	data_parser_init(&dp, DM_RAW);
	(void)data_parser_feed(&dp, "a", 1, out, &o);
	(void)data_parser_feed(&dp, "\n", 1, out, &o);
	ck_assert_int_eq(dp.bare_lf, 1);
}
END_TEST

START_TEST(test_finish)
{
	struct data_parser	dp;
	char			out[4];
	size_t			o;

	/* Strict: the CR was written already; it is only flagged. */
	data_parser_init(&dp, DM_RAW);
	(void)data_parser_feed(&dp, "a\r", 2, out, &o);
	ck_assert_uint_eq(data_parser_finish(&dp, out), 0);
	ck_assert_int_eq(dp.bare_cr, 1);
	ck_assert_int_eq(dp.state, DS_DONE);
	ck_assert_uint_eq(dp.size, 2);
	/* Done: more input is not taken, a second finish does nothing. */
	o = 99;
	ck_assert_uint_eq(data_parser_feed(&dp, "xyz", 3, out, &o), 0);
	ck_assert_uint_eq(o, 0);
	ck_assert_uint_eq(data_parser_finish(&dp, out), 0);
	ck_assert_uint_eq(dp.size, 2);

	/* Normalizing: the CR is completed, and counted. */
	data_parser_init(&dp, DM_RAW_NORMALIZE);
	(void)data_parser_feed(&dp, "a\r", 2, out, &o);
	ck_assert_uint_eq(data_parser_finish(&dp, out), 1);
	ck_assert_int_eq(out[0], '\n');
	ck_assert_int_eq(dp.bare_cr, 1);
	ck_assert_uint_eq(dp.size, 3);

	/* Nothing held: nothing written, nothing flagged. */
	data_parser_init(&dp, DM_RAW_NORMALIZE);
	(void)data_parser_feed(&dp, "a\r\n", 3, out, &o);
	ck_assert_uint_eq(data_parser_finish(&dp, out), 0);
	ck_assert_int_eq(dp.bare_cr, 0);
	ck_assert_int_eq(dp.state, DS_DONE);

	/* BDAT 0 LAST: an empty message. */
	data_parser_init(&dp, DM_RAW);
	ck_assert_uint_eq(data_parser_finish(&dp, out), 0);
	ck_assert_uint_eq(dp.size, 0);
	ck_assert_int_eq(dp.state, DS_DONE);

	/* DATA ends by itself: finish leaves it alone, even mid-".\r". */
	data_parser_init(&dp, DM_DATA_NORMALIZE);
	(void)data_parser_feed(&dp, "a\r\n.\r", 5, out, &o);
	ck_assert_int_eq(dp.state, DS_DOTCR);
	ck_assert_uint_eq(data_parser_finish(&dp, out), 0);
	ck_assert_int_eq(dp.state, DS_DOTCR);
	ck_assert_int_eq(dp.bare_cr, 0);
	ck_assert_uint_eq(data_parser_feed(&dp, "\n", 1, out, &o), 1);
	ck_assert_int_eq(dp.state, DS_DONE);
	data_parser_init(&dp, DM_DATA);
	(void)data_parser_feed(&dp, "a\r", 2, out, &o);
	ck_assert_uint_eq(data_parser_finish(&dp, out), 0);
	ck_assert_int_eq(dp.state, DS_CR);
}
END_TEST

/* ---- any cut gives the same result ------------------------------------ */

START_TEST(test_splits_every_mode)
{
	static const char *msgs[] = {
		"Subject: split\r\n\r\n..dot\r\nline\r\n.\r\nNEXT",
		".\r\nNEXT",
		"\r\n.\r\n",
		"a\rb\nc\r\n.\n.\r.\r\r\n..\r\n.\r\nZ",
		"x\r\n.\r\r\n.\r\n",
		"x\r\n.\rq\r\n.\r\n",
		"x\n.\ny\r.\rz\r\n.\r\n",
		"\r\r\r\n\n\n.\r\n.\r\n",
		"no end\r\n.\r",
		"no end\r\n.",
		"no end\r",
		"\r",
		"\n",
		"",
		NULL
	};
	struct result	ref, r;
	size_t		len, i, j, m, cuts[2];
	int		k;
	char		what[64];

	for (m = 0; m < NMODES; m++)
	for (k = 0; msgs[k] != NULL; k++) {
		len = strlen(msgs[k]);
		(void)snprintf(what, sizeof(what), "mode %zu msg %d", m, k);
		feed_all(all_modes[m], msgs[k], len, &ref);
		if (is_norm_mode(all_modes[m]) && ref.state == DS_DONE)
			REQUIRE(!has_bare(ref.out, ref.outlen), "%s: bare",
			    what);
		feed_bytes(all_modes[m], msgs[k], len, &r);
		assert_same(&ref, &r, what);
		for (i = 0; i <= len; i++) {
			cuts[0] = i;
			feed_cuts(all_modes[m], msgs[k], len, cuts, 1, &r);
			assert_same(&ref, &r, what);
			for (j = i; j <= len; j++) {
				cuts[1] = j;
				feed_cuts(all_modes[m], msgs[k], len, cuts, 2,
				    &r);
				assert_same(&ref, &r, what);
			}
		}
	}
}
END_TEST

/*
 * Reference models.  DATA: the end is the first CRLF.CRLF of CRLF + input;
 * a dot right after a CRLF (or at the very start) goes; normalizing writes
 * CRLF for a CR without LF after it and for an LF without CR before it.
 * Raw: every byte, with the same rewriting of bare ends.
 */
static size_t
ref_byte(enum data_mode mode, const char *in, size_t i, size_t len,
    char *out)
{
	int	cr_bare = in[i] == '\r' && (i + 1 >= len || in[i + 1] != '\n');
	int	lf_bare = in[i] == '\n' && (i == 0 || in[i - 1] != '\r');

	if (is_norm_mode(mode) && cr_bare) {
		memcpy(out, "\r\n", 2);
		return 2;
	}
	if (is_norm_mode(mode) && lf_bare) {
		memcpy(out, "\r\n", 2);
		return 2;
	}
	out[0] = in[i];
	return 1;
}

static void
ref_flags(const char *in, size_t len, struct result *r)
{
	size_t	i;

	r->bare_lf = r->bare_cr = 0;
	for (i = 0; i < len; i++) {
		if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r'))
			r->bare_lf = 1;
		if (in[i] == '\r' && (i + 1 >= len || in[i + 1] != '\n'))
			r->bare_cr = 1;
	}
}

static void
reference(enum data_mode mode, const char *in, size_t len, struct result *r)
{
	static char	buf[IN_MAX + 2];
	size_t		i, pos, end;

	r->outlen = 0;
	r->state = DS_DONE;
	if (is_raw_mode(mode)) {
		for (i = 0; i < len; i++)
			r->outlen += ref_byte(mode, in, i, len,
			    r->out + r->outlen);
		r->consumed = len;
		ref_flags(in, len, r);
		r->size = r->outlen;
		return;
	}
	buf[0] = '\r';
	buf[1] = '\n';
	memcpy(buf + 2, in, len);
	for (pos = 0; pos + 5 <= len + 2; pos++)
		if (memcmp(buf + pos, "\r\n.\r\n", 5) == 0)
			break;
	REQUIRE(pos + 5 <= len + 2, "no end");	/* callers append one */
	end = pos;		/* data is in[0..pos), CRLF included */
	r->consumed = pos + 3;
	for (i = 0; i < end; i++) {
		if (in[i] == '.' && (i == 0 || (i >= 2 && in[i - 2] == '\r' &&
		    in[i - 1] == '\n')))
			continue;
		r->outlen += ref_byte(mode, in, i, r->consumed,
		    r->out + r->outlen);
	}
	ref_flags(in, r->consumed, r);
	r->size = r->outlen;
}

/*
 * Every string over {CR, LF, '.', 'a'} up to 8 bytes, in every mode; DATA
 * gets CRLF.CRLF and a next command appended.
 */
START_TEST(test_exhaustive_every_mode)
{
	static const char	 alpha[4] = { '\r', '\n', '.', 'a' };
	char			 in[32];
	struct result		 want, got;
	unsigned int		 n, code, c, total, k;
	size_t			 m, len;

	for (m = 0; m < NMODES; m++)
	for (n = 0; n <= 8; n++) {
		total = 1u << (2 * n);
		for (code = 0; code < total; code++) {
			for (k = 0, c = code; k < n; k++, c >>= 2)
				in[k] = alpha[c & 3];
			len = n;
			if (!is_raw_mode(all_modes[m])) {
				memcpy(in + n, "\r\n.\r\nZ", 6);
				len += 6;
			}
			reference(all_modes[m], in, len, &want);
			feed_all(all_modes[m], in, len, &got);
			assert_same(&want, &got, "exhaustive");
			if (is_norm_mode(all_modes[m]))
				REQUIRE(!has_bare(got.out, got.outlen),
				    "bare in normalized output");
			if (n <= 7) {
				feed_bytes(all_modes[m], in, len, &got);
				assert_same(&want, &got, "exhaustive bytewise");
			}
		}
	}
}
END_TEST

/* The worst cases of the output bound, fed whole and in pieces. */
START_TEST(test_output_bound)
{
	static char	in[IN_MAX];
	struct result	r;
	size_t		m;
	int		f;

	/* Only bare CRs, then only bare LFs: each doubles when normalizing. */
	for (f = 0; f < 2; f++) {
		memset(in, f == 0 ? '\r' : '\n', sizeof(in));
		for (m = 0; m < NMODES; m++) {
			feed_all(all_modes[m], in, IN_MAX, &r);
			ck_assert_uint_le(r.outlen, 2 * IN_MAX + 2);
			feed_bytes(all_modes[m], in, IN_MAX, &r);
		}
		feed_all(DM_RAW_NORMALIZE, in, IN_MAX, &r);
		ck_assert_uint_eq(r.outlen, 2 * IN_MAX);
		ck_assert(!has_bare(r.out, r.outlen));
	}
	/* A held ".\r" released by the next call with a doubling byte. */
	feed_bytes(DM_DATA_NORMALIZE, ".\r\r\r\r\n.\r\n", 10, &r);
	ck_assert_uint_eq(r.outlen, 8);
	ck_assert_mem_eq(r.out, "\r\n\r\n\r\n\r\n", 8);
}
END_TEST

static Suite *
smtp_data_suite(void)
{
	Suite	*s = suite_create("smtp_data");
	TCase	*tc;

	tc = tcase_create("modes");
	tcase_add_test(tc, test_clean_message);
	tcase_add_test(tc, test_init_resets);
	tcase_add_test(tc, test_normalize_line_ends);
	tcase_add_test(tc, test_normalize_dots);
	tcase_add_test(tc, test_data_pipelining_modes);
	suite_add_tcase(s, tc);

	tc = tcase_create("smuggling");
	tcase_add_test(tc, test_smuggling_fake_ends);
	tcase_add_test(tc, test_smuggling_commands);
	suite_add_tcase(s, tc);

	tc = tcase_create("bdat");
	tcase_add_test(tc, test_raw_is_byte_exact);
	tcase_add_test(tc, test_raw_bare);
	tcase_add_test(tc, test_raw_chunk_boundary);
	tcase_add_test(tc, test_finish);
	suite_add_tcase(s, tc);

	tc = tcase_create("splits");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_splits_every_mode);
	tcase_add_test(tc, test_exhaustive_every_mode);
	tcase_add_test(tc, test_output_bound);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(smtp_data_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
