#include "autoconf.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <stdint.h>
#include <string.h>

#include "smtp_proxy.h"

/* ---- version 2 ------------------------------------------------------------ */

#define V2_SIG_LEN		12
#define V2_OFF_VERCMD		12
#define V2_OFF_FAM		13
#define V2_OFF_LEN		14

#define V2_VERSION		0x2
#define V2_CMD_LOCAL		0x0
#define V2_CMD_PROXY		0x1

#define V2_FAM_UNSPEC		0x0
#define V2_FAM_INET		0x1
#define V2_FAM_INET6		0x2
#define V2_FAM_UNIX		0x3

#define V2_PROTO_UNSPEC		0x0
#define V2_PROTO_STREAM		0x1
#define V2_PROTO_DGRAM		0x2

#define V2_ADDRLEN_INET		(2 * 4 + 2 * 2)
#define V2_ADDRLEN_INET6	(2 * 16 + 2 * 2)
#define V2_ADDRLEN_UNIX		(2 * 108)

#define PP2_TLV_HDR		3
#define PP2_TYPE_CRC32C		0x03
#define PP2_CRC32C_LEN		4

static const unsigned char v2_sig[V2_SIG_LEN] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};

static size_t
min_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static unsigned int
be16(const unsigned char *p)
{
	return (unsigned int)p[0] << 8 | p[1];
}

static uint32_t
be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | p[3];
}

/* CRC32c (Castagnoli, RFC 4960 appendix B), bitwise: headers are short. */
static uint32_t
crc32c_update(uint32_t crc, const unsigned char *p, size_t len)
{
	int	k;

	while (len-- > 0) {
		crc ^= *p++;
		for (k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0x82f63b78U & (0U - (crc & 1)));
	}
	return crc;
}

/* The spec: the checksum is computed with its own field set to zeros. */
static int
v2_crc_matches(const unsigned char *hdr, size_t total, size_t valoff)
{
	static const unsigned char	 zeros[PP2_CRC32C_LEN];
	uint32_t			 crc = 0xffffffffU;

	crc = crc32c_update(crc, hdr, valoff);
	crc = crc32c_update(crc, zeros, sizeof(zeros));
	crc = crc32c_update(crc, hdr + valoff + PP2_CRC32C_LEN,
	    total - valoff - PP2_CRC32C_LEN);
	return ~crc == be32(hdr + valoff);
}

/* The TLVs from `off` must tile the rest of the header exactly. */
static int
v2_tlvs_valid(const unsigned char *hdr, size_t total, size_t off)
{
	unsigned int	type;
	size_t		vlen;

	while (off < total) {
		if (total - off < PP2_TLV_HDR)
			return 0;
		type = hdr[off];
		vlen = be16(hdr + off + 1);
		off += PP2_TLV_HDR;
		if (vlen > total - off)
			return 0;
		if (type == PP2_TYPE_CRC32C && (vlen != PP2_CRC32C_LEN ||
		    !v2_crc_matches(hdr, total, off)))
			return 0;
		off += vlen;
	}
	return 1;
}

/*
 * Checks the fixed part as far as it has arrived, so that garbage is refused
 * at once rather than after a wait for bytes that will never make sense.
 */
static enum proxy_status
v2_check_fixed(const unsigned char *buf, size_t len, size_t *total)
{
	unsigned int	vercmd, fam;
	size_t		addrlen;

	if (memcmp(buf, v2_sig, min_size(len, V2_SIG_LEN)) != 0)
		return PROXY_BAD;
	if (len > V2_OFF_VERCMD) {
		vercmd = buf[V2_OFF_VERCMD];
		if (vercmd >> 4 != V2_VERSION || (vercmd & 0xf) > V2_CMD_PROXY)
			return PROXY_BAD;
	}
	if (len > V2_OFF_FAM) {
		fam = buf[V2_OFF_FAM];
		if (fam >> 4 > V2_FAM_UNIX || (fam & 0xf) > V2_PROTO_DGRAM)
			return PROXY_BAD;
	}
	if (len < PROXY_V2_HDR_MIN)
		return PROXY_NEED_MORE;
	addrlen = be16(buf + V2_OFF_LEN);
	if (addrlen > PROXY_V2_MAX - PROXY_V2_HDR_MIN)
		return PROXY_BAD;
	*total = PROXY_V2_HDR_MIN + addrlen;
	if (len < *total)
		return PROXY_NEED_MORE;
	return PROXY_DONE;
}

/* Size of the address block, or 0 when it is not understood (UNSPEC). */
static size_t
v2_addr_size(unsigned int fam, unsigned int proto)
{
	if (proto == V2_PROTO_UNSPEC)
		return 0;
	switch (fam) {
	case V2_FAM_INET:
		return V2_ADDRLEN_INET;
	case V2_FAM_INET6:
		return V2_ADDRLEN_INET6;
	case V2_FAM_UNIX:
		return V2_ADDRLEN_UNIX;
	default:
		return 0;
	}
}

static void
v2_set_inet(const unsigned char *a, struct proxy_result *r)
{
	struct sockaddr_in	*src = (struct sockaddr_in *)&r->src;
	struct sockaddr_in	*dst = (struct sockaddr_in *)&r->dst;

	src->sin_family = dst->sin_family = AF_INET;
	memcpy(&src->sin_addr, a, 4);
	memcpy(&dst->sin_addr, a + 4, 4);
	memcpy(&src->sin_port, a + 8, 2);	/* both in network order */
	memcpy(&dst->sin_port, a + 10, 2);
	r->srclen = r->dstlen = sizeof(struct sockaddr_in);
}

static void
v2_set_inet6(const unsigned char *a, struct proxy_result *r)
{
	struct sockaddr_in6	*src = (struct sockaddr_in6 *)&r->src;
	struct sockaddr_in6	*dst = (struct sockaddr_in6 *)&r->dst;

	src->sin6_family = dst->sin6_family = AF_INET6;
	memcpy(&src->sin6_addr, a, 16);
	memcpy(&dst->sin6_addr, a + 16, 16);
	memcpy(&src->sin6_port, a + 32, 2);
	memcpy(&dst->sin6_port, a + 34, 2);
	r->srclen = r->dstlen = sizeof(struct sockaddr_in6);
}

static enum proxy_status
v2_parse(const unsigned char *buf, size_t len, struct proxy_result *r)
{
	enum proxy_status	 st;
	unsigned int		 fam, proto;
	size_t			 total = 0, need;

	if ((st = v2_check_fixed(buf, len, &total)) != PROXY_DONE)
		return st;
	r->consumed = total;

	/* LOCAL: the spec says to skip the block, family included, unread. */
	if ((buf[V2_OFF_VERCMD] & 0xf) == V2_CMD_LOCAL) {
		r->local = 1;
		return PROXY_DONE;
	}
	fam = buf[V2_OFF_FAM] >> 4;
	proto = buf[V2_OFF_FAM] & 0xf;
	if ((need = v2_addr_size(fam, proto)) == 0) {
		r->local = 1;
		return PROXY_DONE;
	}
	if (total - PROXY_V2_HDR_MIN < need ||
	    !v2_tlvs_valid(buf, total, PROXY_V2_HDR_MIN + need)) {
		r->consumed = 0;
		return PROXY_BAD;
	}

	if (proto != V2_PROTO_STREAM || fam == V2_FAM_UNIX)
		r->local = 1;
	else if (fam == V2_FAM_INET)
		v2_set_inet(buf + PROXY_V2_HDR_MIN, r);
	else
		v2_set_inet6(buf + PROXY_V2_HDR_MIN, r);
	return PROXY_DONE;
}

/* ---- version 1 ------------------------------------------------------------ */

#define V1_PREFIX	"PROXY "
#define V1_UNKNOWN	"PROXY UNKNOWN"
#define V1_FIELDS	6	/* PROXY proto src dst sport dport */

/* Decimal 0..65535, no sign, no leading zero but for "0" itself. */
static int
v1_port(const char *s, in_port_t *port)
{
	size_t		len = strlen(s), i;
	unsigned long	v = 0;

	if (len == 0 || len > 5 || (s[0] == '0' && len > 1))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port = htons((uint16_t)v);
	return 0;
}

/* One address and its port, of the family the line announced. */
static int
v1_sockaddr(int af, const char *addr, const char *port,
    struct sockaddr_storage *ss, socklen_t *sslen)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;

	if (af == AF_INET) {
		sin->sin_family = AF_INET;
		*sslen = sizeof(*sin);
		if (inet_pton(AF_INET, addr, &sin->sin_addr) != 1)
			return -1;
		return v1_port(port, &sin->sin_port);
	}
	sin6->sin6_family = AF_INET6;
	*sslen = sizeof(*sin6);
	if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) != 1)
		return -1;
	return v1_port(port, &sin6->sin6_port);
}

/* "PROXY TCP4|TCP6 src dst sport dport", exactly one space between fields. */
static enum proxy_status
v1_parse_tcp(const unsigned char *buf, size_t linelen, struct proxy_result *r)
{
	char		 line[PROXY_V1_MAX + 1], *p, *f[V1_FIELDS];
	size_t		 i, n = 0;
	int		 af;

	if (linelen >= sizeof(line))
		return PROXY_BAD;
	/* Printable ASCII only: no NUL may cut a field short unseen. */
	for (i = 0; i < linelen; i++)
		if (buf[i] < 0x20 || buf[i] > 0x7e)
			return PROXY_BAD;
	memcpy(line, buf, linelen);
	line[linelen] = '\0';

	for (p = line; p != NULL; ) {
		if (n == V1_FIELDS)
			return PROXY_BAD;
		f[n] = strsep(&p, " ");
		if (*f[n++] == '\0')
			return PROXY_BAD;
	}
	if (n != V1_FIELDS)
		return PROXY_BAD;
	if (strcmp(f[1], "TCP4") == 0)
		af = AF_INET;
	else if (strcmp(f[1], "TCP6") == 0)
		af = AF_INET6;
	else
		return PROXY_BAD;
	if (v1_sockaddr(af, f[2], f[4], &r->src, &r->srclen) == -1 ||
	    v1_sockaddr(af, f[3], f[5], &r->dst, &r->dstlen) == -1)
		return PROXY_BAD;
	return PROXY_DONE;
}

static enum proxy_status
v1_parse_line(const unsigned char *buf, size_t linelen, struct proxy_result *r)
{
	size_t			ulen = sizeof(V1_UNKNOWN) - 1;
	enum proxy_status	st;

	/* The spec: after UNKNOWN, anything up to CRLF is ignored. */
	if (linelen >= ulen && memcmp(buf, V1_UNKNOWN, ulen) == 0 &&
	    (linelen == ulen || buf[ulen] == ' ')) {
		r->local = 1;
		r->consumed = linelen + 2;
		return PROXY_DONE;
	}
	if ((st = v1_parse_tcp(buf, linelen, r)) != PROXY_DONE) {
		memset(r, 0, sizeof(*r));
		return st;
	}
	r->consumed = linelen + 2;
	return PROXY_DONE;
}

/*
 * The line must end with CRLF within PROXY_V1_MAX bytes; a lone CR or LF is
 * refused as soon as it is seen.
 */
static enum proxy_status
v1_parse(const unsigned char *buf, size_t len, struct proxy_result *r)
{
	size_t	i, scan = min_size(len, PROXY_V1_MAX);

	if (memcmp(buf, V1_PREFIX, min_size(len, sizeof(V1_PREFIX) - 1)) != 0)
		return PROXY_BAD;
	for (i = 0; i < scan; i++) {
		if (buf[i] == '\n')
			return PROXY_BAD;
		if (buf[i] != '\r')
			continue;
		if (i + 1 >= PROXY_V1_MAX)
			return PROXY_BAD;
		if (i + 1 == len)
			return PROXY_NEED_MORE;
		if (buf[i + 1] != '\n')
			return PROXY_BAD;
		return v1_parse_line(buf, i, r);
	}
	return len >= PROXY_V1_MAX ? PROXY_BAD : PROXY_NEED_MORE;
}

/* ---- either ---------------------------------------------------------------- */

enum proxy_status
proxy_v2_parse(const unsigned char *buf, size_t len, struct proxy_result *r)
{
	memset(r, 0, sizeof(*r));
	if (len == 0)
		return PROXY_NEED_MORE;
	if (buf[0] == v2_sig[0])
		return v2_parse(buf, len, r);
	if (buf[0] == V1_PREFIX[0])
		return v1_parse(buf, len, r);
	return PROXY_BAD;
}
