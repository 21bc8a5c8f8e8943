#include "autoconf.h"

#include <errno.h>
#include <stddef.h>

#include "log.h"
#include "proto.h"

#define ANY_CHILD	(P(PROC_POLICY) | P(PROC_QUEUE) | P(PROC_SMTP) | P(PROC_DELIVER))
#define VAR		IMSG_MAX_PAYLOAD

/*
 * Who may send what.  Frames travel only on the channel between the two
 * processes named, so the sender kind is the channel's peer kind.
 */
static const struct imsg_spec specs[IMSG_TYPE_MAX] = {
	[IMSG_PEER_CONNECT] =	  { "PEER_CONNECT", P(PROC_MASTER), 8, 8, FD_REQUIRED },
	[IMSG_SHUTDOWN] =	  { "SHUTDOWN", P(PROC_MASTER), 0, 0, FD_NONE },
	[IMSG_LOG_VERBOSE] =	  { "LOG_VERBOSE", P(PROC_MASTER) | P(PROC_CONTROL), 8, 8, FD_NONE },
	[IMSG_STATS_REQ] =	  { "STATS_REQ", P(PROC_MASTER), 0, 0, FD_NONE },
	[IMSG_STATS_REP] =	  { "STATS_REP", ANY_CHILD, 4, VAR, FD_NONE },
	[IMSG_BAD_PEER] =	  { "BAD_PEER", ANY_CHILD, 8, 8, FD_NONE },

	[IMSG_POLICY_MAIL] =	  { "POLICY_MAIL", P(PROC_SMTP), 20, VAR, FD_NONE },
	[IMSG_POLICY_MAIL_RES] =  { "POLICY_MAIL_RES", P(PROC_POLICY), 8, VAR, FD_NONE },
	[IMSG_POLICY_RCPT] =	  { "POLICY_RCPT", P(PROC_SMTP) | P(PROC_QUEUE), 24, VAR, FD_NONE },
	[IMSG_POLICY_RCPT_RES] =  { "POLICY_RCPT_RES", P(PROC_POLICY), 12, VAR, FD_NONE },
	[IMSG_POLICY_CONNECT] =	  { "POLICY_CONNECT", P(PROC_SMTP), 4, 1024, FD_NONE },
	[IMSG_POLICY_CONNECT_RES] = { "POLICY_CONNECT_RES", P(PROC_POLICY), 8, VAR, FD_NONE },
	[IMSG_POLICY_DISCONNECT] = { "POLICY_DISCONNECT", P(PROC_SMTP), 0, 0, FD_NONE },
	[IMSG_POLICY_AUTH] =	  { "POLICY_AUTH", P(PROC_SMTP), 16, 4096, FD_NONE },
	[IMSG_POLICY_AUTH_RES] =  { "POLICY_AUTH_RES", P(PROC_POLICY), 8, VAR, FD_NONE },

	[IMSG_QUEUE_CREATE] =	  { "QUEUE_CREATE", P(PROC_SMTP), 0, 0, FD_NONE },
	[IMSG_QUEUE_CREATE_RES] = { "QUEUE_CREATE_RES", P(PROC_QUEUE), 8, VAR, FD_OPTIONAL },
	[IMSG_QUEUE_RCPTS] =	  { "QUEUE_RCPTS", P(PROC_SMTP), 8, VAR, FD_NONE },
	[IMSG_QUEUE_COMMIT] =	  { "QUEUE_COMMIT", P(PROC_SMTP), 48, VAR, FD_NONE },
	[IMSG_QUEUE_COMMIT_RES] = { "QUEUE_COMMIT_RES", P(PROC_QUEUE), 12, VAR, FD_NONE },
	[IMSG_QUEUE_ABORT] =	  { "QUEUE_ABORT", P(PROC_SMTP), 4, VAR, FD_NONE },

	[IMSG_DELIVER_BATCH] =	  { "DELIVER_BATCH", P(PROC_QUEUE), 12, VAR, FD_REQUIRED },
	[IMSG_DELIVER_RESULT] =	  { "DELIVER_RESULT", P(PROC_DELIVER), 12, VAR, FD_NONE },
	[IMSG_DELIVER_DONE] =	  { "DELIVER_DONE", P(PROC_DELIVER), 0, 0, FD_NONE },

	[IMSG_MDA_DELIVER] =	  { "MDA_DELIVER", P(PROC_DELIVER), 8, VAR, FD_REQUIRED },
	[IMSG_MDA_RESULT] =	  { "MDA_RESULT", P(PROC_MASTER), 8, VAR, FD_NONE },

	[IMSG_CTL_SHOW_QUEUE] =	  { "CTL_SHOW_QUEUE", P(PROC_MASTER) | P(PROC_CONTROL), 0, 0, FD_NONE },
	[IMSG_CTL_QUEUE_ENTRY] =  { "CTL_QUEUE_ENTRY", P(PROC_QUEUE) | P(PROC_MASTER), 36, VAR, FD_NONE },
	[IMSG_CTL_SHOW_STATS] =	  { "CTL_SHOW_STATS", P(PROC_CONTROL), 0, 0, FD_NONE },
	[IMSG_CTL_STAT] =	  { "CTL_STAT", P(PROC_MASTER), 12, VAR, FD_NONE },
	[IMSG_CTL_MSG_OP] =	  { "CTL_MSG_OP", P(PROC_MASTER) | P(PROC_CONTROL), 8, 1024, FD_NONE },
	[IMSG_CTL_SHOW_MESSAGE] = { "CTL_SHOW_MESSAGE", P(PROC_MASTER) | P(PROC_CONTROL), 4, 64, FD_NONE },
	[IMSG_CTL_TEXT] =	  { "CTL_TEXT", P(PROC_QUEUE) | P(PROC_MASTER), 4, VAR, FD_NONE },
	[IMSG_CTL_PAUSE] =	  { "CTL_PAUSE", P(PROC_MASTER) | P(PROC_CONTROL), 8, 8, FD_NONE },
	[IMSG_CTL_STATUS] =	  { "CTL_STATUS", P(PROC_CONTROL), 0, 0, FD_NONE },
	[IMSG_CTL_PROC] =	  { "CTL_PROC", P(PROC_MASTER), 28, VAR, FD_NONE },
	[IMSG_CTL_RELOAD] =	  { "CTL_RELOAD", P(PROC_CONTROL), 0, 0, FD_NONE },
	[IMSG_CTL_RESULT] =	  { "CTL_RESULT", P(PROC_QUEUE) | P(PROC_MASTER), 8, VAR, FD_NONE },
	[IMSG_CTL_END] =	  { "CTL_END", P(PROC_QUEUE) | P(PROC_MASTER), 0, 0, FD_NONE },
};

static const char *proc_names[PROC_COUNT] = {
	[PROC_MASTER] = "master",
	[PROC_POLICY] = "policy",
	[PROC_QUEUE] = "queue",
	[PROC_SMTP] = "smtp-worker",
	[PROC_DELIVER] = "deliver-worker",
	[PROC_CONTROL] = "control",
};

const char *
proc_name(enum proc_kind kind)
{
	if ((unsigned)kind >= PROC_COUNT)
		return "unknown";
	return proc_names[kind];
}

const struct imsg_spec *
proto_spec(uint32_t type)
{
	if (type == IMSG_NONE || type >= IMSG_TYPE_MAX || specs[type].name == NULL)
		return NULL;
	return &specs[type];
}

const char *
imsg_type_name(uint32_t type)
{
	const struct imsg_spec	*s = proto_spec(type);

	return s ? s->name : "UNKNOWN";
}

int
proto_check(const struct imsg *imsg, enum proc_kind from)
{
	const struct imsg_spec	*s = proto_spec(imsg->hdr.type);
	const char		*why = NULL;

	if (s == NULL)
		why = "unknown type";
	else if (!(s->senders & P(from)))
		why = "not allowed from this sender";
	else if (imsg->hdr.len < s->minlen || imsg->hdr.len > s->maxlen)
		why = "bad length";
	else if (s->fd == FD_REQUIRED && imsg->fd == -1)
		why = "missing fd";
	else if (s->fd == FD_NONE && imsg->fd != -1)
		why = "unexpected fd";
	if (why == NULL)
		return 0;
	log_warnx("imsg %s (%u, %u bytes) from %s refused: %s",
	    imsg_type_name(imsg->hdr.type), imsg->hdr.type, imsg->hdr.len,
	    proc_name(from), why);
	errno = EBADMSG;
	return -1;
}
