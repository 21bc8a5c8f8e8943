"""Crash test: kill -9 of every mtad process, several times, under a
load of thousands of messages being accepted and delivered.  Every message
that got a 250 is delivered, and none twice."""

import collections
import os
import random
import sys
import threading
import time

import mtadtest
from mtadtest import (MtadTestCase, SMTPClient, SMTPProtocolError,
                      dot_stuff, make_message, reply_text)

SENDER = "mtadtest2@mx.test"
USERS = ("mtadtest1", "mtadtest2", "mtadtest3")
NTHREADS = 4
PER_THREAD = 750
# Kill points, as fractions of the acknowledged messages: one random point
# in each band, so that every kill falls while the load runs.
KILL_BANDS = ((0.05, 0.14), (0.19, 0.28), (0.33, 0.42), (0.47, 0.56),
              (0.61, 0.70), (0.75, 0.84), (0.88, 0.95))
LOAD_DEADLINE = 60.0        # seconds for the whole load
DRAIN_TIMEOUT = 45.0


class Unexpected(Exception):
    """A reply other than the one wanted: the session is dropped."""


class Load:
    """NTHREADS clients, each with PER_THREAD messages to get acknowledged,
    many per session; they reconnect whenever the daemon goes away."""

    def __init__(self, port):
        self.port = port
        self.lock = threading.Lock()
        self.acked = {}             # Message-Id -> user
        self.unacked = []           # (Message-Id, user): DATA sent, no reply
        self.refused = []           # (Message-Id, reply): a non-250 reply
        self.sessions = 0
        self.errors = []
        self.stop = False
        self.deadline = time.monotonic() + LOAD_DEADLINE

    def nacked(self):
        with self.lock:
            return len(self.acked)

    def connect(self):
        while not self.stop and time.monotonic() < self.deadline:
            try:
                c = SMTPClient(self.port, timeout=15)
            except OSError:
                time.sleep(0.05)
                continue
            try:
                if c.read_reply()[0] == 220 and \
                        c.cmd("EHLO client.test")[0] == 250:
                    with self.lock:
                        self.sessions += 1
                    return c
            except (OSError, EOFError, SMTPProtocolError):
                pass
            c.close()
            time.sleep(0.05)
        return None

    @staticmethod
    def expect(c, line, code):
        r = c.cmd(line)
        if r[0] != code:
            raise Unexpected("%s: %s" % (line, reply_text(r)))

    def run(self, t):
        seq = 0
        done = 0
        try:
            while done < PER_THREAD:
                c = self.connect()
                if c is None:
                    self.errors.append("thread %d: no session before the "
                                       "deadline (%d acknowledged)" %
                                       (t, done))
                    return
                inflight = None
                try:
                    while done < PER_THREAD:
                        seq += 1
                        msgid = "<crash.%d.%d.%d@client.test>" % (
                            os.getpid(), t, seq)
                        user = USERS[(t + seq) % len(USERS)]
                        self.expect(c, "MAIL FROM:<%s>" % SENDER, 250)
                        self.expect(c, "RCPT TO:<%s@mx.test>" % user, 250)
                        self.expect(c, "DATA", 354)
                        inflight = (msgid, user)
                        c.send(dot_stuff(make_message(
                            "crash %d/%d" % (t, seq), msgid,
                            to="%s@mx.test" % user)) + b".\r\n")
                        r = c.read_reply()
                        inflight = None
                        if r[0] == 250:
                            with self.lock:
                                self.acked[msgid] = user
                            done += 1
                        else:
                            with self.lock:
                                self.refused.append((msgid,
                                                     reply_text(r)))
                            raise Unexpected(reply_text(r))
                except (OSError, EOFError, SMTPProtocolError, Unexpected):
                    if inflight is not None:
                        with self.lock:
                            self.unacked.append(inflight)
                finally:
                    c.close()
        except Exception as e:          # reported by the main thread
            self.errors.append("thread %d: %r" % (t, e))


class Crash(MtadTestCase):

    @staticmethod
    def restart(d):
        """d.start(); while the port is down another process on the machine
        may take it for a moment (a client's ephemeral port, another test
        run): try again then.  Returns how many times that happened."""
        for clash in range(20):
            mark = d.log_mark()
            try:
                d.start()
                return clash
            except AssertionError:
                if "Address already in use" not in d.log()[mark:]:
                    raise
                time.sleep(0.25)
        raise AssertionError("port %d stayed in use" % d.port)

    def test_kill_9_under_load(self):
        d = self.daemon(name="crash")
        load = Load(d.port)
        rnd = random.Random()
        seed = rnd.randrange(1 << 30)
        rnd.seed(seed)
        total = NTHREADS * PER_THREAD
        points = [int(total * rnd.uniform(lo, hi)) for lo, hi in KILL_BANDS]
        t0 = time.monotonic()
        threads = [threading.Thread(target=load.run, args=(t,), daemon=True)
                   for t in range(NTHREADS)]
        for th in threads:
            th.start()

        kills = []
        port_clashes = 0
        try:
            for p in points:
                while load.nacked() < p and \
                        any(th.is_alive() for th in threads):
                    if time.monotonic() - t0 > LOAD_DEADLINE:
                        break
                    time.sleep(0.01)
                if not any(th.is_alive() for th in threads):
                    break
                time.sleep(rnd.uniform(0, 0.2))
                kills.append((load.nacked(), round(time.monotonic() - t0,
                                                   2)))
                d.kill_all()
                time.sleep(rnd.uniform(0.05, 0.5))
                port_clashes += self.restart(d)
            for th in threads:
                th.join(max(1.0, LOAD_DEADLINE - (time.monotonic() - t0)))
        finally:
            load.stop = True
        t_load = time.monotonic() - t0
        self.assertEqual(load.errors, [])
        self.assertFalse(any(th.is_alive() for th in threads),
                         "the load did not finish")
        self.assertGreaterEqual(len(kills), 3, "kills: %s" % kills)

        try:
            d.wait_queue_empty(timeout=DRAIN_TIMEOUT)
            stuck = []
        except mtadtest.Timeout:
            stuck = d.queue_json()
        t_all = time.monotonic() - t0
        # dot-locks, with their size: a killed delivery may leave one
        locks = sorted("%s (%d bytes)" % (n, os.path.getsize(
            os.path.join(d.mail, n))) for n in os.listdir(d.mail)
            if n.endswith(".lock"))

        counts = collections.Counter()
        where = collections.defaultdict(set)
        for u in USERS:
            for m in d.mbox(u):
                mid = m.message_id
                if mid and mid.startswith("<crash."):
                    counts[mid] += 1
                    where[mid].add(u)
        acked = dict(load.acked)
        missing = sorted(m for m in acked if counts[m] == 0)
        wrong_box = sorted(m for m in acked
                           if counts[m] and where[m] != {acked[m]})
        dups = {m: n for m, n in counts.items() if n > 1}
        unacked_delivered = sum(1 for m, _ in load.unacked if counts[m])
        corrupt = mtadtest.spool_entries(d, "corrupt")
        sys.stderr.write(
            "crash test (seed %d): %d acknowledged in %d sessions, %d kill -9"
            " at (acked, s) %s; %d without a reply (%d of them delivered), "
            "%d refused; delivered %d distinct, %d missing, %d duplicated; "
            "%d files in corrupt/; load %.1fs, %s at %.1fs; %d restarts "
            "retried (port taken)\n" %
            (seed, len(acked), load.sessions, len(kills), kills,
             len(load.unacked), unacked_delivered, len(load.refused),
             len(counts), len(missing), len(dups), len(corrupt), t_load,
             "drained" if not stuck else "%d recipients still queued" %
             len(stuck), t_all, port_clashes))
        if stuck:
            errors = collections.Counter(e["last_error"] for e in stuck)
            rcpts = collections.Counter(e["recipient"] for e in stuck)
            self.fail("the queue did not drain within %ds after the load: "
                      "%d recipients left (%s), dot-locks %s, last errors "
                      "%s" % (DRAIN_TIMEOUT, len(stuck), dict(rcpts), locks,
                              errors.most_common(3)))
        self.assertEqual(len(acked), total)
        self.assertEqual(missing, [], "acknowledged but not delivered")
        self.assertEqual(wrong_box, [])
        self.assertEqual(dups, {}, "delivered more than once")
        self.assertEqual(locks, [], "dot-locks left behind")
        # nothing came back to the sender as a notification
        self.assertEqual([m for m in d.mbox("mtadtest2")
                          if mtadtest.is_dsn(m)], [])
