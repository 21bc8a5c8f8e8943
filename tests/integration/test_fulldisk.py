"""A full spool: 452 4.3.1, nothing left behind, `queue min-free`."""

import os
import subprocess
import time

import mtadtest
from mtadtest import MtadTestCase, SMTPClient, make_message, new_msgid

SENDER = "mtadtest2@mx.test"
TMPFS_SIZE = "4m"


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def big_body(nbytes):
    line = b"x" * 76 + b"\r\n"
    return (line * (nbytes // len(line) + 1)).decode()


class FullDisk(MtadTestCase):

    def setUp(self):
        self.d = self.daemon(name="fulldisk", start=False,
                             extra="queue min-free 0\n"
                                   "limit message-size 20M\n")
        os.mkdir(self.d.queue, 0o755)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%s,mode=0755" % TMPFS_SIZE, "tmpfs",
                            self.d.queue], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            self.skipTest("cannot mount a tmpfs: %s" % r.stderr.strip())
        self.addCleanup(self.umount)
        # (cleanups run last first: the daemon must be gone before umount)
        self.addCleanup(self.d.cleanup)

    def umount(self):
        r = subprocess.run(["umount", self.d.queue], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            subprocess.run(["umount", "-l", self.d.queue])

    def restart(self, extra):
        if self.d.running():
            self.assertEqual(self.d.stop(), 0)
        self.d.write_config(extra=extra)
        self.d.start()

    def session(self):
        c = SMTPClient(self.d.port, timeout=30)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting()[0], 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        return c

    def spool_clean(self):
        return (not mtadtest.spool_entries(self.d, "incoming") and
                not mtadtest.spool_entries(self.d, "queue"))

    def test_full_disk(self):
        d = self.d
        d.start()
        free = free_bytes(d.queue)
        self.assertLess(free, 5 * 1024 * 1024, "the tmpfs is not the spool")

        # 1. a message larger than the free space, under the size limit
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        big = make_message("big", new_msgid("big"),
                           body=big_body(free + 2 * 1024 * 1024))
        c.send(mtadtest.dot_stuff(big) + b".\r\n")
        self.assertReply(c.read_reply(), 452, "4.3.1")
        mtadtest.wait_for(self.spool_clean, timeout=5,
                          what="an empty incoming/ and queue/ (have %s, %s)"
                          % (mtadtest.spool_entries(d, "incoming"),
                             mtadtest.spool_entries(d, "queue")))
        mtadtest.wait_for(lambda: free_bytes(d.queue) > free - 256 * 1024,
                          timeout=5, what="the space of the refused message "
                          "to come back (free: %d)" % free_bytes(d.queue))
        # the session goes on
        self.assertReply(c.cmd("RSET"), 250)
        c.cmd("QUIT")
        self.assertEqual(d.queue_json(), [])
        self.assertEqual(d.mbox("mtadtest1"), [])

        # 2. min-free above the free space: any DATA is refused
        with open(os.path.join(d.queue, "ballast"), "wb") as f:
            f.write(b"\0" * (2 * 1024 * 1024))
        self.restart("queue min-free 3M\nlimit message-size 20M\n")
        self.assertLess(free_bytes(d.queue), 3 * 1024 * 1024)
        c = self.session()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 452, "4.3.1")
        # and again in the same session
        self.assertReply(c.cmd("DATA"), 452, "4.3.1")
        c.cmd("QUIT")
        self.assertTrue(self.spool_clean())

        # 3. min-free 0: a small message goes through and is delivered
        self.restart("queue min-free 0\nlimit message-size 20M\n")
        msgid = new_msgid("small")
        mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                           make_message("small", msgid))
        d.wait_message("mtadtest1", msgid)
        d.wait_queue_empty()
        time.sleep(0.5)
        self.assertTrue(self.spool_clean(),
                        (mtadtest.spool_entries(d, "incoming"),
                         mtadtest.spool_entries(d, "queue")))
