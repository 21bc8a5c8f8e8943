#include "autoconf.h"

#include <crypt.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "addr.h"
#include "auth.h"
#include "log.h"
#include "table.h"

/* As the SMTP worker's AUTH_USER_MAX: a longer name cannot be a user. */
#define AUTH_KEY_MAX	256

enum hash_check { HASH_MATCH, HASH_MISMATCH, HASH_INVALID, HASH_ERROR };

/*
 * Methods libxcrypt computes that are still worth trusting; DES, MD5 and
 * the rest are refused even if the library would take them.
 */
static const char *const hash_methods[] = {
	"$y$", "$6$", "$5$", "$2b$", "$2y$",
};

/*
 * For unknown users: a yescrypt hash at Debian's default cost, of a
 * password nobody knows.  Once a real hash has been checked, its setting
 * (method and cost) is used instead, so that a site on bcrypt does not
 * answer unknown users in a yescrypt time.
 */
static const char	 dummy_default[] = "$y$j9T$b3cwD9J2A80BvP/jx4Z6A0$"
    "6/89Lz9iK1MJ2EeW9Wk2IEnCBzwFAVtLUNsR0w2GnN1";
static char		 dummy[CRYPT_OUTPUT_SIZE];

/* 32 KiB: allocated once, wiped after each use (it holds the password). */
static struct crypt_data *cdata;

static int		 method_supported(const char *);
static int		 ct_equal(const char *, const char *);
static enum hash_check	 hash_check(const char *, const char *);
static void		 dummy_work(const char *);
static void		 dummy_remember(const char *);

static int
method_supported(const char *hash)
{
	size_t	i;

	for (i = 0; i < sizeof(hash_methods) / sizeof(hash_methods[0]); i++)
		if (strncmp(hash, hash_methods[i],
		    strlen(hash_methods[i])) == 0)
			return 1;
	return 0;
}

/*
 * Compares without an early exit, so that the time taken does not tell how
 * much of a guessed hash was right.  The lengths are no secret: they
 * follow from the method.
 */
static int
ct_equal(const char *a, const char *b)
{
	size_t		len = strlen(a), i;
	unsigned char	diff = 0;

	if (strlen(b) != len)
		return 0;
	for (i = 0; i < len; i++)
		diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
	return diff == 0;
}

static enum hash_check
hash_check(const char *hash, const char *pass)
{
	enum hash_check	 r;
	const char	*out;

	if (cdata == NULL && (cdata = calloc(1, sizeof(*cdata))) == NULL)
		return HASH_ERROR;
	errno = 0;
	if ((out = crypt_rn(pass, hash, cdata, sizeof(*cdata))) != NULL)
		r = ct_equal(out, hash) ? HASH_MATCH : HASH_MISMATCH;
	else if (errno == EINVAL)
		r = HASH_INVALID;	/* not a hash this libcrypt knows */
	else if (errno == ERANGE)
		r = HASH_MISMATCH;	/* password longer than any allowed */
	else
		r = HASH_ERROR;		/* ENOMEM: yescrypt wants megabytes */
	explicit_bzero(cdata, sizeof(*cdata));
	return r;
}

static void
dummy_work(const char *pass)
{
	if (dummy[0] == '\0')
		(void)strlcpy(dummy, dummy_default, sizeof(dummy));
	(void)hash_check(dummy, pass);
}

/* A hash crypt() took: the method and cost to spend on unknown users. */
static void
dummy_remember(const char *hash)
{
	if (strlen(hash) < sizeof(dummy))
		(void)strlcpy(dummy, hash, sizeof(dummy));
}

enum auth_result
auth_verify(struct table *creds, const char *user, const char *pass)
{
	const struct table_entry	*e = NULL;
	char				 key[AUTH_KEY_MAX];
	unsigned long			 errors;

	if (creds == NULL || user == NULL || pass == NULL)
		return AUTH_FAIL;

	/*
	 * User names are case-insensitive: the table layer lowercases keys,
	 * so the name is looked up lowercased (table_lookup would do it too;
	 * our bounded copy refuses an oversize name before any lookup, and
	 * is the name the log lines show).
	 */
	errors = table_errors;
	if (strlcpy(key, user, sizeof(key)) < sizeof(key)) {
		str_lower(key);
		e = table_lookup(creds, key);
	}
	if (table_errors != errors) {
		log_warnx("auth: table %s: lookup failed", creds->name);
		return AUTH_TEMPFAIL;
	}
	if (e == NULL || e->value == NULL || !method_supported(e->value)) {
		dummy_work(pass);
		return AUTH_FAIL;
	}

	switch (hash_check(e->value, pass)) {
	case HASH_MATCH:
		dummy_remember(e->value);
		return *pass != '\0' ? AUTH_OK : AUTH_FAIL;
	case HASH_MISMATCH:
		dummy_remember(e->value);
		return AUTH_FAIL;
	case HASH_INVALID:
		log_warnx("auth: table %s: the hash of \"%s\" is not valid",
		    creds->name, key);
		dummy_work(pass);
		return AUTH_FAIL;
	case HASH_ERROR:
	default:
		log_warn("auth: crypt");
		return AUTH_TEMPFAIL;
	}
}
