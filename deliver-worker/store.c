/*
 * The MongoDB store writer (doc/store.md has the schema).  For a batch
 * (one message, its DLV_MONGO recipients):
 *
 *  1. the message is parsed once (store_mime.c); its attachments, and the
 *     raw message when larger than `store inline-max`, go to GridFS once
 *     for all recipients;
 *  2. each mailbox gives a uid: findAndModify {$inc: {uidnext: 1,
 *     usage: size, messages: 1}} on `mailboxes`, which also returns the
 *     quota for the check (over quota: 4.2.2, a temporary failure per RFC
 *     3463); a message not filed after all gives its room back;
 *  3. the documents go in with one unordered insertMany.  Their _id is
 *     "QUEUEID:mailbox", so a delivery repeated after a crash collides
 *     with its own first copy: a duplicate key is either that (then the
 *     recipient is done, nothing is filed twice) or a uid taken by a
 *     concurrent writer: servers whose $inc is not atomic across
 *     connections (FerretDB v1) can hand one uid out twice, and the
 *     unique {mailbox, uid} index refuses the second; that recipient
 *     takes a new uid and tries again, a bounded number of times.
 *
 * The unique _id index is the idempotence check, rather than a lookup
 * before each delivery: FerretDB 1.24's SQLite backend queries _id with
 * an expression its _id index does not match, so every lookup scans the
 * collection (15 ms at 300 documents, growing with the store).  Lookups
 * by _id happen only on a duplicate key or a full mailbox.  A repeated
 * delivery costs a uid (IMAP allows gaps) and GridFS uploads it removes.
 *
 * Everything is synchronous: the worker's event loop waits, bounded by
 * the URI's timeouts (short defaults below).  Any database failure
 * defers the recipient; the queue retries with backoff.
 */
#include "autoconf.h"

#include <sys/stat.h>

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mongoc/mongoc.h>

#include "log.h"
#include "mongo_util.h"
#include "stats.h"
#include "store.h"
#include "store_mime.h"

#define COLL_MESSAGES		"messages"
#define COLL_MAILBOXES		"mailboxes"
#define BUCKET_ATTACHMENTS	"attachments"
#define BUCKET_RAW		"raw"

/* Defaults when the URI does not say (milliseconds). */
#define SELECT_TIMEOUT_MS	5000
#define CONNECT_TIMEOUT_MS	3000
#define SOCKET_TIMEOUT_MS	15000

#define UID_TRIES		16	/* uids taken by concurrent writers */
#define INSERT_BYTES_MAX	(16 * 1024 * 1024)  /* documents per insert */
#define DOC_BYTES_MAX		(15 * 1024 * 1024)  /* below BSON's 16 MiB */
#define INLINE_HARD_MAX		(8 * 1024 * 1024)
#define MESSAGE_MIN_CAP		((size_t)64 * 1024 * 1024)

static mongoc_client_pool_t	*pool;
static const struct config	*conf;
static char			 dbname[128];
static int			 indexes_ready;

/* One recipient of the batch. */
struct rcpt {
	const struct dlv	*dlv;
	char			 id[MSGID_SIZE + 1 + ADDR_MAX];
	int64_t			 uid;
	int			 done;		/* status and text are final */
	int			 inserted;
	int			 reserved;	/* usage counted, see alloc_uid */
};

/* What the recipients of the batch share. */
struct batch {
	const struct store_msg	*msg;
	mongoc_database_t	*db;
	mongoc_collection_t	*messages;
	mongoc_collection_t	*mailboxes;
	char			*raw;
	size_t			 size;
	struct store_mime	 mime;
	bson_value_t		*att_ids;	/* mime.natt GridFS ids */
	bson_value_t		 raw_id;	/* EOD: raw is inline */
	size_t			 base_len;	/* a document without raw */
	int			 inline_raw;
	struct rcpt		*r;
	size_t			 n;
	uint32_t		*status;
	char			(*text)[TEXT_MAX];
};


int
store_init(const struct config *c)
{
	mongoc_write_concern_t	*wc;
	mongoc_uri_t		*uri;

	conf = c;
	if (c->store_uri[0] == '\0')
		return 0;
	if ((uri = mongo_uri_open(c->store_uri, SELECT_TIMEOUT_MS,
	    CONNECT_TIMEOUT_MS, SOCKET_TIMEOUT_MS, dbname,
	    sizeof(dbname))) == NULL)
		return -1;
	/*
	 * The queue forgets a message once the store said OK: unless the
	 * URI asks otherwise, that OK waits for the journal.
	 */
	wc = mongoc_write_concern_copy(mongoc_uri_get_write_concern(uri));
	if (!mongoc_write_concern_journal_is_set(wc)) {
		mongoc_write_concern_set_journal(wc, true);
		mongoc_uri_set_write_concern(uri, wc);
	}
	mongoc_write_concern_destroy(wc);
	pool = mongoc_client_pool_new(uri);
	mongoc_uri_destroy(uri);
	if (pool == NULL) {
		log_warnx("store: cannot make a client pool for the URI");
		return -1;
	}
	if (!mongoc_client_pool_set_error_api(pool, MONGOC_ERROR_API_VERSION_2) ||
	    !mongoc_client_pool_set_appname(pool, "mtad-deliver"))
		log_warnx("store: client pool options refused");
	store_mime_init();
	return 0;
}

/* Unreachable or slow: the network side, as opposed to a refusal. */
static int
is_unreachable(const bson_error_t *err)
{
	return err->domain == MONGOC_ERROR_SERVER_SELECTION ||
	    err->domain == MONGOC_ERROR_STREAM ||
	    (err->domain == MONGOC_ERROR_CLIENT &&
	    err->code == MONGOC_ERROR_CLIENT_AUTHENTICATE);
}

static int
is_duplicate(uint32_t code)
{
	return code == 11000 || code == 11001 || code == 12582;
}

static void
set_result(struct batch *b, size_t i, uint32_t status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
set_result(struct batch *b, size_t i, uint32_t status, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(b->text[i], TEXT_MAX, fmt, ap);
	va_end(ap);
	b->status[i] = status;
	b->r[i].done = 1;
}

static void
fail_rest(struct batch *b, const bson_error_t *err, const char *what)
{
	size_t	 i;

	for (i = 0; i < b->n; i++) {
		if (b->r[i].done)
			continue;
		if (is_unreachable(err))
			set_result(b, i, DLV_TEMPFAIL,
			    "4.4.1 store unreachable: %s", err->message);
		else
			set_result(b, i, DLV_TEMPFAIL, "4.3.0 store error: "
			    "%s: %s", what, err->message);
	}
}

static const char too_large[] = "message too large for the store";

/* The spool file, whole; NULL with *why set when it cannot be. */
static char *
read_message(int fd, size_t *len, const char **why)
{
	struct stat	 st;
	size_t		 cap, off = 0;
	ssize_t		 r;
	char		*buf;

	cap = conf->max_message_size * 2 > MESSAGE_MIN_CAP ?
	    conf->max_message_size * 2 : MESSAGE_MIN_CAP;
	if (fstat(fd, &st) == -1 || st.st_size < 0) {
		*why = "cannot stat the message";
		return NULL;
	}
	if ((uint64_t)st.st_size > cap) {
		*why = too_large;
		return NULL;
	}
	if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
		*why = "out of memory";
		return NULL;
	}
	while (off < (size_t)st.st_size) {
		r = pread(fd, buf + off, (size_t)st.st_size - off, (off_t)off);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(buf);
			*why = "cannot read the message";
			return NULL;
		}
		off += (size_t)r;
	}
	buf[off] = '\0';
	*len = off;
	return buf;
}

/*
 * The indexes every query of the schema relies on; created once per
 * process (createIndexes of an existing index is a no-op).  One index
 * per command: FerretDB 1.24 drops the connection (a panic) when one
 * createIndexes names several indexes that all exist already.
 */
static int
ensure_indexes(mongoc_database_t *db, bson_error_t *err)
{
	static const struct {
		const char	*name, *field1, *field2;
		int		 dir2, unique;
	} idx[] = {
		{ "mailbox_uid", "mailbox", "uid", 1, 1 },
		{ "mailbox_received", "mailbox", "received_at", -1, 0 },
		{ "message_id", "headers.message_id", NULL, 0, 0 },
	};
	bson_t	*cmd, key;
	size_t	 i;
	bool	 ok = true;

	if (indexes_ready)
		return 0;
	for (i = 0; ok && i < sizeof(idx) / sizeof(idx[0]); i++) {
		bson_init(&key);
		(void)BSON_APPEND_INT32(&key, idx[i].field1, 1);
		if (idx[i].field2 != NULL)
			(void)BSON_APPEND_INT32(&key, idx[i].field2,
			    idx[i].dir2);
		cmd = BCON_NEW("createIndexes", BCON_UTF8(COLL_MESSAGES),
		    "indexes", "[", "{", "key", BCON_DOCUMENT(&key),
		    "name", BCON_UTF8(idx[i].name),
		    "unique", BCON_BOOL(idx[i].unique), "}", "]");
		ok = mongoc_database_write_command_with_opts(db, cmd, NULL,
		    NULL, err);
		bson_destroy(cmd);
		bson_destroy(&key);
	}
	if (!ok)
		return -1;
	indexes_ready = 1;
	return 0;
}

/*
 * r's document: 1 there (*uid set), 0 not, -1 error.  By _id equality:
 * the one query every server answers from its _id index (FerretDB v1
 * scans the collection for anything else, $in included).
 */
static int
lookup_stored(struct batch *b, const struct rcpt *r, int64_t *uid,
    bson_error_t *err)
{
	mongoc_cursor_t	*cur;
	const bson_t	*doc;
	bson_t		*filter, *opts;
	bson_iter_t	 it;
	int		 rc = 0;

	filter = BCON_NEW("_id", BCON_UTF8(r->id));
	opts = BCON_NEW("projection", "{", "uid", BCON_INT32(1), "}",
	    "limit", BCON_INT64(1), "singleBatch", BCON_BOOL(true));
	cur = mongoc_collection_find_with_opts(b->messages, filter, opts,
	    NULL);
	if (mongoc_cursor_next(cur, &doc)) {
		*uid = bson_iter_init_find(&it, doc, "uid") ?
		    bson_iter_as_int64(&it) : 0;
		rc = 1;
	} else if (mongoc_cursor_error(cur, err))
		rc = -1;
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	bson_destroy(opts);
	return rc;
}

static int
upload(mongoc_gridfs_bucket_t *bucket, const char *filename,
    const char *content_type, const struct batch *b, const void *data,
    size_t len, bson_value_t *id, bson_error_t *err)
{
	mongoc_stream_t	*s;
	bson_t		*opts;
	ssize_t		 w;
	int		 ok;

	opts = BCON_NEW("metadata", "{", "queue_id", BCON_UTF8(b->msg->msgid),
	    "content_type", BCON_UTF8(content_type), "}");
	s = mongoc_gridfs_bucket_open_upload_stream(bucket, filename, opts, id,
	    err);
	bson_destroy(opts);
	if (s == NULL)
		return -1;
	w = len > 0 ? mongoc_stream_write(s, (void *)data, len, 0) : 0;
	ok = w >= 0 && (size_t)w == len;
	if (!ok) {
		(void)mongoc_gridfs_bucket_stream_error(s, err);
		(void)mongoc_gridfs_bucket_abort_upload(s);
	} else if (mongoc_stream_close(s) != 0 ||
	    mongoc_gridfs_bucket_stream_error(s, err))
		ok = 0;
	mongoc_stream_destroy(s);
	if (!ok && err->message[0] == '\0')
		(void)strlcpy(err->message, "GridFS upload failed",
		    sizeof(err->message));
	return ok ? 0 : -1;
}

static mongoc_gridfs_bucket_t *
bucket_open(struct batch *b, const char *name, bson_error_t *err)
{
	bson_t			*opts;
	mongoc_gridfs_bucket_t	*bucket;

	opts = BCON_NEW("bucketName", BCON_UTF8(name));
	bucket = mongoc_gridfs_bucket_new(b->db, opts, NULL, err);
	bson_destroy(opts);
	return bucket;
}

/*
 * GridFS files of a batch that filed nothing: removed, best effort.  A
 * crash between upload and insert leaves them behind (doc/store.md says
 * how to find such orphans).
 */
static void
remove_uploads(struct batch *b)
{
	mongoc_gridfs_bucket_t	*bucket;
	bson_error_t		 err;
	size_t			 i;

	if (b->att_ids != NULL &&
	    (bucket = bucket_open(b, BUCKET_ATTACHMENTS, &err)) != NULL) {
		for (i = 0; i < b->mime.natt; i++)
			if (b->att_ids[i].value_type != BSON_TYPE_EOD)
				(void)mongoc_gridfs_bucket_delete_by_id(bucket,
				    &b->att_ids[i], &err);
		mongoc_gridfs_bucket_destroy(bucket);
	}
	if (b->raw_id.value_type != BSON_TYPE_EOD &&
	    (bucket = bucket_open(b, BUCKET_RAW, &err)) != NULL) {
		(void)mongoc_gridfs_bucket_delete_by_id(bucket, &b->raw_id,
		    &err);
		mongoc_gridfs_bucket_destroy(bucket);
	}
}

static int
upload_attachments(struct batch *b, bson_error_t *err)
{
	mongoc_gridfs_bucket_t		*bucket;
	const struct store_attachment	*a;
	size_t				 i;
	int				 rc = 0;

	if (b->mime.natt == 0)
		return 0;
	if ((b->att_ids = calloc(b->mime.natt, sizeof(*b->att_ids))) == NULL) {
		bson_set_error(err, MONGOC_ERROR_CLIENT, 0, "out of memory");
		return -1;
	}
	if ((bucket = bucket_open(b, BUCKET_ATTACHMENTS, err)) == NULL)
		return -1;
	for (i = 0; i < b->mime.natt && rc == 0; i++) {
		a = &b->mime.att[i];
		rc = upload(bucket, a->filename, a->content_type, b, a->data,
		    a->size, &b->att_ids[i], err);
	}
	mongoc_gridfs_bucket_destroy(bucket);
	return rc;
}

/* The raw message: inline when small enough, else in GridFS. */
static int
place_raw(struct batch *b, bson_error_t *err)
{
	mongoc_gridfs_bucket_t	*bucket;
	char			 name[MSGID_SIZE + 8];
	size_t			 max;
	int			 rc;

	max = conf->store_inline_max < INLINE_HARD_MAX ?
	    conf->store_inline_max : INLINE_HARD_MAX;
	b->inline_raw = b->size <= max && b->base_len + b->size + 1024 <=
	    DOC_BYTES_MAX;
	if (b->inline_raw)
		return 0;
	if ((bucket = bucket_open(b, BUCKET_RAW, err)) == NULL)
		return -1;
	(void)snprintf(name, sizeof(name), "%s.eml", b->msg->msgid);
	rc = upload(bucket, name, "message/rfc822", b, b->raw, b->size,
	    &b->raw_id, err);
	mongoc_gridfs_bucket_destroy(bucket);
	return rc;
}

/* Gives back the room alloc_uid reserved for a message not filed. */
static void
unreserve(struct batch *b, struct rcpt *r)
{
	bson_t		*sel, *upd;
	bson_error_t	 err;

	if (!r->reserved)
		return;
	r->reserved = 0;
	sel = BCON_NEW("_id", BCON_UTF8(r->dlv->rcpt));
	upd = BCON_NEW("$inc", "{", "usage", BCON_INT64(-(int64_t)b->size),
	    "messages", BCON_INT64(-1), "}");
	if (!mongoc_collection_update_one(b->mailboxes, sel, upd, NULL, NULL,
	    &err))
		log_warnx("%s: store: usage of %s not corrected: %s",
		    b->msg->msgid, r->dlv->rcpt, err.message);
	bson_destroy(sel);
	bson_destroy(upd);
}

/*
 * A uid for r's mailbox, and the quota check.  One findAndModify moves
 * uidnext, usage and the message count together: the message's room is
 * reserved with its uid, and given back (unreserve) if the message is not
 * filed after all.  A crash in between leaves usage counting one message
 * too many, never too few.  The mailbox document is made on first
 * delivery.  uidnext is IMAP's UIDNEXT: the uid handed out is the value
 * before the increment.  0, or -1 with err set; *full when this message
 * passes the quota (it is then not reserved).
 */
static int
alloc_uid(struct batch *b, struct rcpt *r, int *full, bson_error_t *err)
{
	mongoc_find_and_modify_opts_t	*fam;
	bson_t				*query, *update, *box, reply;
	bson_iter_t			 it, v;
	int64_t				 uidnext = 0, quota = 0, usage = 0;
	int				 tries, found = 0;
	bool				 ok = true;

	query = BCON_NEW("_id", BCON_UTF8(r->dlv->rcpt));
	update = BCON_NEW("$inc", "{", "uidnext", BCON_INT64(1),
	    "usage", BCON_INT64((int64_t)b->size), "messages", BCON_INT64(1),
	    "}");
	fam = mongoc_find_and_modify_opts_new();
	(void)mongoc_find_and_modify_opts_set_update(fam, update);
	(void)mongoc_find_and_modify_opts_set_flags(fam,
	    MONGOC_FIND_AND_MODIFY_RETURN_NEW);
	for (tries = 0; tries < 2 && ok && !found; tries++) {
		ok = mongoc_collection_find_and_modify_with_opts(b->mailboxes,
		    query, fam, &reply, err);
		if (ok && bson_iter_init_find(&it, &reply, "value") &&
		    BSON_ITER_HOLDS_DOCUMENT(&it) &&
		    bson_iter_recurse(&it, &v)) {
			found = 1;
			while (bson_iter_next(&v)) {
				if (strcmp(bson_iter_key(&v), "uidnext") == 0)
					uidnext = bson_iter_as_int64(&v);
				else if (strcmp(bson_iter_key(&v), "quota") == 0)
					quota = bson_iter_as_int64(&v);
				else if (strcmp(bson_iter_key(&v), "usage") == 0)
					usage = bson_iter_as_int64(&v);
			}
		}
		bson_destroy(&reply);
		if (!ok || found)
			break;
		/* A new mailbox: uidnext 1, the default quota. */
		box = BCON_NEW("_id", BCON_UTF8(r->dlv->rcpt),
		    "uidnext", BCON_INT64(1),
		    "uidvalidity", BCON_INT64((int64_t)time(NULL)),
		    "quota", BCON_INT64((int64_t)conf->store_quota),
		    "usage", BCON_INT64(0), "messages", BCON_INT64(0),
		    "created_at", BCON_DATE_TIME((int64_t)time(NULL) * 1000));
		ok = mongoc_collection_insert_one(b->mailboxes, box, NULL,
		    NULL, err);
		bson_destroy(box);
		if (!ok && err->domain == MONGOC_ERROR_SERVER &&
		    is_duplicate(err->code))
			ok = true;	/* made meanwhile by another writer */
	}
	mongoc_find_and_modify_opts_destroy(fam);
	bson_destroy(query);
	bson_destroy(update);
	if (!ok)
		return -1;
	if (!found || uidnext < 2) {
		bson_set_error(err, MONGOC_ERROR_COMMAND, 0,
		    "mailbox %s: no uid", r->dlv->rcpt);
		return -1;
	}
	r->uid = uidnext - 1;
	r->reserved = 1;
	/* usage counts this message already */
	*full = quota > 0 && usage > quota;
	if (*full)
		unreserve(b, r);
	return 0;
}

/* The document of one recipient; NULL if bson refused it. */
static bson_t *
build_doc(struct batch *b, const struct rcpt *r)
{
	const struct store_msg	*m = b->msg;
	bson_t			*doc, env, flags;
	int			 ok;

	doc = bson_new();
	ok = BSON_APPEND_UTF8(doc, "_id", r->id) &&
	    BSON_APPEND_UTF8(doc, "mailbox", r->dlv->rcpt) &&
	    BSON_APPEND_INT64(doc, "uid", r->uid) &&
	    BSON_APPEND_UTF8(doc, "queue_id", m->msgid) &&
	    BSON_APPEND_DATE_TIME(doc, "received_at",
	    (int64_t)m->received * 1000) &&
	    BSON_APPEND_DOCUMENT_BEGIN(doc, "envelope", &env) &&
	    BSON_APPEND_UTF8(&env, "from", m->sender) &&
	    BSON_APPEND_UTF8(&env, "rcpt", r->dlv->rcpt) &&
	    BSON_APPEND_UTF8(&env, "orig_rcpt", r->dlv->orig) &&
	    BSON_APPEND_UTF8(&env, "helo", m->helo) &&
	    BSON_APPEND_UTF8(&env, "client_ip", m->client_addr) &&
	    BSON_APPEND_UTF8(&env, "auth_user", m->auth_user) &&
	    BSON_APPEND_UTF8(&env, "proto", m->proto) &&
	    BSON_APPEND_BOOL(&env, "tls", strstr(m->proto, "SMTPS") != NULL) &&
	    bson_append_document_end(doc, &env) &&
	    BSON_APPEND_INT64(doc, "size", (int64_t)b->size) &&
	    BSON_APPEND_ARRAY_BEGIN(doc, "flags", &flags) &&
	    bson_append_array_end(doc, &flags) &&
	    store_mime_append(&b->mime, b->att_ids, doc) == 0;
	if (ok && b->inline_raw)
		ok = bson_append_binary(doc, "raw", -1, BSON_SUBTYPE_BINARY,
		    (const uint8_t *)b->raw, (uint32_t)b->size);
	else if (ok)
		ok = BSON_APPEND_NULL(doc, "raw") &&
		    BSON_APPEND_VALUE(doc, "raw_gridfs_id", &b->raw_id);
	if (!ok) {
		bson_destroy(doc);
		return NULL;
	}
	return doc;
}

static void
stored(struct batch *b, size_t i)
{
	b->r[i].inserted = 1;
	b->r[i].reserved = 0;	/* the room is the message's now */
	set_result(b, i, DLV_OK, "2.0.0 stored as uid %" PRId64, b->r[i].uid);
}

/*
 * Over quota, unless the message is there already: a repeated delivery
 * must not be deferred for the room its own first copy takes.
 */
static void
mailbox_full(struct batch *b, size_t i)
{
	struct rcpt	*r = &b->r[i];
	bson_error_t	 err;

	switch (lookup_stored(b, r, &r->uid, &err)) {
	case 1:
		set_result(b, i, DLV_OK, "2.0.0 already stored as uid %" PRId64,
		    r->uid);
		break;
	case 0:
		set_result(b, i, DLV_TEMPFAIL, "4.2.2 mailbox full: %s",
		    r->dlv->rcpt);
		break;
	default:
		fail_rest(b, &err, "lookup");
	}
}

/* One recipient alone: new uids until one is free. */
static void
insert_one_retrying(struct batch *b, size_t i)
{
	struct rcpt	*r = &b->r[i];
	bson_error_t	 err;
	bson_t		*doc;
	int		 tries, full, e;

	for (tries = 0; tries < UID_TRIES; tries++) {
		if ((e = lookup_stored(b, r, &r->uid, &err)) != 0) {
			if (e == 1)
				set_result(b, i, DLV_OK, "2.0.0 already stored "
				    "as uid %" PRId64, r->uid);
			else
				fail_rest(b, &err, "lookup");
			return;
		}
		unreserve(b, r);
		if (alloc_uid(b, r, &full, &err) == -1) {
			fail_rest(b, &err, "uid");
			return;
		}
		if (full) {
			mailbox_full(b, i);
			return;
		}
		if ((doc = build_doc(b, r)) == NULL) {
			set_result(b, i, DLV_TEMPFAIL, "4.3.0 store error: "
			    "document too large");
			return;
		}
		if (mongoc_collection_insert_one(b->messages, doc, NULL, NULL,
		    &err)) {
			bson_destroy(doc);
			stored(b, i);
			return;
		}
		bson_destroy(doc);
		if (err.domain != MONGOC_ERROR_SERVER || !is_duplicate(err.code)) {
			fail_rest(b, &err, "insert");
			return;
		}
		stat_increment("store.uid_conflict", 1);
	}
	set_result(b, i, DLV_TEMPFAIL, "4.3.0 store error: no free uid after "
	    "%d tries", UID_TRIES);
}

/* Sorts the outcome of an insertMany: writeErrors by index. */
static void
insert_outcome(struct batch *b, const size_t *idx, size_t n,
    const bson_t *reply, int ok, const bson_error_t *err)
{
	bson_iter_t	 it, arr, e;
	uint32_t	 code;
	int64_t		 at;
	char		*failed;
	size_t		 k;
	int		 has_werr = 0;

	if (ok) {
		for (k = 0; k < n; k++)
			stored(b, idx[k]);
		return;
	}
	if ((failed = calloc(n, 1)) == NULL) {
		fail_rest(b, err, "insert");
		return;
	}
	if (bson_iter_init_find(&it, reply, "writeErrors") &&
	    BSON_ITER_HOLDS_ARRAY(&it) && bson_iter_recurse(&it, &arr)) {
		has_werr = 1;
		while (bson_iter_next(&arr)) {
			at = -1;
			code = 0;
			if (!BSON_ITER_HOLDS_DOCUMENT(&arr) ||
			    !bson_iter_recurse(&arr, &e))
				continue;
			while (bson_iter_next(&e)) {
				if (strcmp(bson_iter_key(&e), "index") == 0)
					at = bson_iter_as_int64(&e);
				else if (strcmp(bson_iter_key(&e), "code") == 0)
					code = (uint32_t)bson_iter_as_int64(&e);
			}
			if (at < 0 || (size_t)at >= n)
				continue;
			/* 1: duplicate (sorted out below), 2: other */
			failed[at] = is_duplicate(code) ? 1 : 2;
		}
	}
	if (!has_werr) {
		/* No per-document answer: the next attempt will tell. */
		free(failed);
		fail_rest(b, err, "insert");
		return;
	}
	for (k = 0; k < n; k++) {
		if (failed[k] == 0)
			stored(b, idx[k]);
		else if (failed[k] == 2)
			set_result(b, idx[k], DLV_TEMPFAIL,
			    "4.3.0 store error: insert: %s", err->message);
	}
	for (k = 0; k < n; k++)
		if (failed[k] == 1)
			insert_one_retrying(b, idx[k]);
	free(failed);
}

/*
 * Recipients idx[0..n): uids, documents, one insertMany.  The
 * caller keeps n small enough for the documents to fit in memory.
 */
static void
insert_group(struct batch *b, const size_t *idx, size_t n)
{
	bson_t		**docs, *opts, reply;
	bson_error_t	 err;
	size_t		 k, nd = 0, *didx;
	int		 full, ok;

	docs = calloc(n, sizeof(*docs));
	didx = calloc(n, sizeof(*didx));
	if (docs == NULL || didx == NULL) {
		free(docs);
		free(didx);
		for (k = 0; k < n; k++)
			set_result(b, idx[k], DLV_TEMPFAIL,
			    "4.3.0 out of memory");
		return;
	}
	for (k = 0; k < n; k++) {
		struct rcpt	*r = &b->r[idx[k]];

		if (r->done)
			continue;
		if (alloc_uid(b, r, &full, &err) == -1) {
			fail_rest(b, &err, "uid");
			break;
		}
		if (full) {
			mailbox_full(b, idx[k]);
			continue;
		}
		if ((docs[nd] = build_doc(b, r)) == NULL) {
			set_result(b, idx[k], DLV_TEMPFAIL, "4.3.0 store error: "
			    "document too large");
			continue;
		}
		didx[nd++] = idx[k];
	}
	if (nd > 0) {
		opts = BCON_NEW("ordered", BCON_BOOL(false));
		ok = mongoc_collection_insert_many(b->messages,
		    (const bson_t **)docs, nd, opts, &reply, &err);
		bson_destroy(opts);
		insert_outcome(b, didx, nd, &reply, ok, &err);
		bson_destroy(&reply);
	}
	for (k = 0; k < nd; k++)
		bson_destroy(docs[k]);
	free(docs);
	free(didx);
}

/* The documents of the pending recipients, a memory-bounded group at a time. */
static void
insert_all(struct batch *b)
{
	size_t	*idx, per, k, i, doc_len;

	doc_len = b->base_len + (b->inline_raw ? b->size : 0) + 2048;
	per = INSERT_BYTES_MAX / doc_len;
	if (per == 0)
		per = 1;
	if ((idx = calloc(b->n, sizeof(*idx))) == NULL) {
		for (i = 0; i < b->n; i++)
			if (!b->r[i].done)
				set_result(b, i, DLV_TEMPFAIL,
				    "4.3.0 out of memory");
		return;
	}
	for (i = 0; i < b->n; ) {
		for (k = 0; i < b->n && k < per; i++)
			if (!b->r[i].done)
				idx[k++] = i;
		if (k > 0)
			insert_group(b, idx, k);
	}
	free(idx);
}

/* The size of a document without its raw message, for the bounds. */
static size_t
base_length(struct batch *b)
{
	struct rcpt	 probe;
	struct dlv	 dlv;
	bson_value_t	 saved = b->raw_id;
	bson_t		*doc;
	size_t		 len;

	memset(&probe, 0, sizeof(probe));
	memset(&dlv, 0, sizeof(dlv));
	memset(dlv.rcpt, 'x', sizeof(dlv.rcpt) - 1);
	probe.dlv = &dlv;
	memset(probe.id, 'x', sizeof(probe.id) - 1);
	b->inline_raw = 0;
	b->raw_id.value_type = BSON_TYPE_NULL;
	doc = build_doc(b, &probe);
	b->raw_id = saved;
	len = doc != NULL ? doc->len : DOC_BYTES_MAX;
	if (doc != NULL)
		bson_destroy(doc);
	return len;
}

static void
log_results(const struct batch *b)
{
	size_t	 i;

	for (i = 0; i < b->n; i++) {
		if (b->status[i] == DLV_OK)
			log_info("%s: to=<%s>, store=mongo, uid=%" PRId64
			    ", status=sent (%s)", b->msg->msgid,
			    b->r[i].dlv->rcpt, b->r[i].uid, b->text[i]);
		else
			log_info("%s: to=<%s>, store=mongo, status=%s (%s)",
			    b->msg->msgid, b->r[i].dlv->rcpt,
			    b->status[i] == DLV_TEMPFAIL ? "deferred" :
			    "bounced", b->text[i]);
		stat_increment(b->status[i] == DLV_OK ? "store.stored" :
		    "store.deferred", 1);
	}
}

/* Attachments to GridFS, then the raw message where it fits. */
static int
place_files(struct batch *b, bson_error_t *err)
{
	if (upload_attachments(b, err) == -1)
		return -1;
	b->base_len = base_length(b);
	return place_raw(b, err);
}

static void
deliver_pending(struct batch *b, mongoc_client_t *client)
{
	bson_error_t	 err;
	size_t		 i, ninserted = 0;

	b->db = mongoc_client_get_database(client, dbname);
	b->messages = mongoc_database_get_collection(b->db, COLL_MESSAGES);
	b->mailboxes = mongoc_database_get_collection(b->db, COLL_MAILBOXES);
	memset(&err, 0, sizeof(err));
	if (ensure_indexes(b->db, &err) == -1) {
		fail_rest(b, &err, "indexes");
		return;
	}
	/* Bad MIME is no reason to refuse: the raw message has it all. */
	if (store_mime_parse(b->raw, b->size, &b->mime) == -1)
		log_debug("%s: store: no MIME structure", b->msg->msgid);
	b->raw_id.value_type = BSON_TYPE_EOD;
	if (place_files(b, &err) == -1) {
		fail_rest(b, &err, "GridFS");
		remove_uploads(b);
		return;
	}
	insert_all(b);
	for (i = 0; i < b->n; i++) {
		unreserve(b, &b->r[i]);
		ninserted += b->r[i].inserted;
	}
	if (ninserted == 0)
		remove_uploads(b);
}

void
store_deliver(const struct store_msg *msg, const struct dlv *const *dlvs,
    size_t n, uint32_t *status, char (*text)[TEXT_MAX])
{
	struct batch		 b;
	mongoc_client_t		*client;
	const char		*why = NULL;
	size_t			 i;

	memset(&b, 0, sizeof(b));
	b.msg = msg;
	b.n = n;
	b.status = status;
	b.text = text;
	if (n == 0)
		return;
	if ((b.r = calloc(n, sizeof(*b.r))) == NULL) {
		for (i = 0; i < n; i++) {
			status[i] = DLV_TEMPFAIL;
			(void)strlcpy(text[i], "4.3.0 out of memory", TEXT_MAX);
		}
		return;
	}
	for (i = 0; i < n; i++) {
		b.r[i].dlv = dlvs[i];
		(void)snprintf(b.r[i].id, sizeof(b.r[i].id), "%s:%s",
		    msg->msgid, dlvs[i]->rcpt);
	}
	if (pool == NULL) {
		for (i = 0; i < n; i++)
			set_result(&b, i, DLV_TEMPFAIL, "4.3.5 no store "
			    "configured (store mongo)");
	} else if ((b.raw = read_message(msg->fd, &b.size, &why)) == NULL) {
		/* Too large stays too large: no point in retrying that. */
		for (i = 0; i < n; i++)
			set_result(&b, i, why == too_large ? DLV_PERMFAIL :
			    DLV_TEMPFAIL, "%s %s", why == too_large ?
			    "5.3.4" : "4.3.0", why);
	} else {
		client = mongoc_client_pool_pop(pool);
		deliver_pending(&b, client);
		for (i = 0; i < n; i++)
			if (!b.r[i].done)
				set_result(&b, i, DLV_TEMPFAIL,
				    "4.3.0 store error: not stored");
		if (b.messages)
			mongoc_collection_destroy(b.messages);
		if (b.mailboxes)
			mongoc_collection_destroy(b.mailboxes);
		if (b.db)
			mongoc_database_destroy(b.db);
		mongoc_client_pool_push(pool, client);
	}
	log_results(&b);
	if (b.att_ids != NULL) {
		for (i = 0; i < b.mime.natt; i++)
			bson_value_destroy(&b.att_ids[i]);
		free(b.att_ids);
	}
	if (b.raw_id.value_type != BSON_TYPE_EOD)
		bson_value_destroy(&b.raw_id);
	store_mime_free(&b.mime);
	free(b.raw);
	free(b.r);
}
