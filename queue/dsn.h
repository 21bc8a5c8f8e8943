/*
 * Delivery status notifications: the bounce, delay warning and success
 * report that the queue sends back to a message's envelope sender, as a
 * multipart/report (RFC 6522) with a message/delivery-status part (RFC 3464).
 */
#ifndef MTAD_DSN_H
#define MTAD_DSN_H

#include <stddef.h>
#include <time.h>

enum dsn_kind { DSN_FAILED, DSN_DELAYED, DSN_DELIVERED };

struct dsn_rcpt {
	const char *final_rcpt;   /* address delivered to / tried */
	const char *orig_rcpt;    /* RFC 3461 ORCPT value (addr-type;xtext) or NULL: then "rfc822;" + the address the client gave */
	const char *client_rcpt;  /* the address as the client gave it */
	const char *status;       /* "5.1.1", "4.4.7", "2.0.0" */
	const char *diagnostic;   /* remote reply or local error text, may be NULL */
	const char *diag_type;    /* "smtp" when it is an SMTP reply, else "x-local" ... */
	const char *remote_mta;   /* NULL for local deliveries */
	time_t last_attempt;      /* 0 if never */
	time_t will_retry_until;  /* for DSN_DELAYED */
};

struct dsn_info {
	enum dsn_kind kind;
	const char *reporting_mta;   /* our hostname */
	const char *queue_id;
	const char *sender;          /* original envelope sender: the DSN goes there */
	const char *envid;           /* RFC 3461 ENVID or NULL */
	int ret_full;                /* RET=FULL: whole message; else headers only */
	const char *received_from;   /* "helo ([addr])" or NULL */
	time_t arrival;
	time_t now;
	size_t max_full_size;        /* above it RET=FULL degrades to headers, with a note */
};

/*
 * Writes the complete DSN message (headers + body, CRLF line ends) to
 * out_fd. The original is read from msg_fd (pread, from 0; CRLF line ends).
 * 0, or -1 with errno: EINVAL when kind, reporting_mta, queue_id, sender
 * (NULL or "": never bounce to <>), n (0) or a final_rcpt (NULL or "") is
 * unusable; EEXIST if no boundary absent from the content could be found;
 * else the errno of the failed pread or write.  On failure out_fd holds a
 * partial message that the caller must discard.
 */
int dsn_write(int out_fd, int msg_fd, const struct dsn_info *,
    const struct dsn_rcpt *, size_t n);

/*
 * The random source of MIME boundaries and Message-Ids (arc4random_buf);
 * tests replace it to force a boundary collision.
 */
extern void (*dsn_random_bytes)(void *, size_t);

#endif
