"""CHUNKING (RFC 3030): BDAT chunks are taken byte for byte.

A chunk is exactly the number of bytes its command announces: no
dot-stuffing, no end marker, and whatever the transaction's state, the
bytes of a chunk are never read as commands.
"""

import os
import re

from mtadtest import (QUEUED_RX, SMTPClient, SharedDaemonCase, free_port,
                      make_message, new_msgid, reply_text, smtp_send,
                      wait_for)

MAX_SIZE = 10 * 1024
SENDER = "sender@client.test"
RCPT = "mtadtest1@mx.test"
OCTETS_RX = re.compile(r"^2\.0\.0 \d+ octets received$")


def bdat(size, last=False):
    return b"BDAT %d%s\r\n" % (size, b" LAST" if last else b"")


def message(subject, msgid, body):
    """make_message with a body of any bytes (bare ends included)."""
    return make_message(subject, msgid, body="") + body


def chunks_of(data, cuts):
    """BDAT commands with their bytes, data cut at the given offsets; the
    last chunk carries LAST."""
    bounds = [0] + list(cuts) + [len(data)]
    out = b""
    for k in range(len(bounds) - 1):
        part = data[bounds[k]:bounds[k + 1]]
        out += bdat(len(part), k == len(bounds) - 2) + part
    return out


class Chunking(SharedDaemonCase):
    """A strict listener (the default) and a `normalize` one."""

    @classmethod
    def setUpClass(cls):
        cls.norm_port = free_port()
        cls.EXTRA = ("limit message-size 10K\n"
                     "listen on 127.0.0.1 port %d normalize\n" % cls.norm_port)
        super().setUpClass()

    # -- helpers --

    def client(self, port=None, ehlo=True):
        c = SMTPClient(port or self.mtad.port)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        if ehlo:
            self.assertReply(c.cmd("EHLO client.test"), 250)
        return c

    def start_tx(self, c, rcpt=RCPT):
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250)

    def chunk(self, c, data, last=False):
        c.send(bdat(len(data), last) + data)
        return c.read_reply()

    def assert_octets(self, r):
        self.assertReply(r, 250, "2.0.0")
        self.assertRegex(r[1][-1], OCTETS_RX)

    def assert_queued(self, r):
        self.assertReply(r, 250, "2.0.0")
        m = QUEUED_RX.match(r[1][-1])
        self.assertTrue(m, "no queue id: " + reply_text(r))
        return m.group(1)

    def pause(self):
        """Delivery paused: the queue file can be read as it was stored."""
        self.assertEqual(self.mtad.ctl("pause", "delivery").returncode, 0)
        self.addCleanup(self.mtad.ctl, "resume", "delivery")

    def resume(self):
        self.assertEqual(self.mtad.ctl("resume", "delivery").returncode, 0)

    def stored(self, qid):
        with open(os.path.join(self.mtad.queue, "queue", qid), "rb") as f:
            return f.read()

    def assert_stored(self, qid, data):
        """The queue file is the Received: header, then data exactly."""
        got = self.stored(qid)
        self.assertTrue(got.startswith(b"Received: "), got[:80])
        self.assertTrue(got.endswith(data), "stored %r, want it to end "
                        "with %r" % (got, data))
        head = got[:len(got) - len(data)]
        self.assertTrue(head.endswith(b"\r\n"), head)
        self.assertEqual(head.count(b"\r\n\t"), head.count(b"\r\n") - 1,
                         "more than the Received: header before the data: "
                         "%r" % head)

    def assert_not_delivered(self, msgid, user="mtadtest1"):
        marker = new_msgid("marker")
        smtp_send(self.mtad.port, SENDER, ["%s@mx.test" % user],
                  make_message("marker", marker))
        self.mtad.wait_message(user, marker)
        self.mtad.wait_queue_empty()
        self.assertFalse([m for m in self.mtad.mbox(user)
                          if m.message_id == msgid],
                         "%s was delivered" % msgid)

    def tricky_message(self, msgid):
        """Would be cut short or changed by DATA's rules."""
        return message("chunks", msgid, (
            b"line one\r\n"
            b".\r\n"
            b"..two dots\r\n"
            b".one dot\r\n"
            b"\r\n.\r\n"
            b"last line\r\n"))

    # -- tests --

    def test_ehlo_advertises_chunking(self):
        c = self.client(ehlo=False)
        code, lines = c.cmd("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertIn("CHUNKING", [l.upper() for l in lines[1:]])

    def test_chunks_byte_exact(self):
        self.pause()
        msgid = new_msgid("exact")
        data = self.tricky_message(msgid)
        c = self.client()
        self.start_tx(c)
        cuts = (10, len(data) // 2, len(data) - 3)
        parts = [data[a:b] for a, b in zip((0,) + cuts, cuts + (len(data),))]
        for p in parts[:-1]:
            self.assert_octets(self.chunk(c, p))
        qid = self.assert_queued(self.chunk(c, parts[-1], last=True))
        self.assert_stored(qid, data)
        self.resume()
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.assertEqual(m.body(), b"line one\n.\n..two dots\n.one dot\n"
                         b"\n.\nlast line\n")
        self.assertReply(c.cmd("QUIT"), 221)

    def test_bdat_zero_last(self):
        self.pause()
        # after a chunk: the usual way to end when the size was unknown
        msgid = new_msgid("zero")
        data = make_message("zero last", msgid)
        c = self.client()
        self.start_tx(c)
        self.assert_octets(self.chunk(c, data))
        qid = self.assert_queued(self.chunk(c, b"", last=True))
        self.assert_stored(qid, data)
        # alone: an empty message, still a message
        self.start_tx(c)
        qid = self.assert_queued(self.chunk(c, b"", last=True))
        got = self.stored(qid)
        self.assertTrue(got.startswith(b"Received: ") and
                        got.endswith(b"\r\n"), got)
        self.assertNotIn(b"\r\n\r\n", got)
        self.resume()
        self.mtad.wait_message("mtadtest1", msgid)
        self.mtad.wait_queue_empty()

    def test_pipelined_chunks(self):
        self.pause()
        msgid = new_msgid("pipe")
        data = self.tricky_message(msgid)
        c = self.client()
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\n" % (SENDER.encode(),
                                                       RCPT.encode()) +
               chunks_of(data, (5, 40, 41, len(data) - 1)) + b"NOOP\r\n")
        self.assertReply(c.read_reply(), 250, "2.1.0")
        self.assertReply(c.read_reply(), 250, "2.1.5")
        for _ in range(4):
            self.assert_octets(c.read_reply())
        qid = self.assert_queued(c.read_reply())
        self.assertReply(c.read_reply(), 250, "2.0.0")     # the NOOP
        self.assert_stored(qid, data)
        self.resume()
        self.mtad.wait_message("mtadtest1", msgid)

    def test_crlf_across_chunks(self):
        """CR at the end of a chunk, LF at the start of the next: a line
        end, not a bare CR and a bare LF."""
        self.pause()
        msgid = new_msgid("crlf")
        data = message("split crlf", msgid, b"one\r\ntwo\r\n")
        cut = data.index(b"one\r\n") + 4
        c = self.client()
        self.start_tx(c)
        self.assertEqual(data[cut - 1:cut + 1], b"\r\n")
        self.assert_octets(self.chunk(c, data[:cut]))
        qid = self.assert_queued(self.chunk(c, data[cut:], last=True))
        self.assert_stored(qid, data)
        self.resume()
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.assertEqual(m.body(), b"one\ntwo\n")

    def test_bare_lf_refused(self):
        for body in (b"bare\nlf\r\n", b"bare\rcr\r\n", b"ends in cr\r"):
            with self.subTest(body=body):
                msgid = new_msgid("bare")
                data = message("bare", msgid, body)
                c = self.client()
                self.start_tx(c)
                # the verdict waits for LAST: the first chunk is fine
                self.assert_octets(self.chunk(c, data[:20]))
                self.assertReply(self.chunk(c, data[20:], last=True),
                                 550, "5.6.0")
                self.assertReply(c.cmd("NOOP"), 250)
                self.assert_not_delivered(msgid)

    def test_bare_lf_normalized(self):
        self.pause()
        msgid = new_msgid("norm")
        data = message("normalized", msgid, b"bare\nlf\rcr\r\r\n.\nend\r")
        c = self.client(self.norm_port)
        self.start_tx(c)
        cut = data.index(b"lf\r") + 3       # the chunk ends in a bare CR
        self.assert_octets(self.chunk(c, data[:cut]))
        qid = self.assert_queued(self.chunk(c, data[cut:], last=True))
        want = data.replace(b"bare\nlf\rcr\r\r\n.\nend\r",
                            b"bare\r\nlf\r\ncr\r\n\r\n.\r\nend\r\n")
        self.assert_stored(qid, want)
        self.resume()
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.assertEqual(m.body(), b"bare\nlf\ncr\n\n.\nend\n")

    def test_bdat_without_transaction(self):
        """503, and the chunk is read and dropped, not run as commands."""
        c = self.client(ehlo=False)
        c.send(bdat(6) + b"NOOP\r\n" + b"HELP\r\n")
        self.assertReply(c.read_reply(), 503, "5.5.1")
        self.assertEqual(c.read_reply()[0], 214, "the chunk was run")
        self.assertReply(c.cmd("EHLO client.test"), 250)
        for setup in ((), ("MAIL FROM:<%s>" % SENDER,)):
            with self.subTest(setup=setup):
                for line in setup:
                    self.assertReply(c.cmd(line), 250)
                c.send(bdat(6, last=True) + b"NOOP\r\n" + b"HELP\r\n")
                self.assertReply(c.read_reply(), 503, "5.5.1")
                self.assertEqual(c.read_reply()[0], 214, "the chunk was run")
        # the failed BDAT ended the transaction
        self.assertReply(c.cmd("RCPT TO:<%s>" % RCPT), 503, "5.5.1")

    def test_data_after_bdat(self):
        c = self.client()
        self.start_tx(c)
        self.assert_octets(self.chunk(c, b"Subject: x\r\n"))
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("NOOP"), 250)

    def test_bad_size(self):
        c = self.client()
        self.start_tx(c)
        for line in ("BDAT", "BDAT x", "BDAT -1", "BDAT 1 LAST extra",
                     "BDAT 1 FIRST", "BDAT 1x", "BDAT 99999999999999999999"):
            with self.subTest(line=line):
                r = c.cmd(line)
                self.assertReply(r, 501)
                self.assertReply(c.cmd("NOOP"), 250)

    def test_over_size_limit(self):
        msgid = new_msgid("big")
        body = b"x" * 70 + b"\r\n"
        data = message("too big", msgid,
                       body * (MAX_SIZE // len(body) + 10))
        self.assertGreater(len(data), MAX_SIZE)
        c = self.client()
        self.start_tx(c)
        third = len(data) // 3
        c.send(chunks_of(data, (third, 2 * third)) + b"NOOP\r\n")
        for _ in range(2):
            r = c.read_reply()
            self.assertIn(r[0], (250, 552), reply_text(r))
        self.assertReply(c.read_reply(), 552, "5.3.4")
        # in sync: the next reply is the NOOP's, and mail goes on
        self.assertReply(c.read_reply(), 250, "2.0.0")
        self.assertReply(c.cmd("RCPT TO:<%s>" % RCPT), 503, "5.5.1")
        self.assert_not_delivered(msgid)

    def test_rset_drops_chunks(self):
        self.pause()
        c = self.client()
        self.start_tx(c)
        self.assert_octets(self.chunk(c, b"X-Dropped: yes\r\n"))
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(self.chunk(c, b"x\r\n", last=True), 503, "5.5.1")
        msgid = new_msgid("after-rset")
        data = make_message("after rset", msgid)
        self.start_tx(c)
        qid = self.assert_queued(self.chunk(c, data, last=True))
        self.assert_stored(qid, data)
        self.assertNotIn(b"X-Dropped", self.stored(qid))
        self.resume()
        self.mtad.wait_message("mtadtest1", msgid)
        # the dropped chunk's file did not stay behind
        incoming = os.path.join(self.mtad.queue, "incoming")
        wait_for(lambda: not os.listdir(incoming), timeout=5,
                 what="incoming/ emptied after RSET")
