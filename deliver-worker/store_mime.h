/*
 * The MIME side of the MongoDB store: a message parsed with GMime 3 into
 * the pieces of its `messages` document (doc/store.md): decoded headers,
 * the header list, text and HTML bodies, attachments.  Pure: no database,
 * so that the unit tests exercise it alone.  store.c uploads the
 * attachments to GridFS and appends the pieces to the document.
 */
#ifndef MTAD_STORE_MIME_H
#define MTAD_STORE_MIME_H

#include <stddef.h>

#include <bson/bson.h>

/* Bounds: a document must stay well below MongoDB's 16 MiB. */
#define STORE_BODY_MAX		(4 * 1024 * 1024)  /* text, html: each */
#define STORE_HEADERS_MAX	(1024 * 1024)	/* the header list, bytes */
#define STORE_HEADER_COUNT_MAX	1000		/* the header list, entries */
#define STORE_ADDRS_MAX		1000		/* per address field */
#define STORE_PARTS_MAX		500		/* attachments */
#define STORE_DEPTH_MAX		32		/* MIME nesting walked */

struct store_attachment {
	char		*filename;	/* UTF-8, "" if none */
	char		*content_type;	/* "type/subtype", lower case */
	char		*disposition;	/* "attachment", "inline" or "" */
	char		*content_id;	/* without <>, "" if none */
	unsigned char	*data;		/* the decoded content */
	size_t		 size;
};

struct store_mime {
	bson_t			 headers;	/* decoded, see doc/store.md */
	bson_t			 header_list;	/* [{name, value}] */
	char			*text;		/* UTF-8 or NULL */
	size_t			 text_len;
	int			 text_truncated;
	char			*html;
	size_t			 html_len;
	int			 html_truncated;
	struct store_attachment	*att;
	size_t			 natt;
	int			 att_dropped;	/* past STORE_PARTS_MAX */
	int			 ready;		/* 0: nothing to free */
};

/*
 * Once per process, before the chroot: GMime, and the charset converters
 * that decoding needs (see the comment in store_mime.c).  Idempotent.
 */
void	store_mime_init(void);
/*
 * Parses msg[0..len).  0 on success (m filled, free it with
 * store_mime_free), -1 if GMime found no message at all (m is then empty
 * but valid, and still to be freed).  Never fails on bad MIME: what
 * cannot be parsed is left to the raw message.
 */
int	store_mime_parse(const char *msg, size_t len, struct store_mime *m);
void	store_mime_free(struct store_mime *);
/*
 * Appends headers, header_list, text, html and attachments to doc.
 * ids[i] is the GridFS id of attachment i (NULL: no gridfs_id fields,
 * for tests).  -1 if bson refused a field (a bound was wrong).
 */
int	store_mime_append(const struct store_mime *, const bson_value_t *ids,
	    bson_t *doc);
/*
 * s[0..len) as valid UTF-8 without NUL bytes: invalid sequences become
 * U+FFFD.  Returns a new string (g_free) and its length in *outlen.
 */
char	*store_utf8_clean(const char *s, size_t len, size_t *outlen);

#endif
