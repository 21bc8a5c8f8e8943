/*
 * Remote tables and quota checks for the policy process, in MongoDB.
 *
 * A remote table is a collection of documents {_id: key, value: "..."}:
 * a document without `value` (or with "" or null) is a list entry.  Keys
 * arrive lower-cased from the table layer; the collection must hold them
 * lower-cased too.  Every lookup is by _id, the one index every server
 * keeps (FerretDB v1 scans a collection for any other query).
 *
 * Lookups are synchronous: policy answers one question at a time in its
 * event loop, and a lookup holds that loop for one round trip.  What
 * bounds it: short timeouts (below, unless the URI sets its own), and the
 * single-threaded client's behaviour when the server is down: one failed
 * server selection (at most serverSelectionTimeoutMS, one connect attempt)
 * puts the server in a 5 s cooldown during which lookups fail at once
 * instead of waiting.  A failed lookup is an error, never a "no": the
 * table layer counts it in table_errors and policy answers 451 4.3.0, so
 * a database outage defers mail instead of refusing it.  A client (not a
 * pool) because policy is single-threaded: a pool would only add
 * monitoring threads to a seccomp-confined process.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <string.h>

#include <mongoc/mongoc.h>

#include "log.h"
#include "mongo_util.h"
#include "stats.h"
#include "store_policy.h"
#include "table.h"

#define COLL_MAILBOXES		"mailboxes"

#define SELECT_TIMEOUT_MS	2000
#define CONNECT_TIMEOUT_MS	2000
#define SOCKET_TIMEOUT_MS	5000

static mongoc_client_t	*client;
static mongoc_database_t *db;


static int
has_remote_tables(const struct config *conf)
{
	const struct table	*t;

	TAILQ_FOREACH(t, &conf->tables, entry)
		if (t->remote[0] != '\0')
			return 1;
	return 0;
}

int
policy_store_init(const struct config *conf)
{
	mongoc_uri_t	*uri;
	bson_error_t	 err;
	char		 name[128];

	if (conf->store_uri[0] == '\0') {
		if (!has_remote_tables(conf))
			return 0;
		log_warnx("store: mongo tables need `store mongo URI`");
		return -1;
	}
	if ((uri = mongo_uri_open(conf->store_uri, SELECT_TIMEOUT_MS,
	    CONNECT_TIMEOUT_MS, SOCKET_TIMEOUT_MS, name, sizeof(name))) == NULL)
		return -1;
	client = mongoc_client_new_from_uri_with_error(uri, &err);
	if (client == NULL) {
		log_warnx("store: %s", err.message);
		mongoc_uri_destroy(uri);
		return -1;
	}
	(void)mongoc_client_set_error_api(client, MONGOC_ERROR_API_VERSION_2);
	(void)mongoc_client_set_appname(client, "mtad-policy");
	db = mongoc_client_get_database(client, name);
	mongoc_uri_destroy(uri);
	return 0;
}

/*
 * The document {_id: key} of a collection, only the fields of
 * `projection`.  1 found (*doc to destroy), 0 not, -1 failed.
 */
static int
find_by_id(const char *collection, const char *key, const bson_t *projection,
    bson_t **doc)
{
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*d;
	bson_error_t		 err;
	bson_t			*filter, *opts;
	int			 rc = 0;

	*doc = NULL;
	if (db == NULL)
		return -1;
	coll = mongoc_database_get_collection(db, collection);
	filter = BCON_NEW("_id", BCON_UTF8(key));
	opts = BCON_NEW("projection", BCON_DOCUMENT(projection),
	    "limit", BCON_INT64(1), "singleBatch", BCON_BOOL(true));
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	if (mongoc_cursor_next(cur, &d)) {
		*doc = bson_copy(d);
		rc = 1;
	} else if (mongoc_cursor_error(cur, &err)) {
		log_warnx("store: lookup of \"%s\" in %s failed: %s", key,
		    collection, err.message);
		stat_increment("store.lookup_error", 1);
		rc = -1;
	}
	stat_increment("store.lookup", 1);
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	return rc;
}

int
store_table_lookup(struct table *t, const char *key, char *value,
    size_t valuesz)
{
	bson_t		*doc, *proj;
	bson_iter_t	 it;
	const char	*v = "";
	uint32_t	 len = 0;
	int		 rc;

	proj = BCON_NEW("value", BCON_INT32(1));
	rc = find_by_id(t->remote, key, proj, &doc);
	bson_destroy(proj);
	if (rc != 1)
		return rc;
	if (bson_iter_init_find(&it, doc, "value")) {
		if (BSON_ITER_HOLDS_UTF8(&it))
			v = bson_iter_utf8(&it, &len);
		else if (!BSON_ITER_HOLDS_NULL(&it)) {
			log_warnx("store: table %s (%s): value of \"%s\" is "
			    "not a string", t->name, t->remote, key);
			rc = -1;
		}
	}
	if (rc == 1 && (strlen(v) != len || strlcpy(value, v, valuesz) >=
	    valuesz)) {
		log_warnx("store: table %s (%s): value of \"%s\" is too long "
		    "or holds a NUL", t->name, t->remote, key);
		rc = -1;
	}
	bson_destroy(doc);
	return rc;
}

int
store_mailbox_full(const char *mailbox)
{
	bson_t		*doc, *proj;
	bson_iter_t	 it;
	int64_t		 quota = 0, usage = 0;
	int		 rc;

	proj = BCON_NEW("quota", BCON_INT32(1), "usage", BCON_INT32(1));
	rc = find_by_id(COLL_MAILBOXES, mailbox, proj, &doc);
	bson_destroy(proj);
	if (rc != 1)
		return rc;	/* -1, or 0: a new mailbox is empty */
	if (bson_iter_init_find(&it, doc, "quota"))
		quota = bson_iter_as_int64(&it);
	if (bson_iter_init_find(&it, doc, "usage"))
		usage = bson_iter_as_int64(&it);
	bson_destroy(doc);
	return quota > 0 && usage >= quota;
}
