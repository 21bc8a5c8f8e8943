"""10. Shutdown and the pidfile."""

import os
import signal
import subprocess
import time

import mtadtest
from mtadtest import MTAD, MtadTestCase, SMTPClient, make_message, new_msgid

STOP_TIMEOUT = 5.0
SENDER = "sender@client.test"


class Shutdown(MtadTestCase):

    def assertStopsCleanly(self, d):
        members = d.members()
        self.assertGreaterEqual(len(members), 7, "master and six children")
        mark = d.log_mark()
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        try:
            rc = d.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("the master still runs %.0fs after SIGTERM" %
                      STOP_TIMEOUT)
        self.assertEqual(rc, 0, "exit status after SIGTERM")
        left = STOP_TIMEOUT - (time.monotonic() - t0)
        mtadtest.wait_for(lambda: not any(mtadtest.pid_alive(p)
                                          for p in members),
                          max(left, 0.5), what="every child to exit")
        self.assertFalse(os.path.exists(d.pidfile), "pidfile left behind")
        self.assertFalse(os.path.exists(d.control), "control socket left")
        d.wait_log(r"mtad stopped", since=mark, timeout=1)

    def test_sigterm(self):
        d = self.daemon(name="stop")
        with open(d.pidfile) as f:
            self.assertEqual(f.read().strip(), str(d.pid))
        self.assertStopsCleanly(d)

    def test_sigterm_with_idle_session(self):
        """A client idle between commands does not hold the shutdown: it
        gets 421 (RFC 5321 3.8) and is disconnected within seconds."""
        d = self.daemon(name="stop-idle")
        c = SMTPClient(d.port)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertStopsCleanly(d)
        self.assertTrue(c.closed(timeout=1), "client still connected")
        self.assertTrue(c.buf == b"" or c.buf.startswith(b"421 "),
                        "not a 421 before the close: %r" % c.buf)

    def test_sigterm_after_mail(self):
        d = self.daemon(name="stop-mail")
        msgid = new_msgid("stop")
        mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                           make_message("stop", msgid))
        d.wait_message("mtadtest1", msgid)
        self.assertStopsCleanly(d)

    def test_sigterm_during_data_finishes_the_message(self):
        """A message being received when SIGTERM comes is finished (250),
        and delivered at the latest after a restart."""
        d = self.daemon(name="stop-data")
        c = SMTPClient(d.port)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        msgid = new_msgid("drain")
        msg = make_message("drain", msgid)
        c.send(msg[:40])
        mark = d.log_mark()
        d.signal(signal.SIGTERM)
        d.wait_log(r"shutting down", since=mark)
        c.send(msg[40:] + b".\r\n")
        r = c.read_reply(timeout=STOP_TIMEOUT)
        self.assertReply(r, 250, "2.0.0")
        self.assertReply(c.cmd("QUIT"), 221)
        try:
            d.proc.wait(STOP_TIMEOUT + 5)
        except subprocess.TimeoutExpired:
            self.fail("mtad did not stop after the last session ended")
        d.start()
        d.wait_message("mtadtest1", msgid)

    def test_second_instance_refused(self):
        d = self.daemon(name="twice")
        second = subprocess.Popen([MTAD, "-d", "-f", d.conf],
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT,
                                  start_new_session=True)
        try:
            out, _ = second.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(second.pid, signal.SIGKILL)
            second.communicate()
            self.fail("a second mtad with the same config keeps running")
        self.assertNotEqual(second.returncode, 0, "a second mtad started")
        self.assertIn("already running", out.decode())
        # the first one is untouched
        self.assertTrue(d.running())
        with open(d.pidfile) as f:
            self.assertEqual(f.read().strip(), str(d.pid))
        self.assertTrue(os.path.exists(d.control))
        self.assertEqual(d.ctl("show", "stats").returncode, 0)
        msgid = new_msgid("twice")
        mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                           make_message("twice", msgid))
        d.wait_message("mtadtest1", msgid)

    def test_second_instance_other_port_same_pidfile(self):
        """The pidfile alone decides, whatever else differs."""
        d = self.daemon(name="twice-port")
        other = mtadtest.Daemon(name="twice-other")
        self.addCleanup(other.cleanup)
        text = other.config_text().replace(
            'pidfile "%s"' % other.pidfile, 'pidfile "%s"' % d.pidfile)
        with open(other.conf, "w") as f:
            f.write(text)
        other.start(wait=False)
        try:
            rc = other.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.fail("a second mtad on the same pidfile keeps running")
        self.assertNotEqual(rc, 0)
        self.assertIn("already running", other.log())
        self.assertTrue(d.running())
        with open(d.pidfile) as f:
            self.assertEqual(f.read().strip(), str(d.pid))

    def test_restart_after_kill_9(self):
        """Stale pidfile and control socket do not prevent a restart."""
        d = self.daemon(name="restart")
        old = d.pid
        d.kill_all()
        self.assertTrue(os.path.exists(d.pidfile))
        d.start()
        self.assertNotEqual(d.pid, old)
        with open(d.pidfile) as f:
            self.assertEqual(f.read().strip(), str(d.pid))
        self.assertEqual(d.ctl("show", "stats").returncode, 0)
