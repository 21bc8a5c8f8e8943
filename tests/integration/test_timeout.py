"""11. The SMTP idle timeout (`limit timeout DURATION`, default 5m)."""

import os
import re
import subprocess
import tempfile
import time

import mtadtest
from mtadtest import MTAD, MtadTestCase, SMTPClient

TIMEOUT = 2.0


_probe = []


def timeout_supported():
    """Whether this mtad knows `limit timeout` (added to the grammar after
    the rest: until then the tests below are skipped as pending)."""
    if not _probe:
        _probe.append(_probe_timeout())
    return _probe[0]


def _probe_timeout():
    d = tempfile.mkdtemp(prefix="probe-", dir=mtadtest.base_dir())
    conf = os.path.join(d, "probe.conf")
    with open(conf, "w") as f:
        f.write('limit timeout 2s\naction "local" mbox\n'
                'match from local for local action "local"\n')
    r = subprocess.run([MTAD, "-n", "-f", conf], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=10)
    if r.returncode == 0:
        return True, ""
    if re.search(r"%s:1: " % re.escape(conf), r.stdout):
        return False, r.stdout.strip().splitlines()[0]
    return True, ""     # failed for another reason: let the test show it


class IdleTimeout(MtadTestCase):

    def setUp(self):
        ok, why = timeout_supported()
        if not ok:
            self.skipTest("pending: `limit timeout` not in the grammar yet")
        self.d = self.daemon(extra="limit timeout 2s\n", name="timeout")

    def assertTimedOut(self, c, t0):
        r = c.read_reply(timeout=TIMEOUT + 5)
        elapsed = time.monotonic() - t0
        self.assertReply(r, 421, "4.4.2")
        self.assertGreaterEqual(elapsed, TIMEOUT - 0.5,
                                "timed out too early (%.1fs)" % elapsed)
        self.assertLessEqual(elapsed, TIMEOUT + 3,
                             "timed out too late (%.1fs)" % elapsed)
        self.assertTrue(c.closed(timeout=2), "not disconnected after 421")

    def test_idle_after_greeting(self):
        c = SMTPClient(self.d.port)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertTimedOut(c, time.monotonic())

    def test_idle_in_transaction(self):
        c = SMTPClient(self.d.port)
        self.addCleanup(c.close)
        c.greeting()
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@client.test>"), 250)
        self.assertTimedOut(c, time.monotonic())

    def test_idle_in_data(self):
        c = SMTPClient(self.d.port)
        self.addCleanup(c.close)
        c.greeting()
        c.cmd("EHLO client.test")
        c.cmd("MAIL FROM:<a@client.test>")
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(b"Subject: half\r\n\r\nhalf a messa")
        self.assertTimedOut(c, time.monotonic())
        mtadtest.wait_for(lambda: not os.listdir(
            os.path.join(self.d.queue, "incoming")), timeout=3,
            what="incoming/ emptied after the timeout")

    def test_active_client_not_timed_out(self):
        """The timeout is per command, not per session."""
        c = SMTPClient(self.d.port)
        self.addCleanup(c.close)
        c.greeting()
        c.cmd("EHLO client.test")
        for _ in range(4):
            time.sleep(TIMEOUT / 2)
            self.assertReply(c.cmd("NOOP"), 250)

    def test_counted(self):
        before = self.d.stats().get("smtp.dialog.error.timeout", 0)
        c = SMTPClient(self.d.port)
        self.addCleanup(c.close)
        c.greeting()
        self.assertTimedOut(c, time.monotonic())
        mtadtest.wait_for(lambda: self.d.stats().get(
            "smtp.dialog.error.timeout", 0) > before, timeout=3,
            what="smtp.dialog.error.timeout to move")


class TimeoutConfig(MtadTestCase):

    def test_bad_timeout_values(self):
        ok, why = timeout_supported()
        if not ok:
            self.skipTest("pending: `limit timeout` not in the grammar yet")
        d = tempfile.mkdtemp(prefix="tconf-", dir=mtadtest.base_dir())
        for value in ("abc", "-5", "10x"):
            with self.subTest(value=value):
                conf = os.path.join(d, "t.conf")
                with open(conf, "w") as f:
                    f.write('hostname "mx.test"\nlimit timeout %s\n' % value)
                r = subprocess.run([MTAD, "-n", "-f", conf],
                                   stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True,
                                   timeout=10)
                self.assertEqual(r.returncode, 1, r.stdout)
                self.assertRegex(r.stdout, re.compile(
                    r"^(?:mtad\[\d+\]: )?%s:2: " % re.escape(conf), re.M))
