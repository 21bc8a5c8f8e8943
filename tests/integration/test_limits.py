"""The `limit` statements of the SMTP server: each one triggered, with its
exact reply, and the connection closed where the limit says so."""

import os
import signal
import socket
import time

import mtadtest
from mtadtest import (HOSTNAME, MtadTestCase, SMTPClient, SharedDaemonCase,
                      loopback_addr, make_message, new_msgid, reply_text)
import tlstest

SENDER = "sender@client.test"
RULES = """\
action "local" mbox "{mail}/%u"
match from any for local action "local"
"""


class LimitCase(MtadTestCase):

    def client(self, port, source=None, greet=True):
        c = SMTPClient(port, source=source or "127.0.0.1")
        self.addCleanup(c.close)
        if greet:
            self.assertReply(c.greeting(), 220)
        return c

    def assert_refused(self, c, text):
        """The client gets exactly `text` first, then the connection is
        closed."""
        r = c.read_reply()
        self.assertEqual(reply_text(r), text)
        self.assertTrue(c.closed(), "not disconnected after " + text)

    def wait_idle(self, d):
        """Until no session is open (the readiness probe of start())."""
        mtadtest.wait_for(lambda: tlstest.stat(
            d, "smtp.connections.active") == 0, what="no active session")


class Dialogue(SharedDaemonCase, LimitCase):
    RULES = RULES
    EXTRA = ("limit errors 3\n"
             "limit line-length 512\n"
             "limit timeout 3s\n"
             "limit data-timeout 1s\n"
             "limit recipients 3\n"
             "limit message-size 10K\n")

    def session(self):
        c = self.client(self.mtad.port)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        return c

    def test_errors(self):
        before = tlstest.stat(self.mtad, "smtp.dialog.error.too_many_errors")
        c = self.session()
        for i in range(3):
            self.assertReply(c.cmd("FROBNICATE %d" % i), 500, "5.5.2")
        # the 421 follows the third error at once, or answers the next line
        try:
            r = c.read_reply(timeout=1)
        except socket.timeout:
            r = c.cmd("NOOP")
        self.assertEqual(reply_text(r),
                         "421 4.7.0 %s Error: too many errors" % HOSTNAME)
        self.assertTrue(c.closed())
        tlstest.wait_stat(self.mtad, "smtp.dialog.error.too_many_errors",
                          lambda v: v == before + 1)

    def test_line_length(self):
        before = tlstest.stat(self.mtad, "smtp.dialog.error.line_too_long")
        c = self.session()
        line = "NOOP " + "x" * (512 - 2 - 5)
        self.assertEqual(len(line) + 2, 512)
        self.assertReply(c.cmd(line), 250)
        r = c.cmd(line + "x")
        self.assertEqual(reply_text(r), "500 5.5.2 Error: line too long")
        self.assertTrue(c.closed(), "not disconnected after a long line")
        tlstest.wait_stat(self.mtad, "smtp.dialog.error.line_too_long",
                          lambda v: v == before + 1)

    def test_timeout(self):
        before = tlstest.stat(self.mtad, "smtp.dialog.error.timeout")
        c = self.session()
        t0 = time.monotonic()
        r = c.read_reply(timeout=10)
        dt = time.monotonic() - t0
        self.assertEqual(reply_text(r), "421 4.4.2 %s Error: timeout "
                         "exceeded" % HOSTNAME)
        self.assertTrue(2.5 <= dt <= 6, "timeout after %.1fs, not 3s" % dt)
        self.assertTrue(c.closed())
        tlstest.wait_stat(self.mtad, "smtp.dialog.error.timeout",
                          lambda v: v >= before + 1)

    def test_data_timeout(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: slow\r\n\r\nhalf a message")
        t0 = time.monotonic()
        r = c.read_reply(timeout=10)
        dt = time.monotonic() - t0
        self.assertEqual(reply_text(r), "421 4.4.2 %s Error: timeout "
                         "exceeded" % HOSTNAME)
        # the data timeout (1s), well before the command timeout (3s)
        self.assertTrue(0.7 <= dt <= 2.5, "data timeout after %.1fs" % dt)
        self.assertTrue(c.closed())

    def test_data_timeout_restarts_on_each_read(self):
        """A slow but steady client is not cut off."""
        c = self.session()
        msgid = new_msgid("steady")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest2@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        msg = make_message("steady", msgid, body="a\r\nb\r\nc\r\nd\r\n")
        for k in range(4):
            c.send(msg[k * len(msg) // 4:(k + 1) * len(msg) // 4])
            time.sleep(0.6)
        c.send(b".\r\n")
        self.assertReply(c.read_reply(), 250, "2.0.0")
        self.mtad.wait_message("mtadtest2", msgid)

    def test_recipients(self):
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        for u in ("mtadtest1", "mtadtest2", "mtadtest3"):
            self.assertReply(c.cmd("RCPT TO:<%s@mx.test>" % u), 250)
        r = c.cmd("RCPT TO:<mtadtest1@mx.test>")
        self.assertEqual(reply_text(r), "452 4.5.3 Too many recipients")
        msgid = new_msgid("rcpts")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("rcpts", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        for u in ("mtadtest1", "mtadtest2", "mtadtest3"):
            self.assertEqual(len(self.mtad.wait_message(u, msgid)), 1, u)

    def test_size_announced(self):
        c = self.client(self.mtad.port)
        r = c.cmd("EHLO client.test")
        self.assertIn("SIZE 10240", tlstest.ehlo_keywords(r))

    def test_size_parameter(self):
        c = self.session()
        r = c.cmd("MAIL FROM:<%s> SIZE=10241" % SENDER)
        self.assertReply(r, 552, "5.3.4")
        self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=10240" % SENDER), 250)

    def test_message_size(self):
        before = tlstest.stat(self.mtad, "smtp.message.refused")
        c = self.session()
        msgid = new_msgid("big")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest3@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        body = ("x" * 78 + "\r\n") * 140       # 11200 bytes
        c.send(make_message("big", msgid, body=body) + b".\r\n")
        self.assertReply(c.read_reply(), 552, "5.3.4")
        # the session goes on; the big one is not delivered
        small = new_msgid("small")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest3@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("small", small) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        self.mtad.wait_message("mtadtest3", small)
        self.assertFalse([m for m in self.mtad.mbox("mtadtest3")
                          if m.message_id == msgid])
        self.assertGreater(tlstest.stat(self.mtad, "smtp.message.refused"),
                           before)


class Sessions(LimitCase):
    """One smtp-worker with room for two sessions."""

    def test_sessions_per_worker(self):
        d = self.daemon(name="sessions", rules=RULES,
                        extra="workers smtp 1\nlimit sessions 2\n")
        self.wait_idle(d)
        before = tlstest.stat(d, "smtp.accept.error.sessions")
        a = self.client(d.port)
        self.client(d.port)
        c = self.client(d.port, greet=False)
        self.assert_refused(c, "421 4.7.0 Too many sessions, try again "
                            "later")
        self.assertEqual(tlstest.stat(d, "smtp.accept.error.sessions"),
                         before + 1)
        # a place freed is a place taken
        self.assertReply(a.cmd("QUIT"), 221)
        self.assertTrue(a.closed())
        mtadtest.wait_for(lambda: tlstest.stat(
            d, "smtp.connections.active") <= 1, what="one session left")
        e = self.client(d.port)
        self.assertReply(e.cmd("EHLO client.test"), 250)


class Connections(LimitCase):
    """Three connections in all, two per address (counted by policy)."""

    def test_connections_and_per_ip(self):
        d = self.daemon(name="connections", rules=RULES,
                        extra="limit connections 3\n"
                              "limit connections-per-ip 2\n")
        self.wait_idle(d)
        mtadtest.wait_for(lambda: tlstest.stat(d, "policy.connections") == 0,
                          what="policy to count no connection")
        ip_a, ip_b, ip_c = (loopback_addr() for _ in range(3))
        a1 = self.client(d.port, ip_a)
        self.client(d.port, ip_a)
        c = self.client(d.port, ip_a, greet=False)
        self.assert_refused(c, "421 4.7.0 %s Error: too many connections "
                            "from your address" % HOSTNAME)
        self.client(d.port, ip_b)
        c = self.client(d.port, ip_c, greet=False)
        self.assert_refused(c, "421 4.7.0 %s Error: too many connections"
                            % HOSTNAME)
        self.assertGreaterEqual(tlstest.stat(d, "policy.connect.refused"), 2)
        self.assertGreaterEqual(tlstest.stat(d, "smtp.connections.refused"),
                                2)
        # one goes away: there is room again
        self.assertReply(a1.cmd("QUIT"), 221)
        self.assertTrue(a1.closed())
        mtadtest.wait_for(lambda: tlstest.stat(d, "policy.connections") <= 2,
                          what="policy to count the close")
        self.client(d.port, ip_c)


class ConnectionRate(LimitCase):

    def test_connection_rate(self):
        d = self.daemon(name="rate", rules=RULES,
                        extra="limit connection-rate 3\n")
        ip, other = loopback_addr(), loopback_addr()
        for _ in range(3):
            c = self.client(d.port, ip)
            self.assertReply(c.cmd("QUIT"), 221)
            c.close()
        c = self.client(d.port, ip, greet=False)
        self.assert_refused(c, "421 4.7.0 %s Error: connection rate limit "
                            "exceeded" % HOSTNAME)
        c = self.client(d.port, other)
        self.assertReply(c.cmd("EHLO client.test"), 250)


class GreetingDelay(LimitCase):

    def test_early_talker(self):
        d = self.daemon(name="greetdelay", rules=RULES,
                        extra="limit greeting-delay 1s\n")
        before = tlstest.stat(d, "smtp.dialog.error.early_talker")
        mark = d.log_mark()
        c = self.client(d.port, greet=False)
        c.send(b"EHLO client.test\r\n")
        self.assert_refused(c, "554 5.5.1 %s Error: talking before the "
                            "greeting is not allowed" % HOSTNAME)
        d.wait_log(r"127\.0\.0\.1 talked before the greeting", since=mark)
        self.assertEqual(tlstest.stat(d, "smtp.dialog.error.early_talker"),
                         before + 1)
        # a client that waits is greeted after the delay
        t0 = time.monotonic()
        c = self.client(d.port, greet=False)
        self.assertReply(c.greeting(), 220)
        self.assertGreaterEqual(time.monotonic() - t0, 0.9)
        self.assertReply(c.cmd("EHLO client.test"), 250)

    def test_early_talker_without_delay(self):
        """Delay 0: bytes there before the greeting went out still make an
        early talker.  The only smtp-worker is stopped while the client
        connects and talks, so its EHLO is waiting when it is accepted."""
        d = self.daemon(name="greet0", rules=RULES, extra="workers smtp 1\n")
        self.wait_idle(d)
        [worker] = d.pids_with_title("mtad: smtp-worker #0")
        os.kill(worker, signal.SIGSTOP)
        try:
            c = self.client(d.port, greet=False)
            c.send(b"EHLO client.test\r\n")
            time.sleep(0.2)
        finally:
            os.kill(worker, signal.SIGCONT)
        self.assert_refused(c, "554 5.5.1 %s Error: talking before the "
                            "greeting is not allowed" % HOSTNAME)
        self.assertNotIn(b"250", c.buf)
