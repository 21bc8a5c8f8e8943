#ifndef MTAD_UTIL_H
#define MTAD_UTIL_H

#include <sys/socket.h>
#include <sys/types.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "envelope.h"

/* A new random message id: 16 lower-case hex digits. */
void	msgid_generate(char out[MSGID_SIZE]);
int	msgid_is_valid(const char *);
/* RFC 5322 date-time in local time: "Mon, 23 Nov 2026 14:44:52 +0000". */
void	time_rfc5322(time_t, char *, size_t);
/* Numeric host of a sockaddr ("127.0.0.1", "::1"), "local" for AF_UNIX. */
void	sockaddr_text(const struct sockaddr *, char *, size_t);
/* Loopback or AF_UNIX: the client counts as "local" for the rules. */
int	sockaddr_is_local(const struct sockaddr *);
/* mkdir -p with a mode, chown of the last component when uid != -1. */
int	mkdir_owned(const char *path, mode_t, uid_t, gid_t);
int	fsync_dir(const char *path);
/* Escapes for single-line text fields: %XX for %, space, controls, 8-bit off. */
int	field_escape(const char *in, char *out, size_t outsz);
int	field_unescape(const char *in, char *out, size_t outsz);
void	set_nonblock(int fd);
/* Strips CR/LF and other controls so that a peer's text fits one log line. */
void	str_sanitize(const char *in, char *out, size_t outsz);

#endif
