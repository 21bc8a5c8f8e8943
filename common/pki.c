#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "pki.h"

/*
 * The Mozilla "intermediate" TLS 1.2 list: ECDHE (forward secrecy) with
 * AEAD only.  TLS 1.3 suites are all acceptable and keep OpenSSL's order.
 */
#define TLS12_CIPHERS	"ECDHE-ECDSA-AES128-GCM-SHA256:" \
	"ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:" \
	"ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:" \
	"ECDHE-RSA-CHACHA20-POLY1305"

static void
ssl_error(const char *what, const char *file, char *err, size_t errsz)
{
	unsigned long	 e = ERR_peek_last_error();
	char		 buf[256];

	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		(void)strlcpy(buf, "unknown error", sizeof(buf));
	ERR_clear_error();
	(void)snprintf(err, errsz, "%s %s: %s", what, file, buf);
}

/*
 * Takes the queued errors: 1 if "key values mismatch" is among them (the
 * key is fine, just not this certificate's), and the last one in buf.
 */
static int
take_errors(char *buf, size_t bufsz)
{
	unsigned long	 e, last = 0;
	int		 mismatch = 0;

	while ((e = ERR_get_error()) != 0) {
		if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			mismatch = 1;
		last = e;
	}
	if (last != 0)
		ERR_error_string_n(last, buf, bufsz);
	else
		(void)strlcpy(buf, "unknown error", bufsz);
	return mismatch;
}

static int
ctx_load(SSL_CTX *ctx, const char *cert, const char *key, char *err,
    size_t errsz)
{
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		ssl_error("cannot load certificate", cert, err, errsz);
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		char	 why[256];

		if (take_errors(why, sizeof(why)))
			(void)snprintf(err, errsz, "key %s does not match "
			    "certificate %s", key, cert);
		else
			(void)snprintf(err, errsz, "cannot load key %s: %s", key,
			    why);
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		ssl_error("key does not match certificate", cert, err, errsz);
		return -1;
	}
	return 0;
}

int
pki_load_check(const char *cert, const char *key, char *err, size_t errsz)
{
	SSL_CTX	*ctx;
	int	 r;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		ssl_error("cannot create a TLS context for", cert, err, errsz);
		return -1;
	}
	r = ctx_load(ctx, cert, key, err, errsz);
	SSL_CTX_free(ctx);
	return r;
}

SSL_CTX *
pki_server_ctx(const char *cert, const char *key, char *err, size_t errsz)
{
	SSL_CTX	*ctx;

	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		ssl_error("cannot create a TLS context for", cert, err, errsz);
		return NULL;
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1 ||
	    SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1) {
		ssl_error("cannot set the TLS parameters for", cert, err, errsz);
		SSL_CTX_free(ctx);
		return NULL;
	}
	SSL_CTX_set_options(ctx, SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_NO_TICKET);
	/* No session cache either: workers do not share one. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (ctx_load(ctx, cert, key, err, errsz) == -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}
