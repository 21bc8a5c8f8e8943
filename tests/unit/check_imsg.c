/*
 * imsg framing, fd passing, malformed input, typed marshalling, the proto
 * table and the libevent channel on top of them.
 */
#include "autoconf.h"

#include <sys/socket.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "envelope.h"
#include "imsg.h"
#include "marshal.h"
#include "proto.h"

static int	 sp[2];
static struct imsgbuf wr, rd;

static void
setup(void)
{
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	ck_assert_int_eq(imsgbuf_init(&wr, sp[0]), 0);
	ck_assert_int_eq(imsgbuf_init(&rd, sp[1]), 0);
}

static void
teardown(void)
{
	imsgbuf_clear(&wr);
	imsgbuf_clear(&rd);
	close(sp[0]);
	close(sp[1]);
}

/* Reads until one frame is complete. */
static int
get_one(struct imsg *imsg)
{
	int	 r;

	while ((r = imsg_get(&rd, imsg)) == 0)
		if (imsg_read(&rd) <= 0)
			return -2;
	return r;
}

START_TEST(roundtrip_several_frames)
{
	struct imsg	 imsg;
	int		 i;
	char		 payload[32];

	for (i = 0; i < 5; i++) {
		snprintf(payload, sizeof(payload), "frame %d", i);
		ck_assert_int_eq(imsg_compose(&wr, IMSG_CTL_RESULT, 100 + i, -1,
		    payload, strlen(payload)), 0);
	}
	ck_assert_int_eq(imsg_flush_blocking(&wr), 0);
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(get_one(&imsg), 1);
		snprintf(payload, sizeof(payload), "frame %d", i);
		ck_assert_uint_eq(imsg.hdr.type, IMSG_CTL_RESULT);
		ck_assert_uint_eq(imsg.hdr.peerid, 100 + i);
		ck_assert_uint_eq(imsg.hdr.len, strlen(payload));
		ck_assert_int_eq(memcmp(imsg.data, payload, imsg.hdr.len), 0);
		ck_assert_int_eq(imsg.fd, -1);
		imsg_free(&imsg);
	}
}
END_TEST

START_TEST(partial_reads_byte_by_byte)
{
	struct imsg	 imsg;
	struct imsg_hdr	 hdr = { IMSG_CTL_END, 3, 0, 7, 1 };
	char		 buf[IMSG_HDR_SIZE + 3];
	size_t		 i;

	memcpy(buf, &hdr, IMSG_HDR_SIZE);
	memcpy(buf + IMSG_HDR_SIZE, "abc", 3);
	for (i = 0; i < sizeof(buf); i++) {
		ck_assert_int_eq(imsg_get(&rd, &imsg), 0);
		ck_assert_int_eq(write(sp[0], buf + i, 1), 1);
		ck_assert_int_eq(imsg_read(&rd), 1);
	}
	ck_assert_int_eq(imsg_get(&rd, &imsg), 1);
	ck_assert_uint_eq(imsg.hdr.peerid, 7);
	ck_assert_int_eq(memcmp(imsg.data, "abc", 3), 0);
	imsg_free(&imsg);
	ck_assert_int_eq(imsg_get(&rd, &imsg), 0);
}
END_TEST

START_TEST(largest_payload_and_oversize)
{
	struct imsg	 imsg;
	char		*big = malloc(IMSG_MAX_PAYLOAD + 1);
	int		 r;

	ck_assert_ptr_nonnull(big);
	memset(big, 'x', IMSG_MAX_PAYLOAD + 1);
	ck_assert_int_eq(imsg_compose(&wr, IMSG_CTL_RESULT, 0, -1, big,
	    IMSG_MAX_PAYLOAD + 1), -1);
	ck_assert_int_eq(errno, EMSGSIZE);
	ck_assert_int_eq(imsg_compose(&wr, IMSG_CTL_RESULT, 0, -1, big,
	    IMSG_MAX_PAYLOAD), 0);
	/* Interleave writing and reading: the socket buffer may be small. */
	fcntl(sp[0], F_SETFL, O_NONBLOCK);
	while ((r = imsg_get(&rd, &imsg)) == 0) {
		ck_assert_int_ne(imsg_flush(&wr), -1);
		ck_assert_int_gt(imsg_read(&rd), 0);
	}
	ck_assert_int_eq(r, 1);
	ck_assert_uint_eq(imsg.hdr.len, IMSG_MAX_PAYLOAD);
	imsg_free(&imsg);
	free(big);
}
END_TEST

START_TEST(fd_passing)
{
	struct imsg	 imsg;
	int		 p[2];
	char		 buf[8];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(imsg_compose(&wr, IMSG_MDA_RESULT, 1, p[0], "x", 1), 0);
	ck_assert_int_eq(imsg_compose(&wr, IMSG_CTL_END, 2, -1, NULL, 0), 0);
	ck_assert_int_eq(imsg_flush_blocking(&wr), 0);
	ck_assert_int_eq(get_one(&imsg), 1);
	ck_assert_int_ge(imsg.fd, 0);
	ck_assert_int_eq(write(p[1], "hello", 5), 5);
	ck_assert_int_eq(read(imsg.fd, buf, sizeof(buf)), 5);
	ck_assert_int_eq(memcmp(buf, "hello", 5), 0);
	imsg_free(&imsg);
	ck_assert_int_eq(get_one(&imsg), 1);
	ck_assert_int_eq(imsg.fd, -1);	/* the fd belonged to one frame */
	imsg_free(&imsg);
	close(p[1]);
}
END_TEST

static void
write_raw_header(uint32_t type, uint32_t len, uint32_t flags)
{
	struct imsg_hdr	 hdr = { type, len, flags, 0, 0 };

	ck_assert_int_eq(write(sp[0], &hdr, sizeof(hdr)), (ssize_t)sizeof(hdr));
}

START_TEST(malformed_oversize_length)
{
	struct imsg	 imsg;

	write_raw_header(IMSG_CTL_END, IMSG_MAX_PAYLOAD + 1, 0);
	ck_assert_int_gt(imsg_read(&rd), 0);
	ck_assert_int_eq(imsg_get(&rd, &imsg), -1);
	ck_assert_int_eq(errno, EBADMSG);
}
END_TEST

START_TEST(malformed_fd_flag_without_fd)
{
	struct imsg	 imsg;

	write_raw_header(IMSG_CTL_END, 0, IMSG_F_HASFD);
	ck_assert_int_gt(imsg_read(&rd), 0);
	ck_assert_int_eq(imsg_get(&rd, &imsg), -1);
	ck_assert_int_eq(errno, EBADMSG);
}
END_TEST

START_TEST(malformed_unknown_flags)
{
	struct imsg	 imsg;

	write_raw_header(IMSG_CTL_END, 0, 0x80);
	ck_assert_int_gt(imsg_read(&rd), 0);
	ck_assert_int_eq(imsg_get(&rd, &imsg), -1);
}
END_TEST

START_TEST(eof_is_zero)
{
	close(sp[0]);
	sp[0] = -1;
	wr.fd = -1;
	ck_assert_int_eq(imsg_read(&rd), 0);
}
END_TEST

START_TEST(marshal_roundtrip)
{
	struct mbuf	 m;
	struct mreader	 r;
	struct imsg	 imsg;
	char		 s[16];

	m_init(&m);
	m_add_u8(&m, 7);
	m_add_u32(&m, 0xdeadbeef);
	m_add_u64(&m, 1ULL << 40);
	m_add_i64(&m, -5);
	m_add_str(&m, "hello");
	m_add_str(&m, NULL);
	ck_assert_int_eq(m.err, 0);
	imsg.data = m.data;
	imsg.hdr.len = (uint32_t)m.len;
	m_reader(&r, &imsg);
	ck_assert_uint_eq(m_get_u8(&r), 7);
	ck_assert_uint_eq(m_get_u32(&r), 0xdeadbeef);
	ck_assert(m_get_u64(&r) == (1ULL << 40));
	ck_assert(m_get_i64(&r) == -5);
	m_get_str(&r, s, sizeof(s));
	ck_assert_str_eq(s, "hello");
	m_get_str(&r, s, sizeof(s));
	ck_assert_str_eq(s, "");
	ck_assert_int_eq(m_end(&r), 0);
	/* Reading past the end latches an error. */
	m_get_u32(&r);
	ck_assert_int_eq(m_end(&r), -1);
	m_free(&m);
}
END_TEST

START_TEST(marshal_rejects_bad_input)
{
	struct mbuf	 m;
	struct mreader	 r;
	char		 s[4];
	uint8_t		 withnul[] = { 3, 0, 0, 0, 'a', 0, 'b' };

	/* A string longer than the destination. */
	m_init(&m);
	m_add_str(&m, "toolong");
	m_reader_buf(&r, m.data, m.len);
	m_get_str(&r, s, sizeof(s));
	ck_assert_int_eq(m_end(&r), -1);
	m_free(&m);
	/* A string with a NUL inside. */
	m_reader_buf(&r, withnul, sizeof(withnul));
	m_get_str(&r, s, sizeof(s));
	ck_assert_int_eq(r.err, 1);
	/* A length prefix larger than what is left. */
	m_init(&m);
	m_add_u32(&m, 1000);
	m_reader_buf(&r, m.data, m.len);
	ck_assert_ptr_null(m_get_strdup(&r, 4096));
	m_free(&m);
	/* Leftover bytes are an error too. */
	m_init(&m);
	m_add_u32(&m, 1);
	m_add_u8(&m, 1);
	m_reader_buf(&r, m.data, m.len);
	m_get_u32(&r);
	ck_assert_int_eq(m_end(&r), -1);
	m_free(&m);
	/* A writer over the payload limit latches. */
	m_init(&m);
	{
		char	*big = calloc(1, IMSG_MAX_PAYLOAD);

		ck_assert_ptr_nonnull(big);
		m_add_data(&m, big, IMSG_MAX_PAYLOAD);
		ck_assert_int_eq(m.err, 0);
		m_add_u8(&m, 1);
		ck_assert_int_eq(m.err, 1);
		free(big);
	}
	m_free(&m);
}
END_TEST

START_TEST(dlv_validation)
{
	struct mbuf	 m;
	struct mreader	 r;
	struct dlv	 in, out;

	memset(&in, 0, sizeof(in));
	in.kind = DLV_MBOX;
	strlcpy(in.action, "local", sizeof(in.action));
	strlcpy(in.user, "bob", sizeof(in.user));
	strlcpy(in.rcpt, "bob@example.org", sizeof(in.rcpt));
	strlcpy(in.orig, "Bob@Example.org", sizeof(in.orig));
	m_init(&m);
	dlv_add(&m, &in);
	m_reader_buf(&r, m.data, m.len);
	dlv_get(&r, &out);
	ck_assert_int_eq(m_end(&r), 0);
	ck_assert_str_eq(out.rcpt, "bob@example.org");
	ck_assert_str_eq(out.orig, "Bob@Example.org");
	m_free(&m);

	in.kind = 99;		/* unknown kind */
	m_init(&m);
	dlv_add(&m, &in);
	m_reader_buf(&r, m.data, m.len);
	dlv_get(&r, &out);
	ck_assert_int_eq(m_end(&r), -1);
	m_free(&m);
}
END_TEST

static struct imsg
fake(uint32_t type, uint32_t len, int fd)
{
	struct imsg	 imsg;

	memset(&imsg, 0, sizeof(imsg));
	imsg.hdr.type = type;
	imsg.hdr.len = len;
	imsg.fd = fd;
	return imsg;
}

START_TEST(proto_table)
{
	struct imsg	 i;

	i = fake(IMSG_QUEUE_CREATE, 0, -1);
	ck_assert_int_eq(proto_check(&i, PROC_SMTP), 0);
	/* Wrong sender: a deliver-worker may not create messages. */
	ck_assert_int_eq(proto_check(&i, PROC_DELIVER), -1);
	/* Unknown types. */
	i = fake(IMSG_TYPE_MAX, 0, -1);
	ck_assert_int_eq(proto_check(&i, PROC_MASTER), -1);
	i = fake(0, 0, -1);
	ck_assert_int_eq(proto_check(&i, PROC_MASTER), -1);
	/* Length bounds. */
	i = fake(IMSG_SHUTDOWN, 4, -1);
	ck_assert_int_eq(proto_check(&i, PROC_MASTER), -1);
	i = fake(IMSG_PEER_CONNECT, 8, 5);
	ck_assert_int_eq(proto_check(&i, PROC_MASTER), 0);
	i = fake(IMSG_PEER_CONNECT, 7, 5);
	ck_assert_int_eq(proto_check(&i, PROC_MASTER), -1);
	/* Fd rules. */
	i = fake(IMSG_PEER_CONNECT, 8, -1);
	ck_assert_int_eq(proto_check(&i, PROC_MASTER), -1);
	i = fake(IMSG_SHUTDOWN, 0, 5);
	ck_assert_int_eq(proto_check(&i, PROC_MASTER), -1);
	/* A control client may ask for the queue, not deliver mail. */
	i = fake(IMSG_CTL_SHOW_QUEUE, 0, -1);
	ck_assert_int_eq(proto_check(&i, PROC_CONTROL), 0);
	i = fake(IMSG_MDA_DELIVER, 40, 5);
	ck_assert_int_eq(proto_check(&i, PROC_CONTROL), -1);
}
END_TEST

/* ---- channel: a peer sending garbage is cut off, never trusted -------- */

static int	 closed_calls, closed_malformed, dispatched;

static void
test_dispatch(struct channel *c, struct imsg *imsg)
{
	dispatched++;
}

static void
test_closed(struct channel *c, int malformed)
{
	closed_calls++;
	closed_malformed = malformed;
	event_base_loopbreak(event_get_base(c->ev));
}

static void
run_channel(const void *bytes, size_t len, enum proc_kind peer)
{
	struct event_base	*base = event_base_new();
	struct channel		*c;
	int			 s[2];
	struct timeval		 tv = { 2, 0 };

	ck_assert_ptr_nonnull(base);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, s), 0);
	closed_calls = closed_malformed = dispatched = 0;
	c = channel_new(base, s[0], peer, 0, test_dispatch, test_closed, NULL);
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(write(s[1], bytes, len), (ssize_t)len);
	event_base_loopexit(base, &tv);
	event_base_dispatch(base);
	channel_free(c);
	close(s[1]);
	event_base_free(base);
}

START_TEST(channel_valid_frame_dispatched)
{
	struct imsg_hdr	 hdr = { IMSG_QUEUE_CREATE, 0, 0, 1, 1 };

	run_channel(&hdr, sizeof(hdr), PROC_SMTP);
	ck_assert_int_eq(dispatched, 1);
	ck_assert_int_eq(closed_calls, 0);
}
END_TEST

START_TEST(channel_forbidden_type_closes)
{
	/* An smtp-worker pretending to be the queue. */
	struct imsg_hdr	 hdr = { IMSG_DELIVER_BATCH, 12, 0, 1, 1 };
	char		 buf[sizeof(hdr) + 12];

	memcpy(buf, &hdr, sizeof(hdr));
	memset(buf + sizeof(hdr), 0, 12);
	run_channel(buf, sizeof(buf), PROC_SMTP);
	ck_assert_int_eq(dispatched, 0);
	ck_assert_int_eq(closed_calls, 1);
	ck_assert_int_eq(closed_malformed, 1);
}
END_TEST

START_TEST(channel_garbage_closes)
{
	uint32_t	 junk[5] = { 0xffffffff, 0xffffffff, 0xffffffff, 0, 0 };

	run_channel(junk, sizeof(junk), PROC_QUEUE);
	ck_assert_int_eq(dispatched, 0);
	ck_assert_int_eq(closed_calls, 1);
	ck_assert_int_eq(closed_malformed, 1);
}
END_TEST

static Suite *
imsg_suite(void)
{
	Suite	*s = suite_create("imsg");
	TCase	*tc = tcase_create("framing");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, roundtrip_several_frames);
	tcase_add_test(tc, partial_reads_byte_by_byte);
	tcase_add_test(tc, largest_payload_and_oversize);
	tcase_add_test(tc, fd_passing);
	tcase_add_test(tc, malformed_oversize_length);
	tcase_add_test(tc, malformed_fd_flag_without_fd);
	tcase_add_test(tc, malformed_unknown_flags);
	tcase_add_test(tc, eof_is_zero);
	suite_add_tcase(s, tc);

	tc = tcase_create("marshal");
	tcase_add_test(tc, marshal_roundtrip);
	tcase_add_test(tc, marshal_rejects_bad_input);
	tcase_add_test(tc, dlv_validation);
	tcase_add_test(tc, proto_table);
	suite_add_tcase(s, tc);

	tc = tcase_create("channel");
	tcase_add_test(tc, channel_valid_frame_dispatched);
	tcase_add_test(tc, channel_forbidden_type_closes);
	tcase_add_test(tc, channel_garbage_closes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(imsg_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
