"""7. Durability: what got a 250 survives kill -9 of everything, once."""

import collections
import os
import threading

import mtadtest
from mtadtest import (MtadTestCase, SMTPClient, dot_stuff, make_message,
                      new_msgid, reply_text)

SENDER = "sender@client.test"
ROUNDS = 8      # of send-50-then-kill-9: each catches deliveries mid-way


class Durability(MtadTestCase):

    def test_deferred_message_survives_kill_9(self):
        d = self.daemon(name="durable-deferred")
        # the mailbox directory is gone: delivery fails temporarily
        os.rmdir(d.mail)
        msgid = new_msgid("deferred")
        qid = mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                                 make_message("deferred", msgid))

        def deferred():
            for e in d.queue_json():
                if (e["id"] == qid and e["state"] == "deferred" and
                        e["attempts"] >= 1 and e["last_error"]):
                    return e
            return None
        e = mtadtest.wait_for(deferred, what="%s deferred in show queue" % qid)
        self.assertEqual(e["sender"], SENDER)
        self.assertEqual(e["recipient"], "mtadtest1@mx.test")
        self.assertRegex(e["last_error"], r"^4\.\d+\.\d+ ")

        d.kill_all()
        self.assertEqual(d.members(), [])
        self.assertFalse(os.path.exists(d.mbox_path("mtadtest1")))

        os.mkdir(d.mail, 0o755)             # fix the cause
        mark = d.log_mark()
        d.start()
        d.wait_message("mtadtest1", msgid)
        d.wait_log(r"%s: removed" % qid, since=mark)
        d.wait_queue_empty()
        copies = [m for m in d.mbox("mtadtest1") if m.message_id == msgid]
        self.assertEqual(len(copies), 1, "copies after restart: %d" %
                         len(copies))
        self.assertIn("id %s" % qid, copies[0].msg["Received"])

    def test_mailbox_path_is_a_file_defers(self):
        """The mail directory replaced by a regular file: a temporary failure
        (deferred, retried), not a bounce or a loss."""
        d = self.daemon(name="durable-file")
        os.rmdir(d.mail)
        with open(d.mail, "w") as f:
            f.write("not a directory\n")
        msgid = new_msgid("notdir")
        qid = mtadtest.smtp_send(d.port, SENDER, ["mtadtest2@mx.test"],
                                 make_message("notdir", msgid))
        mtadtest.wait_for(
            lambda: [e for e in d.queue_json() if e["id"] == qid and
                     e["attempts"] >= 2 and e["state"] != "delivering" and
                     e["last_error"].startswith("4.")],
            timeout=15, what="two failed attempts of %s" % qid)
        os.unlink(d.mail)
        os.mkdir(d.mail, 0o755)
        d.wait_message("mtadtest2", msgid, timeout=15)
        d.wait_queue_empty()
        self.assertEqual(len(d.mbox("mtadtest2")), 1)

    def burst_and_kill(self, d, nthreads=5, per_thread=10):
        """nthreads sessions send per_thread messages each; kill -9 of the
        whole process group right after the last 250.  Returns the
        (msgid, user) pairs that got a 250."""
        accepted = []
        lock = threading.Lock()
        errors = []

        def sender(t):
            try:
                with SMTPClient(d.port) as c:
                    c.greeting()
                    c.cmd("EHLO client.test")
                    for i in range(per_thread):
                        msgid = new_msgid("burst%d.%d" % (t, i))
                        rcpt = "mtadtest%d@mx.test" % (1 + (t + i) % 2)
                        for line, want in (("MAIL FROM:<%s>" % SENDER, 250),
                                           ("RCPT TO:<%s>" % rcpt, 250),
                                           ("DATA", 354)):
                            r = c.cmd(line)
                            if r[0] != want:
                                raise AssertionError("%s: %s" %
                                                     (line, reply_text(r)))
                        c.send(dot_stuff(make_message(
                            "burst %d/%d" % (t, i), msgid, to=rcpt)) +
                            b".\r\n")
                        r = c.read_reply()
                        if r[0] != 250:
                            raise AssertionError("end of data: " +
                                                 reply_text(r))
                        with lock:
                            accepted.append((msgid, rcpt.split("@")[0]))
            except Exception as e:      # reported by the main thread
                errors.append("thread %d: %r" % (t, e))

        threads = [threading.Thread(target=sender, args=(t,))
                   for t in range(nthreads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        d.kill_all()
        self.assertEqual(errors, [])
        self.assertEqual(len(accepted), nthreads * per_thread)
        return accepted

    def stale_locks(self, d):
        return sorted(n for n in os.listdir(d.mail) if n.endswith(".lock"))

    def wait_all_delivered(self, d, accepted, timeout, hint=""):
        users = {u for _, u in accepted}

        def all_there():
            got = {u: {m.message_id for m in d.mbox(u)} for u in users}
            return all(mid in got[u] for mid, u in accepted)
        mtadtest.wait_for(all_there, timeout=timeout,
                          what="all %d accepted messages%s" %
                          (len(accepted), hint))

    def check_exactly_once(self, d, accepted, timeout):
        want = collections.Counter(u for _, u in accepted)
        self.wait_all_delivered(d, accepted, timeout)
        d.wait_queue_empty(timeout=15)
        for u in want:
            ids = collections.Counter(m.message_id for m in d.mbox(u))
            dups = {k: v for k, v in ids.items() if v > 1}
            self.assertEqual(dups, {}, "%s: duplicated messages" % u)
            self.assertEqual(sum(ids.values()), want[u],
                             "%s: messages in the mbox" % u)

    def test_kill_9_right_after_the_last_250(self):
        """No loss, no duplicate.  Dot-locks that the killed delivery left
        are removed by hand first: the queue's promise is tested alone
        (the next test covers the locks).  Whether a delivery is caught
        half-way is luck, so there are several rounds."""
        d = self.daemon(name="durable-burst")
        accepted = []
        for _ in range(ROUNDS):
            accepted += self.burst_and_kill(d)
            for n in self.stale_locks(d):
                os.unlink(os.path.join(d.mail, n))
            d.start()
            self.check_exactly_once(d, accepted, timeout=30)

    def test_kill_9_during_delivery_leaves_no_blocking_lock(self):
        """A mailbox whose delivery was killed must not stay locked by the
        dead process after a restart (the lock's owner is known to be
        gone): every accepted message arrives within seconds."""
        d = self.daemon(name="durable-locks")
        accepted = []
        for _ in range(ROUNDS):
            accepted += self.burst_and_kill(d)
            locks = self.stale_locks(d)
            d.start()
            # (duplicates are the business of the test above)
            self.wait_all_delivered(
                d, accepted, timeout=20,
                hint=" (dot-locks left by the killed mtad: %s)" %
                (locks or "none"))
            d.wait_queue_empty(timeout=15)
