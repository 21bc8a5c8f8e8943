#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp_proxy.h"
#include "smtp_xclient.h"

/* ---- helpers: build version 2 headers --------------------------------- */

static const unsigned char sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

struct hdr {
	unsigned char	b[2048];
	size_t		len;
};

static void
hdr_start(struct hdr *h, unsigned char vercmd, unsigned char fam)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->b, sig, sizeof(sig));
	h->b[12] = vercmd;
	h->b[13] = fam;
	h->len = 16;
}

static void
hdr_add(struct hdr *h, const void *p, size_t n)
{
	ck_assert_uint_le(h->len + n, sizeof(h->b));
	memcpy(h->b + h->len, p, n);
	h->len += n;
}

static void
hdr_add_port(struct hdr *h, uint16_t port)
{
	uint16_t	n = htons(port);

	hdr_add(h, &n, 2);
}

static void
hdr_add_tlv(struct hdr *h, unsigned char type, const void *v, size_t n)
{
	unsigned char	t[3] = { type, (unsigned char)(n >> 8),
			    (unsigned char)n };

	hdr_add(h, t, 3);
	hdr_add(h, v, n);
}

/* Sets the length field from what was added. */
static void
hdr_finish(struct hdr *h)
{
	size_t	n = h->len - 16;

	h->b[14] = (unsigned char)(n >> 8);
	h->b[15] = (unsigned char)n;
}

static void
hdr_tcp4(struct hdr *h, const char *src, const char *dst, uint16_t sport,
    uint16_t dport)
{
	struct in_addr	a;

	hdr_start(h, 0x21, 0x11);
	ck_assert_int_eq(inet_pton(AF_INET, src, &a), 1);
	hdr_add(h, &a, 4);
	ck_assert_int_eq(inet_pton(AF_INET, dst, &a), 1);
	hdr_add(h, &a, 4);
	hdr_add_port(h, sport);
	hdr_add_port(h, dport);
}

static void
hdr_tcp6(struct hdr *h, const char *src, const char *dst, uint16_t sport,
    uint16_t dport)
{
	struct in6_addr	a;

	hdr_start(h, 0x21, 0x21);
	ck_assert_int_eq(inet_pton(AF_INET6, src, &a), 1);
	hdr_add(h, &a, 16);
	ck_assert_int_eq(inet_pton(AF_INET6, dst, &a), 1);
	hdr_add(h, &a, 16);
	hdr_add_port(h, sport);
	hdr_add_port(h, dport);
}

static void
hdr_typical_tlvs(struct hdr *h)
{
	static const unsigned char	ssl[] = {
		0x01, 0, 0, 0, 0,		/* client SSL, verify 0 */
		0x21, 0x00, 0x07, 'T', 'L', 'S', 'v', '1', '.', '3'
	};
	static const unsigned char	pad[5];

	hdr_add_tlv(h, 0x01, "smtp", 4);		/* ALPN */
	hdr_add_tlv(h, 0x02, "mx.example.org", 14);	/* AUTHORITY */
	hdr_add_tlv(h, 0x20, ssl, sizeof(ssl));
	hdr_add_tlv(h, 0x04, pad, sizeof(pad));		/* NOOP */
	hdr_add_tlv(h, 0x05, "", 0);			/* empty UNIQUE_ID */
	hdr_add_tlv(h, 0xe0, "custom", 6);		/* PP2_TYPE_MIN_CUSTOM */
}

/* "addr port" of a parsed sockaddr. */
static const char *
sa_text(const struct sockaddr_storage *ss, socklen_t len)
{
	static char	buf[2][80];
	static int	which;
	char		host[INET6_ADDRSTRLEN];
	char		*out = buf[which++ & 1];

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;

		ck_assert_uint_eq(len, sizeof(*sin));
		ck_assert_ptr_nonnull(inet_ntop(AF_INET, &sin->sin_addr, host,
		    sizeof(host)));
		snprintf(out, sizeof(buf[0]), "%s %u", host,
		    ntohs(sin->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
		    (const struct sockaddr_in6 *)ss;

		ck_assert_uint_eq(len, sizeof(*sin6));
		ck_assert_ptr_nonnull(inet_ntop(AF_INET6, &sin6->sin6_addr,
		    host, sizeof(host)));
		snprintf(out, sizeof(buf[0]), "%s %u", host,
		    ntohs(sin6->sin6_port));
	} else
		snprintf(out, sizeof(buf[0]), "family %d", ss->ss_family);
	return out;
}

static enum proxy_status
parse(const void *buf, size_t len, struct proxy_result *r)
{
	unsigned char	*copy;
	enum proxy_status st;

	/* An exact-size heap copy: ASan sees any read past `len`. */
	copy = malloc(len > 0 ? len : 1);
	ck_assert_ptr_nonnull(copy);
	memcpy(copy, buf, len);
	st = proxy_v2_parse(copy, len, r);
	free(copy);
	return st;
}

static enum proxy_status
parse_str(const char *s, struct proxy_result *r)
{
	return parse(s, strlen(s), r);
}

/* Every proper prefix of a complete header waits for more. */
static void
assert_prefixes_need_more(const void *buf, size_t total)
{
	struct proxy_result	r;
	size_t			n;

	for (n = 0; n < total; n++)
		ck_assert_msg(parse(buf, n, &r) == PROXY_NEED_MORE,
		    "prefix of %zu/%zu bytes", n, total);
}

/* ---- version 2 ----------------------------------------------------------- */

START_TEST(test_v2_tcp4)
{
	struct hdr		h;
	struct proxy_result	r;

	hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
	hdr_finish(&h);
	ck_assert_uint_eq(h.len, 28);
	/* The client's first command follows in the same read. */
	hdr_add(&h, "EHLO x\r\n", 8);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 0);
	ck_assert_uint_eq(r.consumed, 28);
	ck_assert_str_eq(sa_text(&r.src, r.srclen), "192.0.2.1 4242");
	ck_assert_str_eq(sa_text(&r.dst, r.dstlen), "198.51.100.7 25");
}
END_TEST

START_TEST(test_v2_tcp4_tlvs)
{
	struct hdr		h;
	struct proxy_result	r;
	size_t			total;

	hdr_tcp4(&h, "203.0.113.9", "192.0.2.25", 65535, 587);
	hdr_typical_tlvs(&h);
	hdr_finish(&h);
	total = h.len;
	ck_assert_int_eq(parse(h.b, total, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 0);
	ck_assert_uint_eq(r.consumed, total);
	ck_assert_str_eq(sa_text(&r.src, r.srclen), "203.0.113.9 65535");
	ck_assert_str_eq(sa_text(&r.dst, r.dstlen), "192.0.2.25 587");
}
END_TEST

START_TEST(test_v2_tcp6)
{
	struct hdr		h;
	struct proxy_result	r;

	hdr_tcp6(&h, "2001:db8::1", "2001:db8:1::25", 0, 25);
	hdr_finish(&h);
	ck_assert_uint_eq(h.len, 16 + 36);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 0);
	ck_assert_uint_eq(r.consumed, 52);
	ck_assert_str_eq(sa_text(&r.src, r.srclen), "2001:db8::1 0");
	ck_assert_str_eq(sa_text(&r.dst, r.dstlen), "2001:db8:1::25 25");

	hdr_tcp6(&h, "::ffff:192.0.2.1", "::1", 1234, 465);
	hdr_typical_tlvs(&h);
	hdr_finish(&h);
	hdr_add(&h, "QUIT\r\n", 6);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_uint_eq(r.consumed, h.len - 6);
	ck_assert_str_eq(sa_text(&r.src, r.srclen), "::ffff:192.0.2.1 1234");
	ck_assert_str_eq(sa_text(&r.dst, r.dstlen), "::1 465");
}
END_TEST

START_TEST(test_v2_local)
{
	struct hdr		h;
	struct proxy_result	r;

	/* As HAProxy sends health checks: LOCAL, UNSPEC, no address. */
	hdr_start(&h, 0x20, 0x00);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, 16);
	ck_assert_uint_eq(r.srclen, 0);

	/* The length must be honoured even when LOCAL carries an address. */
	hdr_tcp4(&h, "192.0.2.1", "192.0.2.2", 1, 2);
	h.b[12] = 0x20;
	hdr_finish(&h);
	hdr_add(&h, "EHLO", 4);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, 28);
	ck_assert_uint_eq(r.srclen, 0);

	/* LOCAL ignores the block: even one too short for its family. */
	hdr_start(&h, 0x20, 0x21);
	hdr_add(&h, "abc", 3);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, 19);
}
END_TEST

START_TEST(test_v2_unspec)
{
	struct hdr		h;
	struct proxy_result	r;

	hdr_start(&h, 0x21, 0x00);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, 16);

	/* Whatever an UNSPEC block holds is skipped unread. */
	hdr_start(&h, 0x21, 0x00);
	hdr_add(&h, "\xff\xff\xff", 3);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, 19);

	/* INET with an UNSPEC transport: ports unknown, address ignored. */
	hdr_tcp4(&h, "192.0.2.1", "192.0.2.2", 1, 2);
	h.b[13] = 0x10;
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.srclen, 0);
}
END_TEST

START_TEST(test_v2_unix_and_dgram)
{
	struct hdr		h;
	struct proxy_result	r;
	unsigned char		path[216];

	memset(path, 0, sizeof(path));
	memcpy(path, "/run/client.sock", 16);
	hdr_start(&h, 0x21, 0x31);
	hdr_add(&h, path, sizeof(path));
	hdr_add_tlv(&h, 0x04, "", 0);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, 16 + 216 + 3);

	/* Too short for two sun_path. */
	hdr_start(&h, 0x21, 0x31);
	hdr_add(&h, path, 100);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);

	/* UDP is no SMTP peer: the real address stays. */
	hdr_tcp4(&h, "192.0.2.1", "192.0.2.2", 53, 53);
	h.b[13] = 0x12;
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, 28);
}
END_TEST

START_TEST(test_v2_truncated)
{
	struct hdr	h;

	hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
	hdr_finish(&h);
	assert_prefixes_need_more(h.b, h.len);

	hdr_tcp6(&h, "2001:db8::1", "2001:db8::2", 1, 2);
	hdr_typical_tlvs(&h);
	hdr_finish(&h);
	assert_prefixes_need_more(h.b, h.len);

	hdr_start(&h, 0x20, 0x00);
	hdr_finish(&h);
	assert_prefixes_need_more(h.b, h.len);
}
END_TEST

START_TEST(test_v2_bad_signature)
{
	struct hdr		h;
	struct proxy_result	r;
	size_t			i;

	for (i = 0; i < sizeof(sig); i++) {
		hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
		hdr_finish(&h);
		h.b[i] ^= 0x20;
		ck_assert_msg(parse(h.b, h.len, &r) == PROXY_BAD,
		    "signature byte %zu", i);
		/* Refused as soon as the wrong byte arrives. */
		if (i > 0)
			ck_assert_msg(parse(h.b, i + 1, &r) == PROXY_BAD,
			    "prefix to byte %zu", i);
	}
	/* The NUL inside the signature is a byte like any other. */
	ck_assert_int_eq(parse("\r\n\r\n\0\r\n", 7, &r), PROXY_NEED_MORE);
	ck_assert_int_eq(parse("\r\n\r\n\n", 5, &r), PROXY_BAD);
	ck_assert_int_eq(parse("\r\n\r\n\0\r\nQUIT\r\n", 13, &r), PROXY_BAD);
}
END_TEST

START_TEST(test_v2_bad_version_command)
{
	static const unsigned char	bad[] = {
		0x11, 0x10, 0x31, 0x01, 0x22, 0x2f, 0xf1
	};
	struct hdr			h;
	struct proxy_result		r;
	size_t				i;

	for (i = 0; i < sizeof(bad); i++) {
		hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
		hdr_finish(&h);
		h.b[12] = bad[i];
		ck_assert_msg(parse(h.b, h.len, &r) == PROXY_BAD,
		    "ver_cmd 0x%02x", bad[i]);
		ck_assert_msg(parse(h.b, 13, &r) == PROXY_BAD,
		    "ver_cmd 0x%02x, 13 bytes", bad[i]);
	}
}
END_TEST

START_TEST(test_v2_bad_family)
{
	static const unsigned char	bad[] = { 0x41, 0x13, 0xf1, 0x0f };
	struct hdr			h;
	struct proxy_result		r;
	size_t				i;

	for (i = 0; i < sizeof(bad); i++) {
		hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
		hdr_finish(&h);
		h.b[13] = bad[i];
		ck_assert_msg(parse(h.b, h.len, &r) == PROXY_BAD,
		    "fam 0x%02x", bad[i]);
		ck_assert_msg(parse(h.b, 14, &r) == PROXY_BAD,
		    "fam 0x%02x, 14 bytes", bad[i]);
	}
}
END_TEST

START_TEST(test_v2_length_limit)
{
	struct hdr		h;
	struct proxy_result	r;
	static unsigned char	pad[1024];

	/* Exactly the limit: address + one NOOP TLV filling the rest. */
	hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
	hdr_add_tlv(&h, 0x04, pad, PROXY_V2_MAX - h.len - 3);
	hdr_finish(&h);
	ck_assert_uint_eq(h.len, PROXY_V2_MAX);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_DONE);
	ck_assert_uint_eq(r.consumed, PROXY_V2_MAX);

	/* One more: refused from the 16 fixed bytes alone. */
	hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
	hdr_add_tlv(&h, 0x04, pad, PROXY_V2_MAX - h.len - 2);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);
	ck_assert_int_eq(parse(h.b, 16, &r), PROXY_BAD);

	h.b[14] = 0xff;
	h.b[15] = 0xff;
	ck_assert_int_eq(parse(h.b, 16, &r), PROXY_BAD);
}
END_TEST

START_TEST(test_v2_short_address)
{
	struct hdr		h;
	struct proxy_result	r;

	hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
	h.len--;
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);

	hdr_tcp6(&h, "2001:db8::1", "2001:db8::2", 1, 2);
	h.len = 16 + 35;
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);

	/* An IPv4-sized block under the IPv6 family. */
	hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
	h.b[13] = 0x21;
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);

	/* No address at all with PROXY over TCP. */
	hdr_start(&h, 0x21, 0x11);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);
}
END_TEST

START_TEST(test_v2_bad_tlvs)
{
	struct hdr		h;
	struct proxy_result	r;

	/* A TLV whose length runs past the header. */
	hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
	hdr_add_tlv(&h, 0x02, "mx.example", 10);
	h.b[h.len - 10 - 1] = 11;
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);

	/* Leftovers too short for a TLV header. */
	hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
	hdr_add(&h, "\x04\x00", 2);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);

	hdr_tcp6(&h, "2001:db8::1", "2001:db8::2", 1, 2);
	hdr_add_tlv(&h, 0x01, "smtp", 4);
	hdr_add(&h, "\x01", 1);
	hdr_finish(&h);
	ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);
	ck_assert_uint_eq(r.consumed, 0);
	ck_assert_uint_eq(r.srclen, 0);
}
END_TEST

/* Its CRC32c was computed apart from mtad (a Python script). */
static const unsigned char crc_hdr[] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
	0x21, 0x11, 0x00, 0x13,
	0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x07, 0x10, 0x92, 0x00, 0x19,
	0x03, 0x00, 0x04, 0xa2, 0x48, 0x55, 0x93
};

START_TEST(test_v2_crc32c)
{
	unsigned char		b[sizeof(crc_hdr)];
	struct proxy_result	r;
	size_t			i;

	ck_assert_int_eq(parse(crc_hdr, sizeof(crc_hdr), &r), PROXY_DONE);
	ck_assert_uint_eq(r.consumed, sizeof(crc_hdr));
	ck_assert_str_eq(sa_text(&r.src, r.srclen), "192.0.2.1 4242");

	/* Any flipped bit in the address block or the sum is caught. */
	for (i = 16; i < sizeof(crc_hdr); i++) {
		if (i >= 28 && i < 31)
			continue;	/* the TLV's own type and length */
		memcpy(b, crc_hdr, sizeof(b));
		b[i] ^= 0x01;
		ck_assert_msg(parse(b, sizeof(b), &r) == PROXY_BAD,
		    "flipped byte %zu", i);
	}

	/* A CRC32C TLV must hold exactly 4 bytes. */
	{
		struct hdr	h;

		hdr_tcp4(&h, "192.0.2.1", "198.51.100.7", 4242, 25);
		hdr_add_tlv(&h, 0x03, "\0\0\0", 3);
		hdr_finish(&h);
		ck_assert_int_eq(parse(h.b, h.len, &r), PROXY_BAD);
	}
}
END_TEST

/* ---- version 1 ----------------------------------------------------------- */

START_TEST(test_v1_tcp4)
{
	static const char	line[] = "PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n";
	char			buf[128];
	struct proxy_result	r;

	snprintf(buf, sizeof(buf), "%sEHLO client\r\n", line);
	ck_assert_int_eq(parse_str(buf, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 0);
	ck_assert_uint_eq(r.consumed, strlen(line));
	ck_assert_str_eq(sa_text(&r.src, r.srclen), "192.0.2.1 56324");
	ck_assert_str_eq(sa_text(&r.dst, r.dstlen), "198.51.100.7 25");

	ck_assert_int_eq(parse_str(
	    "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n", &r), PROXY_DONE);
	ck_assert_str_eq(sa_text(&r.src, r.srclen), "255.255.255.255 65535");
	ck_assert_str_eq(sa_text(&r.dst, r.dstlen), "0.0.0.0 0");
}
END_TEST

START_TEST(test_v1_tcp6)
{
	static const char	line[] =
	    "PROXY TCP6 2001:DB8::1 2001:db8:0:0:0:0:0:25 1234 587\r\n";
	struct proxy_result	r;

	ck_assert_int_eq(parse_str(line, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 0);
	ck_assert_uint_eq(r.consumed, sizeof(line) - 1);
	ck_assert_str_eq(sa_text(&r.src, r.srclen), "2001:db8::1 1234");
	ck_assert_str_eq(sa_text(&r.dst, r.dstlen), "2001:db8::25 587");
}
END_TEST

START_TEST(test_v1_unknown)
{
	static const char	longest[] = "PROXY UNKNOWN "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
	    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
	struct proxy_result	r;

	ck_assert_int_eq(parse_str("PROXY UNKNOWN\r\nEHLO x\r\n", &r),
	    PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, 15);
	ck_assert_uint_eq(r.srclen, 0);

	/* The spec's worst case, 107 bytes; the rest of the line ignored. */
	ck_assert_uint_eq(strlen(longest), PROXY_V1_MAX);
	ck_assert_int_eq(parse_str(longest, &r), PROXY_DONE);
	ck_assert_int_eq(r.local, 1);
	ck_assert_uint_eq(r.consumed, PROXY_V1_MAX);
	ck_assert_int_eq(parse_str("PROXY UNKNOWN whatever it is\r\n", &r),
	    PROXY_DONE);
	ck_assert_int_eq(r.local, 1);

	ck_assert_int_eq(parse_str("PROXY UNKNOWNX\r\n", &r), PROXY_BAD);
	ck_assert_int_eq(parse_str("PROXY UNKNOW\r\n", &r), PROXY_BAD);
}
END_TEST

START_TEST(test_v1_too_long)
{
	char			buf[256];
	struct proxy_result	r;

	/* 107 bytes and still no CRLF. */
	memset(buf, 0, sizeof(buf));
	memcpy(buf, "PROXY UNKNOWN ", 14);
	memset(buf + 14, 'f', PROXY_V1_MAX - 14);
	ck_assert_int_eq(parse(buf, PROXY_V1_MAX - 1, &r), PROXY_NEED_MORE);
	ck_assert_int_eq(parse(buf, PROXY_V1_MAX, &r), PROXY_BAD);
	/* CR as the 107th byte: the LF would be the 108th. */
	buf[PROXY_V1_MAX - 1] = '\r';
	buf[PROXY_V1_MAX] = '\n';
	ck_assert_int_eq(parse(buf, PROXY_V1_MAX + 1, &r), PROXY_BAD);
	ck_assert_int_eq(parse(buf, PROXY_V1_MAX, &r), PROXY_BAD);
	/* One byte shorter fits. */
	buf[PROXY_V1_MAX - 2] = '\r';
	buf[PROXY_V1_MAX - 1] = '\n';
	ck_assert_int_eq(parse(buf, PROXY_V1_MAX, &r), PROXY_DONE);
	ck_assert_uint_eq(r.consumed, PROXY_V1_MAX);
}
END_TEST

START_TEST(test_v1_bad)
{
	static const char	*bad[] = {
		/* ports */
		"PROXY TCP4 192.0.2.1 192.0.2.2 65536 25\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 01 25\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 00 25\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 -1 25\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 +1 25\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1a 25\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 123456 25\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 99999\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 0x10 25\r\n",
		/* addresses */
		"PROXY TCP4 192.0.2 192.0.2.2 1 25\r\n",
		"PROXY TCP4 192.0.2.01 192.0.2.2 1 25\r\n",
		"PROXY TCP4 256.0.2.1 192.0.2.2 1 25\r\n",
		"PROXY TCP4 192.0.2.1.5 192.0.2.2 1 25\r\n",
		"PROXY TCP4 2001:db8::1 192.0.2.2 1 25\r\n",
		"PROXY TCP6 192.0.2.1 2001:db8::2 1 25\r\n",
		"PROXY TCP6 2001:db8::1 2001:db8:::2 1 25\r\n",
		"PROXY TCP4 host.example 192.0.2.2 1 25\r\n",
		/* fields and spacing */
		"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 25 26\r\n",
		"PROXY TCP4  192.0.2.1 192.0.2.2 1 25\r\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 25 \r\n",
		"PROXY TCP4 192.0.2.1\t192.0.2.2 1 25\r\n",
		"PROXY TCP5 192.0.2.1 192.0.2.2 1 25\r\n",
		"PROXY tcp4 192.0.2.1 192.0.2.2 1 25\r\n",
		"PROXY UDP4 192.0.2.1 192.0.2.2 1 25\r\n",
		"PROXY \r\n",
		"PROXY\r\n",
		"proxy TCP4 192.0.2.1 192.0.2.2 1 25\r\n",
		"PROXYTCP4 192.0.2.1 192.0.2.2 1 25\r\n",
		/* line ends */
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 25\n",
		"PROXY TCP4 192.0.2.1 192.0.2.2 1 25\rX",
		"PROXY UNKNOWN\n",
		"PROXY UNKNOWN\r\r\n",
		"PROXY TCP4 192.0.2.1\n192.0.2.2 1 25\r\n",
		/* not PROXY at all */
		"EHLO x\r\n",
		"HELO x\r\n",
		"QUIT\r\n",
		"\r\nEHLO x\r\n",
		"PRXY\r\n",
	};
	struct proxy_result	r;
	size_t			i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(parse_str(bad[i], &r) == PROXY_BAD,
		    "accepted: %s", bad[i]);
		ck_assert_uint_eq(r.consumed, 0);
		ck_assert_uint_eq(r.srclen, 0);
	}
}
END_TEST

START_TEST(test_v1_nul)
{
	static const char	line[] =
	    "PROXY TCP4 192.0.2.1 192.0.2.2 1 25\0junk\r\n";
	struct proxy_result	r;

	ck_assert_int_eq(parse(line, sizeof(line) - 1, &r), PROXY_BAD);
}
END_TEST

START_TEST(test_v1_incomplete)
{
	static const char	*lines[] = {
		"PROXY TCP4 192.0.2.1 198.51.100.7 56324 25\r\n",
		"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n",
		"PROXY UNKNOWN\r\n",
	};
	struct proxy_result	r;
	size_t			i;

	for (i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		assert_prefixes_need_more(lines[i], strlen(lines[i]));
		ck_assert_int_eq(parse_str(lines[i], &r), PROXY_DONE);
	}
	/* A wrong first bytes are refused without waiting. */
	ck_assert_int_eq(parse_str("PROXX", &r), PROXY_BAD);
	ck_assert_int_eq(parse_str("PROXY\t", &r), PROXY_BAD);
	ck_assert_int_eq(parse_str("E", &r), PROXY_BAD);
}
END_TEST

/* ---- XCLIENT --------------------------------------------------------------- */

static int
xc_parse(const char *args, struct xclient *xc, char *err, size_t errsz)
{
	err[0] = '\0';
	return xclient_parse(args, xc, err, errsz);
}

/* Fails with err starting with `want`, and leaves nothing behind. */
static void
assert_xc_fails(const char *args, const char *want)
{
	struct xclient	xc, zero;
	char		err[256];

	memset(&xc, 0x5a, sizeof(xc));
	memset(&zero, 0, sizeof(zero));
	ck_assert_msg(xc_parse(args, &xc, err, sizeof(err)) == -1,
	    "accepted: %s", args);
	ck_assert_msg(strncmp(err, want, strlen(want)) == 0,
	    "%s: got \"%s\", want \"%s\"", args, err, want);
	ck_assert_msg(memcmp(&xc, &zero, sizeof(xc)) == 0, "%s: not cleared",
	    args);
}

START_TEST(test_xclient_all)
{
	struct xclient	xc;
	char		err[256];

	ck_assert_int_eq(xc_parse("ADDR=192.0.2.1 NAME=host.example.org "
	    "PORT=4242 HELO=helo.example.org LOGIN=alice PROTO=ESMTP "
	    "DESTADDR=IPV6:2001:db8::25 DESTPORT=587", &xc, err, sizeof(err)),
	    0);
	ck_assert_int_eq(xc.has_addr, 1);
	ck_assert_str_eq(xc.addr, "192.0.2.1");
	ck_assert_int_eq(xc.has_name, 1);
	ck_assert_str_eq(xc.name, "host.example.org");
	ck_assert_int_eq(xc.has_port, 1);
	ck_assert_int_eq(xc.port, 4242);
	ck_assert_int_eq(xc.has_helo, 1);
	ck_assert_str_eq(xc.helo, "helo.example.org");
	ck_assert_int_eq(xc.has_login, 1);
	ck_assert_str_eq(xc.login, "alice");
	ck_assert_int_eq(xc.has_proto, 1);
	ck_assert_int_eq(xc.esmtp, 1);
	ck_assert_int_eq(xc.has_destaddr, 1);
	ck_assert_str_eq(xc.destaddr, "2001:db8::25");
	ck_assert_int_eq(xc.has_destport, 1);
	ck_assert_int_eq(xc.destport, 587);
}
END_TEST

START_TEST(test_xclient_some)
{
	struct xclient	xc;
	char		err[256];

	/* Names in any case; tabs and runs of spaces separate. */
	ck_assert_int_eq(xc_parse("  addr=198.51.100.2\t Proto=smtp  ", &xc,
	    err, sizeof(err)), 0);
	ck_assert_int_eq(xc.has_addr, 1);
	ck_assert_str_eq(xc.addr, "198.51.100.2");
	ck_assert_int_eq(xc.has_proto, 1);
	ck_assert_int_eq(xc.esmtp, 0);
	ck_assert_int_eq(xc.has_name, 0);
	ck_assert_int_eq(xc.has_port, 0);
	ck_assert_int_eq(xc.has_helo, 0);
	ck_assert_int_eq(xc.has_login, 0);
	ck_assert_int_eq(xc.has_destaddr, 0);
	ck_assert_int_eq(xc.has_destport, 0);

	ck_assert_int_eq(xc_parse("PORT=0 DestPort=65535", &xc, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(xc.has_port, 1);
	ck_assert_int_eq(xc.port, 0);
	ck_assert_int_eq(xc.destport, 65535);
	ck_assert_int_eq(xc.has_addr, 0);
}
END_TEST

START_TEST(test_xclient_xtext)
{
	struct xclient	xc;
	char		err[256];

	ck_assert_int_eq(xc_parse("LOGIN=alice+40example.org HELO=a+2Bb+3Dc",
	    &xc, err, sizeof(err)), 0);
	ck_assert_str_eq(xc.login, "alice@example.org");
	ck_assert_str_eq(xc.helo, "a+b=c");
	/* UTF-8 login names. */
	ck_assert_int_eq(xc_parse("LOGIN=j+C3+B6rg", &xc, err, sizeof(err)),
	    0);
	ck_assert_str_eq(xc.login, "j\xc3\xb6rg");
	/* Encoded letters decode like plain ones. */
	ck_assert_int_eq(xc_parse("ADDR=192.0.2+2E1", &xc, err, sizeof(err)),
	    0);
	ck_assert_str_eq(xc.addr, "192.0.2.1");

	assert_xc_fails("LOGIN=a+4", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("LOGIN=a+", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("LOGIN=a+zz", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("LOGIN=a+4a", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("LOGIN=a+00b", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("LOGIN=a=b", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("LOGIN=a\xc3\xb6", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	/* Decoded controls: no CRLF may reach a header or a log line. */
	assert_xc_fails("LOGIN=a+0D+0Ab", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("LOGIN=a+7F", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("LOGIN=+FF", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("HELO=a+0Ab", "501 5.5.4 Bad XCLIENT attribute value: HELO");
	assert_xc_fails("HELO=a+20b", "501 5.5.4 Bad XCLIENT attribute value: HELO");
	assert_xc_fails("HELO=a+C3+B6", "501 5.5.4 Bad XCLIENT attribute value: HELO");
	assert_xc_fails("NAME=a+0A.example", "501 5.5.4 Bad XCLIENT attribute value: NAME");
}
END_TEST

START_TEST(test_xclient_addr)
{
	struct xclient	xc;
	char		err[256];

	ck_assert_int_eq(xc_parse("ADDR=IPV6:2001:DB8:0::1", &xc, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(xc.addr, "2001:db8::1");
	ck_assert_int_eq(xc_parse("ADDR=ipv6:::1", &xc, err, sizeof(err)), 0);
	ck_assert_str_eq(xc.addr, "::1");
	ck_assert_int_eq(xc_parse("ADDR=IPv6:::ffff:192.0.2.1", &xc, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(xc.addr, "::ffff:192.0.2.1");
	/* Bare IPv6, as clients older than the prefix send it. */
	ck_assert_int_eq(xc_parse("ADDR=2001:db8::2", &xc, err, sizeof(err)),
	    0);
	ck_assert_str_eq(xc.addr, "2001:db8::2");
	ck_assert_int_eq(xc_parse("DESTADDR=198.51.100.25", &xc, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(xc.destaddr, "198.51.100.25");

	assert_xc_fails("ADDR=IPV6:192.0.2.1", "501 5.5.4 Bad XCLIENT attribute value: ADDR");
	assert_xc_fails("ADDR=192.0.2", "501 5.5.4 Bad XCLIENT attribute value: ADDR");
	assert_xc_fails("ADDR=192.0.2.256", "501 5.5.4 Bad XCLIENT attribute value: ADDR");
	assert_xc_fails("ADDR=[192.0.2.1]", "501 5.5.4 Bad XCLIENT attribute value: ADDR");
	assert_xc_fails("ADDR=host.example", "501 5.5.4 Bad XCLIENT attribute value: ADDR");
	assert_xc_fails("ADDR=", "501 5.5.4 Bad XCLIENT attribute value: ADDR");
	assert_xc_fails("ADDR=IPV6:", "501 5.5.4 Bad XCLIENT attribute value: ADDR");
	assert_xc_fails("DESTADDR=1.2.3.4.5", "501 5.5.4 Bad XCLIENT attribute value: DESTADDR");
}
END_TEST

START_TEST(test_xclient_unavailable)
{
	struct xclient	xc;
	char		err[256];

	ck_assert_int_eq(xc_parse("ADDR=[UNAVAILABLE] NAME=[TEMPUNAVAIL] "
	    "PORT=[UNAVAILABLE] HELO=[unavailable] LOGIN=[UNAVAILABLE] "
	    "DESTADDR=[TempUnavail] DESTPORT=[UNAVAILABLE]", &xc, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(xc.has_addr, 1);
	ck_assert_str_eq(xc.addr, "");
	ck_assert_int_eq(xc.has_name, 1);
	ck_assert_str_eq(xc.name, "");
	ck_assert_int_eq(xc.has_port, 1);
	ck_assert_int_eq(xc.port, 0);
	ck_assert_int_eq(xc.has_helo, 1);
	ck_assert_str_eq(xc.helo, "");
	ck_assert_int_eq(xc.has_login, 1);
	ck_assert_str_eq(xc.login, "");
	ck_assert_int_eq(xc.has_destaddr, 1);
	ck_assert_str_eq(xc.destaddr, "");
	ck_assert_int_eq(xc.has_destport, 1);
	ck_assert_int_eq(xc.destport, 0);

	/* Encoded brackets are the same value. */
	ck_assert_int_eq(xc_parse("NAME=+5BUNAVAILABLE+5D", &xc, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(xc.has_name, 1);
	ck_assert_str_eq(xc.name, "");

	assert_xc_fails("PROTO=[UNAVAILABLE]", "501 5.5.4 Bad XCLIENT attribute value: PROTO");
	assert_xc_fails("NAME=[UNAVAIL]", "501 5.5.4 Bad XCLIENT attribute value: NAME");
}
END_TEST

START_TEST(test_xclient_name_helo)
{
	struct xclient	xc;
	char		err[256];

	ck_assert_int_eq(xc_parse("NAME=Mail-1.Example.ORG", &xc, err,
	    sizeof(err)), 0);
	ck_assert_str_eq(xc.name, "Mail-1.Example.ORG");
	/* HELO is what the client said, address literals included. */
	ck_assert_int_eq(xc_parse("HELO=[192.0.2.1]", &xc, err, sizeof(err)),
	    0);
	ck_assert_str_eq(xc.helo, "[192.0.2.1]");

	assert_xc_fails("NAME=-bad.example", "501 5.5.4 Bad XCLIENT attribute value: NAME");
	assert_xc_fails("NAME=bad..example", "501 5.5.4 Bad XCLIENT attribute value: NAME");
	assert_xc_fails("NAME=[192.0.2.1]", "501 5.5.4 Bad XCLIENT attribute value: NAME");
	assert_xc_fails("NAME=192.0.2.1", "501 5.5.4 Bad XCLIENT attribute value: NAME");
	assert_xc_fails("NAME=", "501 5.5.4 Bad XCLIENT attribute value: NAME");
	assert_xc_fails("HELO=", "501 5.5.4 Bad XCLIENT attribute value: HELO");
	assert_xc_fails("LOGIN=", "501 5.5.4 Bad XCLIENT attribute value: LOGIN");
	assert_xc_fails("PROTO=LMTP", "501 5.5.4 Bad XCLIENT attribute value: PROTO");
	assert_xc_fails("PROTO=", "501 5.5.4 Bad XCLIENT attribute value: PROTO");
}
END_TEST

START_TEST(test_xclient_duplicate)
{
	assert_xc_fails("ADDR=192.0.2.1 addr=192.0.2.2",
	    "501 5.5.4 Duplicate XCLIENT attribute: ADDR");
	assert_xc_fails("LOGIN=a NAME=x.example LOGIN=a",
	    "501 5.5.4 Duplicate XCLIENT attribute: LOGIN");
	assert_xc_fails("PORT=1 PORT=1",
	    "501 5.5.4 Duplicate XCLIENT attribute: PORT");
}
END_TEST

START_TEST(test_xclient_unknown)
{
	struct xclient	xc;
	char		err[256];
	char		args[128];

	ck_assert_int_eq(xc_parse("ADDR=192.0.2.1 FOO=bar", &xc, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "501 5.5.4 Bad XCLIENT attribute: FOO");
	assert_xc_fails("ADDRESS=192.0.2.1",
	    "501 5.5.4 Bad XCLIENT attribute: ADDRESS");
	assert_xc_fails("ADD=192.0.2.1", "501 5.5.4 Bad XCLIENT attribute: ADD");
	assert_xc_fails("ADDR", "501 5.5.4 Syntax: XCLIENT");
	assert_xc_fails("=192.0.2.1", "501 5.5.4 Syntax: XCLIENT");
	assert_xc_fails("", "501 5.5.4 Syntax: XCLIENT");
	assert_xc_fails("   ", "501 5.5.4 Syntax: XCLIENT");

	/* The echoed name is bounded and printable. */
	memset(args, 'A', 100);
	memcpy(args + 100, "=x", 3);
	ck_assert_int_eq(xc_parse(args, &xc, err, sizeof(err)), -1);
	ck_assert_uint_eq(strlen(err), strlen("501 5.5.4 Bad XCLIENT "
	    "attribute: ") + 32);
	ck_assert_int_eq(xc_parse("N\x01ME\x7f=x", &xc, err, sizeof(err)),
	    -1);
	ck_assert_str_eq(err, "501 5.5.4 Bad XCLIENT attribute: N?ME?");

	/* A small error buffer is filled, terminated, never overrun. */
	{
		char	small[12];

		memset(small, 'x', sizeof(small));
		ck_assert_int_eq(xclient_parse("FOO=1", &xc, small,
		    sizeof(small)), -1);
		ck_assert_str_eq(small, "501 5.5.4 B");
	}
}
END_TEST

START_TEST(test_xclient_port)
{
	assert_xc_fails("PORT=65536", "501 5.5.4 Bad XCLIENT attribute value: PORT");
	assert_xc_fails("PORT=-1", "501 5.5.4 Bad XCLIENT attribute value: PORT");
	assert_xc_fails("PORT=+2B1", "501 5.5.4 Bad XCLIENT attribute value: PORT");
	assert_xc_fails("PORT=", "501 5.5.4 Bad XCLIENT attribute value: PORT");
	assert_xc_fails("PORT=12a", "501 5.5.4 Bad XCLIENT attribute value: PORT");
	assert_xc_fails("PORT=123456", "501 5.5.4 Bad XCLIENT attribute value: PORT");
	assert_xc_fails("PORT=99999999999999999999", "501 5.5.4 Bad XCLIENT attribute value: PORT");
	assert_xc_fails("DESTPORT=0x19", "501 5.5.4 Bad XCLIENT attribute value: DESTPORT");
}
END_TEST

START_TEST(test_xclient_overlong)
{
	struct xclient	xc;
	char		err[256];
	char		args[1200];
	size_t		n;

	/* 255 octets is the most; 256 is refused. */
	n = (size_t)snprintf(args, sizeof(args), "HELO=");
	memset(args + n, 'h', 255);
	args[n + 255] = '\0';
	ck_assert_int_eq(xc_parse(args, &xc, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(xc.helo), 255);
	args[n + 255] = 'h';
	args[n + 256] = '\0';
	assert_xc_fails(args, "501 5.5.4 Bad XCLIENT attribute value: HELO");

	/* Counted once decoded: 255 "+41" fit, 256 do not. */
	n = (size_t)snprintf(args, sizeof(args), "LOGIN=");
	for (; n + 3 < 6 + 3 * 255 + 1; n += 3)
		memcpy(args + n, "+41", 3);
	args[n] = '\0';
	ck_assert_int_eq(xc_parse(args, &xc, err, sizeof(err)), 0);
	ck_assert_uint_eq(strlen(xc.login), 255);
	memcpy(args + n, "+41", 4);
	assert_xc_fails(args, "501 5.5.4 Bad XCLIENT attribute value: LOGIN");

	/* Far too long raw text. */
	n = (size_t)snprintf(args, sizeof(args), "NAME=");
	memset(args + n, 'a', sizeof(args) - n - 1);
	args[sizeof(args) - 1] = '\0';
	assert_xc_fails(args, "501 5.5.4 Bad XCLIENT attribute value: NAME");
}
END_TEST

/* ---- suite ---------------------------------------------------------------- */

static Suite *
proxy_suite(void)
{
	Suite	*s = suite_create("proxy");
	TCase	*tc;

	tc = tcase_create("v2");
	tcase_add_test(tc, test_v2_tcp4);
	tcase_add_test(tc, test_v2_tcp4_tlvs);
	tcase_add_test(tc, test_v2_tcp6);
	tcase_add_test(tc, test_v2_local);
	tcase_add_test(tc, test_v2_unspec);
	tcase_add_test(tc, test_v2_unix_and_dgram);
	tcase_add_test(tc, test_v2_truncated);
	tcase_add_test(tc, test_v2_bad_signature);
	tcase_add_test(tc, test_v2_bad_version_command);
	tcase_add_test(tc, test_v2_bad_family);
	tcase_add_test(tc, test_v2_length_limit);
	tcase_add_test(tc, test_v2_short_address);
	tcase_add_test(tc, test_v2_bad_tlvs);
	tcase_add_test(tc, test_v2_crc32c);
	suite_add_tcase(s, tc);

	tc = tcase_create("v1");
	tcase_add_test(tc, test_v1_tcp4);
	tcase_add_test(tc, test_v1_tcp6);
	tcase_add_test(tc, test_v1_unknown);
	tcase_add_test(tc, test_v1_too_long);
	tcase_add_test(tc, test_v1_bad);
	tcase_add_test(tc, test_v1_nul);
	tcase_add_test(tc, test_v1_incomplete);
	suite_add_tcase(s, tc);

	tc = tcase_create("xclient");
	tcase_add_test(tc, test_xclient_all);
	tcase_add_test(tc, test_xclient_some);
	tcase_add_test(tc, test_xclient_xtext);
	tcase_add_test(tc, test_xclient_addr);
	tcase_add_test(tc, test_xclient_unavailable);
	tcase_add_test(tc, test_xclient_name_helo);
	tcase_add_test(tc, test_xclient_duplicate);
	tcase_add_test(tc, test_xclient_unknown);
	tcase_add_test(tc, test_xclient_port);
	tcase_add_test(tc, test_xclient_overlong);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(proxy_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
