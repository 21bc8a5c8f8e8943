/*
 * mtactl: the operator's tool.  One request over the control socket, the
 * answer printed as text (or JSON with -j).  Commands are table-driven.
 */
#include "autoconf.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "imsg.h"
#include "marshal.h"
#include "proto.h"

#define DEFAULT_SOCKET	MTAD_RUNDIR "/control.sock"

static int	 json;
static const char *socket_path = DEFAULT_SOCKET;

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: mtactl [-j] [-s socket] command\n"
	    "commands:\n"
	    "  show queue     list queued recipients\n"
	    "  show stats     show counters\n"
	    "  flush          retry every deferred recipient now\n"
	    "  reload         re-read the configuration (rules, tables, aliases)\n"
	    "  log verbose    debug logging on\n"
	    "  log brief      debug logging off\n");
	exit(2);
}

static int
ctl_connect(struct imsgbuf *ib)
{
	struct sockaddr_un	 sun;
	int			 fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlcpy(sun.sun_path, socket_path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		fprintf(stderr, "mtactl: socket path too long\n");
		exit(1);
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1) {
		perror("mtactl: socket");
		exit(1);
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "mtactl: cannot connect to %s: %s%s\n",
		    socket_path, strerror(errno),
		    errno == ENOENT || errno == ECONNREFUSED ?
		    " (is mtad running?)" : "");
		exit(1);
	}
	if (imsgbuf_init(ib, fd) == -1) {
		perror("mtactl");
		exit(1);
	}
	return fd;
}

static void
ctl_send(struct imsgbuf *ib, uint32_t type, const void *data, size_t len)
{
	if (imsg_compose(ib, type, 0, -1, data, len) == -1 ||
	    imsg_flush_blocking(ib) == -1) {
		perror("mtactl: write");
		exit(1);
	}
}

/* Next frame from the daemon; exits on EOF or garbage. */
static void
ctl_next(struct imsgbuf *ib, struct imsg *imsg)
{
	ssize_t	 n;
	int	 r;

	for (;;) {
		if ((r = imsg_get(ib, imsg)) == 1)
			return;
		if (r == -1) {
			fprintf(stderr, "mtactl: malformed answer\n");
			exit(1);
		}
		if ((n = imsg_read(ib)) == 0) {
			fprintf(stderr, "mtactl: mtad closed the connection\n");
			exit(1);
		}
		if (n == -1 && errno != EAGAIN && errno != EINTR) {
			perror("mtactl: read");
			exit(1);
		}
	}
}

static void
json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char	 c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void
format_time(time_t t, char *buf, size_t len)
{
	struct tm	 tm;

	if (t == 0 || localtime_r(&t, &tm) == NULL)
		strlcpy(buf, "-", len);
	else
		strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/* A result frame ends the exchange: print it, exit with its status. */
static void __attribute__((noreturn))
print_result(struct imsg *imsg)
{
	struct mreader	 r;
	char		 text[512];
	uint32_t	 ok;

	m_reader(&r, imsg);
	ok = m_get_u32(&r);
	m_get_str(&r, text, sizeof(text));
	if (json) {
		printf("{\"ok\": %s, \"message\": ", ok ? "true" : "false");
		json_string(text);
		printf("}\n");
	} else
		printf("%s\n", text);
	exit(ok ? 0 : 1);
}

static int
cmd_show_queue(struct imsgbuf *ib)
{
	struct imsg	 imsg;
	struct mreader	 r;
	char		 id[32], sender[512], rcpt[512], state[32], err[512];
	char		 created[32], next[32];
	uint32_t	 attempts;
	int64_t		 tcreated, tnext;
	int		 n = 0;

	ctl_send(ib, IMSG_CTL_SHOW_QUEUE, NULL, 0);
	if (json)
		printf("[");
	else
		printf("%-16s  %-10s  %3s  %-19s  %s -> %s\n", "ID", "STATE",
		    "TRY", "NEXT ATTEMPT", "SENDER", "RECIPIENT");
	for (;;) {
		ctl_next(ib, &imsg);
		if (imsg.hdr.type == IMSG_CTL_END)
			break;
		if (imsg.hdr.type == IMSG_CTL_RESULT)
			print_result(&imsg);
		if (imsg.hdr.type != IMSG_CTL_QUEUE_ENTRY) {
			fprintf(stderr, "mtactl: unexpected answer\n");
			return 1;
		}
		m_reader(&r, &imsg);
		m_get_str(&r, id, sizeof(id));
		m_get_str(&r, sender, sizeof(sender));
		m_get_str(&r, rcpt, sizeof(rcpt));
		m_get_str(&r, state, sizeof(state));
		attempts = m_get_u32(&r);
		tcreated = m_get_i64(&r);
		tnext = m_get_i64(&r);
		m_get_str(&r, err, sizeof(err));
		imsg_free(&imsg);
		if (m_end(&r) == -1) {
			fprintf(stderr, "mtactl: malformed queue entry\n");
			return 1;
		}
		if (json) {
			printf("%s\n  {\"id\": ", n ? "," : "");
			json_string(id);
			printf(", \"sender\": ");
			json_string(sender);
			printf(", \"recipient\": ");
			json_string(rcpt);
			printf(", \"state\": ");
			json_string(state);
			printf(", \"attempts\": %u, \"created\": %lld, "
			    "\"next_attempt\": %lld, \"last_error\": ",
			    attempts, (long long)tcreated, (long long)tnext);
			json_string(err);
			printf("}");
		} else {
			format_time((time_t)tcreated, created, sizeof(created));
			format_time((time_t)tnext, next, sizeof(next));
			printf("%-16s  %-10s  %3u  %-19s  <%s> -> <%s>\n", id,
			    state, attempts, next, sender, rcpt);
			if (err[0])
				printf("%18s%s\n", "", err);
		}
		n++;
	}
	if (json)
		printf("%s]\n", n ? "\n" : "");
	else
		printf("-- %d recipient%s queued\n", n, n == 1 ? "" : "s");
	return 0;
}

static int
cmd_show_stats(struct imsgbuf *ib)
{
	struct imsg	 imsg;
	struct mreader	 r;
	char		 name[64];
	uint64_t	 value;
	int		 n = 0;

	ctl_send(ib, IMSG_CTL_SHOW_STATS, NULL, 0);
	if (json)
		printf("{");
	for (;;) {
		ctl_next(ib, &imsg);
		if (imsg.hdr.type == IMSG_CTL_END)
			break;
		if (imsg.hdr.type != IMSG_CTL_STAT) {
			fprintf(stderr, "mtactl: unexpected answer\n");
			return 1;
		}
		m_reader(&r, &imsg);
		m_get_str(&r, name, sizeof(name));
		value = m_get_u64(&r);
		imsg_free(&imsg);
		if (m_end(&r) == -1) {
			fprintf(stderr, "mtactl: malformed counter\n");
			return 1;
		}
		if (json) {
			printf("%s\n  ", n ? "," : "");
			json_string(name);
			printf(": %lld", (long long)value);
		} else
			printf("%s=%lld\n", name, (long long)value);
		n++;
	}
	if (json)
		printf("%s}\n", n ? "\n" : "");
	return 0;
}

static int
cmd_flush(struct imsgbuf *ib)
{
	struct imsg	 imsg;

	ctl_send(ib, IMSG_CTL_FLUSH, NULL, 0);
	ctl_next(ib, &imsg);
	if (imsg.hdr.type != IMSG_CTL_RESULT) {
		fprintf(stderr, "mtactl: unexpected answer\n");
		return 1;
	}
	print_result(&imsg);
}

static int
cmd_log(struct imsgbuf *ib, uint32_t verbose)
{
	struct imsg	 imsg;
	uint32_t	 payload[2] = { verbose, 0 };

	ctl_send(ib, IMSG_LOG_VERBOSE, payload, sizeof(payload));
	ctl_next(ib, &imsg);
	if (imsg.hdr.type != IMSG_CTL_RESULT) {
		fprintf(stderr, "mtactl: unexpected answer\n");
		return 1;
	}
	print_result(&imsg);
}

static int
cmd_reload(struct imsgbuf *ib)
{
	struct imsg	 imsg;

	ctl_send(ib, IMSG_CTL_RELOAD, NULL, 0);
	ctl_next(ib, &imsg);
	if (imsg.hdr.type != IMSG_CTL_RESULT) {
		fprintf(stderr, "mtactl: unexpected answer\n");
		return 1;
	}
	print_result(&imsg);
}

static int cmd_log_verbose(struct imsgbuf *ib) { return cmd_log(ib, 1); }
static int cmd_log_brief(struct imsgbuf *ib) { return cmd_log(ib, 0); }

static const struct {
	const char	*words[3];
	int		(*run)(struct imsgbuf *);
} commands[] = {
	{ { "show", "queue" },	cmd_show_queue },
	{ { "show", "stats" },	cmd_show_stats },
	{ { "flush" },		cmd_flush },
	{ { "reload" },		cmd_reload },
	{ { "log", "verbose" },	cmd_log_verbose },
	{ { "log", "brief" },	cmd_log_brief },
};

int
main(int argc, char *argv[])
{
	struct imsgbuf	 ib;
	size_t		 i;
	int		 ch, w;

	while ((ch = getopt(argc, argv, "js:")) != -1) {
		switch (ch) {
		case 'j':
			json = 1;
			break;
		case 's':
			socket_path = optarg;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc == 0)
		usage();
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		for (w = 0; w < argc && w < 3; w++)
			if (commands[i].words[w] == NULL ||
			    strcmp(commands[i].words[w], argv[w]) != 0)
				break;
		if (w == argc && (w == 3 || commands[i].words[w] == NULL)) {
			ctl_connect(&ib);
			return commands[i].run(&ib);
		}
	}
	fprintf(stderr, "mtactl: unknown command\n");
	usage();
}
