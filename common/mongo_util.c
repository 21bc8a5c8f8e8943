#include "autoconf.h"

#include <string.h>

#include "log.h"
#include "mongo_util.h"

static void
mongoc_to_log(mongoc_log_level_t level, const char *domain,
    const char *message, void *arg)
{
	if (level <= MONGOC_LOG_LEVEL_WARNING)
		log_warnx("mongoc %s: %s", domain, message);
	else if (level <= MONGOC_LOG_LEVEL_INFO)
		log_debug("mongoc %s: %s", domain, message);
}

static void
uri_default(mongoc_uri_t *uri, const char *opt, int32_t value)
{
	if (!mongoc_uri_has_option(uri, opt))
		(void)mongoc_uri_set_option_as_int32(uri, opt, value);
}

mongoc_uri_t *
mongo_uri_open(const char *text, int32_t select_ms, int32_t connect_ms,
    int32_t socket_ms, char *dbname, size_t dbnamesz)
{
	mongoc_uri_t	*uri;
	bson_error_t	 err;
	const char	*db;

	mongoc_init();
	mongoc_log_set_handler(mongoc_to_log, NULL);
	if ((uri = mongoc_uri_new_with_error(text, &err)) == NULL) {
		log_warnx("store: bad URI: %s", err.message);
		return NULL;
	}
	uri_default(uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, select_ms);
	uri_default(uri, MONGOC_URI_CONNECTTIMEOUTMS, connect_ms);
	uri_default(uri, MONGOC_URI_SOCKETTIMEOUTMS, socket_ms);
	db = mongoc_uri_get_database(uri);
	(void)strlcpy(dbname, db != NULL && *db != '\0' ? db :
	    MONGO_DB_DEFAULT, dbnamesz);
	return uri;
}
