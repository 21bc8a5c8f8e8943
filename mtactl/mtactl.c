/*
 * mtactl: the operator's tool.  One request over the control socket, the
 * answer printed as text (or JSON with -j).  Commands are table-driven.
 */
#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "ctlclient.h"
#include "imsg.h"
#include "mailbox.h"
#include "marshal.h"
#include "proto.h"

#define DEFAULT_SOCKET	MTAD_RUNDIR "/control.sock"

static int	 json;
static const char *socket_path = DEFAULT_SOCKET;
static const char *conffile = MTAD_CONFFILE;	/* show mailbox */

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: mtactl [-j] [-f config] [-s socket] command\n"
	    "commands:\n"
	    "  show queue [sender A] [rcpt A] [domain D] [state S]\n"
	    "                          list queued recipients\n"
	    "  show message ID         envelope and headers of a message\n"
	    "  show stats              counters of every process\n"
	    "  show mailbox ADDRESS [limit N]\n"
	    "                          newest messages of a store mailbox\n"
	    "  status                  processes, users, uptime, restarts\n"
	    "  flush [ID|DOMAIN]       deferred recipients due now\n"
	    "  schedule ID             one message due now\n"
	    "  hold ID|all             keep from delivery\n"
	    "  release ID|all          deliver again\n"
	    "  remove ID|all           delete, without notification\n"
	    "  pause smtp|delivery     stop accepting / stop delivering\n"
	    "  resume smtp|delivery\n"
	    "  reload                  re-read the configuration\n"
	    "  log verbose|brief       debug logging on or off\n");
	exit(2);
}

static int
ctl_connect(struct imsgbuf *ib)
{
	if (ctlclient_connect(ib, socket_path, 0) == -1) {
		fprintf(stderr, "mtactl: cannot connect to %s: %s%s\n",
		    socket_path, strerror(errno),
		    errno == ENOENT || errno == ECONNREFUSED ?
		    " (is mtad running?)" : "");
		exit(1);
	}
	return ib->fd;
}

static void
ctl_send(struct imsgbuf *ib, uint32_t type, const void *data, size_t len)
{
	if (ctlclient_send(ib, type, data, len) == -1) {
		perror("mtactl: write");
		exit(1);
	}
}

/* A request whose payload is (u32 op, str arg), or just str when type needs no op. */
static void
ctl_send_str(struct imsgbuf *ib, uint32_t type, uint32_t op, const char *arg)
{
	struct mbuf	 m;

	m_init(&m);
	if (type == IMSG_CTL_MSG_OP)
		m_add_u32(&m, op);
	m_add_str(&m, arg);
	if (m.err) {
		fprintf(stderr, "mtactl: argument too long\n");
		exit(2);
	}
	ctl_send(ib, type, m.data, m.len);
	m_free(&m);
}

/* Next frame from the daemon; exits on EOF or garbage. */
static void
ctl_next(struct imsgbuf *ib, struct imsg *imsg)
{
	switch (ctlclient_next(ib, imsg)) {
	case 1:
		return;
	case 0:
		fprintf(stderr, "mtactl: mtad closed the connection\n");
		exit(1);
	default:
		if (errno == EBADMSG)
			fprintf(stderr, "mtactl: malformed answer\n");
		else
			perror("mtactl: read");
		exit(1);
	}
}

void
json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char	 c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c < 0x20 || c == 0x7f)
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

/* Queue ids are 16 lower-case hex digits; "all" where allowed. */
static void
check_id(const char *id, int all_ok)
{
	size_t	 n = strspn(id, "0123456789abcdef");

	if ((all_ok && strcmp(id, "all") == 0) || (n == 16 && id[n] == '\0'))
		return;
	fprintf(stderr, "mtactl: %s: not a queue id%s\n", id,
	    all_ok ? " or \"all\"" : "");
	exit(2);
}

/* A filter of `show queue`: every given field must match. */
struct queue_filter {
	const char	*sender;
	const char	*rcpt;
	const char	*domain;
	const char	*state;
};

static int
filter_match(const struct queue_filter *f, const char *sender,
    const char *rcpt, const char *state)
{
	const char	*at;

	if (f->sender && strcasecmp(f->sender, sender) != 0)
		return 0;
	if (f->rcpt && strcasecmp(f->rcpt, rcpt) != 0)
		return 0;
	if (f->domain && ((at = strrchr(rcpt, '@')) == NULL ||
	    strcasecmp(at + 1, f->domain) != 0))
		return 0;
	if (f->state && strcmp(f->state, state) != 0)
		return 0;
	return 1;
}

/*
 * Prints QUEUE_ENTRY rows until END; a RESULT instead ends the program.
 * Returns the number of rows printed, -1 on a protocol error.
 */
static int
print_entries(struct imsgbuf *ib, const struct queue_filter *f,
    const char *prefix, struct imsg *last)
{
	struct imsg	 imsg;
	struct mreader	 r;
	char		 id[32], sender[512], rcpt[512], state[32], err[512];
	char		 next[32];
	uint32_t	 attempts;
	int64_t		 tcreated, tnext;
	int		 n = 0;

	/* An error answer comes first and alone: print nothing before it. */
	ctl_next(ib, &imsg);
	if (imsg.hdr.type == IMSG_CTL_RESULT)
		print_result(&imsg);
	if (prefix)
		printf("%s", prefix);
	if (json)
		printf("[");
	else
		printf("%-16s  %-10s  %3s  %-19s  %s -> %s\n", "ID", "STATE",
		    "TRY", "NEXT ATTEMPT", "SENDER", "RECIPIENT");
	for (;; ctl_next(ib, &imsg)) {
		if (imsg.hdr.type == IMSG_CTL_RESULT)
			print_result(&imsg);
		if (imsg.hdr.type != IMSG_CTL_QUEUE_ENTRY) {
			*last = imsg;
			break;
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
			return -1;
		}
		if (f && !filter_match(f, sender, rcpt, state))
			continue;
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
			format_time((time_t)tnext, next, sizeof(next));
			printf("%-16s  %-10s  %3u  %-19s  <%s> -> <%s>\n", id,
			    state, attempts, next, sender, rcpt);
			if (err[0])
				printf("%18s%s\n", "", err);
		}
		n++;
	}
	if (json)
		printf("%s]", n ? "\n" : "");
	return n;
}

static int
cmd_show_queue(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	struct queue_filter	 f;
	struct imsg		 last;
	int			 i, n;

	memset(&f, 0, sizeof(f));
	for (i = 0; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "sender") == 0)
			f.sender = argv[i + 1];
		else if (strcmp(argv[i], "rcpt") == 0)
			f.rcpt = argv[i + 1];
		else if (strcmp(argv[i], "domain") == 0)
			f.domain = argv[i + 1];
		else if (strcmp(argv[i], "state") == 0)
			f.state = argv[i + 1];
		else
			usage();
	}
	if (i != argc)
		usage();
	ctl_send(ib, IMSG_CTL_SHOW_QUEUE, NULL, 0);
	if ((n = print_entries(ib, &f, NULL, &last)) == -1)
		return 1;
	imsg_free(&last);
	if (json)
		printf("\n");
	else
		printf("-- %d recipient%s queued\n", n, n == 1 ? "" : "s");
	return 0;
}

static int
cmd_show_message(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	struct imsg	 imsg;
	struct mreader	 r;
	char		*text;
	int		 first = 1;

	check_id(argv[0], 0);
	ctl_send_str(ib, IMSG_CTL_SHOW_MESSAGE, 0, argv[0]);
	if (print_entries(ib, NULL, json ? "{\"recipients\": " : NULL,
	    &imsg) == -1)
		return 1;
	printf(json ? ", \"headers\": \"" : "\n");
	for (;;) {
		if (imsg.hdr.type == IMSG_CTL_END)
			break;
		if (imsg.hdr.type != IMSG_CTL_TEXT) {
			fprintf(stderr, "mtactl: unexpected answer\n");
			return 1;
		}
		m_reader(&r, &imsg);
		text = m_get_strdup(&r, IMSG_MAX_PAYLOAD);
		imsg_free(&imsg);
		if (text == NULL) {
			fprintf(stderr, "mtactl: malformed answer\n");
			return 1;
		}
		if (json) {
			/* json_string adds quotes: print the escaped body. */
			char	*p;

			for (p = text; *p; p++) {
				unsigned char	 c = (unsigned char)*p;

				if (c == '"' || c == '\\')
					printf("\\%c", c);
				else if (c < 0x20)
					printf("\\u%04x", c);
				else
					putchar(c);
			}
		} else {
			/* The spool keeps CRLF: print plain lines. */
			char	*p;

			for (p = text; *p; p++)
				if (*p != '\r')
					putchar(*p);
		}
		free(text);
		first = 0;
		ctl_next(ib, &imsg);
	}
	(void)first;
	printf(json ? "\"}\n" : "");
	return 0;
}

static int
cmd_show_stats(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
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
cmd_status(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	struct imsg	 imsg;
	struct mreader	 r;
	char		 name[32], user[64];
	uint32_t	 slot, pid, restarts;
	int64_t		 started;
	time_t		 now = time(NULL);
	int		 n = 0;

	ctl_send(ib, IMSG_CTL_STATUS, NULL, 0);
	if (json)
		printf("[");
	else
		printf("%-16s %4s %8s  %-14s %10s %8s\n", "PROCESS", "SLOT",
		    "PID", "USER", "UPTIME", "RESTARTS");
	for (;;) {
		ctl_next(ib, &imsg);
		if (imsg.hdr.type == IMSG_CTL_END)
			break;
		if (imsg.hdr.type != IMSG_CTL_PROC) {
			fprintf(stderr, "mtactl: unexpected answer\n");
			return 1;
		}
		m_reader(&r, &imsg);
		m_get_str(&r, name, sizeof(name));
		slot = m_get_u32(&r);
		pid = m_get_u32(&r);
		m_get_str(&r, user, sizeof(user));
		started = m_get_i64(&r);
		restarts = m_get_u32(&r);
		imsg_free(&imsg);
		if (m_end(&r) == -1) {
			fprintf(stderr, "mtactl: malformed answer\n");
			return 1;
		}
		if (json) {
			printf("%s\n  {\"process\": ", n ? "," : "");
			json_string(name);
			printf(", \"slot\": %u, \"pid\": %u, \"user\": ", slot,
			    pid);
			json_string(user);
			printf(", \"started\": %lld, \"uptime\": %lld, "
			    "\"restarts\": %u}", (long long)started,
			    (long long)(pid ? now - started : 0), restarts);
		} else
			printf("%-16s %4u %8u  %-14s %9llds %8u\n", name, slot,
			    pid, user, (long long)(pid ? now - started : 0),
			    restarts);
		n++;
	}
	if (json)
		printf("%s]\n", n ? "\n" : "");
	return 0;
}

/* Commands answered by one RESULT frame. */
static int __attribute__((noreturn))
result_of(struct imsgbuf *ib)
{
	struct imsg	 imsg;

	ctl_next(ib, &imsg);
	if (imsg.hdr.type != IMSG_CTL_RESULT) {
		fprintf(stderr, "mtactl: unexpected answer\n");
		exit(1);
	}
	print_result(&imsg);
}

static int
msg_op(struct imsgbuf *ib, uint32_t op, const char *target)
{
	if (op != CTL_OP_FLUSH)
		check_id(target, op != CTL_OP_SCHEDULE);
	ctl_send_str(ib, IMSG_CTL_MSG_OP, op, target);
	result_of(ib);
}

/* flush, schedule, hold, release, remove: the op comes from the table. */
static int
cmd_msg_op(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	return msg_op(ib, op, argc ? argv[0] : "");
}

static int
pause_resume(struct imsgbuf *ib, const char *what, uint32_t on)
{
	uint32_t	 p[2];

	if (strcmp(what, "smtp") == 0)
		p[0] = CTL_PAUSE_SMTP;
	else if (strcmp(what, "delivery") == 0)
		p[0] = CTL_PAUSE_DELIVERY;
	else
		usage();
	p[1] = on;
	ctl_send(ib, IMSG_CTL_PAUSE, p, sizeof(p));
	result_of(ib);
}

static int
cmd_pause(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	return pause_resume(ib, argv[0], 1);
}

static int
cmd_resume(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	return pause_resume(ib, argv[0], 0);
}

static int
cmd_reload(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	ctl_send(ib, IMSG_CTL_RELOAD, NULL, 0);
	result_of(ib);
}

static int
cmd_log(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	uint32_t	 payload[2] = { 0, 0 };

	if (strcmp(argv[0], "verbose") == 0)
		payload[0] = 1;
	else if (strcmp(argv[0], "brief") != 0)
		usage();
	ctl_send(ib, IMSG_LOG_VERBOSE, payload, sizeof(payload));
	result_of(ib);
}

/*
 * Reads the MongoDB store itself (mailbox.c), not the control socket:
 * main() does not connect for it.
 */
static int
cmd_show_mailbox(struct imsgbuf *ib, int argc, char **argv, uint32_t op)
{
	const char	*errstr = NULL;
	long long	 limit = MAILBOX_LIMIT_DEFAULT;

	if (argc == 3 && strcmp(argv[1], "limit") == 0)
		limit = strtonum(argv[2], 1, MAILBOX_LIMIT_MAX, &errstr);
	else if (argc != 1)
		usage();
	if (errstr != NULL) {
		fprintf(stderr, "mtactl: limit %s: %s (1 to %d)\n", argv[2],
		    errstr, MAILBOX_LIMIT_MAX);
		exit(2);
	}
	return mailbox_show(conffile, argv[0], (int)limit, json);
}

/* Table-driven: the words naming a command, then its argument counts. */
static const struct {
	const char	*words[2];
	int		 minargs, maxargs;
	int		(*run)(struct imsgbuf *, int, char **, uint32_t);
	uint32_t	 op;		/* for cmd_msg_op */
} commands[] = {
	{ { "show", "queue" },	 0, 8,	cmd_show_queue,	0 },
	{ { "show", "message" }, 1, 1,	cmd_show_message,	0 },
	{ { "show", "stats" },	 0, 0,	cmd_show_stats,	0 },
	{ { "show", "mailbox" }, 1, 3,	cmd_show_mailbox,	0 },
	{ { "status" },		 0, 0,	cmd_status,	0 },
	{ { "flush" },		 0, 1,	cmd_msg_op,	CTL_OP_FLUSH },
	{ { "schedule" },	 1, 1,	cmd_msg_op,	CTL_OP_SCHEDULE },
	{ { "hold" },		 1, 1,	cmd_msg_op,	CTL_OP_HOLD },
	{ { "release" },	 1, 1,	cmd_msg_op,	CTL_OP_RELEASE },
	{ { "remove" },		 1, 1,	cmd_msg_op,	CTL_OP_REMOVE },
	{ { "pause" },		 1, 1,	cmd_pause,	0 },
	{ { "resume" },		 1, 1,	cmd_resume,	0 },
	{ { "reload" },		 0, 0,	cmd_reload,	0 },
	{ { "log" },		 1, 1,	cmd_log,	0 },
};

int
main(int argc, char *argv[])
{
	struct imsgbuf	 ib;
	size_t		 i;
	int		 ch, w, nargs;

	while ((ch = getopt(argc, argv, "f:js:")) != -1) {
		switch (ch) {
		case 'f':
			conffile = optarg;
			break;
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
		for (w = 0; w < 2 && commands[i].words[w] != NULL; w++)
			if (w >= argc || strcmp(commands[i].words[w],
			    argv[w]) != 0)
				break;
		if (w < 2 && commands[i].words[w] != NULL)
			continue;
		nargs = argc - w;
		if (nargs < commands[i].minargs || nargs > commands[i].maxargs)
			usage();
		if (commands[i].run != cmd_show_mailbox)
			ctl_connect(&ib);
		return commands[i].run(&ib, nargs, argv + w, commands[i].op);
	}
	fprintf(stderr, "mtactl: unknown command\n");
	usage();
}
