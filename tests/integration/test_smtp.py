"""3. The SMTP dialogue, over raw sockets where the bytes matter."""

import os

import mtadtest
from mtadtest import (HOSTNAME, SMTPClient, SharedDaemonCase, make_message,
                      new_msgid, reply_text)

MAX_SIZE = 10 * 1024
SENDER = "sender@client.test"


class Dialogue(SharedDaemonCase):
    EXTRA = "limit message-size 10K\n"

    def client(self, ehlo=True):
        c = SMTPClient(self.mtad.port)
        self.addCleanup(c.close)
        r = c.greeting()
        self.assertReply(r, 220)
        if ehlo:
            self.assertReply(c.cmd("EHLO client.test"), 250)
        return c

    def start_data(self, c, rcpt="mtadtest1@mx.test"):
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250)
        self.assertReply(c.cmd("DATA"), 354)

    def marker(self, c, user="mtadtest2"):
        """Sends a good message on c and waits for its delivery: whatever
        was refused before it on the session had its chance to show up."""
        msgid = new_msgid("marker")
        self.start_data(c, "%s@mx.test" % user)
        c.send(make_message("marker", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        self.mtad.wait_message(user, msgid)

    # -- greeting, EHLO, simple commands --

    def test_greeting(self):
        c = SMTPClient(self.mtad.port)
        self.addCleanup(c.close)
        code, lines = c.greeting()
        self.assertEqual((code, lines), (220, ["%s ESMTP mtad" % HOSTNAME]))

    def test_ehlo_extensions(self):
        c = self.client(ehlo=False)
        code, lines = c.cmd("EHLO client.test")
        self.assertEqual(code, 250)
        self.assertTrue(lines[0].startswith(HOSTNAME), lines)
        ext = [l.upper() for l in lines[1:]]
        for e in ("PIPELINING", "SIZE %d" % MAX_SIZE, "8BITMIME",
                  "ENHANCEDSTATUSCODES", "HELP"):
            self.assertIn(e, ext, "EHLO lacks %s: %s" % (e, lines))

    def test_helo(self):
        c = self.client(ehlo=False)
        code, lines = c.cmd("HELO client.test")
        self.assertEqual(code, 250, lines)
        self.assertEqual(len(lines), 1, "HELO must not list extensions")

    def test_noop_rset_vrfy_help_quit(self):
        c = self.client()
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("VRFY mtadtest1"), 252)
        code, lines = c.cmd("HELP")
        self.assertEqual(code, 214, lines)
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.assertTrue(c.closed(), "not disconnected after QUIT")

    def test_commands_case_insensitive(self):
        c = self.client(ehlo=False)
        self.assertReply(c.cmd("ehlo client.test"), 250)
        self.assertReply(c.cmd("mail from:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("rcpt to:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("rset"), 250)

    # -- sequence errors --

    def test_mail_before_helo(self):
        c = self.client(ehlo=False)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 503, "5.5.1")

    def test_rcpt_before_mail(self):
        c = self.client()
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 503, "5.5.1")

    def test_data_before_rcpt(self):
        c = self.client()
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")

    def test_nested_mail(self):
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 503)

    def test_rset_clears_transaction(self):
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 503, "5.5.1")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)

    # -- syntax errors --

    def test_bad_mail_syntax(self):
        c = self.client()
        for line, status in (("MAIL FROM:", "5.5.4"),
                             ("MAIL FROM:<a@b.test", "5.5.4"),
                             ("MAIL TO:<a@b.test>", "5.5.4"),
                             ("MAIL FROM:<a@@b.test>", "5.1.7"),
                             ("MAIL FROM:<a b@c.test>", "5.1.7")):
            with self.subTest(line=line):
                r = c.cmd(line)
                self.assertEqual(r[0], 501, "%s -> %s" % (line, reply_text(r)))
                self.assertTrue(r[1][-1].startswith(status),
                                "%s -> %s, expected %s" %
                                (line, reply_text(r), status))
        # still usable afterwards
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)

    def test_null_sender_accepted(self):
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<>"), 250)

    def test_unknown_command(self):
        c = self.client()
        self.assertReply(c.cmd("FROBNICATE now"), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_line_of_4096_bytes_is_accepted(self):
        """4096 bytes including CRLF is the limit, not over it."""
        c = self.client()
        line = "NOOP " + "x" * (4096 - 2 - 5)
        self.assertEqual(len(line) + 2, 4096)
        self.assertReply(c.cmd(line), 250)
        self.assertReply(c.cmd("NOOP"), 250)

    def test_line_too_long(self):
        c = self.client()
        r = c.cmd("NOOP " + "x" * 5000)
        self.assertReply(r, 500, "5.5.2")
        self.assertTrue(c.closed(), "not disconnected after a long line")

    def test_endless_line_without_crlf(self):
        """A client that never sends CRLF cannot make the server buffer
        without bound: refused and disconnected."""
        c = self.client()
        c.send("NOOP " + "x" * 20000)
        r = c.read_reply()
        self.assertReply(r, 500, "5.5.2")
        self.assertTrue(c.closed())

    def test_too_many_errors(self):
        c = self.client()
        for i in range(10):
            r = c.cmd("BOGUS%d" % i)
            self.assertEqual(r[0], 500, "bad command %d: %s" %
                             (i + 1, reply_text(r)))
        r = c.read_reply(timeout=5)
        self.assertReply(r, 421, "4.7.0")
        self.assertTrue(c.closed(), "not disconnected after 421")

    # -- size --

    def test_mail_size_over_limit(self):
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER,
                                                           MAX_SIZE + 1)),
                         552, "5.3.4")
        self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, 1000)),
                         250)

    def test_data_over_limit(self):
        c = self.client()
        self.start_data(c, "mtadtest2@mx.test")
        msgid = new_msgid("big")
        body = ("x" * 70 + "\r\n") * (MAX_SIZE // 72 + 10)
        c.send(make_message("too big", msgid, body=body) + b".\r\n")
        self.assertReply(c.read_reply(), 552, "5.3.4")
        # the session goes on, and the big one is never delivered
        self.assertReply(c.cmd("RSET"), 250)
        self.marker(c, "mtadtest2")
        self.assertFalse([m for m in self.mtad.mbox("mtadtest2")
                          if m.message_id == msgid])

    def test_data_just_under_limit(self):
        c = self.client()
        self.start_data(c, "mtadtest2@mx.test")
        msgid = new_msgid("fits")
        body = ("y" * 70 + "\r\n") * ((MAX_SIZE - 400) // 72)
        msg = make_message("fits", msgid, body=body)
        self.assertLess(len(msg), MAX_SIZE)
        c.send(msg + b".\r\n")
        self.assertReply(c.read_reply(), 250, "2.0.0")
        self.mtad.wait_message("mtadtest2", msgid)

    # -- the data itself --

    def bad_data(self, raw):
        c = self.client()
        self.start_data(c, "mtadtest2@mx.test")
        msgid = new_msgid("bare")
        c.send(b"Message-Id: " + msgid.encode() +
               b"\r\nSubject: bare\r\n\r\n" + raw + b"\r\n.\r\n")
        r = c.read_reply()
        self.assertReply(r, 550, "5.6.0")
        self.assertReply(c.cmd("RSET"), 250)
        self.marker(c, "mtadtest2")
        self.assertFalse([m for m in self.mtad.mbox("mtadtest2")
                          if m.message_id == msgid],
                         "a refused message was delivered")

    def test_bare_lf_refused(self):
        self.bad_data(b"line one\nline two")

    def test_bare_cr_refused(self):
        self.bad_data(b"line one\rline two")

    def test_dot_unstuffing(self):
        c = self.client()
        self.start_data(c, "mtadtest1@mx.test")
        msgid = new_msgid("dots")
        c.send(b"Message-Id: " + msgid.encode() + b"\r\nSubject: dots\r\n\r\n"
               b"..leading dot\r\n"
               b"..\r\n"
               b"...\r\n"
               b".x\r\n"
               b"middle . dot\r\n"
               b"..\r\n"
               b".\r\n")
        r = c.read_reply()
        self.assertReply(r, 250, "2.0.0")
        self.assertRegex(r[1][-1], r"^2\.0\.0 Ok: queued as [0-9a-f]{16}$")
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.assertEqual(m.body(), b".leading dot\n.\n..\nx\nmiddle . dot\n"
                         b".\n")

    def test_disconnect_in_data_leaves_no_file(self):
        """A client gone in the middle of DATA: nothing delivered, and the
        partial file does not stay in incoming/."""
        incoming = os.path.join(self.mtad.queue, "incoming")
        c = self.client()
        self.start_data(c, "mtadtest2@mx.test")
        msgid = new_msgid("gone")
        c.send(b"Message-Id: " + msgid.encode() + b"\r\nSubject: gone\r\n"
               b"\r\nhalf a mess")
        mtadtest.wait_for(lambda: os.listdir(incoming), timeout=5,
                          what="the data file in incoming/")
        c.close()
        mtadtest.wait_for(lambda: not os.listdir(incoming), timeout=5,
                          what="incoming/ emptied after the disconnect")
        c2 = self.client()
        self.marker(c2, "mtadtest2")
        self.assertFalse([m for m in self.mtad.mbox("mtadtest2")
                          if m.message_id == msgid])

    def test_pipelined_transactions(self):
        """Two whole transactions in one write: every reply, in order."""
        c = self.client()
        ids = [new_msgid("pipe1"), new_msgid("pipe2")]
        batch = b""
        for i in ids:
            batch += (b"MAIL FROM:<%s>\r\nRCPT TO:<mtadtest1@mx.test>\r\n"
                      b"DATA\r\n" % SENDER.encode())
            batch += make_message("pipelined", i) + b".\r\n"
        batch += b"QUIT\r\n"
        c.send(batch)
        codes = [c.read_reply()[0] for _ in range(9)]
        self.assertEqual(codes, [250, 250, 354, 250] * 2 + [221])
        for i in ids:
            self.mtad.wait_message("mtadtest1", i)

    def test_eight_bit_data(self):
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<%s> BODY=8BITMIME" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        msgid = new_msgid("8bit")
        body = "Gr\u00fc\u00dfe, \u00e7a va ? \u65e5\u672c\r\n".encode()
        c.send(b"Message-Id: " + msgid.encode() + b"\r\nSubject: 8bit\r\n\r\n"
               + body + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.assertEqual(m.body(), body.replace(b"\r\n", b"\n"))

    def test_rcpt_limit_not_hit_by_normal_mail(self):
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        for i in range(5):
            self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)


class RecipientLimit(SharedDaemonCase):
    EXTRA = "limit recipients 3\n"

    def test_limit_recipients(self):
        c = SMTPClient(self.mtad.port)
        self.addCleanup(c.close)
        c.greeting()
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        for i in range(3):
            self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        r = c.cmd("RCPT TO:<mtadtest2@mx.test>")
        self.assertEqual(r[0] // 100, 4, "4th recipient: " + reply_text(r))
