#include "autoconf.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

void
msgid_generate(char out[MSGID_SIZE])
{
	uint64_t	 v;

	arc4random_buf(&v, sizeof(v));
	snprintf(out, MSGID_SIZE, "%016llx", (unsigned long long)v);
}

int
msgid_is_valid(const char *s)
{
	size_t	 i;

	for (i = 0; i < MSGID_SIZE - 1; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return 0;
	return s[i] == '\0';
}

void
time_rfc5322(time_t t, char *buf, size_t len)
{
	struct tm	 tm;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%a, %d %b %Y %H:%M:%S %z", &tm) == 0)
		strlcpy(buf, "Thu, 01 Jan 1970 00:00:00 +0000", len);
}

void
sockaddr_text(const struct sockaddr *sa, char *buf, size_t len)
{
	const void	*p;

	switch (sa->sa_family) {
	case AF_INET:
		p = &((const struct sockaddr_in *)sa)->sin_addr;
		break;
	case AF_INET6:
		p = &((const struct sockaddr_in6 *)sa)->sin6_addr;
		break;
	case AF_UNIX:
		strlcpy(buf, "local", len);
		return;
	default:
		strlcpy(buf, "unknown", len);
		return;
	}
	if (inet_ntop(sa->sa_family, p, buf, (socklen_t)len) == NULL)
		strlcpy(buf, "unknown", len);
}

int
sockaddr_is_local(const struct sockaddr *sa)
{
	const struct sockaddr_in6	*sin6;
	uint32_t			 a;

	switch (sa->sa_family) {
	case AF_UNIX:
		return 1;
	case AF_INET:
		a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
		return (a >> 24) == 127;
	case AF_INET6:
		sin6 = (const struct sockaddr_in6 *)sa;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr))
			return 1;
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			return sin6->sin6_addr.s6_addr[12] == 127;
		return 0;
	}
	return 0;
}

int
mkdir_owned(const char *path, mode_t mode, uid_t uid, gid_t gid)
{
	char	 buf[PATH_MAX], *p;

	if (strlcpy(buf, path, sizeof(buf)) >= sizeof(buf)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) == -1 && errno != EEXIST)
			return -1;
		*p = '/';
	}
	if (mkdir(buf, mode) == -1 && errno != EEXIST)
		return -1;
	if (chmod(buf, mode) == -1)
		return -1;
	if (uid != (uid_t)-1 && chown(buf, uid, gid) == -1)
		return -1;
	return 0;
}

int
fsync_dir(const char *path)
{
	int	 fd, r;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	r = fsync(fd);
	close(fd);
	return r;
}

static int
must_escape(unsigned char c)
{
	return c == '%' || c < 0x21 || c == 0x7f;
}

int
field_escape(const char *in, char *out, size_t outsz)
{
	static const char	 hex[] = "0123456789ABCDEF";
	size_t			 o = 0;
	const unsigned char	*p;

	for (p = (const unsigned char *)in; *p; p++) {
		if (must_escape(*p)) {
			if (o + 3 >= outsz)
				return -1;
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 0xf];
		} else {
			if (o + 1 >= outsz)
				return -1;
			out[o++] = (char)*p;
		}
	}
	if (o >= outsz)
		return -1;
	out[o] = '\0';
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int
field_unescape(const char *in, char *out, size_t outsz)
{
	size_t	 o = 0;
	int	 hi, lo;

	if (outsz == 0)
		return -1;
	for (; *in; in++) {
		char	 c = *in;

		if (c == '%') {
			if ((hi = hexval(in[1])) < 0 || (lo = hexval(in[2])) < 0)
				return -1;
			c = (char)(hi << 4 | lo);
			if (c == '\0')
				return -1;
			in += 2;
		}
		if (o + 1 >= outsz)
			return -1;
		out[o++] = c;
	}
	out[o] = '\0';
	return 0;
}

void
set_nonblock(int fd)
{
	int	 flags;

	if ((flags = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1)
		abort();
}

void
str_sanitize(const char *in, char *out, size_t outsz)
{
	size_t	 o = 0;

	if (outsz == 0)
		return;
	for (; *in && o + 1 < outsz; in++)
		out[o++] = ((unsigned char)*in < 0x20 || *in == 0x7f) ? '?' : *in;
	out[o] = '\0';
}
