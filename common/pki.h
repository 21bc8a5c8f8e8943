/*
 * Certificates and keys (`pki`): checked when the configuration is read,
 * loaded into server contexts by the smtp-worker before it chroots.
 */
#ifndef MTAD_PKI_H
#define MTAD_PKI_H

#include <stddef.h>

#include <openssl/ssl.h>

/* Loads the chain and the key and checks that they match; -1 and why. */
int	 pki_load_check(const char *cert, const char *key, char *err,
	    size_t errsz);
/*
 * A server context with modern defaults: TLS 1.2 and 1.3 only, forward
 * secret AEAD ciphers, server preference, no compression, no renegotiation,
 * no session tickets (no key to rotate across workers).  NULL and why.
 */
SSL_CTX	*pki_server_ctx(const char *cert, const char *key, char *err,
	    size_t errsz);

#endif
