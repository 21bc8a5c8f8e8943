/*
 * `mtactl show mailbox`: talks to MongoDB directly, not to mtad (the
 * store is shared by every node; the daemon need not run).  Reads the
 * mailbox document, then the newest messages through the
 * {mailbox, received_at} index.  Text fields come from mail: control
 * characters are replaced before they reach a terminal.
 */
#include "autoconf.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

#include "config.h"
#include "mailbox.h"
#include "mongo_util.h"

#define COLL_MESSAGES	"messages"
#define COLL_MAILBOXES	"mailboxes"
#define FROM_WIDTH	32
#define SUBJECT_WIDTH	60

struct mailbox_info {
	int64_t	 messages, usage, quota, uidnext;
};

struct row {
	int64_t		 uid, size, received;	/* received: seconds */
	char		 from[512];		/* "Name <address>" */
	char		 subject[1024];
};

/*
 * libmongoc's own messages: errors only.  Its warnings are noise here
 * (FerretDB, for one, has no endSessions, which the client sends when it
 * is destroyed); what fails is reported by the caller.
 */
static void
mongoc_to_stderr(mongoc_log_level_t level, const char *domain,
    const char *message, void *arg)
{
	if (level <= MONGOC_LOG_LEVEL_ERROR)
		fprintf(stderr, "mtactl: mongoc %s: %s\n", domain, message);
}

static int64_t
field_int(const bson_t *doc, const char *path)
{
	bson_iter_t	 it, child;

	if (!bson_iter_init(&it, doc) ||
	    !bson_iter_find_descendant(&it, path, &child))
		return 0;
	return bson_iter_as_int64(&child);
}

static const char *
field_str(const bson_t *doc, const char *path)
{
	bson_iter_t	 it, child;

	if (!bson_iter_init(&it, doc) ||
	    !bson_iter_find_descendant(&it, path, &child) ||
	    !BSON_ITER_HOLDS_UTF8(&child))
		return "";
	return bson_iter_utf8(&child, NULL);
}

static void
row_from_doc(const bson_t *doc, struct row *r)
{
	bson_iter_t	 it, child;
	const char	*name, *addr;

	memset(r, 0, sizeof(*r));
	r->uid = field_int(doc, "uid");
	r->size = field_int(doc, "size");
	if (bson_iter_init(&it, doc) &&
	    bson_iter_find_descendant(&it, "received_at", &child) &&
	    BSON_ITER_HOLDS_DATE_TIME(&child))
		r->received = bson_iter_date_time(&child) / 1000;
	name = field_str(doc, "headers.from.0.name");
	addr = field_str(doc, "headers.from.0.address");
	if (*name != '\0')
		(void)snprintf(r->from, sizeof(r->from), "%s <%s>", name, addr);
	else
		(void)strlcpy(r->from, addr, sizeof(r->from));
	(void)strlcpy(r->subject, field_str(doc, "headers.subject"),
	    sizeof(r->subject));
}

/*
 * At most `width` characters of s, control characters as '?', cut on a
 * UTF-8 character boundary, padded with spaces when pad.
 */
static void
print_cell(const char *s, int width, int pad)
{
	const unsigned char	*p = (const unsigned char *)s;
	int			 n = 0, len;

	while (*p != '\0' && n < width) {
		len = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 :
		    (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 1;
		if (*p < 0x20 || *p == 0x7f || (len == 1 && *p >= 0x80))
			putchar('?');
		else if (strnlen((const char *)p, (size_t)len) == (size_t)len)
			(void)fwrite(p, 1, (size_t)len, stdout);
		else
			break;
		p += len;
		n++;
	}
	while (pad && n++ < width)
		putchar(' ');
}

static void
format_time(time_t t, char *buf, size_t len)
{
	struct tm	 tm;

	if (t == 0 || localtime_r(&t, &tm) == NULL)
		(void)strlcpy(buf, "-", len);
	else
		(void)strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static void
print_header(const char *address, const struct mailbox_info *mi, int json)
{
	if (json) {
		printf("{\"mailbox\": ");
		json_string(address);
		printf(", \"messages\": %" PRId64 ", \"usage\": %" PRId64
		    ", \"quota\": %" PRId64 ", \"uidnext\": %" PRId64
		    ", \"list\": [", mi->messages, mi->usage, mi->quota,
		    mi->uidnext);
		return;
	}
	printf("mailbox %s: %" PRId64 " message%s, %" PRId64 " bytes",
	    address, mi->messages, mi->messages == 1 ? "" : "s", mi->usage);
	if (mi->quota > 0)
		printf(", quota %" PRId64 " (%" PRId64 "%%)", mi->quota,
		    mi->usage * 100 / mi->quota);
	else
		printf(", no quota");
	printf(", uidnext %" PRId64 "\n", mi->uidnext);
	printf("%6s  %-19s  %9s  %-*s  %s\n", "UID", "DATE", "SIZE",
	    FROM_WIDTH, "FROM", "SUBJECT");
}

static void
print_row(const struct row *r, int n, int json)
{
	char	 date[32];

	if (json) {
		printf("%s\n  {\"uid\": %" PRId64 ", \"received_at\": %" PRId64
		    ", \"size\": %" PRId64 ", \"from\": ", n ? "," : "",
		    r->uid, r->received, r->size);
		json_string(r->from);
		printf(", \"subject\": ");
		json_string(r->subject);
		printf("}");
		return;
	}
	format_time((time_t)r->received, date, sizeof(date));
	printf("%6" PRId64 "  %-19s  %9" PRId64 "  ", r->uid, date, r->size);
	print_cell(r->from, FROM_WIDTH, 1);
	printf("  ");
	print_cell(r->subject, SUBJECT_WIDTH, 0);
	printf("\n");
}

/* 1 and *mi, 0 no such mailbox, -1 error (printed). */
static int
read_mailbox(mongoc_database_t *db, const char *address,
    struct mailbox_info *mi)
{
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_error_t		 err;
	bson_t			*filter;
	int			 rc = 0;

	coll = mongoc_database_get_collection(db, COLL_MAILBOXES);
	filter = BCON_NEW("_id", BCON_UTF8(address));
	cur = mongoc_collection_find_with_opts(coll, filter, NULL, NULL);
	if (mongoc_cursor_next(cur, &doc)) {
		mi->messages = field_int(doc, "messages");
		mi->usage = field_int(doc, "usage");
		mi->quota = field_int(doc, "quota");
		mi->uidnext = field_int(doc, "uidnext");
		rc = 1;
	} else if (mongoc_cursor_error(cur, &err)) {
		fprintf(stderr, "mtactl: store: %s\n", err.message);
		rc = -1;
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	mongoc_collection_destroy(coll);
	return rc;
}

static int
list_messages(mongoc_database_t *db, const char *address, int limit,
    int json)
{
	mongoc_collection_t	*coll;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_error_t		 err;
	bson_t			*filter, *opts;
	struct row		 r;
	int			 n = 0, rc = 0;

	coll = mongoc_database_get_collection(db, COLL_MESSAGES);
	filter = BCON_NEW("mailbox", BCON_UTF8(address));
	opts = BCON_NEW("sort", "{", "received_at", BCON_INT32(-1),
	    "uid", BCON_INT32(-1), "}",
	    "limit", BCON_INT64(limit),
	    "projection", "{", "uid", BCON_INT32(1), "size", BCON_INT32(1),
	    "received_at", BCON_INT32(1), "headers.from", BCON_INT32(1),
	    "headers.subject", BCON_INT32(1), "}");
	cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		row_from_doc(doc, &r);
		print_row(&r, n++, json);
	}
	if (mongoc_cursor_error(cur, &err)) {
		fflush(stdout);
		fprintf(stderr, "mtactl: store: %s\n", err.message);
		rc = -1;
	}
	mongoc_cursor_destroy(cur);
	bson_destroy(filter);
	bson_destroy(opts);
	mongoc_collection_destroy(coll);
	if (json)
		printf("%s]}\n", n ? "\n" : "");
	return rc;
}

static mongoc_client_t *
connect_store(const struct config *conf, char *dbname, size_t dbnamesz)
{
	mongoc_client_t	*client;
	mongoc_uri_t	*uri;
	bson_error_t	 err;
	const char	*db;

	if ((uri = mongoc_uri_new_with_error(conf->store_uri, &err)) == NULL) {
		fprintf(stderr, "mtactl: store URI: %s\n", err.message);
		return NULL;
	}
	if (!mongoc_uri_has_option(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS))
		(void)mongoc_uri_set_option_as_int32(uri,
		    MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 5000);
	client = mongoc_client_new_from_uri_with_error(uri, &err);
	if (client == NULL)
		fprintf(stderr, "mtactl: store: %s\n", err.message);
	else {
		(void)mongoc_client_set_error_api(client, 2);
		(void)mongoc_client_set_appname(client, "mtactl");
		db = mongoc_uri_get_database(uri);
		(void)strlcpy(dbname, db != NULL && *db != '\0' ? db :
		    MONGO_DB_DEFAULT, dbnamesz);
	}
	mongoc_uri_destroy(uri);
	return client;
}

static int
show(const struct config *conf, const char *address, int limit, int json)
{
	mongoc_client_t		*client;
	mongoc_database_t	*db;
	struct mailbox_info	 mi;
	char			 dbname[128];
	int			 rc;

	if ((client = connect_store(conf, dbname, sizeof(dbname))) == NULL)
		return 1;
	db = mongoc_client_get_database(client, dbname);
	memset(&mi, 0, sizeof(mi));
	if ((rc = read_mailbox(db, address, &mi)) == 0)
		fprintf(stderr, "mtactl: no mailbox %s in the store\n",
		    address);
	if (rc == 1) {
		print_header(address, &mi, json);
		rc = list_messages(db, address, limit, json) == 0 ? 1 : -1;
	}
	mongoc_database_destroy(db);
	mongoc_client_destroy(client);
	return rc == 1 ? 0 : 1;
}

int
mailbox_show(const char *conffile, const char *address, int limit, int json)
{
	struct config	*conf;
	char		 addr[512], *p;
	int		 rc;

	if (strlcpy(addr, address, sizeof(addr)) >= sizeof(addr)) {
		fprintf(stderr, "mtactl: address too long\n");
		return 2;
	}
	/* Mailboxes are stored under the lower-cased address. */
	for (p = addr; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	conf = config_parse_flags(conffile, NULL, NULL,
	    CONFIG_SKIP_TABLE_FILES);
	if (conf == NULL) {
		fprintf(stderr, "mtactl: %s: configuration has errors\n",
		    conffile);
		return 1;
	}
	if (conf->store_uri[0] == '\0') {
		fprintf(stderr, "mtactl: %s has no `store mongo`\n", conffile);
		config_free(conf);
		return 1;
	}
	mongoc_init();
	mongoc_log_set_handler(mongoc_to_stderr, NULL);
	rc = show(conf, addr, limit, json);
	mongoc_cleanup();
	config_free(conf);
	return rc;
}
