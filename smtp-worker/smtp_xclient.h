/*
 * Postfix's XCLIENT extension (XCLIENT_README): a trusted proxy or content
 * filter tells the server who the real client is.  Parsing only; who may
 * send XCLIENT, and resetting the session after it, is the session's job.
 */
#ifndef MTAD_SMTP_XCLIENT_H
#define MTAD_SMTP_XCLIENT_H

#include <stddef.h>

/* The attributes supported, for the EHLO keyword line "XCLIENT ...". */
#define XCLIENT_ATTRIBUTES	"ADDR NAME PORT HELO LOGIN PROTO DESTADDR DESTPORT"

struct xclient {
	int	has_addr;  char addr[64];	/* numeric, IPv6 without the "IPV6:" prefix; "" if [UNAVAILABLE]/[TEMPUNAVAIL] */
	int	has_name;  char name[256];	/* [UNAVAILABLE]/[TEMPUNAVAIL] become "" */
	int	has_port;  int  port;		/* 0 if [UNAVAILABLE]/[TEMPUNAVAIL] */
	int	has_helo;  char helo[256];	/* [UNAVAILABLE]/[TEMPUNAVAIL] become "" */
	int	has_login; char login[256];	/* "" means logged out */
	int	has_proto; int  esmtp;		/* PROTO=SMTP|ESMTP */
	int	has_destaddr; char destaddr[64];
	int	has_destport; int destport;
};

/*
 * Parses the argument string of an XCLIENT command:
 * "ADDR=1.2.3.4 NAME=host.example PORT=4242 HELO=x LOGIN=user PROTO=ESMTP
 * DESTADDR=... DESTPORT=...", attributes separated by spaces or tabs.
 *
 * Names are case-insensitive; values are RFC 3461 xtext ("+HH", upper-case
 * hex, no "+00"), at most 255 octets once decoded.  [UNAVAILABLE] and
 * [TEMPUNAVAIL] (any case) are accepted for every attribute but PROTO.
 * ADDR and DESTADDR: an IPv4 address, or IPv6 with the "IPV6:" prefix (any
 * case; a bare IPv6 address is accepted too), stored in canonical form.
 * NAME: a hostname (LDH labels, not an address).  HELO: printable ASCII
 * without spaces.  LOGIN: UTF-8 without control characters.  PORT and
 * DESTPORT: decimal 0..65535.  An unknown attribute, one given twice, or a
 * bad value fails the whole command.
 *
 * Returns 0 with *xc filled, or -1 with *xc cleared and a complete SMTP
 * reply in err ("501 5.5.4 Bad XCLIENT attribute: FOO").
 */
int	xclient_parse(const char *args, struct xclient *xc, char *err,
	    size_t errsz);

#endif
