#!/usr/bin/python3
"""The store benchmark: mtad's store deliveries per second beside the raw
insert rate of the same documents with libmongoc (rawinsert.c).

1. mtad (from MTAD_BUILDDIR) with `store mongo`, delivery paused, takes N
   messages over SMTP;
2. delivery resumes: the time until the N documents are in `messages` is
   the store rate (parse, GridFS when large, uid, insert, usage: the
   whole delivery path, queue included);
3. rawinsert reads those documents back and inserts them again, one by
   one, with the same indexes and write concern: the raw rate.

The ratio store/raw is the figure: how much of the database's insert
rate the delivery path keeps.  Run as root (mtad needs its accounts), by
bench/store/run.sh.  Loopback only; FerretDB (SQLite backend, telemetry
off) unless --uri names another server.
"""

import argparse
import os
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(SRCDIR, "tests", "integration"))
sys.dont_write_bytecode = True

import mtadtest  # noqa: E402
import ferretdb  # noqa: E402

RULES = """\
action "store" mongo
match from any for domain "bench.test" action "store"
"""


def message(i, size):
    body = ("Benchmark line %d, padding the body to size.\r\n" % i) * \
        max(1, size // 48)
    return ("From: Bench <bench@client.test>\r\n"
            "To: <user%d@bench.test>\r\n"
            "Subject: =?UTF-8?Q?Benchmark_=C3=A9_%d?=\r\n"
            "Message-Id: <bench.%d.%d@client.test>\r\n"
            "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            "\r\n" % (i % 50, i, os.getpid(), i) + body).encode()


def send_all(port, n, rcpts, size, conns):
    """n messages over conns parallel sessions, rcpts recipients each."""
    errors = []

    def worker(k):
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
                for i in range(k, n, conns):
                    to = ["user%d@bench.test" % ((i + j) % 50)
                          for j in range(rcpts)]
                    s.sendmail("bench@client.test", to, message(i, size))
        except Exception as e:      # reported below
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,))
               for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit("bench: sending failed: %r" % errors[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000)
    ap.add_argument("--rcpts", type=int, default=1,
                    help="recipients per message (one batch, one insertMany)")
    ap.add_argument("--size", type=int, default=4096, help="body bytes")
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--uri", help="a MongoDB server to use instead of "
                    "starting FerretDB (mongodb://127.0.0.1:PORT/)")
    ap.add_argument("--rawinsert", default=os.path.join(HERE, "rawinsert"))
    args = ap.parse_args()

    # The daemon's accounts, not the suite's test users: an integration
    # run may be using those.
    r = subprocess.run(["/bin/sh", os.path.join(SRCDIR, "scripts",
                                                "create-users.sh")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        raise SystemExit("bench: create-users.sh failed: " + r.stdout)
    base = tempfile.mkdtemp(prefix="mtad-bench-store-")
    os.chmod(base, 0o755)
    mtadtest._suite.update(ready=True, base=base)
    fdb = None
    mtad = None
    try:
        if args.uri:
            uri = args.uri.rstrip("/") + "/"
            server = uri
        else:
            fdb = ferretdb.FerretDB(mtadtest.base_dir()).start()
            uri = fdb.uri
            server = "FerretDB %s (SQLite)" % ferretdb.VERSION
        db = "mtadbench_%d" % os.getpid()
        mtad = mtadtest.Daemon(rules=RULES, name="storebench",
                               extra='store mongo "%s%s"\n' % (uri, db))
        mtad.start()
        import pymongo
        client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
        coll = client[db].messages
        total = args.messages * args.rcpts

        if mtad.ctl("pause", "delivery").returncode != 0:
            raise SystemExit("bench: mtactl pause delivery failed")
        t0 = time.monotonic()
        send_all(mtad.port, args.messages, args.rcpts, args.size, args.conns)
        t_accept = time.monotonic() - t0
        # Done when the queue is empty: every recipient filed and
        # reported.  Polled through mtactl, not the database, so that the
        # measurement takes nothing from the server being measured.
        t0 = time.monotonic()
        mtad.ctl("resume", "delivery")
        mtad.wait_queue_empty(timeout=600)
        t_store = time.monotonic() - t0
        stored = coll.count_documents({})
        if stored != total:
            raise SystemExit("bench: %d documents, expected %d" %
                             (stored, total))
        store_rate = total / t_store

        r = subprocess.run([args.rawinsert, uri, db, db + "_raw"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
        if r.returncode != 0:
            raise SystemExit("bench: rawinsert failed: " + r.stderr)
        _, n, secs, raw_rate = r.stdout.split()
        raw_rate = float(raw_rate)
        client.drop_database(db)
        client.drop_database(db + "_raw")

        print("server: %s" % server)
        print("messages: %d x %d recipient(s), body %d bytes, %d SMTP "
              "sessions" % (args.messages, args.rcpts, args.size,
                            args.conns))
        print("accepted (SMTP, not part of the figure): %.1f msg/s" %
              (args.messages / t_accept))
        print("store deliveries: %d in %.2f s = %.1f /s" %
              (total, t_store, store_rate))
        print("raw inserts (libmongoc, same documents): %s in %s s = "
              "%.1f /s" % (n, secs, raw_rate))
        print("ratio store/raw: %.2f" % (store_rate / raw_rate))
    finally:
        if mtad is not None:
            mtad.cleanup()
        if fdb is not None:
            fdb.cleanup()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
