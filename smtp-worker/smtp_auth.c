#include "autoconf.h"

#include <limits.h>
#include <string.h>
#include <strings.h>

#include "smtp_auth.h"

/*
 * Where an exchange stands.  The struct keeps an int so that a zeroed
 * struct sasl (SASL_NONE, step 0) is a valid idle state.
 */
#define STEP_IDLE	0
#define STEP_RESPONSE	1	/* PLAIN: the message; LOGIN: the user name */
#define STEP_PASSWORD	2	/* LOGIN: the password */
#define STEP_DONE	3

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int	b64_value(unsigned char);
static enum sasl_status	fail(struct sasl *, enum sasl_status);
static int	set_challenge(char *, size_t, const char *);
static int	decode_response(const char *, unsigned char *, size_t,
		    size_t *);
static int	valid_user(const unsigned char *, size_t);
static enum sasl_status	plain_message(struct sasl *, const unsigned char *,
		    size_t);
static enum sasl_status	plain_response(struct sasl *, const char *);
static enum sasl_status	login_user(struct sasl *, const char *, char *,
		    size_t);
static enum sasl_status	login_pass(struct sasl *, const char *);

/* ---- base64 ---------------------------------------------------------- */

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/*
 * Strict on purpose: a lax decoder (skipping junk, accepting missing
 * padding or stray bits) would let two different lines mean the same
 * credentials, and hide a broken client behind a wrong-password error.
 */
int
base64_decode_str(const char *in, unsigned char *out, size_t outsz,
    size_t *outlen)
{
	size_t	inlen, need, pad = 0, i, n = 0;
	int	v[4], k, last;

	inlen = strlen(in);
	if (inlen % 4 != 0)
		return -1;
	if (inlen > 0 && in[inlen - 1] == '=')
		pad++;
	if (pad == 1 && inlen > 1 && in[inlen - 2] == '=')
		pad++;
	need = inlen / 4 * 3 - pad;
	if (need >= outsz)
		return -1;

	for (i = 0; i < inlen; i += 4) {
		last = i + 4 == inlen;
		for (k = 0; k < 4; k++) {
			if (last && k >= 4 - (int)pad)
				v[k] = 0;
			else if ((v[k] = b64_value((unsigned char)in[i + k]))
			    == -1)
				return -1;
		}
		out[n++] = (unsigned char)(v[0] << 2 | v[1] >> 4);
		if (last && pad == 2) {
			if (v[1] & 0x0f)
				return -1;
			break;
		}
		out[n++] = (unsigned char)((v[1] & 0x0f) << 4 | v[2] >> 2);
		if (last && pad == 1) {
			if (v[2] & 0x03)
				return -1;
			break;
		}
		out[n++] = (unsigned char)((v[2] & 0x03) << 6 | v[3]);
	}
	out[n] = '\0';
	*outlen = n;
	return 0;
}

int
base64_encode_str(const unsigned char *in, size_t inlen, char *out,
    size_t outsz)
{
	size_t		i, n = 0;
	unsigned int	w;

	if (inlen / 3 >= INT_MAX / 4 - 1)
		return -1;
	if ((inlen + 2) / 3 * 4 >= outsz)
		return -1;
	for (i = 0; i + 2 < inlen; i += 3) {
		w = (unsigned int)in[i] << 16 | (unsigned int)in[i + 1] << 8 |
		    in[i + 2];
		out[n++] = b64_alphabet[w >> 18 & 0x3f];
		out[n++] = b64_alphabet[w >> 12 & 0x3f];
		out[n++] = b64_alphabet[w >> 6 & 0x3f];
		out[n++] = b64_alphabet[w & 0x3f];
	}
	if (i < inlen) {
		w = (unsigned int)in[i] << 16;
		if (i + 1 < inlen)
			w |= (unsigned int)in[i + 1] << 8;
		out[n++] = b64_alphabet[w >> 18 & 0x3f];
		out[n++] = b64_alphabet[w >> 12 & 0x3f];
		out[n++] = i + 1 < inlen ? b64_alphabet[w >> 6 & 0x3f] : '=';
		out[n++] = '=';
	}
	out[n] = '\0';
	return (int)n;
}

/* ---- SASL ------------------------------------------------------------ */

void
sasl_clear(struct sasl *s)
{
	explicit_bzero(s, sizeof(*s));
}

static enum sasl_status
fail(struct sasl *s, enum sasl_status status)
{
	sasl_clear(s);
	return status;
}

/* The challenge as the client sees it: base64 of `text`. */
static int
set_challenge(char *challenge, size_t challengesz, const char *text)
{
	if (challenge == NULL || challengesz == 0)
		return -1;
	if (base64_encode_str((const unsigned char *)text, strlen(text),
	    challenge, challengesz) == -1)
		return -1;
	return 0;
}

/* A client response, bounded by SASL_LINE_MAX, into out[SASL_LINE_MAX]. */
static int
decode_response(const char *line, unsigned char *out, size_t outsz,
    size_t *outlen)
{
	if (line == NULL || strnlen(line, SASL_LINE_MAX) >= SASL_LINE_MAX)
		return -1;
	return base64_decode_str(line, out, outsz, outlen);
}

/*
 * The user name ends up in logs, in Received: headers and in the policy
 * request: control characters have no business there.  Its length must
 * leave room for the NUL.
 */
static int
valid_user(const unsigned char *u, size_t len)
{
	size_t	i;

	if (len == 0 || len >= AUTH_USER_MAX)
		return 0;
	for (i = 0; i < len; i++)
		if (u[i] < 0x20 || u[i] == 0x7f)
			return 0;
	return 1;
}

/*
 * RFC 4616: [authzid] NUL authcid NUL passwd.  We do not act for another
 * identity, so an authzid must name the authcid itself (user names are
 * case-insensitive here, as in the credentials table).
 */
static enum sasl_status
plain_message(struct sasl *s, const unsigned char *msg, size_t len)
{
	const unsigned char	*authcid, *passwd, *nul;
	size_t			 zlen, clen, plen;

	if ((nul = memchr(msg, '\0', len)) == NULL)
		return SASL_BADINPUT;
	zlen = (size_t)(nul - msg);
	authcid = nul + 1;
	if ((nul = memchr(authcid, '\0', len - zlen - 1)) == NULL)
		return SASL_BADINPUT;
	clen = (size_t)(nul - authcid);
	passwd = nul + 1;
	plen = len - zlen - clen - 2;
	if (memchr(passwd, '\0', plen) != NULL)
		return SASL_BADINPUT;
	if (!valid_user(authcid, clen) || plen == 0 || plen >= AUTH_PASS_MAX)
		return SASL_BADINPUT;
	if (zlen != 0 && (zlen != clen || strncasecmp((const char *)msg,
	    (const char *)authcid, clen) != 0))
		return SASL_BADINPUT;
	memcpy(s->user, authcid, clen);
	s->user[clen] = '\0';
	memcpy(s->pass, passwd, plen);
	s->pass[plen] = '\0';
	s->step = STEP_DONE;
	return SASL_DONE;
}

static enum sasl_status
plain_response(struct sasl *s, const char *line)
{
	unsigned char		buf[SASL_LINE_MAX];
	size_t			len;
	enum sasl_status	status;

	if (decode_response(line, buf, sizeof(buf), &len) == -1)
		status = SASL_BADINPUT;
	else
		status = plain_message(s, buf, len);
	explicit_bzero(buf, sizeof(buf));
	return status;
}

static enum sasl_status
login_user(struct sasl *s, const char *line, char *challenge,
    size_t challengesz)
{
	unsigned char	buf[SASL_LINE_MAX];
	size_t		len;

	if (decode_response(line, buf, sizeof(buf), &len) == -1 ||
	    !valid_user(buf, len))
		return SASL_BADINPUT;
	memcpy(s->user, buf, len + 1);
	if (set_challenge(challenge, challengesz, "Password:") == -1)
		return SASL_BADINPUT;
	s->step = STEP_PASSWORD;
	return SASL_CONTINUE;
}

static enum sasl_status
login_pass(struct sasl *s, const char *line)
{
	unsigned char		buf[SASL_LINE_MAX];
	size_t			len;
	enum sasl_status	status = SASL_BADINPUT;

	if (decode_response(line, buf, sizeof(buf), &len) == 0 &&
	    len < AUTH_PASS_MAX && memchr(buf, '\0', len) == NULL) {
		memcpy(s->pass, buf, len + 1);
		s->step = STEP_DONE;
		status = SASL_DONE;
	}
	explicit_bzero(buf, sizeof(buf));
	return status;
}

enum sasl_status
sasl_start(struct sasl *s, const char *mech, const char *initial,
    char *challenge, size_t challengesz)
{
	enum sasl_status	status;

	sasl_clear(s);
	if (mech == NULL)
		return SASL_BADMECH;
	if (strcasecmp(mech, "PLAIN") == 0)
		s->mech = SASL_PLAIN;
	else if (strcasecmp(mech, "LOGIN") == 0)
		s->mech = SASL_LOGIN;
	else
		return SASL_BADMECH;
	s->step = STEP_RESPONSE;

	/* RFC 4954 4: "=" sends a response of zero length. */
	if (initial != NULL && strcmp(initial, "=") == 0)
		initial = "";

	if (initial == NULL) {
		/* PLAIN asks with an empty challenge: "334 ". */
		if (set_challenge(challenge, challengesz,
		    s->mech == SASL_PLAIN ? "" : "Username:") == -1)
			return fail(s, SASL_BADINPUT);
		return SASL_CONTINUE;
	}
	/*
	 * LOGIN has no initial response in its definition, but clients send
	 * the user name there and servers (Postfix, Cyrus) take it.
	 */
	if (s->mech == SASL_PLAIN)
		status = plain_response(s, initial);
	else
		status = login_user(s, initial, challenge, challengesz);
	if (status != SASL_CONTINUE && status != SASL_DONE)
		return fail(s, status);
	return status;
}

enum sasl_status
sasl_step(struct sasl *s, const char *line, char *challenge,
    size_t challengesz)
{
	enum sasl_status	status;

	if (line != NULL && strcmp(line, "*") == 0)
		return fail(s, SASL_CANCEL);

	if (s->mech == SASL_PLAIN && s->step == STEP_RESPONSE)
		status = plain_response(s, line);
	else if (s->mech == SASL_LOGIN && s->step == STEP_RESPONSE)
		status = login_user(s, line, challenge, challengesz);
	else if (s->mech == SASL_LOGIN && s->step == STEP_PASSWORD)
		status = login_pass(s, line);
	else
		status = SASL_BADINPUT;		/* no exchange under way */
	if (status != SASL_CONTINUE && status != SASL_DONE)
		return fail(s, status);
	return status;
}
