/*
 * PROXY protocol (HAProxy's proxy-protocol.txt), versions 1 (text) and 2
 * (binary), as a load balancer in front of a listener sends it before the
 * client's first byte.  Free of I/O: the session feeds what it has read so
 * far and learns whether a header is complete, still partial, or refused.
 */
#ifndef MTAD_SMTP_PROXY_H
#define MTAD_SMTP_PROXY_H

#include <sys/types.h>
#include <sys/socket.h>
#include <stddef.h>

#define PROXY_V2_HDR_MIN	16
#define PROXY_V2_MAX		(16 + 1024)	/* we refuse longer TLV sections */
#define PROXY_V1_MAX		107		/* the spec's longest line, CRLF included */
/* Read no more than this before a verdict: either version fits. */
#define PROXY_HDR_MAX		PROXY_V2_MAX

enum proxy_status { PROXY_NEED_MORE, PROXY_DONE, PROXY_BAD };

struct proxy_result {
	int			 local;	/* LOCAL command (health check): keep the real peer address */
	struct sockaddr_storage	 src, dst;	/* valid when !local and family is INET/INET6 */
	socklen_t		 srclen, dstlen;
	size_t			 consumed;	/* bytes of header to drop from the input */
};

/*
 * Looks at the first `len` bytes the client sent (the result is cleared
 * first).  A buffer that starts with the version 2 signature is parsed as
 * version 2, one that starts with "PROXY " as version 1.
 *
 * PROXY_NEED_MORE: the bytes are a valid beginning of a header.
 * PROXY_DONE: the header is complete and valid; `consumed` says how long it
 * is, and bytes after it (the client's own) are not looked at.
 * PROXY_BAD: anything else, to be answered by closing the connection.
 *
 * `local` is set, and the real peer address is to be kept, for:
 *   v2 LOCAL (address block skipped unread),
 *   v2 PROXY with family or transport UNSPEC (address block skipped unread),
 *   v2 PROXY over AF_UNIX, or over DGRAM (not an SMTP peer: the spec's
 *     fall-back to UNSPEC for a combination that a receiver does not support),
 *   v1 "PROXY UNKNOWN" (whatever follows up to CRLF is ignored).
 * Version 2 headers whose address block is understood have their TLVs
 * bounds-checked, and a PP2_TYPE_CRC32C TLV verified.
 */
enum proxy_status	proxy_v2_parse(const unsigned char *buf, size_t len,
			    struct proxy_result *);

#endif
