"""Queue control with mtactl: show queue filters, show message, status,
flush/schedule, hold/release, remove, pause/resume, reload, log; the queue
directives of mtad.conf; the retry backoff."""

import json
import os
import re
import signal
import socket
import time

import mtadtest
from mtadtest import (CHILD_USERS, MtadTestCase, SMTPClient, make_message,
                      new_msgid, reply_text)

SENDER = "mtadtest2@mx.test"
NO_SUCH_ID = "0123456789abcdef"
RESULT_RX = r"^%d recipients? scheduled$"


def jresult(r):
    """The {"ok", "message"} object of a one-result command."""
    return json.loads(r.stdout)


class QueueConfig(MtadTestCase):
    """mtad -n on the queue and limit directives."""

    def check(self, extra):
        """(exit status, output, line number of `extra` in the file)."""
        d = mtadtest.Daemon(extra=extra, name="qconf")
        self.addCleanup(d.cleanup)
        r = d.check_config()
        lines = d.config_text().splitlines()
        lineno = lines.index(extra.strip()) + 1
        return r.returncode, r.stdout + r.stderr, lineno

    def test_good(self):
        for line in ("queue lifetime 1m", "queue lifetime 4d",
                     "queue lifetime 90s", "queue delay-warning off",
                     "queue delay-warning 1s", "queue delay-warning 4h",
                     "queue min-free 0", "queue min-free 3M",
                     "queue min-free 512K", "queue min-free 1G",
                     "queue min-free 1048576",
                     "limit message-size 20M", "limit recipients 1",
                     "limit recipients 100000", "limit timeout 1s",
                     "limit timeout 1h"):
            with self.subTest(line=line):
                rc, out, _ = self.check(line + "\n")
                self.assertEqual(rc, 0, out)

    def test_bad(self):
        for line in ("queue lifetime 59s", "queue lifetime 0",
                     "queue lifetime soon", "queue delay-warning 0",
                     "queue delay-warning never", "queue min-free 3X",
                     "queue min-free -1", "queue min-free lots",
                     "limit recipients 0", "limit recipients 100001",
                     "limit timeout 0s", "limit timeout 2h",
                     "limit message-size huge"):
            with self.subTest(line=line):
                rc, out, n = self.check(line + "\n")
                self.assertEqual(rc, 1, out)
                self.assertRegex(out, r"mtad\.conf:%d: " % n)


class QueueShow(MtadTestCase):

    def deferred(self, d, qid, n=1):
        def check():
            for e in d.queue_json():
                if (e["id"] == qid and e["state"] == "deferred" and
                        e["attempts"] >= n):
                    return e
            return None
        return mtadtest.wait_for(check, what="%s deferred" % qid)

    def show(self, d, *filt):
        """(text rows as (id, state, sender, rcpt), JSON entries)."""
        r = d.ctl("show", "queue", *filt)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = []
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^ID\s+STATE\s+TRY\s+NEXT ATTEMPT\s+"
                         r"SENDER -> RECIPIENT$")
        for line in lines[1:]:
            m = re.match(r"^([0-9a-f]{16})\s+(\S+)\s+(\d+)\s+"
                         r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d|-)\s+"
                         r"<([^>]*)> -> <([^>]*)>$", line)
            if m:
                rows.append((m.group(1), m.group(2), m.group(5),
                             m.group(6)))
        m = re.search(r"^-- (\d+) recipients? queued$", r.stdout, re.M)
        self.assertTrue(m, r.stdout)
        self.assertEqual(int(m.group(1)), len(rows), r.stdout)
        j = d.ctl("show", "queue", *filt, json_out=True)
        self.assertEqual(j.returncode, 0, j.stderr)
        entries = json.loads(j.stdout)
        self.assertEqual(sorted((e["id"], e["state"], e["sender"],
                                 e["recipient"]) for e in entries),
                         sorted(rows), "text and JSON differ")
        return sorted(rows), entries

    def test_show_queue_filters(self):
        d = self.daemon(name="ctl-filter", retry="queue retry min 1m max 1h")
        mtadtest.temp_failing_mbox(d, "mtadtest3")
        m1 = mtadtest.smtp_send(d.port, "mtadtest1@mx.test",
                                ["mtadtest3@mx.test"],
                                make_message("m1", new_msgid("m1")))
        self.deferred(d, m1)
        self.assertEqual(d.ctl("pause", "delivery").returncode, 0)
        m2 = mtadtest.smtp_send(d.port, SENDER,
                                ["mtadtest1@localhost", "mtadtest2@mx.test"],
                                make_message("m2", new_msgid("m2")))
        m3 = mtadtest.smtp_send(d.port, "mtadtest1@mx.test",
                                ["mtadtest2@mx.test"],
                                make_message("m3", new_msgid("m3")))
        r = d.ctl("hold", m3)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        everything, _ = self.show(d)
        self.assertEqual(everything, sorted([
            (m1, "deferred", "mtadtest1@mx.test", "mtadtest3@mx.test"),
            (m2, "queued", SENDER, "mtadtest1@localhost"),
            (m2, "queued", SENDER, "mtadtest2@mx.test"),
            (m3, "held", "mtadtest1@mx.test", "mtadtest2@mx.test")]))

        def ids(*filt):
            rows, _ = self.show(d, *filt)
            return sorted({(i, rc) for i, _, _, rc in rows})
        cases = [
            (("sender", SENDER),
             [(m2, "mtadtest1@localhost"), (m2, "mtadtest2@mx.test")]),
            (("sender", "MTADTEST1@mx.test"),
             [(m1, "mtadtest3@mx.test"), (m3, "mtadtest2@mx.test")]),
            (("rcpt", "mtadtest2@mx.test"),
             [(m2, "mtadtest2@mx.test"), (m3, "mtadtest2@mx.test")]),
            (("domain", "localhost"), [(m2, "mtadtest1@localhost")]),
            (("domain", "mx.test"),
             [(m1, "mtadtest3@mx.test"), (m2, "mtadtest2@mx.test"),
              (m3, "mtadtest2@mx.test")]),
            (("state", "held"), [(m3, "mtadtest2@mx.test")]),
            (("state", "deferred"), [(m1, "mtadtest3@mx.test")]),
            (("state", "queued"),
             [(m2, "mtadtest1@localhost"), (m2, "mtadtest2@mx.test")]),
            (("state", "delivering"), []),
            (("sender", "mtadtest1@mx.test", "state", "held"),
             [(m3, "mtadtest2@mx.test")]),
            (("domain", "mx.test", "rcpt", "mtadtest3@mx.test"),
             [(m1, "mtadtest3@mx.test")]),
            (("sender", "nobody@mx.test"), []),
        ]
        for filt, want in cases:
            with self.subTest(filter=filt):
                self.assertEqual(ids(*filt), sorted(want))
        # a filter word without its value, or an unknown one: usage
        for bad in (("sender",), ("state", "held", "domain"),
                    ("color", "red")):
            with self.subTest(bad=bad):
                r = d.ctl("show", "queue", *bad)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("usage", r.stderr)

    def test_delivering(self):
        """A delivery that waits on a dot-lock (held by a live process,
        this test) shows as delivering; remove refuses it while it lasts."""
        d = self.daemon(name="ctl-delivering")
        lock = d.mbox_path("mtadtest1") + ".lock"
        with open(lock, "w") as f:
            f.write("%d\n" % os.getpid())
        self.addCleanup(lambda: os.path.exists(lock) and os.unlink(lock))
        msgid = new_msgid("dlv")
        qid = mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                                 make_message("dlv", msgid))
        mtadtest.wait_for(lambda: [e for e in d.queue_json()
                                   if e["state"] == "delivering"],
                          timeout=5, what="%s delivering" % qid)
        rows, entries = self.show(d, "state", "delivering")
        self.assertEqual([(i, s) for i, s, _, _ in rows],
                         [(qid, "delivering")])
        self.assertEqual(self.show(d, "state", "queued")[0], [])
        r = d.ctl("remove", qid)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("busy", r.stdout)
        os.unlink(lock)
        d.wait_message("mtadtest1", msgid, timeout=5)
        d.wait_queue_empty()

    def test_show_message(self):
        """Every recipient, delivered and failed ones too, then the header
        block; JSON: {"recipients": [...], "headers": "..."}."""
        mtadtest.create_user("mtadgone1")
        self.addCleanup(mtadtest.delete_user, "mtadgone1")
        d = self.daemon(name="ctl-message",
                        retry="queue retry min 1m max 1h")
        mtadtest.temp_failing_mbox(d, "mtadtest3")
        self.assertEqual(d.ctl("pause", "delivery").returncode, 0)
        msgid = new_msgid("show")
        qid = mtadtest.smtp_send(
            d.port, SENDER,
            ["mtadtest1@mx.test", "mtadgone1@mx.test", "mtadtest3@mx.test"],
            make_message("show me", msgid,
                         headers=["X-Show: one", "X-Long: a\r\n b"]))
        mtadtest.delete_user("mtadgone1")
        self.assertEqual(d.ctl("resume", "delivery").returncode, 0)
        d.wait_message("mtadtest1", msgid)
        self.deferred(d, qid)

        def states():
            r = d.ctl("show", "message", qid, json_out=True)
            self.assertEqual(r.returncode, 0, r.stderr)
            obj = json.loads(r.stdout)
            return obj, {e["recipient"]: e["state"]
                         for e in obj["recipients"]}
        obj, st = mtadtest.wait_for(
            lambda: (lambda o: o if o[1].get("mtadgone1@mx.test") ==
                     "failed" else None)(states()),
            what="the failed recipient in show message")
        self.assertEqual(set(obj), {"recipients", "headers"})
        self.assertEqual(st, {"mtadtest1@mx.test": "delivered",
                              "mtadgone1@mx.test": "failed",
                              "mtadtest3@mx.test": "deferred"})
        for e in obj["recipients"]:
            self.assertEqual(e["id"], qid)
            self.assertEqual(e["sender"], SENDER)
            self.assertGreaterEqual(e["attempts"], 1)
        errors = {e["recipient"]: e["last_error"] for e in obj["recipients"]}
        self.assertTrue(errors["mtadgone1@mx.test"].startswith("5.1.1"),
                        errors)
        self.assertTrue(errors["mtadtest3@mx.test"].startswith("4."),
                        errors)
        hdr = obj["headers"]
        self.assertTrue(hdr.startswith("Received: "), hdr)
        self.assertIn("id %s" % qid, hdr)
        self.assertIn("Message-Id: %s\r\n" % msgid, hdr)
        self.assertIn("X-Show: one\r\n", hdr)
        self.assertIn("X-Long: a\r\n b\r\n", hdr)
        self.assertNotIn("Hello.", hdr, "the body is no header")

        # text: the rows, then the header block
        r = d.ctl("show", "message", qid)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^ID\s+STATE")
        rows = [l for l in lines if l.startswith(qid)]
        self.assertEqual(len(rows), 3, r.stdout)
        for rcpt, state in st.items():
            self.assertTrue(any(re.match(r"^%s\s+%s\s+\d+\s.*-> <%s>$" %
                                         (qid, state, re.escape(rcpt)), l)
                                for l in rows), "%s %s in\n%s" %
                            (rcpt, state, r.stdout))
        text = r.stdout
        self.assertIn("\nReceived: ", text)
        self.assertIn("Message-Id: %s\n" % msgid, text)
        self.assertNotIn("\r", text)
        self.assertLess(text.index("<mtadtest3@mx.test>"),
                        text.index("Received: "))

        # an unknown id: exit 1, and with -j still one JSON document
        r = d.ctl("show", "message", NO_SUCH_ID)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no such message", r.stdout + r.stderr)
        r = d.ctl("show", "message", NO_SUCH_ID, json_out=True)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        try:
            obj = json.loads(r.stdout)
        except ValueError:
            self.fail("mtactl -j show message %s: not JSON: %r" %
                      (NO_SUCH_ID, r.stdout))
        self.assertEqual(obj, {"ok": False, "message": "no such message"})


class QueueOps(MtadTestCase):

    def queued(self, d, msgid_tag, rcpts=("mtadtest1@mx.test",),
               sender=SENDER):
        msgid = new_msgid(msgid_tag)
        qid = mtadtest.smtp_send(d.port, sender, list(rcpts),
                                 make_message(msgid_tag, msgid))
        return qid, msgid

    def entries(self, d, qid):
        return [e for e in d.queue_json() if e["id"] == qid]

    def wait_deferred(self, d, qid):
        return mtadtest.wait_for(
            lambda: [e for e in self.entries(d, qid)
                     if e["state"] == "deferred"],
            what="%s deferred" % qid)

    def test_flush_id_domain_schedule(self):
        d = self.daemon(name="ctl-flushid", retry="queue retry min 1m max 1h")
        os.rmdir(d.mail)
        a, ma = self.queued(d, "fa", ["mtadtest1@mx.test"])
        b, mb = self.queued(d, "fb", ["mtadtest2@localhost"])
        c, mc = self.queued(d, "fc", ["mtadtest3@mx.test"])
        for q in (a, b, c):
            self.wait_deferred(d, q)
        os.mkdir(d.mail, 0o755)

        # flush DOMAIN: only the message with a recipient there
        r = d.ctl("flush", "localhost", json_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(jresult(r)["ok"], True)
        self.assertRegex(jresult(r)["message"], RESULT_RX % 1)
        d.wait_message("mtadtest2", mb)
        time.sleep(1)
        self.assertEqual(d.mbox("mtadtest1"), [])
        self.assertEqual(self.entries(d, a)[0]["attempts"], 1)

        # flush ID
        r = d.ctl("flush", a)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout.strip(), RESULT_RX % 1)
        d.wait_message("mtadtest1", ma)
        time.sleep(1)
        self.assertEqual(d.mbox("mtadtest3"), [])

        # schedule ID
        r = d.ctl("schedule", c)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout.strip(), RESULT_RX % 1)
        d.wait_message("mtadtest3", mc)
        d.wait_queue_empty()

        # gone now: no such message
        for args in (("flush", a), ("schedule", c)):
            with self.subTest(args=args):
                r = d.ctl(*args)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("no such message", r.stdout)
                r = d.ctl(*args, json_out=True)
                self.assertEqual(r.returncode, 1)
                self.assertEqual(jresult(r), {"ok": False,
                                              "message": "no such message"})

    def test_hold_release_survives_restart(self):
        d = self.daemon(name="ctl-hold")
        self.assertEqual(d.ctl("pause", "delivery").returncode, 0)
        qid, msgid = self.queued(d, "hold")
        r = d.ctl("hold", qid, json_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(jresult(r), {"ok": True,
                                      "message": "1 messages held"})
        self.assertEqual(d.ctl("resume", "delivery").returncode, 0)
        for args in (("flush",), ("flush", qid), ("schedule", qid)):
            r = d.ctl(*args)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        time.sleep(2)
        self.assertEqual(d.mbox("mtadtest1"), [], "a held message went out")
        self.assertEqual([e["state"] for e in self.entries(d, qid)],
                         ["held"])
        # holding again changes nothing
        r = d.ctl("hold", qid)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "0 messages held")

        # the state is on disk and survives a restart
        self.assertEqual(d.stop(), 0)
        with open(os.path.join(d.queue, "queue", qid + ".env")) as f:
            self.assertRegex(f.read(), r"(?m)^flags 1$")
        d.start()
        mtadtest.wait_for(lambda: self.entries(d, qid), what="%s loaded" %
                          qid)
        time.sleep(1.5)
        self.assertEqual([e["state"] for e in self.entries(d, qid)],
                         ["held"])
        r = d.ctl("show", "queue", "state", "held")
        self.assertIn(qid, r.stdout)
        self.assertEqual(d.mbox("mtadtest1"), [])

        r = d.ctl("release", qid)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "1 messages released")
        d.wait_message("mtadtest1", msgid)
        d.wait_queue_empty()

    def test_hold_all_release_all(self):
        d = self.daemon(name="ctl-holdall")
        self.assertEqual(d.ctl("pause", "delivery").returncode, 0)
        q1, m1 = self.queued(d, "ha1", ["mtadtest1@mx.test"])
        q2, m2 = self.queued(d, "ha2", ["mtadtest2@mx.test",
                                        "mtadtest3@mx.test"])
        r = d.ctl("hold", "all")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "2 messages held")
        self.assertEqual(d.ctl("resume", "delivery").returncode, 0)
        time.sleep(1.5)
        self.assertEqual(sorted(e["state"] for e in d.queue_json()),
                         ["held"] * 3)
        r = d.ctl("release", "all", json_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(jresult(r), {"ok": True,
                                      "message": "2 messages released"})
        d.wait_message("mtadtest1", m1)
        d.wait_message("mtadtest2", m2)
        d.wait_message("mtadtest3", m2)
        d.wait_queue_empty()
        r = d.ctl("release", "all")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "0 messages released")

    def test_remove(self):
        """Gone from the queue and the spool, without a notification."""
        d = self.daemon(name="ctl-remove")
        self.assertEqual(d.ctl("pause", "delivery").returncode, 0)
        q1, m1 = self.queued(d, "rm1")
        r = d.ctl("remove", q1)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "1 messages removed")
        self.assertEqual(d.queue_json(), [])
        self.assertEqual(mtadtest.spool_entries(d, "queue"), [])
        r = d.ctl("remove", q1)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("no such message", r.stdout)

        q2, m2 = self.queued(d, "rm2")
        q3, m3 = self.queued(d, "rm3", ["mtadtest1@mx.test",
                                        "mtadtest3@mx.test"])
        self.assertEqual(len(mtadtest.spool_entries(d, "queue")), 4)
        r = d.ctl("remove", "all", json_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(jresult(r), {"ok": True,
                                      "message": "2 messages removed"})
        self.assertEqual(d.queue_json(), [])
        self.assertEqual(mtadtest.spool_entries(d, "queue"), [])
        self.assertEqual(d.ctl("resume", "delivery").returncode, 0)
        time.sleep(2)
        self.assertEqual(os.listdir(d.mail), [],
                         "delivered or notified after remove")
        self.assertNotRegex(d.log(), r"notification")

    def test_malformed_ids(self):
        d = self.daemon(name="ctl-ids")
        bad = ("0123456789ABCDEF", "123", "0123456789abcdef0",
               "0123456789abcdeg", "../../etc/passwd", "", "ALL")
        for cmd in ("hold", "release", "remove", "schedule"):
            for ident in bad + (("all",) if cmd == "schedule" else ()):
                with self.subTest(cmd=cmd, id=ident):
                    for j in (False, True):
                        r = d.ctl(cmd, ident, json_out=j)
                        self.assertEqual(r.returncode, 2,
                                         r.stdout + r.stderr)
                        self.assertIn("not a queue id", r.stderr)
        for ident in bad + ("all",):
            with self.subTest(cmd="show message", id=ident):
                r = d.ctl("show", "message", ident)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        # well-formed but unknown: a failure, not a usage error
        for cmd in ("hold", "release", "remove", "schedule", "flush"):
            with self.subTest(cmd=cmd, id=NO_SUCH_ID):
                r = d.ctl(cmd, NO_SUCH_ID)
                self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
                self.assertIn("no such message", r.stdout)
        # other usage errors
        for args in (("pause",), ("pause", "everything"), ("resume", "x"),
                     ("log", "loud"), ("status", "now"), ("reload", "x"),
                     ("flush", "a", "b"), ("hold",)):
            with self.subTest(args=args):
                r = d.ctl(*args)
                self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
                self.assertIn("usage", r.stderr)
        self.assertTrue(d.running())


class Control(MtadTestCase):

    def status(self, d):
        r = d.ctl("status", json_out=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_status(self):
        d = self.daemon(name="ctl-status")
        mtadtest.wait_for(lambda: len(d.children()) >= 6,
                          what="six children")
        procs = self.status(d)
        names = sorted((p["process"], p["slot"]) for p in procs)
        self.assertEqual(names, sorted([
            ("master", 0), ("policy", 0), ("queue", 0), ("smtp-worker", 0),
            ("smtp-worker", 1), ("deliver-worker", 0),
            ("deliver-worker", 1)]))
        kids = set(d.children())
        for p in procs:
            self.assertEqual(set(p), {"process", "slot", "pid", "user",
                                      "started", "uptime", "restarts"})
            self.assertEqual(p["restarts"], 0, p)
            self.assertGreaterEqual(p["uptime"], 0)
            self.assertLess(p["uptime"], 60)
            if p["process"] == "master":
                self.assertEqual(p["pid"], d.pid)
                self.assertEqual(p["user"], "root")
            else:
                self.assertIn(p["pid"], kids, p)
                self.assertEqual(p["user"], CHILD_USERS[p["process"]])
                self.assertEqual(mtadtest.proc_title(p["pid"]),
                                 "mtad: %s%s" % (p["process"],
                                                 " #%d" % p["slot"] if
                                                 "worker" in p["process"]
                                                 else ""))

        r = d.ctl("status")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^PROCESS\s+SLOT\s+PID\s+USER\s+UPTIME"
                         r"\s+RESTARTS$")
        self.assertEqual(len(lines), 8, r.stdout)
        text = {}
        for line in lines[1:]:
            m = re.match(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\S+)\s+(\d+)s\s+(\d+)$",
                         line)
            self.assertTrue(m, "bad status line %r" % line)
            text[(m.group(1), int(m.group(2)))] = (int(m.group(3)),
                                                   m.group(4),
                                                   int(m.group(6)))
        self.assertEqual(text, {(p["process"], p["slot"]):
                                (p["pid"], p["user"], p["restarts"])
                                for p in procs})

        # kill -9 of a deliver-worker: a new pid, restarts 1
        [old] = [p["pid"] for p in procs
                 if (p["process"], p["slot"]) == ("deliver-worker", 0)]
        os.kill(old, signal.SIGKILL)

        def restarted():
            for p in self.status(d):
                if ((p["process"], p["slot"]) == ("deliver-worker", 0) and
                        p["pid"] not in (0, old) and p["restarts"] == 1):
                    return p
            return None
        p = mtadtest.wait_for(restarted, timeout=10,
                              what="deliver-worker #0 restarted")
        self.assertTrue(mtadtest.pid_alive(p["pid"]))
        self.assertLessEqual(p["uptime"], 5)
        others = {(q["process"], q["slot"]): q["restarts"]
                  for q in self.status(d)}
        del others[("deliver-worker", 0)]
        self.assertEqual(set(others.values()), {0}, others)
        # and it works
        msgid = new_msgid("status")
        mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                           make_message("status", msgid))
        d.wait_message("mtadtest1", msgid)

    def no_greeting(self, d, within=2.0):
        """A new connection gets no greeting within `within` seconds;
        returns the client (or None if the connect itself failed)."""
        try:
            c = SMTPClient(d.port, timeout=within)
        except OSError:
            return None
        self.addCleanup(c.close)
        try:
            r = c.read_reply(timeout=within)
        except (socket.timeout, TimeoutError):
            return c
        except (EOFError, ConnectionResetError):
            return None
        self.fail("greeted while smtp is paused: %s" % reply_text(r))

    def test_pause_smtp(self):
        d = self.daemon(name="ctl-psmtp")
        s1 = SMTPClient(d.port)
        self.addCleanup(s1.close)
        self.assertEqual(s1.greeting()[0], 220)
        self.assertReply(s1.cmd("EHLO client.test"), 250)

        r = d.ctl("pause", "smtp", json_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(jresult(r), {"ok": True, "message":
                                      "smtp paused: no new connections"})
        time.sleep(0.5)
        waiting = self.no_greeting(d)

        # the session in progress goes on
        msgid = new_msgid("paused")
        self.assertReply(s1.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(s1.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(s1.cmd("DATA"), 354)
        s1.send(mtadtest.dot_stuff(make_message("paused", msgid)) +
                b".\r\n")
        self.assertReply(s1.read_reply(), 250)
        self.assertReply(s1.cmd("QUIT"), 221)
        d.wait_message("mtadtest1", msgid)

        r = d.ctl("resume", "smtp")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "smtp resumed")
        if waiting is not None:
            # the client that waited is greeted now
            self.assertEqual(waiting.read_reply(timeout=5)[0], 220)
            waiting.close()
        msgid = new_msgid("resumed")
        mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                           make_message("resumed", msgid))
        d.wait_message("mtadtest1", msgid)

    def test_pause_smtp_kept_across_worker_restart(self):
        d = self.daemon(name="ctl-psmtp2")
        self.assertEqual(d.ctl("pause", "smtp").returncode, 0)
        time.sleep(0.5)
        for slot in (0, 1):
            title = "mtad: smtp-worker #%d" % slot
            [old] = d.pids_with_title(title)
            os.kill(old, signal.SIGKILL)
            mtadtest.wait_for(
                lambda: (lambda p: p and old not in p)(
                    d.pids_with_title(title)),
                what="a new %s" % title)
        time.sleep(1)
        waiting = self.no_greeting(d)
        self.assertEqual(d.ctl("resume", "smtp").returncode, 0)
        if waiting is not None:
            self.assertEqual(waiting.read_reply(timeout=5)[0], 220)
        with SMTPClient(d.port) as c:
            self.assertEqual(c.read_reply(timeout=5)[0], 220)

    def test_pause_delivery(self):
        d = self.daemon(name="ctl-pdlv")
        r = d.ctl("pause", "delivery")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "delivery paused")
        msgid = new_msgid("pdlv")
        qid = mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                                 make_message("pdlv", msgid))
        time.sleep(2)
        self.assertEqual(d.mbox("mtadtest1"), [])
        [e] = d.queue_json()
        self.assertEqual((e["id"], e["state"], e["attempts"]),
                         (qid, "queued", 0))
        # a flush does not override the pause
        self.assertEqual(d.ctl("flush").returncode, 0)
        # the pause is kept across a restart of the queue process
        [qpid] = d.pids_with_title("mtad: queue")
        os.kill(qpid, signal.SIGKILL)
        mtadtest.wait_for(lambda: (lambda p: p and qpid not in p)(
            d.pids_with_title("mtad: queue")), what="a new queue process")
        mtadtest.wait_for(lambda: d.ctl("show", "queue").returncode == 0,
                          what="the new queue to answer")
        time.sleep(2)
        self.assertEqual(d.mbox("mtadtest1"), [],
                         "delivered while paused (after a queue restart)")
        r = d.ctl("resume", "delivery", json_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(jresult(r), {"ok": True,
                                      "message": "delivery resumed"})
        d.wait_message("mtadtest1", msgid)
        d.wait_queue_empty()

    def rcpt_code(self, d, rcpt):
        with SMTPClient(d.port) as c:
            c.greeting()
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<%s>" % SENDER)
            return c.cmd("RCPT TO:<%s>" % rcpt)[0]

    def test_reload(self):
        d = self.daemon(name="ctl-reload")
        self.assertEqual(self.rcpt_code(d, "newname@mx.test"), 550)
        d.write_config(rules="""\
table aliases { newname = mtadtest1 }
action "local" mbox "{mail}/%u" alias <aliases>
match from local for local action "local"
""")
        r = d.ctl("reload", json_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(jresult(r), {"ok": True,
                                      "message": "configuration reloaded"})
        mtadtest.wait_for(lambda: self.rcpt_code(d, "newname@mx.test") ==
                          250, what="the new alias")
        # a broken configuration: refused, the running one stays
        with open(d.conf, "a") as f:
            f.write("frobnicate\n")

        def refused():
            r = d.ctl("reload")
            return r if r.returncode == 1 else None
        r = mtadtest.wait_for(refused, what="reload refused")
        self.assertIn("configuration has errors", r.stdout)
        time.sleep(1)
        self.assertEqual(self.rcpt_code(d, "newname@mx.test"), 250)
        self.assertTrue(d.running())

    def test_log_verbose_brief(self):
        """Debug lines appear in every process after `log verbose` (a new
        policy process, started by a reload, logs its account count at
        debug level), and no more after `log brief`."""
        d = self.daemon(name="ctl-log")
        rx = r"policy.*: \d+ local accounts"
        self.assertNotRegex(d.log(), rx)
        r = d.ctl("log", "verbose", json_out=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(jresult(r), {"ok": True,
                                      "message": "logging changed"})
        mark = d.log_mark()
        mtadtest.wait_for(lambda: d.ctl("reload").returncode == 0,
                          what="a reload")
        d.wait_log(rx, since=mark)
        r = d.ctl("log", "brief")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), "logging changed")
        time.sleep(1)
        mark = d.log_mark()
        mtadtest.wait_for(lambda: d.ctl("reload").returncode == 0,
                          what="a second reload")
        d.wait_log(r"started policy", since=mark)
        time.sleep(1)
        self.assertNotRegex(d.log()[mark:], rx)

    def test_retry_backoff(self):
        """retry min 2s max 4s: the delays are 2s, 4s, 4s...; once the cause
        is gone the next attempt delivers, without a flush."""
        d = self.daemon(name="ctl-backoff", retry="queue retry min 2s max 4s")
        os.rmdir(d.mail)
        msgid = new_msgid("backoff")
        qid = mtadtest.smtp_send(d.port, SENDER, ["mtadtest1@mx.test"],
                                 make_message("backoff", msgid))
        seen = {}       # attempts -> (next_attempt, when first seen)
        created = None
        deadline = time.monotonic() + 20
        while len(seen) < 4 and time.monotonic() < deadline:
            for e in d.queue_json():
                if e["id"] == qid and e["state"] == "deferred":
                    created = e["created"]
                    seen.setdefault(e["attempts"],
                                    (e["next_attempt"], time.time()))
            time.sleep(0.1)
        self.assertEqual(sorted(seen)[:4], [1, 2, 3, 4], seen)
        na = [seen[k][0] for k in (1, 2, 3, 4)]
        # the first attempt comes at once, then 2s, 4s, 4s (whole seconds)
        self.assertTrue(2 <= na[0] - created <= 3, (created, na))
        for delay, (a, b) in zip((4, 4, 4), zip(na, na[1:])):
            self.assertTrue(delay <= b - a <= delay + 1,
                            "next attempts %s: expected %ds between "
                            "attempts" % (na, delay))
        # an attempt is made when it is due, not much later
        for k in (2, 3, 4):
            self.assertLess(seen[k][1] - seen[k - 1][0], 2.5, seen)
        os.mkdir(d.mail, 0o755)
        t0 = time.time()
        d.wait_message("mtadtest1", msgid, timeout=8)
        self.assertLess(time.time() - t0, 6)
        d.wait_queue_empty()
