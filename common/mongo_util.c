#include "autoconf.h"

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

void
mongo_log_to_syslog(void)
{
	mongoc_log_set_handler(mongoc_to_log, NULL);
}

void
mongo_uri_default(mongoc_uri_t *uri, const char *opt, int32_t value)
{
	if (!mongoc_uri_has_option(uri, opt))
		(void)mongoc_uri_set_option_as_int32(uri, opt, value);
}
