"""6. Supervision: a killed child is replaced and mail keeps flowing."""

import os
import re
import signal

import mtadtest
from mtadtest import MtadTestCase, make_message, new_msgid, proc_status

SENDER = "sender@client.test"
RESTART_TIMEOUT = 5.0


class Supervision(MtadTestCase):

    def setUp(self):
        self.mtad = self.daemon(name="supervise")
        mtadtest.wait_for(lambda: len(self.mtad.children()) >= 6,
                          what="six children of the master")

    def send_and_check(self, n=4, user="mtadtest1"):
        """n messages in n sessions (so that every smtp-worker gets some),
        each delivered."""
        ids = []
        for i in range(n):
            msgid = new_msgid("after")
            mtadtest.smtp_send(self.mtad.port, SENDER, ["%s@mx.test" % user],
                               make_message("after restart %d" % i, msgid))
            ids.append(msgid)
        for msgid in ids:
            self.mtad.wait_message(user, msgid)

    def kill_and_wait(self, title, slot, user):
        """slot: the child's name in the log ("policy #0")."""
        [old] = self.mtad.pids_with_title(title)
        mark = self.mtad.log_mark()
        os.kill(old, signal.SIGKILL)

        def replaced():
            pids = self.mtad.pids_with_title(title)
            return pids if pids and old not in pids else None
        [new] = mtadtest.wait_for(replaced, RESTART_TIMEOUT,
                                  what="a new %r" % title)
        slot = re.escape(slot)
        self.mtad.wait_log(r"master\[%d\]: %s \(pid %d\) killed by signal 9"
                           % (self.mtad.pid, slot, old), since=mark)
        self.mtad.wait_log(r"master\[%d\]: started %s \(pid %d, user %s\)" %
                           (self.mtad.pid, slot, new, user), since=mark)
        # The title is set first; confinement follows once the child has
        # loaded what it needs as root (DNS, TLS): wait for it, bounded.
        def confined():
            st = proc_status(new)
            return st if st.get("Seccomp") == "2" else None
        st = mtadtest.wait_for(confined, RESTART_TIMEOUT,
                               what="pid %d confined" % new)
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(st["Seccomp"], "2")
        self.assertTrue(self.mtad.running(), "the master died")
        return new

    def test_smtp_worker_killed(self):
        self.kill_and_wait("mtad: smtp-worker #0", "smtp-worker #0",
                           "mtad-smtp")
        self.send_and_check()
        self.assertGreaterEqual(self.mtad.stats().get("master.restart", 0), 1)

    def test_deliver_worker_killed(self):
        self.kill_and_wait("mtad: deliver-worker #0", "deliver-worker #0",
                           "mtad-deliver")
        self.kill_and_wait("mtad: deliver-worker #1", "deliver-worker #1",
                           "mtad-deliver")
        self.send_and_check()

    def test_policy_killed(self):
        self.kill_and_wait("mtad: policy", "policy #0", "mtad-policy")
        self.send_and_check(n=2)

    def test_queue_killed(self):
        self.kill_and_wait("mtad: queue", "queue #0", "mtad-queue")
        self.send_and_check(n=2)

    def test_worker_killed_during_session(self):
        """A client whose worker dies loses its session, not the server:
        the next connection works."""
        c = mtadtest.SMTPClient(self.mtad.port)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        # find which worker holds the session: the log says
        m = re.findall(r"smtp-worker #(\d+)\[(\d+)\]: \w+: connect from",
                       self.mtad.log())
        slot, pid = m[-1]
        os.kill(int(pid), signal.SIGKILL)
        self.assertTrue(c.closed(timeout=5), "session survived its worker")
        mtadtest.wait_for(lambda: self.mtad.pids_with_title(
            "mtad: smtp-worker #%s" % slot) not in ([], [int(pid)]),
            RESTART_TIMEOUT, what="smtp-worker #%s back" % slot)
        self.send_and_check(n=2)
