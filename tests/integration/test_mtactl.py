"""8. mtactl: show queue, show stats, flush, and no daemon."""

import json
import os
import re
import socket
import subprocess
import time

import mtadtest
from mtadtest import MTACTL, MtadTestCase, make_message, new_msgid

SENDER = "sender@client.test"


def mtactl(*args):
    return subprocess.run([MTACTL] + list(args), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=10)


class Mtactl(MtadTestCase):

    def deferred_message(self, d, user="mtadtest1"):
        """Sends a message that cannot be delivered yet (the mail directory
        is gone); returns (qid, its queue entry) once it is deferred."""
        os.rmdir(d.mail)
        msgid = new_msgid("ctl")
        qid = mtadtest.smtp_send(d.port, SENDER, ["%s@mx.test" % user],
                                 make_message("ctl", msgid))

        def deferred():
            for e in d.queue_json():
                if e["id"] == qid and e["state"] == "deferred":
                    return e
            return None
        e = mtadtest.wait_for(deferred, what="%s deferred" % qid)
        return qid, msgid, e

    def test_show_queue(self):
        d = self.daemon(name="ctl-queue")
        r = d.ctl("show", "queue")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("-- 0 recipients queued", r.stdout)
        self.assertEqual(d.queue_json(), [])

        t0 = int(time.time())
        qid, msgid, e = self.deferred_message(d)
        # JSON: one object per recipient, with every field
        self.assertEqual(set(e), {"id", "sender", "recipient", "state",
                                  "attempts", "created", "next_attempt",
                                  "last_error"})
        self.assertEqual(e["sender"], SENDER)
        self.assertEqual(e["recipient"], "mtadtest1@mx.test")
        self.assertIsInstance(e["attempts"], int)
        self.assertGreaterEqual(e["attempts"], 1)
        self.assertIsInstance(e["created"], int)
        self.assertTrue(t0 - 2 <= e["created"] <= time.time() + 1,
                        "created %s, test started at %d" % (e["created"], t0))
        self.assertIsInstance(e["next_attempt"], int)
        self.assertGreaterEqual(e["next_attempt"], e["created"])
        self.assertRegex(e["last_error"], r"^4\.\d+\.\d+ .*%s" %
                         re.escape(d.mail))

        # text: a header, one line for the recipient, its error, a count
        r = d.ctl("show", "queue")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^ID\s+STATE\s+TRY\s+NEXT ATTEMPT\s+"
                         r"SENDER -> RECIPIENT$")
        entry = [l for l in lines if l.startswith(qid)]
        self.assertEqual(len(entry), 1, r.stdout)
        self.assertRegex(entry[0], r"^%s\s+(deferred|delivering)\s+\d+\s+"
                         r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|-)\s+<%s> -> "
                         r"<mtadtest1@mx.test>$" % (qid, re.escape(SENDER)))
        self.assertIn("-- 1 recipient queued", r.stdout)

    def test_show_stats(self):
        d = self.daemon(name="ctl-stats")
        r = d.ctl("show", "stats")
        self.assertEqual(r.returncode, 0, r.stderr)
        text = {}
        for line in r.stdout.splitlines():
            m = re.match(r"^([a-z0-9_.]+)=(\d+)$", line)
            self.assertTrue(m, "bad stats line %r" % line)
            text[m.group(1)] = int(m.group(2))
        self.assertEqual(text.get("master.children"), 6, r.stdout)
        self.assertEqual(text.get("master.restart"), 0, r.stdout)

        before = d.stats()
        self.assertIsInstance(before, dict)
        self.assertTrue(all(isinstance(v, int) for v in before.values()))
        ids = []
        for i in range(2):
            ids.append(new_msgid("stats"))
            mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                               make_message("stats", ids[-1]))
        for m in ids:
            d.wait_message("mtadtest1", m)
        d.wait_queue_empty()

        def moved():
            after = d.stats()
            for k, n in (("smtp.connections", 2),
                         ("smtp.message.accepted", 2),
                         ("queue.commit", 2), ("queue.delivered", 2),
                         ("mda.delivered", 2)):
                if after.get(k, 0) - before.get(k, 0) < n:
                    return None
            return after
        try:
            mtadtest.wait_for(moved, timeout=5, what="counters to move")
        except mtadtest.Timeout:
            after = d.stats()
            self.fail("counters did not move by 2:\nbefore %s\nafter %s" %
                      (json.dumps(before, sort_keys=True),
                       json.dumps(after, sort_keys=True)))

    def test_deferral_counted(self):
        d = self.daemon(name="ctl-deferred")
        before = d.stats().get("queue.deferred", 0)
        self.deferred_message(d)
        mtadtest.wait_for(lambda: d.stats().get("queue.deferred", 0) > before,
                          timeout=5, what="queue.deferred to move")

    def test_flush(self):
        d = self.daemon(name="ctl-flush", retry="queue retry min 1m max 1h")
        qid, msgid, e = self.deferred_message(d)
        self.assertGreaterEqual(e["next_attempt"], time.time() + 30,
                                "the retry is not a minute away: %s" % e)
        os.mkdir(d.mail, 0o755)              # fix the cause
        r = d.ctl("flush")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout.strip(), r"^1 recipients? scheduled$")
        d.wait_message("mtadtest1", msgid, timeout=8)
        d.wait_queue_empty(timeout=5)
        r = d.ctl("flush", json_out=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout),
                         {"ok": True, "message": "0 recipients scheduled"})

    def test_not_running(self):
        base = mtadtest.base_dir()
        path = os.path.join(base, "no-such-dir", "control.sock")
        for args in (("show", "queue"), ("show", "stats"), ("flush",)):
            with self.subTest(cmd=args):
                r = mtactl("-s", path, *args)
                self.assertEqual(r.returncode, 1)
                self.assertIn("cannot connect to %s" % path, r.stderr)
                self.assertIn("is mtad running?", r.stderr)
                self.assertEqual(r.stdout, "")

    def test_stale_socket(self):
        """A socket file nobody listens on (ECONNREFUSED): same message."""
        path = os.path.join(mtadtest.base_dir(), "stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        self.addCleanup(os.unlink, path)
        r = mtactl("-s", path, "show", "queue")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot connect to %s" % path, r.stderr)
        self.assertIn("is mtad running?", r.stderr)

    def test_after_stop(self):
        d = self.daemon(name="ctl-stop")
        self.assertEqual(d.ctl("show", "stats").returncode, 0)
        d.stop()
        r = d.ctl("show", "queue")
        self.assertEqual(r.returncode, 1)
        self.assertIn("is mtad running?", r.stderr)

    def test_usage(self):
        r = mtactl("frobnicate")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("usage", r.stderr)
