/*
 * sendmail(8), mailq and newaliases: mtad's local submission front end.
 */
#ifndef MTAD_SENDMAIL_H
#define MTAD_SENDMAIL_H

#include <stdint.h>
#include <stdio.h>

#include "envelope.h"

#define MSG_FIELD_MAX	(256 * 1024)	/* one header field, folded lines */
#define MSG_ERR_MAX	256

/* How the message on standard input is read and completed. */
struct msg_opts {
	int		 dot_ends;	/* no -i: a lone "." line ends input */
	int		 extract;	/* -t: collect To, Cc, Bcc */
	const char	*sender;	/* envelope sender, "" for <> */
	const char	*fullname;	/* for an added From:, NULL for none */
	const char	*hostname;	/* for Message-Id and MAILER-DAEMON */
	uint64_t	 max_size;	/* bytes written, at most */
	size_t		 max_rcpts;	/* addresses collected per list */
	int		 unstuff;	/* SMTP DATA: remove a leading dot */
};

struct addr_entry {
	int	 ok;			/* 0: malformed, addr as written */
	char	 addr[ADDR_MAX];
};

struct addr_list {
	struct addr_entry	*v;
	size_t			 n, cap;
};

struct msg_info {
	uint64_t	 size;		/* bytes written to the output */
	int		 added_from, added_date, added_msgid;
	int		 has_resent;	/* Resent-To/Cc/Bcc present */
	int		 dot_seen;	/* the input ended with a lone dot */
	int		 bol;		/* reading stopped at a line start */
	struct addr_list to;		/* -t: To, Cc, Bcc */
	struct addr_list resent;	/* -t: Resent-To, -Cc, -Bcc */
	char		 err[MSG_ERR_MAX];
};

/*
 * Reads a message from in, as sendmail(8) takes it: LF or CRLF line ends
 * (a run of CRs, with or without a following LF, is one line end), an
 * optional leading "From " line (dropped), the header section up to the
 * first empty or non-header line.  Writes it to out with LF line ends:
 * Bcc, Resent-Bcc, Return-Path and Content-Length removed, From, Date and
 * Message-Id appended when missing.  Returns 0, or a sysexits(3) code with
 * the reason in info->err.
 */
int	 msg_read(FILE *in, int out, const struct msg_opts *,
	    struct msg_info *);
/* The list that -t takes: Resent-* when the message has any, else To... */
const struct addr_list *msg_header_rcpts(const struct msg_info *);
void	 msg_info_free(struct msg_info *);

/*
 * sendmail -bs while mtad is not running: a minimal SMTP server on stdin
 * and stdout that writes each message to offline/.  Returns an exit code.
 */
struct config;
int	 smtpd_offline(const struct config *, int verbose);

#endif
