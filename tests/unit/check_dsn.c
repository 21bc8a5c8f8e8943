#include "autoconf.h"

/*
 * Delivery status notifications: the structure of the written reports
 * (RFC 3464 / RFC 6522), what comes from outside neutralized, line limits,
 * and Python's email parser as a standard reader of each report.
 */

#include <sys/types.h>
#include <sys/wait.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dsn.h"

#define HOST		"mx1.example.org"
#define QID		"0123456789abcdef"
#define NOW		1700000000
#define ARRIVAL		(NOW - 7200)

/* A written report, read back. */
struct report {
	char	 path[64];
	char	*buf;
	size_t	 len;
	char	 boundary[128];
	/* the three parts, each its header block and body */
	const char *phdr[3];
	size_t	 phdrlen[3];
	const char *pbody[3];
	size_t	 pbodylen[3];
};

static const char ORIGINAL[] =
    "Received: from client.example.com ([192.0.2.7])\r\n"
    "\tby mx1.example.org with ESMTP id " QID "\r\n"
    "From: Alice <alice@example.com>\r\n"
    "To: bob@example.net, carol@example.net\r\n"
    "Subject: quarterly figures\r\n"
    "Message-Id: <orig-1@example.com>\r\n"
    "\r\n"
    "Hello Bob,\r\n"
    "Subject: not a header, this is the body\r\n"
    "the figures are attached.\r\n";

/* ---- helpers --------------------------------------------------------------- */

static int
original_fd(const char *content, size_t len)
{
	char	 path[] = "/tmp/check_dsn_orig.XXXXXX";
	int	 fd;

	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(write(fd, content, len), (ssize_t)len);
	return fd;
}

static void
info_init(struct dsn_info *info, enum dsn_kind kind)
{
	memset(info, 0, sizeof(*info));
	info->kind = kind;
	info->reporting_mta = HOST;
	info->queue_id = QID;
	info->sender = "alice@example.com";
	info->received_from = "client.example.com ([192.0.2.7])";
	info->arrival = ARRIVAL;
	info->now = NOW;
	info->max_full_size = 10 * 1024 * 1024;
}

static void
rcpts_init(struct dsn_rcpt r[2])
{
	memset(r, 0, 2 * sizeof(*r));
	r[0].final_rcpt = "bob@example.net";
	r[0].client_rcpt = "Bob@example.net";
	r[0].orig_rcpt = "rfc822;Bob@example.net";
	r[0].status = "5.1.1";
	r[0].diagnostic = "550 5.1.1 <bob@example.net>: Recipient address "
	    "rejected: User unknown";
	r[0].diag_type = "smtp";
	r[0].remote_mta = "mx.example.net";
	r[0].last_attempt = NOW - 60;
	r[1].final_rcpt = "carol@example.net";
	r[1].client_rcpt = "carol@example.net";
	r[1].status = "5.2.2";
	r[1].diagnostic = "mailbox is full";
	r[1].diag_type = "x-local";
	r[1].last_attempt = NOW - 30;
}

static size_t
count(const char *hay, size_t len, const char *needle)
{
	size_t	 n = 0, nl = strlen(needle);
	const char *p = hay, *end = hay + len;

	while ((p = memmem(p, (size_t)(end - p), needle, nl)) != NULL) {
		n++;
		p += nl;
	}
	return n;
}

static const char *
find(const char *hay, size_t len, const char *needle)
{
	return memmem(hay, len, needle, strlen(needle));
}

/* Every line ends in CRLF, no lone CR or LF, none over 998 octets. */
static void
assert_lines(const char *buf, size_t len)
{
	size_t	 i, col = 0;

	ck_assert_uint_ge(len, 2);
	ck_assert(buf[len - 2] == '\r' && buf[len - 1] == '\n');
	for (i = 0; i < len; i++) {
		if (buf[i] == '\r') {
			ck_assert_msg(i + 1 < len && buf[i + 1] == '\n',
			    "lone CR at %zu", i);
			ck_assert_uint_le(col, 998);
			col = 0;
			i++;
		} else {
			ck_assert_msg(buf[i] != '\n', "lone LF at %zu", i);
			col++;
		}
	}
}

/* No line of buf begins with prefix. */
static void
assert_no_line_starts(const char *buf, size_t len, const char *prefix)
{
	size_t	 pl = strlen(prefix);
	const char *p = buf, *end = buf + len, *nl;

	while (p < end) {
		ck_assert_msg(!((size_t)(end - p) >= pl &&
		    strncasecmp(p, prefix, pl) == 0),
		    "a line starts with \"%s\"", prefix);
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		p = nl + 1;
	}
}

/*
 * The unfolded value of the only field called name in a header block
 * (case-insensitive); returns how many such fields there are.
 */
static int
field(const char *blk, size_t len, const char *name, char *out, size_t outsz)
{
	const char *p = blk, *end = blk + len, *eol;
	size_t	 nl = strlen(name), o = 0;
	int	 n = 0;

	out[0] = '\0';
	while (p < end) {
		eol = memmem(p, (size_t)(end - p), "\r\n", 2);
		if (eol == NULL)
			eol = end;
		if ((size_t)(eol - p) > nl && strncasecmp(p, name, nl) == 0 &&
		    p[nl] == ':') {
			n++;
			p += nl + 1;
			while (p < eol && *p == ' ')
				p++;
			o = 0;
			for (;;) {
				while (p < eol && o + 1 < outsz)
					out[o++] = *p++;
				/* continuation lines: the CRLF goes */
				if (eol + 2 < end && (eol[2] == ' ' ||
				    eol[2] == '\t')) {
					p = eol + 2;
					eol = memmem(p, (size_t)(end - p),
					    "\r\n", 2);
					if (eol == NULL)
						eol = end;
					continue;
				}
				break;
			}
			out[o] = '\0';
		}
		p = eol + 2;
	}
	return n;
}

static void
report_parse(struct report *rp)
{
	char	 ct[512], delim[160];
	const char *hend, *b, *p, *q, *end = rp->buf + rp->len;
	size_t	 dl;
	int	 i;

	hend = find(rp->buf, rp->len, "\r\n\r\n");
	ck_assert_ptr_nonnull(hend);
	ck_assert_int_eq(field(rp->buf, (size_t)(hend - rp->buf) + 2,
	    "Content-Type", ct, sizeof(ct)), 1);
	ck_assert_msg(strncmp(ct, "multipart/report; report-type=delivery-status;",
	    46) == 0, "Content-Type: %s", ct);
	b = strstr(ct, "boundary=\"");
	ck_assert_ptr_nonnull(b);
	b += strlen("boundary=\"");
	q = strchr(b, '"');
	ck_assert_ptr_nonnull(q);
	ck_assert_uint_lt((size_t)(q - b), sizeof(rp->boundary));
	ck_assert_uint_le((size_t)(q - b), 70);
	memcpy(rp->boundary, b, (size_t)(q - b));
	rp->boundary[q - b] = '\0';

	/* once in the header, three delimiters, one close delimiter */
	ck_assert_uint_eq(count(rp->buf, rp->len, rp->boundary), 5);
	(void)snprintf(delim, sizeof(delim), "\r\n--%s\r\n", rp->boundary);
	ck_assert_uint_eq(count(rp->buf, rp->len, delim), 3);
	(void)snprintf(delim, sizeof(delim), "\r\n--%s--\r\n", rp->boundary);
	ck_assert_uint_eq(count(rp->buf, rp->len, delim), 1);
	ck_assert_uint_eq(rp->len - (size_t)(find(rp->buf, rp->len, delim) -
	    rp->buf), strlen(delim));

	(void)snprintf(delim, sizeof(delim), "\r\n--%s", rp->boundary);
	dl = strlen(delim);
	p = find(rp->buf, rp->len, delim);
	ck_assert_ptr_nonnull(p);
	for (i = 0; i < 3; i++) {
		p += dl + 2;
		q = find(p, (size_t)(end - p), delim);
		ck_assert_ptr_nonnull(q);
		hend = find(p, (size_t)(q - p), "\r\n\r\n");
		ck_assert_ptr_nonnull(hend);
		rp->phdr[i] = p;
		rp->phdrlen[i] = (size_t)(hend - p) + 2;
		rp->pbody[i] = hend + 4;
		rp->pbodylen[i] = (size_t)(q - (hend + 4));
		p = q;
	}
}

/* Writes the report to a file and reads it back; dsn_write's result. */
static int
report_write(struct report *rp, const struct dsn_info *info,
    const struct dsn_rcpt *r, size_t n, int msgfd)
{
	ssize_t	 got;
	off_t	 size;
	int	 fd, rc;

	memset(rp, 0, sizeof(*rp));
	(void)strlcpy(rp->path, "/tmp/check_dsn_out.XXXXXX", sizeof(rp->path));
	fd = mkstemp(rp->path);
	ck_assert_int_ge(fd, 0);
	rc = dsn_write(fd, msgfd, info, r, n);
	size = lseek(fd, 0, SEEK_END);
	ck_assert_int_ge(size, 0);
	rp->len = (size_t)size;
	rp->buf = malloc(rp->len + 1);
	ck_assert_ptr_nonnull(rp->buf);
	got = pread(fd, rp->buf, rp->len, 0);
	ck_assert_int_eq(got, (ssize_t)rp->len);
	rp->buf[rp->len] = '\0';
	ck_assert_int_eq(close(fd), 0);
	if (getenv("CHECK_DSN_DUMP") != NULL)
		(void)fwrite(rp->buf, 1, rp->len, stderr);
	return rc;
}

static void
report_ok(struct report *rp, const struct dsn_info *info,
    const struct dsn_rcpt *r, size_t n, int msgfd)
{
	ck_assert_int_eq(report_write(rp, info, r, n, msgfd), 0);
	assert_lines(rp->buf, rp->len);
	report_parse(rp);
}

static void
report_free(struct report *rp)
{
	(void)unlink(rp->path);
	free(rp->buf);
}

/* The delivery-status part cut in its blank-line separated groups. */
static size_t
status_groups(const struct report *rp, const char **grp, size_t *glen,
    size_t max)
{
	const char *p = rp->pbody[1], *end = p + rp->pbodylen[1], *q;
	size_t	 n = 0;

	while (p < end && n < max) {
		q = find(p, (size_t)(end - p), "\r\n\r\n");
		grp[n] = p;
		glen[n] = q == NULL ? (size_t)(end - p) : (size_t)(q - p) + 2;
		n++;
		if (q == NULL)
			break;
		p = q + 4;
	}
	return n;
}

static const char PYCHECK[] =
"import sys, email, email.policy\n"
"path, want, subject, now = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])\n"
"with open(path, 'rb') as f:\n"
"    m = email.message_from_binary_file(f, policy=email.policy.default)\n"
"assert m.get_content_type() == 'multipart/report', m.get_content_type()\n"
"assert m.get_param('report-type') == 'delivery-status'\n"
"assert str(m['Subject']) == subject, m['Subject']\n"
"assert str(m['Auto-Submitted']) == 'auto-replied'\n"
"assert int(m['Date'].datetime.timestamp()) == now, m['Date']\n"
"assert str(m['From']) == 'Mail Delivery System <MAILER-DAEMON@" HOST ">', m['From']\n"
"parts = m.get_payload()\n"
"assert len(parts) == 3, len(parts)\n"
"assert parts[0].get_content_type() == 'text/plain'\n"
"assert parts[0].get_content_charset() == 'us-ascii'\n"
"assert parts[1].get_content_type() == 'message/delivery-status'\n"
"assert parts[2].get_content_type() in ('text/rfc822-headers', 'message/rfc822')\n"
"ds = [p for p in m.walk() if p.get_content_type() == 'message/delivery-status']\n"
"assert len(ds) == 1, len(ds)\n"
"blocks = ds[0].get_payload()\n"
"want = [w.split('/') for w in want.split(',')]\n"
"assert len(blocks) == 1 + len(want), (len(blocks), len(want))\n"
"assert str(blocks[0]['Reporting-MTA']) == 'dns; " HOST "', blocks[0]['Reporting-MTA']\n"
"for b, (a, s) in zip(blocks[1:], want):\n"
"    assert str(b['Action']) == a, (b['Action'], a)\n"
"    assert str(b['Status']) == s, (b['Status'], s)\n"
"    assert b['Final-Recipient'] is not None\n"
"for p in [m] + parts:\n"
"    assert not p.defects, p.defects\n"
"parts[0].get_content()\n";

/*
 * Python's email parser must read the report: multipart/report, one
 * delivery-status part whose recipient groups have these "action/status".
 */
static void
python_check(const struct report *rp, const char *want, const char *subject)
{
	char	 now[32];
	pid_t	 pid;
	int	 status;

	(void)snprintf(now, sizeof(now), "%d", NOW);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		execl("/usr/bin/python3", "python3", "-c", PYCHECK, rp->path,
		    want, subject, now, (char *)NULL);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "python3 email parser check failed (status %d)", status);
}

/* ---- tests ----------------------------------------------------------------- */

START_TEST(test_failed_headers_only)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	const char	*grp[8];
	size_t		 glen[8], hlen;
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	rcpts_init(r);
	report_ok(&rp, &info, r, 2, msgfd);
	hlen = (size_t)(find(rp.buf, rp.len, "\r\n\r\n") - rp.buf) + 2;

	/* message header */
	ck_assert_int_eq(field(rp.buf, hlen, "From", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "Mail Delivery System <MAILER-DAEMON@" HOST ">");
	ck_assert_int_eq(field(rp.buf, hlen, "To", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "<alice@example.com>");
	ck_assert_int_eq(field(rp.buf, hlen, "Subject", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "Undelivered Mail Returned to Sender");
	ck_assert_int_eq(field(rp.buf, hlen, "Auto-Submitted", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "auto-replied");
	ck_assert_int_eq(field(rp.buf, hlen, "MIME-Version", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "1.0");
	ck_assert_int_eq(field(rp.buf, hlen, "Date", v, sizeof(v)), 1);
	ck_assert_int_eq(field(rp.buf, hlen, "Message-Id", v, sizeof(v)), 1);
	ck_assert(v[0] == '<' && strstr(v, "@" HOST ">") != NULL);
	ck_assert_int_eq(field(rp.buf, hlen, "Content-Transfer-Encoding", v,
	    sizeof(v)), 0);
	/* the boundary: queue id, then at least 128 random bits */
	ck_assert(strncmp(rp.boundary, QID ".", strlen(QID) + 1) == 0);
	ck_assert_uint_ge(strspn(rp.boundary + strlen(QID) + 1,
	    "0123456789abcdef"), 32);

	/* part 1: the explanation, naming each recipient and its reason */
	ck_assert_int_eq(field(rp.phdr[0], rp.phdrlen[0], "Content-Type", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "text/plain; charset=us-ascii");
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "This is the mail system at host " HOST "."));
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "<bob@example.net>: host mx.example.net said: 550 5.1.1"));
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "<carol@example.net>: mailbox is full"));
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "headers of the message are attached"));

	/* part 2: exactly one delivery-status, one group per recipient */
	ck_assert_int_eq(field(rp.phdr[1], rp.phdrlen[1], "Content-Type", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "message/delivery-status");
	ck_assert_uint_eq(count(rp.buf, rp.len, "message/delivery-status"), 1);
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 8), 3);
	ck_assert_int_eq(field(grp[0], glen[0], "Reporting-MTA", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "dns; " HOST);
	ck_assert_int_eq(field(grp[0], glen[0], "X-Mtad-Queue-ID", v, sizeof(v)), 1);
	ck_assert_str_eq(v, QID);
	ck_assert_int_eq(field(grp[0], glen[0], "Arrival-Date", v, sizeof(v)), 1);
	ck_assert_int_eq(field(grp[0], glen[0], "Received-From-MTA", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "dns; client.example.com ([192.0.2.7])");
	ck_assert_int_eq(field(grp[0], glen[0], "Original-Envelope-Id", v,
	    sizeof(v)), 0);
	ck_assert_int_eq(field(grp[0], glen[0], "Final-Recipient", v,
	    sizeof(v)), 0);

	ck_assert_int_eq(field(grp[1], glen[1], "Original-Recipient", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "rfc822;Bob@example.net");
	ck_assert_int_eq(field(grp[1], glen[1], "Final-Recipient", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "rfc822; bob@example.net");
	ck_assert_int_eq(field(grp[1], glen[1], "Action", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "failed");
	ck_assert_int_eq(field(grp[1], glen[1], "Status", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "5.1.1");
	ck_assert_int_eq(field(grp[1], glen[1], "Remote-MTA", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "dns; mx.example.net");
	ck_assert_int_eq(field(grp[1], glen[1], "Diagnostic-Code", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "smtp; 550 5.1.1 <bob@example.net>: Recipient "
	    "address rejected: User unknown");
	ck_assert_int_eq(field(grp[1], glen[1], "Last-Attempt-Date", v,
	    sizeof(v)), 1);
	ck_assert_int_eq(field(grp[1], glen[1], "Will-Retry-Until", v,
	    sizeof(v)), 0);

	/* no ORCPT: the address the client gave */
	ck_assert_int_eq(field(grp[2], glen[2], "Original-Recipient", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "rfc822; carol@example.net");
	ck_assert_int_eq(field(grp[2], glen[2], "Final-Recipient", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "rfc822; carol@example.net");
	ck_assert_int_eq(field(grp[2], glen[2], "Status", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "5.2.2");
	ck_assert_int_eq(field(grp[2], glen[2], "Remote-MTA", v, sizeof(v)), 0);
	ck_assert_int_eq(field(grp[2], glen[2], "Diagnostic-Code", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "x-local; mailbox is full");

	/* part 3: the header block only, exactly */
	ck_assert_int_eq(field(rp.phdr[2], rp.phdrlen[2], "Content-Type", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "text/rfc822-headers");
	ck_assert_uint_eq(rp.pbodylen[2], strstr(ORIGINAL, "\r\n\r\n") + 2 -
	    ORIGINAL);
	ck_assert(memcmp(rp.pbody[2], ORIGINAL, rp.pbodylen[2]) == 0);
	ck_assert_ptr_null(find(rp.buf, rp.len, "Hello Bob"));
	ck_assert_ptr_null(find(rp.buf, rp.len, "not a header"));

	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_delayed)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	const char	*grp[8];
	size_t		 glen[8], hlen;
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_DELAYED);
	rcpts_init(r);
	r[0].status = "4.4.1";
	r[0].diagnostic = "connect to mx.example.net: Connection timed out";
	r[0].diag_type = NULL;
	r[0].will_retry_until = ARRIVAL + 5 * 86400;
	r[1].status = "4.2.2";
	r[1].will_retry_until = ARRIVAL + 5 * 86400;
	r[1].last_attempt = 0;
	report_ok(&rp, &info, r, 2, msgfd);
	hlen = (size_t)(find(rp.buf, rp.len, "\r\n\r\n") - rp.buf) + 2;

	ck_assert_int_eq(field(rp.buf, hlen, "Subject", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "Delayed Mail (still being retried)");
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "warning only"));
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0], "2 hours"));
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 8), 3);
	ck_assert_int_eq(field(grp[1], glen[1], "Action", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "delayed");
	ck_assert_int_eq(field(grp[1], glen[1], "Will-Retry-Until", v,
	    sizeof(v)), 1);
	/* diag_type unset with a remote MTA: an SMTP diagnostic */
	ck_assert_int_eq(field(grp[1], glen[1], "Diagnostic-Code", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "smtp; connect to mx.example.net: Connection "
	    "timed out");
	ck_assert_int_eq(field(grp[2], glen[2], "Will-Retry-Until", v,
	    sizeof(v)), 1);
	ck_assert_int_eq(field(grp[2], glen[2], "Last-Attempt-Date", v,
	    sizeof(v)), 0);
	python_check(&rp, "delayed/4.4.1,delayed/4.2.2",
	    "Delayed Mail (still being retried)");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_delivered)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[1];
	struct report	 rp;
	const char	*grp[8];
	size_t		 glen[8], hlen;
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_DELIVERED);
	info.envid = "QQ+2B314159";
	memset(r, 0, sizeof(r));
	r[0].final_rcpt = "bob@example.org";
	r[0].client_rcpt = "bob@example.org";
	r[0].status = "2.0.0";
	r[0].diagnostic = "delivered to mailbox";
	r[0].last_attempt = NOW;
	report_ok(&rp, &info, r, 1, msgfd);
	hlen = (size_t)(find(rp.buf, rp.len, "\r\n\r\n") - rp.buf) + 2;

	ck_assert_int_eq(field(rp.buf, hlen, "Subject", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "Successful Mail Delivery Report");
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 8), 2);
	ck_assert_int_eq(field(grp[0], glen[0], "Original-Envelope-Id", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "QQ+314159");
	ck_assert_int_eq(field(grp[1], glen[1], "Action", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "delivered");
	ck_assert_int_eq(field(grp[1], glen[1], "Diagnostic-Code", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "x-local; delivered to mailbox");
	ck_assert_int_eq(field(grp[1], glen[1], "Will-Retry-Until", v,
	    sizeof(v)), 0);
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "<bob@example.org>: delivered to mailbox"));
	python_check(&rp, "delivered/2.0.0", "Successful Mail Delivery Report");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_ret_full)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	info.ret_full = 1;
	info.max_full_size = sizeof(ORIGINAL) - 1;	/* exactly: still full */
	rcpts_init(r);
	report_ok(&rp, &info, r, 2, msgfd);
	ck_assert_int_eq(field(rp.phdr[2], rp.phdrlen[2], "Content-Type", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "message/rfc822");
	/* the whole original, unchanged */
	ck_assert_uint_eq(rp.pbodylen[2], sizeof(ORIGINAL) - 1);
	ck_assert(memcmp(rp.pbody[2], ORIGINAL, sizeof(ORIGINAL) - 1) == 0);
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "copy of the message is attached"));
	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_ret_full_oversize)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	info.ret_full = 1;
	info.max_full_size = sizeof(ORIGINAL) - 2;	/* one octet short */
	rcpts_init(r);
	report_ok(&rp, &info, r, 2, msgfd);
	ck_assert_int_eq(field(rp.phdr[2], rp.phdrlen[2], "Content-Type", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "text/rfc822-headers");
	ck_assert_ptr_nonnull(find(rp.pbody[2], rp.pbodylen[2],
	    "Subject: quarterly figures\r\n"));
	ck_assert_ptr_null(find(rp.buf, rp.len, "Hello Bob"));
	(void)snprintf(v, sizeof(v), "larger than %zu bytes",
	    sizeof(ORIGINAL) - 2);
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0], v));
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "only its headers are attached"));
	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_injection)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	const char	*grp[8];
	size_t		 glen[8], hlen;
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	info.sender = "alice@example.com>\r\nBcc: victim@example.org\r\nX-A: <";
	info.envid = "id\r\nX-Injected: envid";
	info.received_from = "helo\r\nX-Injected: from";
	rcpts_init(r);
	r[0].final_rcpt = "bob@example.net\r\nX-Injected: final";
	r[0].client_rcpt = "bob@example.net\nX-Injected: client";
	r[0].orig_rcpt = "rfc822;bob+0D+0AX-Injected:+20orcpt";
	r[0].remote_mta = "mx\rX-Injected: remote";
	r[0].diagnostic = "550 no\r\nX-Injected: diag\r\n\r\n--fake\r\n"
	    "Content-Type: text/html\n\nAction: delivered\r\n";
	r[0].diag_type = "smtp\r\nX-Injected: type";
	r[1].diagnostic = "\r\n\r\nStatus: 2.0.0";
	r[1].status = "5.2.2\r\nX-Injected: status";
	report_ok(&rp, &info, r, 2, msgfd);
	hlen = (size_t)(find(rp.buf, rp.len, "\r\n\r\n") - rp.buf) + 2;

	assert_no_line_starts(rp.buf, rp.len, "X-Injected");
	assert_no_line_starts(rp.buf, rp.len, "Bcc:");
	assert_no_line_starts(rp.buf, rp.len, "X-A:");
	assert_no_line_starts(rp.buf, rp.len, "--fake");
	assert_no_line_starts(rp.buf, rp.len, "Content-Type: text/html");
	ck_assert_int_eq(field(rp.buf, hlen, "To", v, sizeof(v)), 1);
	ck_assert_ptr_null(strchr(v, '\r'));
	ck_assert_ptr_null(strchr(v, '\n'));
	ck_assert_int_eq(field(rp.buf, hlen, "Bcc", v, sizeof(v)), 0);

	/* no field was added to any group, and each group keeps its values */
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 8), 3);
	ck_assert_uint_eq(count(rp.pbody[1], rp.pbodylen[1], "\r\nAction:"), 2);
	ck_assert_uint_eq(count(rp.pbody[1], rp.pbodylen[1], "\r\nStatus:"), 2);
	ck_assert_int_eq(field(grp[1], glen[1], "Action", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "failed");
	ck_assert_int_eq(field(grp[1], glen[1], "Diagnostic-Code", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "smtp; 550 no X-Injected: diag --fake Content-Type: "
	    "text/html Action: delivered");
	ck_assert_int_eq(field(grp[1], glen[1], "Final-Recipient", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "rfc822; bob@example.net??X-Injected: final");
	/* an ORCPT that decodes to controls stays in its xtext form */
	ck_assert_int_eq(field(grp[1], glen[1], "Original-Recipient", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "rfc822;bob+0D+0AX-Injected:+20orcpt");
	ck_assert_int_eq(field(grp[2], glen[2], "Status", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "5.0.0");
	python_check(&rp, "failed/5.1.1,failed/5.0.0",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_long_diagnostic)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	const char	*grp[8];
	size_t		 glen[8], i, o = 0;
	char		 diag[12000], *v;
	int		 msgfd;

	/* 300 words, then one 1500-octet word, then an end marker */
	for (i = 0; i < 300; i++)
		o += (size_t)snprintf(diag + o, sizeof(diag) - o, "word%zu ", i);
	memset(diag + o, 'x', 1500);
	o += 1500;
	(void)strlcpy(diag + o, " THE-END", sizeof(diag) - o);

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	rcpts_init(r);
	r[0].diagnostic = diag;
	report_ok(&rp, &info, r, 2, msgfd);	/* asserts lines <= 998 */
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 8), 3);
	v = malloc(16384);
	ck_assert_ptr_nonnull(v);
	ck_assert_int_eq(field(grp[1], glen[1], "Diagnostic-Code", v, 16384), 1);
	ck_assert(strncmp(v, "smtp; word0 word1 word2 ", 24) == 0);
	ck_assert_ptr_nonnull(strstr(v, "word299 xxxx"));
	ck_assert(strlen(v) > 8 && strcmp(v + strlen(v) - 8, " THE-END") == 0);
	/* folded at spaces where possible: the words survive unfolding */
	for (i = 0; i < 300; i += 37) {
		char w[32];

		(void)snprintf(w, sizeof(w), " word%zu ", i);
		ck_assert_ptr_nonnull(strstr(v, w));
	}
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0], "THE-END"));
	free(v);
	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_non_ascii)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	const char	*grp[8];
	size_t		 glen[8], i;
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	rcpts_init(r);
	r[0].final_rcpt = "j\xc3\xb6rg@b\xc3\xbc" "cher.example";
	r[0].client_rcpt = "j\xc3\xb6rg@b\xc3\xbc" "cher.example";
	r[0].orig_rcpt = NULL;
	r[0].diagnostic = "550 Benutzer unbekannt: \xc3\xbc\xe2\x82\xac "
	    "bad:\xff\xfe\xc3 end";
	report_ok(&rp, &info, r, 2, msgfd);
	/* parts 1 and 2 are 7-bit */
	for (i = 0; i < rp.pbodylen[0]; i++)
		ck_assert_uint_lt((unsigned char)rp.pbody[0][i], 0x80);
	for (i = 0; i < rp.pbodylen[1]; i++)
		ck_assert_uint_lt((unsigned char)rp.pbody[1][i], 0x80);
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 8), 3);
	ck_assert_int_eq(field(grp[1], glen[1], "Final-Recipient", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "utf-8; j\\x{F6}rg@b\\x{FC}cher.example");
	ck_assert_int_eq(field(grp[1], glen[1], "Original-Recipient", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "utf-8; j\\x{F6}rg@b\\x{FC}cher.example");
	ck_assert_int_eq(field(grp[1], glen[1], "Diagnostic-Code", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "smtp; 550 Benutzer unbekannt: ?? bad:??? end");
	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_original_8bit)
{
	static const char orig[] = "Subject: caf\xc3\xa9\r\n\r\nna\xc3\xafve\r\n";
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	size_t		 hlen;
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(orig, sizeof(orig) - 1);
	info_init(&info, DSN_FAILED);
	info.ret_full = 1;
	rcpts_init(r);
	report_ok(&rp, &info, r, 2, msgfd);
	hlen = (size_t)(find(rp.buf, rp.len, "\r\n\r\n") - rp.buf) + 2;
	ck_assert_int_eq(field(rp.buf, hlen, "Content-Transfer-Encoding", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "8bit");
	ck_assert_int_eq(field(rp.phdr[2], rp.phdrlen[2],
	    "Content-Transfer-Encoding", v, sizeof(v)), 1);
	ck_assert_str_eq(v, "8bit");
	ck_assert_uint_eq(rp.pbodylen[2], sizeof(orig) - 1);
	ck_assert(memcmp(rp.pbody[2], orig, sizeof(orig) - 1) == 0);
	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
}
END_TEST

/* Bare LF and CR, over-long lines, no final line end: made RFC 5322. */
START_TEST(test_original_normalized)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	char		*orig, *flat;
	size_t		 o = 0, i, f = 0;
	int		 msgfd, headers_only;

	headers_only = _i;
	orig = malloc(16384);
	flat = malloc(16384);
	ck_assert(orig != NULL && flat != NULL);
	o += (size_t)snprintf(orig, 16384, "Subject: lf only\nX-Long: ");
	memset(orig + o, 'h', 3000);
	o += 3000;
	memcpy(orig + o, "\rX-Cr: bare\r\r\nbody\n", 19);
	o += 19;
	memset(orig + o, 'b', 2500);
	o += 2500;
	memcpy(orig + o, "\r\nlast", 6);
	o += 6;

	msgfd = original_fd(orig, o);
	info_init(&info, DSN_FAILED);
	info.ret_full = !headers_only;
	rcpts_init(r);
	report_ok(&rp, &info, r, 2, msgfd);	/* asserts lines, CRLF */
	ck_assert_ptr_nonnull(find(rp.pbody[2], rp.pbodylen[2],
	    "Subject: lf only\r\nX-Long: hhh"));
	ck_assert_ptr_nonnull(find(rp.pbody[2], rp.pbodylen[2],
	    "\r\nX-Cr: bare\r\n"));
	/* the long header line folded: continuation lines start with SP */
	ck_assert_ptr_nonnull(find(rp.pbody[2], rp.pbodylen[2], "hh\r\n hh"));
	/* once the inserted line breaks are gone, the content is whole */
	for (i = 0; i < rp.pbodylen[2]; i++) {
		if (rp.pbody[2][i] == '\r' && i + 2 < rp.pbodylen[2] &&
		    (rp.pbody[2][i + 2] == 'h' || rp.pbody[2][i + 2] == 'b' ||
		    rp.pbody[2][i + 2] == ' ') && (rp.pbody[2][i - 1] == 'h' ||
		    rp.pbody[2][i - 1] == 'b')) {
			i += rp.pbody[2][i + 2] == ' ' ? 2 : 1;
			continue;
		}
		flat[f++] = rp.pbody[2][i];
	}
	ck_assert_uint_eq(count(flat, f, "h"), 3000);
	if (headers_only) {
		ck_assert_ptr_null(find(rp.pbody[2], rp.pbodylen[2], "body"));
		ck_assert_uint_eq(count(rp.buf, rp.len, "bbbb"), 0);
	} else {
		/* "Subject", "bare", "body" and the long line */
		ck_assert_uint_eq(count(flat, f, "b"), 3 + 2500);
		ck_assert_ptr_nonnull(find(rp.pbody[2], rp.pbodylen[2],
		    "\r\n\r\nbody\r\nbbb"));
		ck_assert(rp.pbodylen[2] >= 6 && memcmp(rp.pbody[2] +
		    rp.pbodylen[2] - 6, "last\r\n", 6) == 0);
	}
	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	free(orig);
	free(flat);
	report_free(&rp);
	close(msgfd);
}
END_TEST

/* Random bytes by call: call k gives octets of value pattern[k]. */
static int	 rnd_calls;
static int	 rnd_pattern[16];

static void
fake_random(void *buf, size_t n)
{
	int	 k = rnd_calls < 16 ? rnd_calls : 15;

	memset(buf, rnd_pattern[k], n);
	rnd_calls++;
}

START_TEST(test_boundary_collision)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	char		 orig[1024], first[128], second[128];
	void		(*saved)(void *, size_t);
	int		 msgfd, i;

	/* call 0 makes the Message-Id, call 1 the first boundary */
	(void)snprintf(first, sizeof(first), "%s.%s/mtad", QID,
	    "11111111111111111111111111111111");
	(void)snprintf(second, sizeof(second), "%s.%s/mtad", QID,
	    "22222222222222222222222222222222");
	/* the body holds the first one (in other case) */
	(void)snprintf(orig, sizeof(orig), "Subject: s\r\n\r\n--%s\r\n"
	    "Content-Type: text/plain\r\n\r\nhi\r\n", first);
	for (i = 0; orig[i] != '\0'; i++)
		if (orig[i] >= 'a' && orig[i] <= 'z')
			orig[i] -= 'a' - 'A';
	msgfd = original_fd(orig, strlen(orig));
	info_init(&info, DSN_FAILED);
	info.ret_full = 1;
	rcpts_init(r);
	saved = dsn_random_bytes;
	rnd_calls = 0;
	rnd_pattern[0] = 0x00;
	rnd_pattern[1] = 0x11;
	for (i = 2; i < 16; i++)
		rnd_pattern[i] = 0x22;
	dsn_random_bytes = fake_random;
	report_ok(&rp, &info, r, 2, msgfd);
	ck_assert_str_eq(rp.boundary, second);
	ck_assert_int_eq(rnd_calls, 3);
	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);

	/* a boundary in headers only returned is no collision */
	info.ret_full = 0;
	rnd_calls = 0;
	report_ok(&rp, &info, r, 2, msgfd);
	ck_assert_str_eq(rp.boundary, first);
	report_free(&rp);

	/* always the same collision: it gives up */
	info.ret_full = 1;
	rnd_calls = 0;
	for (i = 1; i < 16; i++)
		rnd_pattern[i] = 0x11;
	ck_assert_int_eq(report_write(&rp, &info, r, 2, msgfd), -1);
	ck_assert_int_eq(errno, EEXIST);
	dsn_random_bytes = saved;
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_unique_ids)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 a, b;
	char		 ida[256], idb[256];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	rcpts_init(r);
	report_ok(&a, &info, r, 2, msgfd);
	report_ok(&b, &info, r, 2, msgfd);
	ck_assert_int_eq(field(a.buf, (size_t)(find(a.buf, a.len, "\r\n\r\n") -
	    a.buf) + 2, "Message-Id", ida, sizeof(ida)), 1);
	ck_assert_int_eq(field(b.buf, (size_t)(find(b.buf, b.len, "\r\n\r\n") -
	    b.buf) + 2, "Message-Id", idb, sizeof(idb)), 1);
	ck_assert(strncmp(ida, "<20231114221320." QID ".", 32) == 0);
	ck_assert(strlen(ida) > 50 && strcmp(ida + strlen(ida) - strlen(HOST) - 2,
	    "@" HOST ">") == 0);
	ck_assert_str_ne(ida, idb);
	ck_assert_str_ne(a.boundary, b.boundary);
	report_free(&a);
	report_free(&b);
	close(msgfd);
}
END_TEST

START_TEST(test_status_coherence)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[4];
	struct report	 rp;
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	memset(r, 0, sizeof(r));
	r[0].final_rcpt = "a@example.net";
	r[1].final_rcpt = "b@example.net";
	r[2].final_rcpt = "c@example.net";
	r[3].final_rcpt = "d@example.net";

	/* a failure may be 4.x.x (expired), never 2.x.x or garbage */
	info_init(&info, DSN_FAILED);
	r[0].status = "4.4.7";
	r[1].status = "2.0.0";
	r[2].status = "5.1234.1";
	r[3].status = NULL;
	report_ok(&rp, &info, r, 4, msgfd);
	python_check(&rp, "failed/4.4.7,failed/5.0.0,failed/5.0.0,failed/5.0.0",
	    "Undelivered Mail Returned to Sender");
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "<d@example.net>: delivery failed, status 5.0.0"));
	report_free(&rp);

	info_init(&info, DSN_DELAYED);
	r[0].status = "5.1.1";
	r[1].status = "4.7.0";
	r[2].status = "4.1";
	r[3].status = "4.1.1x";
	report_ok(&rp, &info, r, 4, msgfd);
	python_check(&rp, "delayed/4.0.0,delayed/4.7.0,delayed/4.0.0,delayed/4.0.0",
	    "Delayed Mail (still being retried)");
	report_free(&rp);

	info_init(&info, DSN_DELIVERED);
	r[0].status = "5.1.1";
	r[1].status = "2.1.5";
	r[2].status = "";
	r[3].status = "2.0.0 ";
	report_ok(&rp, &info, r, 4, msgfd);
	python_check(&rp, "delivered/2.0.0,delivered/2.1.5,delivered/2.0.0,"
	    "delivered/2.0.0", "Successful Mail Delivery Report");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_original_recipient)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[3];
	struct report	 rp;
	const char	*grp[8];
	size_t		 glen[8];
	char		 v[1024];
	int		 msgfd;

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	memset(r, 0, sizeof(r));
	r[0].final_rcpt = "list-owner@example.net";
	r[0].orig_rcpt = "rfc822;list+2Bowner@example.net";
	r[0].client_rcpt = "list@example.net";
	r[1].final_rcpt = "b@example.net";
	r[1].orig_rcpt = "no-separator";		/* malformed: client's */
	r[1].client_rcpt = "B@example.net";
	r[2].final_rcpt = "c@example.net";		/* nothing known */
	report_ok(&rp, &info, r, 3, msgfd);
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 8), 4);
	ck_assert_int_eq(field(grp[1], glen[1], "Original-Recipient", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "rfc822;list+owner@example.net");
	ck_assert_int_eq(field(grp[2], glen[2], "Original-Recipient", v,
	    sizeof(v)), 1);
	ck_assert_str_eq(v, "rfc822; B@example.net");
	ck_assert_int_eq(field(grp[3], glen[3], "Original-Recipient", v,
	    sizeof(v)), 0);
	ck_assert_int_eq(field(grp[3], glen[3], "Diagnostic-Code", v,
	    sizeof(v)), 0);
	python_check(&rp, "failed/5.0.0,failed/5.0.0,failed/5.0.0",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
}
END_TEST

START_TEST(test_many_recipients)
{
	struct dsn_info	 info;
	struct dsn_rcpt	*r;
	struct report	 rp;
	const char	*grp[512];
	size_t		 glen[512], i, n = 300, o = 0;
	char		(*addr)[64], *want;
	int		 msgfd;

	r = calloc(n, sizeof(*r));
	addr = calloc(n, sizeof(*addr));
	want = malloc(n * 16);
	ck_assert(r != NULL && addr != NULL && want != NULL);
	for (i = 0; i < n; i++) {
		(void)snprintf(addr[i], sizeof(addr[i]), "user%zu@example.net", i);
		r[i].final_rcpt = addr[i];
		r[i].status = i % 2 ? "5.1.1" : "4.4.7";
		r[i].diagnostic = "no";
		o += (size_t)snprintf(want + o, n * 16 - o, "%sfailed/%s",
		    i ? "," : "", r[i].status);
	}
	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	report_ok(&rp, &info, r, n, msgfd);
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 512), n + 1);
	ck_assert_ptr_nonnull(find(rp.pbody[0], rp.pbodylen[0],
	    "<user299@example.net>: no"));
	python_check(&rp, want, "Undelivered Mail Returned to Sender");
	report_free(&rp);
	close(msgfd);
	free(r);
	free(addr);
	free(want);
}
END_TEST

START_TEST(test_invalid_args)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	int		 msgfd, outfd;
	char		 path[] = "/tmp/check_dsn_inv.XXXXXX";

	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	outfd = mkstemp(path);
	ck_assert_int_ge(outfd, 0);
	ck_assert_int_eq(unlink(path), 0);
	rcpts_init(r);

	info_init(&info, DSN_FAILED);
	errno = 0;
	ck_assert_int_eq(dsn_write(outfd, msgfd, NULL, r, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, r, 0), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, NULL, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	info.sender = "";			/* never bounce to <> */
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, r, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	info_init(&info, DSN_FAILED);
	info.reporting_mta = NULL;
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, r, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	info_init(&info, DSN_FAILED);
	info.queue_id = NULL;
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, r, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	info_init(&info, DSN_FAILED);
	info.kind = (enum dsn_kind)7;
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, r, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	info_init(&info, DSN_FAILED);
	r[1].final_rcpt = "";
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, r, 2), -1);
	ck_assert_int_eq(errno, EINVAL);
	/* nothing was written */
	ck_assert_int_eq(lseek(outfd, 0, SEEK_END), 0);
	close(outfd);
	close(msgfd);
}
END_TEST

START_TEST(test_io_errors)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	int		 msgfd, outfd, p[2];

	info_init(&info, DSN_FAILED);
	rcpts_init(r);
	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	/* the output cannot be written */
	outfd = open("/dev/null", O_RDONLY);
	ck_assert_int_ge(outfd, 0);
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, r, 2), -1);
	ck_assert_int_eq(errno, EBADF);
	close(outfd);
	/* the original cannot be pread */
	ck_assert_int_eq(pipe(p), 0);
	outfd = open("/dev/null", O_WRONLY);
	ck_assert_int_ge(outfd, 0);
	ck_assert_int_eq(dsn_write(outfd, p[0], &info, r, 2), -1);
	ck_assert_int_eq(errno, ESPIPE);
	info.ret_full = 1;
	ck_assert_int_eq(dsn_write(outfd, p[0], &info, r, 2), -1);
	ck_assert_int_eq(errno, ESPIPE);
	/* and an empty original is no error */
	close(msgfd);
	msgfd = original_fd("", 0);
	ck_assert_int_eq(dsn_write(outfd, msgfd, &info, r, 2), 0);
	close(outfd);
	close(p[0]);
	close(p[1]);
	close(msgfd);
}
END_TEST

/* Outside text is bounded: a huge reply is cut, the report stays sound. */
START_TEST(test_huge_diagnostic)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	const char	*grp[8];
	size_t		 glen[8], len = 1024 * 1024;
	char		*diag, *v;
	int		 msgfd;

	diag = malloc(len + 1);
	v = malloc(len);
	ck_assert(diag != NULL && v != NULL);
	memset(diag, 'y', len);
	diag[len] = '\0';
	msgfd = original_fd(ORIGINAL, sizeof(ORIGINAL) - 1);
	info_init(&info, DSN_FAILED);
	rcpts_init(r);
	r[0].diagnostic = diag;
	r[0].final_rcpt = diag;
	report_ok(&rp, &info, r, 2, msgfd);
	ck_assert_uint_lt(rp.len, 64 * 1024);
	ck_assert_uint_eq(status_groups(&rp, grp, glen, 8), 3);
	ck_assert_int_eq(field(grp[1], glen[1], "Diagnostic-Code", v, len), 1);
	ck_assert(strncmp(v, "smtp; yyyy", 10) == 0);
	ck_assert_int_eq(field(grp[1], glen[1], "Status", v, len), 1);
	ck_assert_str_eq(v, "5.1.1");
	python_check(&rp, "failed/5.1.1,failed/5.2.2",
	    "Undelivered Mail Returned to Sender");
	report_free(&rp);
	free(diag);
	free(v);
	close(msgfd);
}
END_TEST

/* An original whose header block never ends is cut near 128 KiB. */
START_TEST(test_huge_header_block)
{
	struct dsn_info	 info;
	struct dsn_rcpt	 r[2];
	struct report	 rp;
	size_t		 len = 1024 * 1024, i;
	char		*orig;
	int		 msgfd;

	orig = malloc(len);
	ck_assert_ptr_nonnull(orig);
	for (i = 0; i < len; i++)
		orig[i] = (i % 100 == 98) ? '\r' : (i % 100 == 99) ? '\n' : 'X';
	msgfd = original_fd(orig, len);
	info_init(&info, DSN_FAILED);
	rcpts_init(r);
	report_ok(&rp, &info, r, 2, msgfd);
	ck_assert_uint_ge(rp.pbodylen[2], 128 * 1024);
	ck_assert_uint_le(rp.pbodylen[2], 128 * 1024 + 1000);
	report_free(&rp);
	free(orig);
	close(msgfd);
}
END_TEST

/* ---- suite ----------------------------------------------------------------- */

static Suite *
dsn_suite(void)
{
	Suite	*s = suite_create("dsn");
	TCase	*tc;

	tc = tcase_create("compose");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_failed_headers_only);
	tcase_add_test(tc, test_delayed);
	tcase_add_test(tc, test_delivered);
	tcase_add_test(tc, test_ret_full);
	tcase_add_test(tc, test_ret_full_oversize);
	tcase_add_test(tc, test_original_recipient);
	tcase_add_test(tc, test_status_coherence);
	tcase_add_test(tc, test_many_recipients);
	tcase_add_test(tc, test_unique_ids);
	tcase_add_test(tc, test_invalid_args);
	tcase_add_test(tc, test_io_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_injection);
	tcase_add_test(tc, test_long_diagnostic);
	tcase_add_test(tc, test_non_ascii);
	tcase_add_test(tc, test_original_8bit);
	tcase_add_loop_test(tc, test_original_normalized, 0, 2);
	tcase_add_test(tc, test_boundary_collision);
	tcase_add_test(tc, test_huge_diagnostic);
	tcase_add_test(tc, test_huge_header_block);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(dsn_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
