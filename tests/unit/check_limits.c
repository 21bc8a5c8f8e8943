#include "autoconf.h"

#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"

#define T0	1000000	/* an arbitrary start for `now` */

static void
conf_set(int total, int per_ip, int rate, time_t rate_window, int auth,
    time_t auth_window)
{
	struct limits_conf	 c;

	memset(&c, 0, sizeof(c));
	c.conn_total = total;
	c.conn_per_ip = per_ip;
	c.conn_rate = rate;
	c.rate_window = rate_window;
	c.auth_failures = auth;
	c.auth_window = auth_window;
	limits_init(&c);
}

static void
setup(void)
{
	limits_set_track_max(0);
	limits_set_conn_max(0);
	conf_set(0, 0, 0, 60, 0, 300);
}

static void
teardown(void)
{
	limits_clear();
	ck_assert_int_eq(limits_connections(), 0);
	ck_assert_uint_eq(limits_tracked(), 0);
}

/* "10.0.x.y" for i, distinct for i < 65536. */
static const char *
ip4(unsigned int i)
{
	static char	 buf[32];
	int		 n;

	n = snprintf(buf, sizeof(buf), "10.0.%u.%u", (i >> 8) & 0xff,
	    i & 0xff);
	ck_assert(n > 0 && (size_t)n < sizeof(buf));
	return buf;
}

/* ---- total ----------------------------------------------------------- */

START_TEST(test_total)
{
	unsigned int	 i;

	conf_set(3, 0, 0, 60, 0, 300);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(limits_connect(1, i, ip4(i), T0), LIMIT_OK);
	ck_assert_int_eq(limits_connections(), 3);
	ck_assert_int_eq(limits_connect(1, 3, ip4(3), T0), LIMIT_TOTAL);
	ck_assert_int_eq(limits_connect(2, 0, ip4(4), T0), LIMIT_TOTAL);
	ck_assert_int_eq(limits_connections(), 3);

	limits_disconnect(1, 1);
	ck_assert_int_eq(limits_connections(), 2);
	ck_assert_int_eq(limits_connect(2, 0, ip4(4), T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(2, 1, ip4(5), T0), LIMIT_TOTAL);
}
END_TEST

/* The ceiling holds even when the configuration says unlimited. */
START_TEST(test_conn_max)
{
	unsigned int	 i;

	limits_set_conn_max(5);
	for (i = 0; i < 5; i++)
		ck_assert_int_eq(limits_connect(1, i, ip4(i), T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 5, ip4(5), T0), LIMIT_TOTAL);
	limits_disconnect(1, 0);
	ck_assert_int_eq(limits_connect(1, 5, ip4(5), T0), LIMIT_OK);
}
END_TEST

/* ---- per IP ---------------------------------------------------------- */

START_TEST(test_per_ip)
{
	conf_set(0, 2, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(2, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(2, 2, "192.0.2.1", T0), LIMIT_PER_IP);
	/* Its neighbour is another client. */
	ck_assert_int_eq(limits_connect(2, 3, "192.0.2.2", T0), LIMIT_OK);
	/* The same client behind a dual-stack listener. */
	ck_assert_int_eq(limits_connect(2, 4, "::ffff:192.0.2.1", T0),
	    LIMIT_PER_IP);

	limits_disconnect(1, 1);
	ck_assert_int_eq(limits_connect(2, 5, "::ffff:192.0.2.1", T0),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connect(2, 6, "192.0.2.1", T0), LIMIT_PER_IP);
	ck_assert_int_eq(limits_connections(), 3);
}
END_TEST

START_TEST(test_per_ip_v6_64)
{
	conf_set(0, 2, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "2001:db8::1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 2, "2001:db8:0:0:ffff:ffff:ffff:ffff",
	    T0), LIMIT_OK);
	/* Another address of the same /64. */
	ck_assert_int_eq(limits_connect(1, 3, "2001:db8::abcd:1234", T0),
	    LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(1, 4, "2001:DB8:0:0::9%eth0", T0),
	    LIMIT_PER_IP);
	/* The next /64 is another client. */
	ck_assert_int_eq(limits_connect(1, 5, "2001:db8:0:1::1", T0),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 6, "2001:db8:0:1::2", T0),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 7, "2001:db8:0:1::3", T0),
	    LIMIT_PER_IP);

	limits_disconnect(1, 2);
	ck_assert_int_eq(limits_connect(1, 8, "2001:db8::77", T0), LIMIT_OK);
}
END_TEST

/* Whatever is not a numeric address is one client, and never a crash. */
START_TEST(test_bad_addresses)
{
	char	 longip[300];

	memset(longip, '1', sizeof(longip) - 1);
	longip[sizeof(longip) - 1] = '\0';
	conf_set(0, 1, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "local", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 2, "not an address", T0),
	    LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(1, 3, "", T0), LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(1, 4, NULL, T0), LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(1, 5, longip, T0), LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(1, 6, "192.0.2.300", T0),
	    LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(1, 7, "192.0.2.3", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connections(), 2);
}
END_TEST

/* ---- rate ------------------------------------------------------------ */

START_TEST(test_rate)
{
	uint32_t	 s;

	conf_set(0, 0, 3, 60, 0, 300);
	for (s = 0; s < 3; s++) {
		ck_assert_int_eq(limits_connect(1, s, "192.0.2.1", T0 + s),
		    LIMIT_OK);
		limits_disconnect(1, s);
	}
	ck_assert_int_eq(limits_connect(1, 10, "192.0.2.1", T0 + 3),
	    LIMIT_RATE);
	ck_assert_int_eq(limits_connect(1, 11, "192.0.2.1", T0 + 59),
	    LIMIT_RATE);
	/* Others are not affected. */
	ck_assert_int_eq(limits_connect(1, 12, "192.0.2.2", T0 + 59),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connections(), 1);

	/* The window has passed: a new one starts. */
	ck_assert_int_eq(limits_connect(1, 13, "192.0.2.1", T0 + 60),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 14, "192.0.2.1", T0 + 61),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 15, "192.0.2.1", T0 + 62),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 16, "192.0.2.1", T0 + 63),
	    LIMIT_RATE);
	ck_assert_int_eq(limits_connections(), 4);
}
END_TEST

START_TEST(test_rate_v6_64)
{
	conf_set(0, 0, 2, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "2001:db8::1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 2, "2001:db8::2", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 3, "2001:db8::3", T0), LIMIT_RATE);
	ck_assert_int_eq(limits_connect(1, 4, "2001:db8:1::3", T0), LIMIT_OK);
}
END_TEST

/* Refused attempts count: the client that keeps trying stays refused. */
START_TEST(test_rate_counts_refused)
{
	conf_set(0, 1, 3, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 2, "192.0.2.1", T0 + 1),
	    LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(1, 3, "192.0.2.1", T0 + 2),
	    LIMIT_PER_IP);
	limits_disconnect(1, 1);
	/* A free slot, but this is the 4th attempt in the window. */
	ck_assert_int_eq(limits_connect(1, 4, "192.0.2.1", T0 + 3),
	    LIMIT_RATE);
	ck_assert_int_eq(limits_connections(), 0);
	ck_assert_int_eq(limits_connect(1, 5, "192.0.2.1", T0 + 60),
	    LIMIT_OK);
}
END_TEST

/* A clock that goes back restarts the window rather than blocking. */
START_TEST(test_rate_clock_back)
{
	conf_set(0, 0, 1, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 2, "192.0.2.1", T0), LIMIT_RATE);
	ck_assert_int_eq(limits_connect(1, 3, "192.0.2.1", T0 - 10),
	    LIMIT_OK);
}
END_TEST

/* ---- sessions and owners --------------------------------------------- */

START_TEST(test_disconnect_unknown)
{
	conf_set(0, 1, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	limits_disconnect(1, 2);
	limits_disconnect(2, 1);
	limits_disconnect(0, 0);
	limits_disconnect(UINT64_MAX, UINT32_MAX);
	limits_owner_gone(2);
	ck_assert_int_eq(limits_connections(), 1);
	ck_assert_int_eq(limits_connect(1, 3, "192.0.2.1", T0), LIMIT_PER_IP);

	limits_disconnect(1, 1);
	limits_disconnect(1, 1);	/* twice */
	ck_assert_int_eq(limits_connections(), 0);
	ck_assert_int_eq(limits_connect(1, 3, "192.0.2.1", T0), LIMIT_OK);
}
END_TEST

/* A session id reused after a lost DISCONNECT does not leak a count. */
START_TEST(test_session_reused)
{
	conf_set(0, 1, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connections(), 1);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.2", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connections(), 1);
	/* 192.0.2.1 was released with the old session. */
	ck_assert_int_eq(limits_connect(1, 2, "192.0.2.1", T0), LIMIT_OK);
	limits_disconnect(1, 1);
	ck_assert_int_eq(limits_connections(), 1);
}
END_TEST

START_TEST(test_owner_gone)
{
	uint32_t	 s;

	conf_set(0, 200, 0, 60, 0, 300);
	for (s = 0; s < 100; s++)
		ck_assert_int_eq(limits_connect(7, s, "192.0.2.1", T0),
		    LIMIT_OK);
	ck_assert_int_eq(limits_connect(7, UINT32_MAX, "192.0.2.1", T0),
	    LIMIT_OK);
	for (s = 0; s < 5; s++)
		ck_assert_int_eq(limits_connect(8, s, "192.0.2.1", T0),
		    LIMIT_OK);
	ck_assert_int_eq(limits_connect(6, UINT32_MAX, "192.0.2.1", T0),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connect(UINT64_MAX, 0, "192.0.2.1", T0),
	    LIMIT_OK);
	ck_assert_int_eq(limits_connections(), 108);

	limits_owner_gone(7);
	ck_assert_int_eq(limits_connections(), 7);
	limits_owner_gone(7);
	ck_assert_int_eq(limits_connections(), 7);
	/* Its sessions are gone, the others' are not. */
	limits_disconnect(7, 3);
	limits_disconnect(8, 3);
	limits_disconnect(6, UINT32_MAX);
	ck_assert_int_eq(limits_connections(), 5);
	limits_owner_gone(UINT64_MAX);
	limits_owner_gone(8);
	ck_assert_int_eq(limits_connections(), 0);

	/* And the per-IP count went with them. */
	conf_set(0, 1, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(9, 0, "192.0.2.1", T0), LIMIT_OK);
}
END_TEST

/* Many live connections stay cheap. */
START_TEST(test_many)
{
	uint32_t	 s;

	conf_set(30000, 3, 0, 60, 0, 300);
	for (s = 0; s < 30000; s++)
		ck_assert_int_eq(limits_connect(s % 4, s, ip4(s / 3), T0),
		    LIMIT_OK);
	ck_assert_int_eq(limits_connect(9, 0, ip4(1), T0), LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(9, 0, ip4(20000), T0), LIMIT_TOTAL);
	limits_owner_gone(0);
	ck_assert_int_eq(limits_connections(), 22500);
	for (s = 0; s < 30000; s++)
		limits_disconnect(s % 4, s);
	ck_assert_int_eq(limits_connections(), 0);
}
END_TEST

/* ---- AUTH failures --------------------------------------------------- */

START_TEST(test_auth)
{
	conf_set(0, 0, 0, 60, 3, 300);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0), 0);
	limits_auth_failed("192.0.2.1", T0);
	limits_auth_failed("192.0.2.1", T0 + 10);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 10), 0);
	limits_auth_failed("192.0.2.1", T0 + 20);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 20), 1);
	/* A clock gone back does not block. */
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 19), 0);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 319), 1);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.2", T0 + 20), 0);
	ck_assert_int_eq(limits_auth_blocked("::ffff:192.0.2.1", T0 + 20), 1);
	/* Over: the window after the last failure has passed. */
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 320), 0);
	limits_auth_failed("192.0.2.1", T0 + 330);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 330), 0);
}
END_TEST

/* Failures spread over more than the window do not add up. */
START_TEST(test_auth_window)
{
	conf_set(0, 0, 0, 60, 3, 300);
	limits_auth_failed("192.0.2.1", T0);
	limits_auth_failed("192.0.2.1", T0 + 100);
	limits_auth_failed("192.0.2.1", T0 + 300);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 300), 0);
	limits_auth_failed("192.0.2.1", T0 + 301);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 301), 0);
	limits_auth_failed("192.0.2.1", T0 + 599);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 599), 1);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 898), 1);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 899), 0);
}
END_TEST

/* A failure reported while blocked extends the block. */
START_TEST(test_auth_extend)
{
	conf_set(0, 0, 0, 60, 2, 100);
	limits_auth_failed("192.0.2.1", T0);
	limits_auth_failed("192.0.2.1", T0 + 1);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 1), 1);
	limits_auth_failed("192.0.2.1", T0 + 150 - 50);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 150), 1);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 199), 1);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 200), 0);
}
END_TEST

START_TEST(test_auth_v6_64)
{
	conf_set(0, 0, 0, 60, 2, 300);
	limits_auth_failed("2001:db8::1", T0);
	limits_auth_failed("2001:db8::2", T0);
	ck_assert_int_eq(limits_auth_blocked("2001:db8::99", T0), 1);
	ck_assert_int_eq(limits_auth_blocked("2001:db8:0:1::1", T0), 0);
}
END_TEST

/* ---- the history table ----------------------------------------------- */

START_TEST(test_evict_rate)
{
	conf_set(0, 0, 1, 60, 0, 300);
	limits_set_track_max(4);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 2, "192.0.2.2", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 3, "192.0.2.3", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 4, "192.0.2.4", T0), LIMIT_OK);
	ck_assert_uint_eq(limits_tracked(), 4);
	/* Recently seen, so kept: LRU order is now .1 .3 .4 .2 */
	ck_assert_int_eq(limits_connect(1, 5, "192.0.2.2", T0 + 1),
	    LIMIT_RATE);
	/* A fifth address pushes out the oldest, .1 */
	ck_assert_int_eq(limits_connect(1, 6, "192.0.2.5", T0 + 1), LIMIT_OK);
	ck_assert_uint_eq(limits_tracked(), 4);
	ck_assert_int_eq(limits_connect(1, 7, "192.0.2.3", T0 + 1),
	    LIMIT_RATE);
	/* .1 was forgotten: let through again (and .4 pushed out). */
	ck_assert_int_eq(limits_connect(1, 8, "192.0.2.1", T0 + 1), LIMIT_OK);
	ck_assert_uint_eq(limits_tracked(), 4);
	ck_assert_int_eq(limits_connect(1, 9, "192.0.2.2", T0 + 1),
	    LIMIT_RATE);
	ck_assert_int_eq(limits_connect(1, 10, "192.0.2.5", T0 + 1),
	    LIMIT_RATE);
	ck_assert_int_eq(limits_connect(1, 11, "192.0.2.4", T0 + 1),
	    LIMIT_OK);
	/* Live connections are never evicted. */
	ck_assert_int_eq(limits_connections(), 7);
}
END_TEST

START_TEST(test_evict_auth)
{
	unsigned int	 i;

	conf_set(0, 0, 0, 60, 1, 300);
	limits_set_track_max(100);
	limits_auth_failed("192.0.2.1", T0);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0), 1);
	for (i = 0; i < 99; i++)
		limits_auth_failed(ip4(i), T0);
	ck_assert_uint_eq(limits_tracked(), 100);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0), 1);
	/* Flooded with new addresses: the oldest block is forgotten. */
	limits_auth_failed(ip4(99), T0);
	ck_assert_uint_eq(limits_tracked(), 100);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0), 0);
	ck_assert_int_eq(limits_auth_blocked(ip4(99), T0), 1);
	ck_assert_int_eq(limits_auth_blocked(ip4(0), T0), 1);
}
END_TEST

/* The default ceiling holds against an address flood. */
START_TEST(test_evict_default_cap)
{
	unsigned int	 i;
	char		 ip[64];
	int		 n;

	conf_set(0, 0, 5, 60, 0, 300);
	for (i = 0; i < LIMITS_TRACK_MAX + 1000; i++) {
		n = snprintf(ip, sizeof(ip), "2001:db8:%x:%x::1", i >> 16,
		    i & 0xffff);
		ck_assert(n > 0 && (size_t)n < sizeof(ip));
		ck_assert_int_eq(limits_connect(1, i, ip, T0), LIMIT_OK);
		limits_disconnect(1, i);
	}
	ck_assert_uint_eq(limits_tracked(), LIMITS_TRACK_MAX);
}
END_TEST

/* History that has run out is freed without waiting for the cap. */
START_TEST(test_expire)
{
	unsigned int	 i;

	conf_set(0, 0, 5, 60, 5, 300);
	for (i = 0; i < 10; i++)
		limits_auth_failed(ip4(i), T0);
	ck_assert_uint_eq(limits_tracked(), 10);
	/* Still within the longer (AUTH) window: nothing goes. */
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0 + 299),
	    LIMIT_OK);
	ck_assert_uint_eq(limits_tracked(), 11);
	for (i = 0; i < 10; i++)
		ck_assert_int_eq(limits_connect(1, 2 + i, "192.0.2.2",
		    T0 + 300), i < 5 ? LIMIT_OK : LIMIT_RATE);
	ck_assert_uint_eq(limits_tracked(), 2);
}
END_TEST

/* ---- settings -------------------------------------------------------- */

START_TEST(test_unlimited)
{
	uint32_t	 s;

	for (s = 0; s < 1000; s++)
		ck_assert_int_eq(limits_connect(1, s, "192.0.2.1", T0),
		    LIMIT_OK);
	for (s = 0; s < 1000; s++)
		limits_auth_failed("192.0.2.1", T0);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0), 0);
	ck_assert_int_eq(limits_connections(), 1000);
	/* Nothing to remember when nothing is limited. */
	ck_assert_uint_eq(limits_tracked(), 0);
	/* Negative values mean unlimited too. */
	conf_set(-1, -1, -1, 60, -1, 300);
	ck_assert_int_eq(limits_connect(1, 1000, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0), 0);
}
END_TEST

/* A window shorter than a second is one second, not "no window". */
START_TEST(test_zero_window)
{
	conf_set(0, 0, 1, 0, 1, -5);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 2, "192.0.2.1", T0), LIMIT_RATE);
	ck_assert_int_eq(limits_connect(1, 3, "192.0.2.1", T0 + 1), LIMIT_OK);
	limits_auth_failed("192.0.2.1", T0);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0), 1);
	ck_assert_int_eq(limits_auth_blocked("192.0.2.1", T0 + 1), 0);
}
END_TEST

/* A reload changes the limits, not the counts. */
START_TEST(test_reinit)
{
	conf_set(0, 0, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 1, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 2, "192.0.2.1", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connect(1, 3, "192.0.2.2", T0), LIMIT_OK);
	conf_set(3, 0, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 4, "192.0.2.3", T0), LIMIT_TOTAL);
	conf_set(0, 2, 0, 60, 0, 300);
	ck_assert_int_eq(limits_connect(1, 5, "192.0.2.1", T0), LIMIT_PER_IP);
	ck_assert_int_eq(limits_connect(1, 6, "192.0.2.2", T0), LIMIT_OK);
	ck_assert_int_eq(limits_connections(), 4);
}
END_TEST

START_TEST(test_verdict_text)
{
	ck_assert_str_eq(limit_verdict_text(LIMIT_TOTAL),
	    "too many connections");
	ck_assert_str_eq(limit_verdict_text(LIMIT_PER_IP),
	    "too many connections from your address");
	ck_assert_str_eq(limit_verdict_text(LIMIT_RATE),
	    "connection rate limit exceeded");
	ck_assert_ptr_nonnull(limit_verdict_text((enum limit_verdict)42));
}
END_TEST

static Suite *
limits_suite(void)
{
	Suite	*s = suite_create("limits");
	TCase	*tc;

	tc = tcase_create("connections");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_total);
	tcase_add_test(tc, test_conn_max);
	tcase_add_test(tc, test_per_ip);
	tcase_add_test(tc, test_per_ip_v6_64);
	tcase_add_test(tc, test_bad_addresses);
	tcase_add_test(tc, test_rate);
	tcase_add_test(tc, test_rate_v6_64);
	tcase_add_test(tc, test_rate_counts_refused);
	tcase_add_test(tc, test_rate_clock_back);
	tcase_add_test(tc, test_disconnect_unknown);
	tcase_add_test(tc, test_session_reused);
	tcase_add_test(tc, test_owner_gone);
	tcase_add_test(tc, test_many);
	suite_add_tcase(s, tc);

	tc = tcase_create("auth");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_auth);
	tcase_add_test(tc, test_auth_window);
	tcase_add_test(tc, test_auth_extend);
	tcase_add_test(tc, test_auth_v6_64);
	suite_add_tcase(s, tc);

	tc = tcase_create("history");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_evict_rate);
	tcase_add_test(tc, test_evict_auth);
	tcase_add_test(tc, test_evict_default_cap);
	tcase_add_test(tc, test_expire);
	suite_add_tcase(s, tc);

	tc = tcase_create("settings");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_unlimited);
	tcase_add_test(tc, test_zero_window);
	tcase_add_test(tc, test_reinit);
	tcase_add_test(tc, test_verdict_text);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(limits_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
