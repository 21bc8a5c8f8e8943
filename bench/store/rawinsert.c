/*
 * The baseline of the store benchmark: the documents mtad filed, read back
 * from SRCDB.messages and inserted again, one insert per document as mtad
 * files one recipient, into DSTDB.messages with the same indexes and the
 * same write concern (journal) as mtad uses by default.  Prints
 *
 *	raw_inserts N SECONDS RATE
 *
 * usage: rawinsert URI SRCDB DSTDB
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <mongoc/mongoc.h>

static double
now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what, const bson_error_t *err)
{
	fprintf(stderr, "rawinsert: %s: %s\n", what, err ? err->message : "");
	exit(1);
}

/* As deliver-worker/store.c does: one index per command. */
static void
make_indexes(mongoc_database_t *db)
{
	static const char *const cmds[] = {
		"{\"createIndexes\": \"messages\", \"indexes\": [{\"key\": "
		"{\"mailbox\": 1, \"uid\": 1}, \"name\": \"mailbox_uid\", "
		"\"unique\": true}]}",
		"{\"createIndexes\": \"messages\", \"indexes\": [{\"key\": "
		"{\"mailbox\": 1, \"received_at\": -1}, \"name\": "
		"\"mailbox_received\"}]}",
		"{\"createIndexes\": \"messages\", \"indexes\": [{\"key\": "
		"{\"headers.message_id\": 1}, \"name\": \"message_id\"}]}",
	};
	bson_error_t	 err;
	bson_t		*cmd;
	size_t		 i;

	for (i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		if ((cmd = bson_new_from_json((const uint8_t *)cmds[i], -1,
		    &err)) == NULL)
			die("index json", &err);
		if (!mongoc_database_write_command_with_opts(db, cmd, NULL,
		    NULL, &err))
			die("createIndexes", &err);
		bson_destroy(cmd);
	}
}

int
main(int argc, char *argv[])
{
	mongoc_client_t		*client;
	mongoc_database_t	*src, *dst;
	mongoc_collection_t	*in, *out;
	mongoc_write_concern_t	*wc;
	mongoc_cursor_t		*cur;
	const bson_t		*doc;
	bson_t			**docs = NULL, *filter, *opts;
	bson_error_t		 err;
	size_t			 n = 0, cap = 0, i;
	double			 t0, t1;

	if (argc != 4) {
		fprintf(stderr, "usage: rawinsert URI SRCDB DSTDB\n");
		return 2;
	}
	mongoc_init();
	if ((client = mongoc_client_new(argv[1])) == NULL)
		die("bad URI", NULL);
	(void)mongoc_client_set_error_api(client, 2);
	src = mongoc_client_get_database(client, argv[2]);
	dst = mongoc_client_get_database(client, argv[3]);
	if (!mongoc_database_drop_with_opts(dst, NULL, &err) &&
	    err.code != 26)
		fprintf(stderr, "rawinsert: drop %s: %s\n", argv[3],
		    err.message);
	in = mongoc_database_get_collection(src, "messages");
	filter = bson_new();
	cur = mongoc_collection_find_with_opts(in, filter, NULL, NULL);
	while (mongoc_cursor_next(cur, &doc)) {
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((docs = realloc(docs, cap * sizeof(*docs))) == NULL)
				die("out of memory", NULL);
		}
		docs[n++] = bson_copy(doc);
	}
	if (mongoc_cursor_error(cur, &err))
		die("reading the stored documents", &err);
	mongoc_cursor_destroy(cur);
	if (n == 0)
		die("no documents to insert", NULL);

	make_indexes(dst);
	out = mongoc_database_get_collection(dst, "messages");
	wc = mongoc_write_concern_new();
	mongoc_write_concern_set_journal(wc, true);
	opts = bson_new();
	if (!mongoc_write_concern_append(wc, opts))
		die("write concern", NULL);
	t0 = now();
	for (i = 0; i < n; i++)
		if (!mongoc_collection_insert_one(out, docs[i], opts, NULL,
		    &err))
			die("insert", &err);
	t1 = now();
	printf("raw_inserts %zu %.3f %.1f\n", n, t1 - t0, (double)n /
	    (t1 - t0));

	for (i = 0; i < n; i++)
		bson_destroy(docs[i]);
	free(docs);
	bson_destroy(opts);
	bson_destroy(filter);
	mongoc_write_concern_destroy(wc);
	mongoc_collection_destroy(in);
	mongoc_collection_destroy(out);
	mongoc_database_destroy(src);
	mongoc_database_destroy(dst);
	mongoc_client_destroy(client);
	mongoc_cleanup();
	return 0;
}
