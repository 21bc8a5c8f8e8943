"""The counters of the SMTP server and policy in `mtactl show stats`: each
one moved by what it counts, by exactly that much."""

import os
import re
import signal
import time

import mtadtest
from mtadtest import (HOSTNAME, SharedDaemonCase, loopback_addr,
                      make_message, new_msgid, reply_text)
import tlstest
from tlstest import TLSClient, creds_table, crypt_hash, listen, pki, ports

SENDER = "sender@client.test"
RULES = """\
action "local" mbox "{mail}/%u"
match from any for local action "local"
"""
# What issue #3 asks `show stats` for (smtp.accept.error.* stands for
# smtp.accept.error.sessions, the one a test can provoke).
REQUIRED = (
    "smtp.connections", "smtp.connections.active", "smtp.connections.refused",
    "smtp.accept.error.sessions",
    "smtp.dialog.error.timeout", "smtp.dialog.error.line_too_long",
    "smtp.dialog.error.too_many_errors", "smtp.dialog.error.early_talker",
    "smtp.dialog.error.starttls_injection", "smtp.dialog.error.proxy",
    "smtp.bytes.in", "smtp.bytes.out", "smtp.tls.handshakes",
    "smtp.tls.failed", "smtp.auth.success", "smtp.auth.failure",
    "smtp.message.accepted", "smtp.message.refused", "smtp.rcpt.accepted",
    "smtp.reply.4xx", "smtp.reply.5xx", "policy.connect.refused",
    "policy.auth.blocked", "policy.rcpt.refused")


class Counters(SharedDaemonCase):
    """One smtp-worker: a stopped worker makes an early talker at will."""

    RULES = RULES

    @classmethod
    def setUpClass(cls):
        mtadtest.suite_setup()
        cls.pki = pki()
        cls.tls_port, cls.proxy_port = ports(2)
        cls.EXTRA = (cls.pki.config() +
                     creds_table("creds", {"alice": crypt_hash("pw-a",
                                                               "$6$")}) +
                     "workers smtp 1\n"
                     "limit sessions 6\n"
                     "limit connections-per-ip 3\n"
                     "limit auth-failures 1\n"
                     "limit errors 2\n"
                     "limit line-length 512\n"
                     "limit recipients 2\n"
                     "limit message-size 5K\n"
                     "limit timeout 2s\n" +
                     listen(cls.tls_port, "tls", "auth-optional <creds>") +
                     listen(cls.proxy_port, "proxy-protocol"))
        super().setUpClass()

    def setUp(self):
        super().setUp()
        self.clients = []
        # sessions of earlier tests are gone before anything is counted
        self.idle()

    # -- helpers --

    def idle(self):
        mtadtest.wait_for(lambda: tlstest.stat(
            self.mtad, "smtp.connections.active") == 0,
            what="no session open")

    def client(self, port=None, source=None, greet=True):
        c = TLSClient(port or self.mtad.port, source=source or
                      loopback_addr())
        self.addCleanup(c.close)
        self.clients.append(c)
        if greet:
            self.assertReply(c.greeting(), 220)
        return c

    def snapshot(self):
        return self.mtad.stats()

    def close_all(self):
        """No session left to time out later and move the counters."""
        for c in self.clients:
            c.close()
        self.idle()

    def assert_deltas(self, before, want, exact=True):
        """want: {counter: delta}; waits for the counters to get there."""
        got = {}

        def reached():
            now = self.snapshot()
            got.clear()
            got.update({k: now.get(k, 0) - before.get(k, 0) for k in want})
            return got == want if exact else all(
                got[k] >= v for k, v in want.items())
        try:
            mtadtest.wait_for(reached, what="counters")
        except mtadtest.Timeout:
            self.assertEqual(got, want, "counter deltas")

    # -- tests --

    def test_text_and_json_agree(self):
        r = self.mtad.ctl("show", "stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        text = dict(re.match(r"^([a-z0-9_.]+)=(\d+)$", l).groups()
                    for l in r.stdout.splitlines())
        js = self.mtad.stats()
        self.assertEqual(sorted(text), sorted(js))

    def test_bytes_exact(self):
        before = self.snapshot()
        c = self.client(greet=False)
        sent = b"EHLO client.test\r\nNOOP\r\nHELP\r\nQUIT\r\n"
        self.assertReply(c.greeting(), 220)
        c.send(sent)
        self.assertTrue(c.closed())
        # everything the server sent: the greeting, then c.buf
        greeting = b"220 %s ESMTP mtad\r\n" % HOSTNAME.encode()
        self.assertEqual(c.buf.count(b"\r\n221 "), 1, c.buf)
        self.idle()
        self.assert_deltas(before, {
            "smtp.bytes.in": len(sent),
            "smtp.bytes.out": len(greeting) + len(c.buf),
            "smtp.connections": 1})

    def test_connections_active(self):
        before = self.snapshot()
        cs = [self.client() for _ in range(3)]
        self.assertEqual(tlstest.wait_stat(self.mtad,
                                           "smtp.connections.active",
                                           lambda v: v == 3), 3)
        for c in cs:
            self.assertReply(c.cmd("QUIT"), 221)
            c.close()
        self.idle()
        self.assert_deltas(before, {"smtp.connections": 3,
                                    "smtp.connections.refused": 0})

    def test_transaction(self):
        before = self.snapshot()
        c = self.client()
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<nobody-here@mx.test>"), 550)
        self.assertReply(c.cmd("RCPT TO:<mtadtest2@mx.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest3@mx.test>"), 452)
        msgid = new_msgid("counted")
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("counted", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        # too big
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("big", new_msgid("big"),
                            body=("z" * 78 + "\r\n") * 80) + b".\r\n")
        self.assertReply(c.read_reply(), 552)
        self.assertReply(c.cmd("QUIT"), 221)
        self.close_all()
        self.assert_deltas(before, {
            "smtp.message.accepted": 1, "smtp.message.refused": 1,
            "smtp.rcpt.accepted": 2, "policy.rcpt.refused": 1,
            "smtp.reply.4xx": 1, "smtp.reply.5xx": 2})

    def test_tls_and_auth(self):
        before = self.snapshot()
        ctx = self.pki.client_context()
        src = loopback_addr()
        c = self.client(self.tls_port, src)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.starttls(ctx), 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("AUTH PLAIN " + tlstest.plain_response(
            "alice", "pw-a")), 235)
        bad = self.client(self.tls_port, src)
        self.assertReply(bad.cmd("EHLO client.test"), 250)
        self.assertReply(bad.cmd("STARTTLS"), 220)
        bad.send(b"\x16\x03\x01\x00\x05garbage")
        self.assertTrue(bad.closed())
        # one failure, then the address is blocked (limit auth-failures 1)
        other = loopback_addr()
        for expect in (535, 454):
            c = self.client(self.tls_port, other)
            self.assertReply(c.cmd("EHLO client.test"), 250)
            self.assertReply(c.starttls(ctx), 220)
            self.assertReply(c.cmd("EHLO client.test"), 250)
            r = c.cmd("AUTH PLAIN " + tlstest.plain_response("alice", "no"))
            self.assertEqual(r[0], expect, reply_text(r))
        self.close_all()
        # smtp.auth.failure: every AUTH refused (535, and 454 when blocked)
        self.assert_deltas(before, {
            "smtp.tls.handshakes": 3, "smtp.tls.failed": 1,
            "smtp.auth.success": 1, "smtp.auth.failure": 2,
            "policy.auth.blocked": 1})

    def test_dialog_errors(self):
        before = self.snapshot()
        # too many errors (limit errors 2)
        c = self.client()
        c.send(b"FOO\r\nBAR\r\n")
        self.assertTrue(c.closed())
        # a long line
        c = self.client()
        c.send(b"NOOP " + b"x" * 600 + b"\r\n")
        self.assertTrue(c.closed())
        # clear text after STARTTLS
        c = self.client(self.tls_port)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        c.send(b"STARTTLS\r\nNOOP\r\n")
        self.assertReply(c.read_reply(), 220)
        c.wrap(self.pki.client_context())
        c.close()
        # not a PROXY header
        c = self.client(self.proxy_port, greet=False)
        c.send(b"HELLO\r\n")
        self.assertTrue(c.closed())
        # idle (limit timeout 2s)
        c = self.client()
        self.assertEqual(c.read_reply(timeout=6)[0], 421)
        self.close_all()
        self.assert_deltas(before, {
            "smtp.dialog.error.too_many_errors": 1,
            "smtp.dialog.error.line_too_long": 1,
            "smtp.dialog.error.starttls_injection": 1,
            "smtp.dialog.error.proxy": 1,
            "smtp.dialog.error.timeout": 1})

    def test_early_talker(self):
        before = self.snapshot()
        [worker] = self.mtad.pids_with_title("mtad: smtp-worker #0")
        os.kill(worker, signal.SIGSTOP)
        try:
            c = self.client(greet=False)
            c.send(b"EHLO client.test\r\n")
            time.sleep(0.2)
        finally:
            os.kill(worker, signal.SIGCONT)
        self.assertEqual(c.read_reply()[0], 554)
        self.close_all()
        self.assert_deltas(before, {"smtp.dialog.error.early_talker": 1,
                                    "smtp.reply.5xx": 1})

    def test_refused_connections(self):
        before = self.snapshot()
        ip = loopback_addr()
        held = [self.client(source=ip) for _ in range(3)]
        c = self.client(source=ip, greet=False)
        self.assertEqual(c.read_reply()[0], 421)
        self.assertTrue(c.closed())
        # 3 held + 3 more = 6 sessions: the worker has room for no more
        held += [self.client() for _ in range(3)]
        c = self.client(greet=False)
        self.assertEqual(reply_text(c.read_reply()),
                         "421 4.7.0 Too many sessions, try again later")
        self.close_all()
        self.assert_deltas(before, {
            "policy.connect.refused": 1, "smtp.connections.refused": 1,
            "smtp.accept.error.sessions": 1, "smtp.connections": 8})

    def test_required_counters_listed(self):
        """After the other tests of the class, or by itself: whatever this
        test provokes is listed by name."""
        self.test_refused_connections()
        self.test_early_talker()
        self.test_dialog_errors()
        self.test_tls_and_auth()
        self.test_transaction()
        names = set(self.mtad.stats())
        missing = [n for n in REQUIRED if n not in names]
        self.assertEqual(missing, [], "counters not in `mtactl show stats`")
