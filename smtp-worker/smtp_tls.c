/*
 * TLS for SMTP server sessions: STARTTLS (RFC 3207) and implicit TLS
 * (RFC 8314).  Contexts are made from the `pki` blocks before the worker
 * chroots; a session's connection is wrapped in an OpenSSL filter
 * bufferevent, so the session code reads and writes plaintext either way.
 */
#include "autoconf.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "pki.h"
#include "smtp.h"
#include "stats.h"

int
smtp_tls_init(struct config *conf)
{
	struct listener	*l, *o;
	char		 err[256];

	TAILQ_FOREACH(l, &conf->listeners, entry) {
		if (l->pki == NULL)
			continue;
		/* Listeners sharing a pki share its context. */
		TAILQ_FOREACH(o, &conf->listeners, entry)
			if (o == l || (o->pki == l->pki && o->ssl_ctx != NULL))
				break;
		if (o != l) {
			l->ssl_ctx = o->ssl_ctx;
			continue;
		}
		l->ssl_ctx = pki_server_ctx(l->pki->cert, l->pki->key, err,
		    sizeof(err));
		if (l->ssl_ctx == NULL) {
			log_warnx("pki %s: %s", l->pki->name, err);
			return -1;
		}
	}
	return 0;
}

int
smtp_tls_start(struct smtp_session *s, int starttls)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	if (s->listener->ssl_ctx == NULL ||
	    (ssl = SSL_new(s->listener->ssl_ctx)) == NULL)
		return -1;
	/*
	 * Whatever the client sent in the clear after STARTTLS must not be
	 * taken as commands under TLS (the plaintext injection attack,
	 * CVE-2011-0411): it is thrown away.  On smtps what is there already
	 * is the start of the handshake.
	 */
	if (starttls &&
	    evbuffer_get_length(bufferevent_get_input(s->bev)) > 0) {
		stat_increment("smtp.dialog.error.starttls_injection", 1);
		log_info("%08x: %s sent data after STARTTLS in the clear: "
		    "dropped", s->id, s->client_addr);
		evbuffer_drain(bufferevent_get_input(s->bev),
		    evbuffer_get_length(bufferevent_get_input(s->bev)));
	}
	bev = bufferevent_openssl_filter_new(smtp_base, s->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return -1;
	}
	s->bev = bev;
	return 0;
}

void
smtp_tls_describe(struct smtp_session *s)
{
	SSL		*ssl = bufferevent_openssl_get_ssl(s->bev);
	const SSL_CIPHER *c;
	int		 bits = 0;

	if (ssl == NULL || (c = SSL_get_current_cipher(ssl)) == NULL) {
		s->tls_info[0] = '\0';
		return;
	}
	(void)SSL_CIPHER_get_bits(c, &bits);
	(void)snprintf(s->tls_info, sizeof(s->tls_info),
	    "version=%s cipher=%s bits=%d", SSL_get_version(ssl),
	    SSL_CIPHER_get_name(c), bits);
}

void
smtp_tls_error(struct smtp_session *s, char *buf, size_t bufsz)
{
	unsigned long	 e;

	e = bufferevent_get_openssl_error(s->bev);
	if (e == 0) {
		(void)strlcpy(buf, "connection closed", bufsz);
		return;
	}
	ERR_error_string_n(e, buf, bufsz);
	while (bufferevent_get_openssl_error(s->bev) != 0)
		;
}
