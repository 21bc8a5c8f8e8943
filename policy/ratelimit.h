/*
 * Connection and AUTH-failure limits, kept by the policy process for all
 * smtp-workers together.  Pure bookkeeping: the caller passes the time and
 * turns a verdict into an SMTP reply.
 *
 * Addresses are numeric text ("192.0.2.1", "2001:db8::1").  IPv4-mapped
 * IPv6 addresses count as their IPv4 address; other IPv6 addresses count
 * per /64; every non-numeric address (e.g. "local") shares one key.
 *
 * `now` should come from a clock that does not jump (CLOCK_MONOTONIC
 * seconds).  If it goes backwards, the windows it affects simply restart:
 * history is forgotten, nobody is blocked longer.
 */
#ifndef MTAD_RATELIMIT_H
#define MTAD_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct limits_conf {
	int	conn_total;		/* 0 = unlimited */
	int	conn_per_ip;		/* 0 = unlimited */
	int	conn_rate;		/* connections per IP per rate_window; 0 = unlimited */
	time_t	rate_window;		/* seconds, e.g. 60 */
	int	auth_failures;		/* per IP per auth_window before blocking; 0 = unlimited */
	time_t	auth_window;		/* seconds, e.g. 300 */
};

enum limit_verdict { LIMIT_OK = 0, LIMIT_TOTAL, LIMIT_PER_IP, LIMIT_RATE };

/*
 * Hard ceilings on memory, whatever the configuration: addresses whose
 * rate and AUTH history is remembered (the least recently active one is
 * forgotten to make room), and live connections (refused as LIMIT_TOTAL
 * beyond it, even with conn_total 0).
 */
#define LIMITS_TRACK_MAX	65536
#define LIMITS_CONN_MAX		262144

/*
 * May be called again (reload): replaces the settings, keeps the counts.
 * Negative limits mean 0 (unlimited); windows shorter than 1 second are 1.
 */
void	limits_init(const struct limits_conf *);

/*
 * owner: an opaque id of the worker channel; session: the worker's session
 * id.  On LIMIT_OK the connection is counted until limits_disconnect() or
 * limits_owner_gone().  Every attempt counts toward the rate, refused ones
 * too, so that a client hammering us stays refused.  The rate window of an
 * address starts at its first attempt and restarts with the first attempt
 * after it ends (as Postfix's anvil does).  A (owner, session) still
 * counted from a lost DISCONNECT is released first.
 */
enum limit_verdict limits_connect(uint64_t owner, uint32_t session,
	    const char *ip, time_t now);
void	limits_disconnect(uint64_t owner, uint32_t session); /* unknown: ignored */
void	limits_owner_gone(uint64_t owner);	/* all its sessions end */

/*
 * AUTH: once auth_failures failures have been reported within auth_window
 * seconds (counted from the first), the address is blocked until
 * auth_window seconds after the last one.  A failure reported while blocked
 * extends the block.
 */
int	limits_auth_blocked(const char *ip, time_t now);	/* 1 if blocked */
void	limits_auth_failed(const char *ip, time_t now);

int	limits_connections(void);		/* live total, for stats */
size_t	limits_tracked(void);			/* addresses with history */
const char *limit_verdict_text(enum limit_verdict);

/* Frees everything (shutdown, tests); the settings stay. */
void	limits_clear(void);

/* For tests: lower the ceilings above; 0 restores the default. */
void	limits_set_track_max(size_t);
void	limits_set_conn_max(size_t);

#endif
