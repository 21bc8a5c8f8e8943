/*
 * Server side of SMTP AUTH (RFC 4954): the SASL PLAIN (RFC 4616) and LOGIN
 * exchanges as a pure state machine, without I/O.  The session feeds it the
 * AUTH arguments and the client's continuation lines; it answers with the
 * next challenge, or the credentials to verify, or the error to report.
 */
#ifndef MTAD_SMTP_AUTH_H
#define MTAD_SMTP_AUTH_H

#include <stddef.h>

#define AUTH_USER_MAX		256	/* authcid, NUL included */
#define AUTH_PASS_MAX		256
#define SASL_LINE_MAX		2048	/* a base64 line from the client */
/* Enough for every challenge sasl_start/sasl_step write, NUL included. */
#define SASL_CHALLENGE_MAX	64

enum sasl_mech { SASL_NONE = 0, SASL_PLAIN, SASL_LOGIN };

enum sasl_status {
	SASL_CONTINUE,	/* send "334 " + challenge (base64, may be empty) */
	SASL_DONE,	/* user/pass are set: verify them */
	SASL_BADMECH,	/* 504 5.5.4 Unrecognized authentication type */
	SASL_BADINPUT,	/* 501 5.5.2 Cannot decode response */
	SASL_CANCEL	/* the client sent "*": 501 5.7.0 Authentication cancelled */
};

struct sasl {
	enum sasl_mech	mech;
	int		step;
	char		user[AUTH_USER_MAX];
	char		pass[AUTH_PASS_MAX];
};

/*
 * AUTH <mech> [initial-response].  `initial` is NULL when absent; "=" is
 * an empty initial response (RFC 4954 4).  The mechanism name is
 * case-insensitive.  Any status but SASL_CONTINUE and SASL_DONE leaves
 * the state cleared.
 */
enum sasl_status sasl_start(struct sasl *, const char *mech,
		    const char *initial, char *challenge, size_t challengesz);
/* A continuation line from the client (CRLF stripped). */
enum sasl_status sasl_step(struct sasl *, const char *line,
		    char *challenge, size_t challengesz);
/* Wipes the secrets (and the rest of the state). */
void		 sasl_clear(struct sasl *);

/*
 * Base64 (RFC 4648), strict: padding required, no white space, no bits
 * set past the data.  -1 on bad input or if out is too small.  The decoded
 * output is NUL-terminated (it may hold NULs itself), *outlen its length
 * without the terminator.  base64_encode_str returns the encoded length.
 */
int	base64_decode_str(const char *in, unsigned char *out, size_t outsz,
	    size_t *outlen);
int	base64_encode_str(const unsigned char *in, size_t inlen, char *out,
	    size_t outsz);

#endif
