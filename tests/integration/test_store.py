"""The MongoDB mail store (doc/store.md) against FerretDB, read back with
pymongo: documents, GridFS, charsets decoded in the chrooted worker, uids,
quotas, tables in MongoDB, AUTH, crash and outage recovery, mtactl.

FerretDB comes from scripts/install-ferretdb.sh (or $MTAD_FERRETDB); when
it is missing every test here fails and says so.
"""

import base64
import json
import os
import re
import subprocess
import time

import mtadtest
from mtadtest import (HOSTNAME, MtadTestCase, SMTPClient, make_message,
                      new_msgid, reply_text, smtp_send, wait_for)
import ferretdb

import gridfs

SENDER = "sender@client.test"
STORE_TIMEOUT = 20.0

# {uri} is the database of the class.
STORE = """\
store mongo "{uri}"
store inline-max 4K
"""

RULES = """\
table storedomains mongo:domains
table storeusers mongo:users
table storealiases mongo:aliases
action "store" mongo alias <storealiases> users <storeusers>
match from any for domain <storedomains> action "store"
"""

USERS = ("alice", "bob", "carol", "dave", "uid", "full", "small", "crash",
         "multi1", "multi2", "multi3", "authuser", "viewer")


def addr(user):
    return "%s@store.test" % user


class StoreCase(MtadTestCase):
    """A FerretDB and an mtad for the class; self.db is the database."""

    RULES = RULES
    EXTRA = ""
    RETRY = "queue retry min 1s max 2s"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fdb = ferretdb.FerretDB(mtadtest.base_dir())
        try:
            cls.fdb.start()
            cls.dbname = "mtad_%s_%d" % (cls.__name__.lower(), os.getpid())
            cls.uri = cls.fdb.uri + cls.dbname
            cls.client = cls.fdb.client()
            cls.db = cls.client[cls.dbname]
            cls.seed()
            cls.mtad = mtadtest.Daemon(
                rules=cls.RULES,
                extra=(STORE + cls.EXTRA).replace("{uri}", cls.uri),
                retry=cls.RETRY,
                name=cls.__name__.lower())
            cls.mtad.start()
        except BaseException:
            cls.teardown_all()
            raise

    @classmethod
    def teardown_all(cls):
        if getattr(cls, "mtad", None) is not None:
            cls.mtad.cleanup()
        if getattr(cls, "client", None) is not None:
            cls.client.close()
        cls.fdb.cleanup()

    @classmethod
    def tearDownClass(cls):
        cls.teardown_all()

    @classmethod
    def seed(cls):
        cls.db.domains.insert_one({"_id": "store.test"})
        cls.db.users.insert_many([{"_id": addr(u)} for u in USERS])
        cls.db.aliases.insert_one({"_id": addr("team"),
                                   "value": "%s, %s" % (addr("alice"),
                                                        addr("bob"))})

    def setUp(self):
        if self.mtad not in mtadtest.CURRENT_DAEMONS:
            mtadtest.CURRENT_DAEMONS.append(self.mtad)

    # -- helpers --

    def wait_doc(self, filt, count=1, timeout=STORE_TIMEOUT):
        def found():
            docs = list(self.db.messages.find(filt))
            return docs if len(docs) >= count else None
        return wait_for(found, timeout, interval=0.1,
                        what="%d document(s) matching %r" % (count, filt))

    def wait_msgid(self, msgid, mailbox, timeout=STORE_TIMEOUT):
        [d] = self.wait_doc({"mailbox": mailbox,
                             "headers.message_id": msgid.strip("<>")},
                            timeout=timeout)
        return d

    def send(self, rcpts, msg):
        return smtp_send(self.mtad.port, SENDER, rcpts, msg)

    def rcpt_reply(self, rcpt):
        with SMTPClient(self.mtad.port) as c:
            c.greeting()
            c.cmd("EHLO client.test")
            r = c.cmd("MAIL FROM:<%s>" % SENDER)
            self.assertEqual(r[0], 250, reply_text(r))
            return c.cmd("RCPT TO:<%s>" % rcpt)

    def assertRawIsSpool(self, raw, msg, qid):
        """raw is the message as sent, after mtad's own Received field."""
        self.assertTrue(raw.endswith(msg), "raw does not end with the "
                        "message as sent")
        head = raw[:len(raw) - len(msg)]
        self.assertRegex(head.decode(), r"^Received: from client\.test "
                         r"\(\[127\.0\.0\.1\]\)\r\n\tby %s \(mtad\) with "
                         r"E?SMTP\w* id %s[^\r]*\r\n(\t[^\r]*\r\n)*$" %
                         (re.escape(HOSTNAME), qid))


class StoreDocuments(StoreCase):

    def test_plain_message(self):
        msgid = new_msgid("plain")
        msg = make_message("Plain one", msgid, body="Line 1\r\nLine 2\r\n",
                           to=addr("alice"),
                           headers=("Cc: Carol <%s>" % addr("carol"),))
        t0 = time.time()
        qid = self.send([addr("alice")], msg)
        d = self.wait_msgid(msgid, addr("alice"))
        self.assertEqual(d["_id"], "%s:%s" % (qid, addr("alice")))
        self.assertEqual(d["queue_id"], qid)
        self.assertIsInstance(d["uid"], int)
        self.assertGreaterEqual(d["uid"], 1)
        self.assertLess(abs(d["received_at"].timestamp() - t0), 60)
        env = d["envelope"]
        self.assertEqual(env["from"], SENDER)
        self.assertEqual(env["rcpt"], addr("alice"))
        self.assertEqual(env["helo"], "client.test")
        self.assertEqual(env["client_ip"], "127.0.0.1")
        self.assertEqual(env["auth_user"], "")
        self.assertIs(env["tls"], False)
        h = d["headers"]
        self.assertEqual(h["subject"], "Plain one")
        self.assertEqual(h["from"], [{"name": "", "address": SENDER}])
        self.assertEqual(h["to"], [{"name": "", "address": addr("alice")}])
        self.assertEqual(h["cc"], [{"name": "Carol",
                                    "address": addr("carol")}])
        self.assertEqual(h["message_id"], msgid.strip("<>"))
        self.assertEqual(h["date"].isoformat(), "2026-11-23T12:00:00")
        self.assertEqual(d["text"], "Line 1\r\nLine 2\r\n")
        self.assertIsNone(d["html"])
        self.assertEqual(d["attachments"], [])
        self.assertEqual(d["flags"], [])
        names = [x["name"] for x in d["header_list"]]
        self.assertEqual(names[0], "Received")
        self.assertIn("Subject", names)
        # the raw message inline (small), byte for byte
        self.assertIsInstance(d["raw"], bytes)
        self.assertRawIsSpool(d["raw"], msg, qid)
        self.assertEqual(d["size"], len(d["raw"]))
        box = self.db.mailboxes.find_one({"_id": addr("alice")})
        self.assertGreaterEqual(box["usage"], d["size"])
        self.assertGreater(box["uidnext"], d["uid"])

    def test_multipart_and_attachment(self):
        msgid = new_msgid("mp")
        blob = os.urandom(70000) + b"\x00\xff" * 1000
        b64 = base64.encodebytes(blob).replace(b"\n", b"\r\n")
        body = (b"This is MIME.\r\n"
                b"--outer\r\n"
                b"Content-Type: multipart/alternative; boundary=inner\r\n"
                b"\r\n"
                b"--inner\r\n"
                b"Content-Type: text/plain; charset=iso-8859-1\r\n"
                b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
                b"Voil=E0 le fichier.\r\n"
                b"--inner\r\n"
                b"Content-Type: text/html; charset=utf-8\r\n\r\n"
                b"<p>Voil\xc3\xa0</p>\r\n"
                b"--inner--\r\n"
                b"--outer\r\n"
                b"Content-Type: application/octet-stream\r\n"
                b"Content-Disposition: attachment; "
                b"filename=\"=?UTF-8?Q?donn=C3=A9es?=.bin\"\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n" + b64 +
                b"--outer--\r\n")
        msg = make_message("Multipart", msgid, to=addr("bob"),
                           headers=("MIME-Version: 1.0",
                                    "Content-Type: multipart/mixed; "
                                    "boundary=outer")).replace(
            b"Hello.\r\n", b"") + body
        qid = self.send([addr("bob")], msg)
        d = self.wait_msgid(msgid, addr("bob"))
        self.assertEqual(d["text"], "Voilà le fichier.")
        self.assertEqual(d["html"], "<p>Voilà</p>")
        [a] = d["attachments"]
        self.assertEqual(a["filename"], "données.bin")
        self.assertEqual(a["content_type"], "application/octet-stream")
        self.assertEqual(a["size"], len(blob))
        att = gridfs.GridFSBucket(self.db, "attachments")
        self.assertEqual(att.open_download_stream(a["gridfs_id"]).read(),
                         blob)
        # larger than inline-max (4K): the raw message is in GridFS
        self.assertIsNone(d["raw"])
        raw = gridfs.GridFSBucket(self.db, "raw").open_download_stream(
            d["raw_gridfs_id"]).read()
        self.assertRawIsSpool(raw, msg, qid)
        self.assertEqual(d["size"], len(raw))

    def test_charsets_in_the_sandbox(self):
        # decoded by the chrooted, seccomp-confined deliver-worker
        cases = [
            ("ISO-8859-1", "Café crème"),
            ("ISO-8859-15", "Prix: 5 €"),
            ("KOI8-R", "Привет мир"),
            ("windows-1252", "“Smart” quotes – dash"),
            ("ISO-2022-JP", "日本語の件名"),
            ("GB2312", "中文主题"),
            ("GBK", "中文主題测试"),
            ("Shift_JIS", "テスト件名"),
            ("UTF-8", "Ünïcödé ✓"),
        ]
        sent = []
        for cs, text in cases:
            msgid = new_msgid("cs")
            enc = "=?%s?B?%s?=" % (cs, base64.b64encode(
                text.encode(cs)).decode())
            body = ("Тело письма\r\n").encode("koi8-r")
            msg = make_message(enc, msgid, to=addr("carol"),
                               headers=("Content-Type: text/plain; "
                                        "charset=koi8-r",))
            msg = msg.replace(b"Hello.\r\n", body)
            self.send([addr("carol")], msg)
            sent.append((msgid, cs, text))
        for msgid, cs, text in sent:
            d = self.wait_msgid(msgid, addr("carol"))
            self.assertEqual(d["headers"]["subject"], text,
                             "subject in %s" % cs)
            self.assertEqual(d["text"], "Тело письма\r\n",
                             "koi8-r body (subject in %s)" % cs)

    def test_uid_sequence(self):
        mailbox = addr("uid")
        ids = []
        for i in range(6):
            msgid = new_msgid("uid%d" % i)
            self.send([mailbox], make_message("uid %d" % i, msgid,
                                              to=mailbox))
            ids.append(msgid)
            # one at a time: the order of the uids is the order of arrival
            self.wait_msgid(msgid, mailbox)
        docs = {d["headers"]["message_id"]: d["uid"]
                for d in self.db.messages.find({"mailbox": mailbox})}
        self.assertEqual([docs[m.strip("<>")] for m in ids],
                         [1, 2, 3, 4, 5, 6])
        box = self.db.mailboxes.find_one({"_id": mailbox})
        self.assertEqual(box["uidnext"], 7)
        self.assertEqual(box["messages"], 6)

    def test_one_message_several_mailboxes(self):
        msgid = new_msgid("multi")
        rcpts = [addr("multi1"), addr("multi2"), addr("multi3")]
        qid = self.send(rcpts, make_message("to three", msgid,
                                            to=rcpts[0]))
        docs = self.wait_doc({"headers.message_id": msgid.strip("<>")},
                             count=3)
        self.assertEqual(sorted(d["_id"] for d in docs),
                         sorted("%s:%s" % (qid, r) for r in rcpts))
        self.assertEqual(len({d["raw"] for d in docs}), 1)

    def test_alias_in_mongo(self):
        msgid = new_msgid("alias")
        self.send([addr("team")], make_message("to the team", msgid,
                                               to=addr("team")))
        for u in ("alice", "bob"):
            d = self.wait_msgid(msgid, addr(u))
            self.assertEqual(d["envelope"]["orig_rcpt"], addr("team"))

    def test_recipient_validation_in_mongo(self):
        r = self.rcpt_reply(addr("nobody"))
        self.assertReply(r, 550, "5.1.1")
        r = self.rcpt_reply("someone@not-ours.test")
        self.assertEqual(r[0] // 100, 5, reply_text(r))
        # a user added to the collection is valid at once
        self.db.users.insert_one({"_id": addr("newcomer")})
        self.assertReply(self.rcpt_reply(addr("newcomer")), 250)
        self.assertReply(self.rcpt_reply(addr("NewComer").upper()), 250)

    def test_quota_refused_at_rcpt(self):
        self.db.mailboxes.insert_one({"_id": addr("full"), "uidnext": 1,
                                      "quota": 1000, "usage": 1000,
                                      "messages": 1})
        self.assertReply(self.rcpt_reply(addr("full")), 452, "4.2.2")
        self.assertReply(self.rcpt_reply(addr("alice")), 250)

    def test_quota_rechecked_at_delivery(self):
        # room at RCPT time, not for this message: deferred, 4.2.2
        self.db.mailboxes.insert_one({"_id": addr("small"), "uidnext": 1,
                                      "quota": 2000, "usage": 100,
                                      "messages": 0})
        mark = self.mtad.log_mark()
        msgid = new_msgid("big")
        qid = self.send([addr("small")], make_message(
            "too big", msgid, to=addr("small"), body="x" * 3000 + "\r\n"))
        self.mtad.wait_log(r"%s: to=<%s>, store=mongo, status=deferred "
                           r"\(4\.2\.2 mailbox full" %
                           (qid, re.escape(addr("small"))), since=mark,
                           timeout=STORE_TIMEOUT)
        self.assertEqual(self.db.messages.count_documents(
            {"mailbox": addr("small")}), 0)
        # room made: the retry files it, once
        self.db.mailboxes.update_one({"_id": addr("small")},
                                     {"$set": {"quota": 0}})
        d = self.wait_msgid(msgid, addr("small"))
        self.mtad.wait_queue_empty(timeout=STORE_TIMEOUT)
        self.assertEqual(self.db.messages.count_documents(
            {"mailbox": addr("small")}), 1)
        # the deferred attempts gave back the room they had reserved
        box = self.db.mailboxes.find_one({"_id": addr("small")})
        self.assertEqual(box["usage"], 100 + d["size"])
        self.assertEqual(box["messages"], 1)

    def test_indexes(self):
        self.send([addr("dave")], make_message("idx", new_msgid("idx"),
                                               to=addr("dave")))
        self.wait_doc({"mailbox": addr("dave")})
        idx = self.db.messages.index_information()
        keys = {tuple(v["key"]): v for v in idx.values()}
        self.assertIn((("mailbox", 1), ("uid", 1)), keys)
        self.assertTrue(keys[(("mailbox", 1), ("uid", 1))].get("unique"))
        self.assertIn((("mailbox", 1), ("received_at", -1)), keys)
        self.assertIn((("headers.message_id", 1),), keys)

    def test_mtactl_show_mailbox(self):
        mailbox = addr("viewer")
        subjects = ["first", "second", "Ünïcödé \x1b[31mred"]
        for s in subjects:
            msgid = new_msgid("view")
            self.send([mailbox], make_message(s, msgid, to=mailbox))
            self.wait_msgid(msgid, mailbox)
        base = [mtadtest.MTACTL, "-f", self.mtad.conf]
        r = mtadtest._run(base + ["-j", "show", "mailbox", mailbox],
                          check=False, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        j = json.loads(r.stdout)
        self.assertEqual(j["mailbox"], mailbox)
        self.assertEqual(j["messages"], 3)
        self.assertEqual(j["uidnext"], 4)
        self.assertEqual([m["uid"] for m in j["list"]], [3, 2, 1])
        self.assertEqual([m["subject"] for m in j["list"]],
                         list(reversed(subjects)))
        self.assertEqual(j["list"][0]["from"], SENDER)
        r = mtadtest._run(base + ["show", "mailbox", mailbox.upper(),
                                  "limit", "2"], check=False, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertRegex(lines[0], r"^mailbox %s: 3 messages, \d+ bytes" %
                         re.escape(mailbox))
        self.assertEqual(len(lines), 4, r.stdout)   # header, titles, 2 rows
        self.assertIn("second", lines[3])
        self.assertNotIn("\x1b", r.stdout)         # no terminal escapes
        r = mtadtest._run(base + ["show", "mailbox", addr("nosuch")],
                          check=False, timeout=30)
        self.assertEqual(r.returncode, 1)
        self.assertIn("no mailbox", r.stderr)


class StoreRecovery(StoreCase):
    """Crashes and outages: nothing lost, nothing filed twice."""

    def test_redelivery_finds_its_document(self):
        # As after a crash between the insert and the report: the
        # document of one recipient is there when the batch comes.
        self.assertEqual(self.mtad.ctl("pause", "delivery").returncode, 0)
        try:
            msgid = new_msgid("redo")
            qid = self.send([addr("alice"), addr("bob")],
                            make_message("redo", msgid, to=addr("alice")))
            self.db.messages.insert_one({
                "_id": "%s:%s" % (qid, addr("alice")),
                "mailbox": addr("alice"), "uid": 900, "marker": True,
                "headers": {"message_id": msgid.strip("<>")}})
        finally:
            self.mtad.ctl("resume", "delivery")
        self.wait_msgid(msgid, addr("bob"))
        self.mtad.wait_queue_empty(timeout=STORE_TIMEOUT)
        [a] = list(self.db.messages.find(
            {"mailbox": addr("alice"),
             "headers.message_id": msgid.strip("<>")}))
        self.assertTrue(a.get("marker"), "alice's document was replaced")
        self.assertEqual(a["uid"], 900)

    def test_kill9_during_delivery_no_duplicate(self):
        """kill -9 of every mtad process while mail is being filed, a few
        times at different moments; after a restart each message is in each
        of its mailboxes exactly once."""
        rcpts = [addr("crash"), addr("multi1"), addr("multi2")]
        msgids = []
        blob = base64.encodebytes(os.urandom(200000)).replace(b"\n", b"\r\n")
        for round_ in range(4):
            self.assertEqual(self.mtad.ctl("pause", "delivery").returncode,
                             0)
            try:
                for i in range(5):
                    msgid = new_msgid("k%d.%d" % (round_, i))
                    msg = make_message("crash %d.%d" % (round_, i), msgid,
                                       to=rcpts[0],
                                       headers=("Content-Type: "
                                                "application/octet-stream",
                                                "Content-Transfer-Encoding: "
                                                "base64"))
                    self.send(rcpts, msg.replace(b"Hello.\r\n", blob))
                    msgids.append(msgid.strip("<>"))
                before = self.db.messages.count_documents({})
            finally:
                self.mtad.ctl("resume", "delivery")
            # kill as soon as filing has begun, later in each round
            wait_for(lambda: self.db.messages.count_documents({}) > before,
                     STORE_TIMEOUT, interval=0.005,
                     what="filing to begin")
            time.sleep(0.02 * round_)
            master = self.mtad.pid
            self.mtad.kill_all()
            # libmongoc's statistics segment of the master, which only
            # its exit handler would have removed
            try:
                os.unlink("/dev/shm/mongoc-%d" % master)
            except FileNotFoundError:
                pass
            self.mtad.start()
        self.mtad.wait_queue_empty(timeout=60)
        for m in msgids:
            docs = list(self.db.messages.find({"headers.message_id": m},
                                              {"mailbox": 1, "uid": 1}))
            self.assertEqual(sorted(d["mailbox"] for d in docs),
                             sorted(rcpts), "copies of %s" % m)
        for r in rcpts:
            uids = [d["uid"] for d in self.db.messages.find({"mailbox": r})]
            self.assertEqual(len(uids), len(set(uids)), "uids of %s" % r)

    def test_database_outage_defers_then_delivers(self):
        self.assertEqual(self.mtad.ctl("pause", "delivery").returncode, 0)
        msgid = new_msgid("outage")
        try:
            qid = self.send([addr("dave")], make_message(
                "outage", msgid, to=addr("dave")))
            mark = self.mtad.log_mark()
            self.fdb.stop()
        finally:
            self.mtad.ctl("resume", "delivery")
        try:
            self.mtad.wait_log(r"%s: to=<%s>, store=mongo, status=deferred "
                               r"\(4\.4\.1 store unreachable: " %
                               (qid, re.escape(addr("dave"))), since=mark,
                               timeout=STORE_TIMEOUT)
            # while the store is down, RCPT is deferred too, not refused
            r = self.rcpt_reply(addr("dave"))
            self.assertReply(r, 451, "4.3.0")
            # still queued, retried with backoff
            q = [e for e in self.mtad.queue_json() if e["id"] == qid]
            self.assertEqual(len(q), 1, q)
            self.assertIn("4.4.1", q[0]["last_error"])
        finally:
            self.fdb.start()
        d = self.wait_msgid(msgid, addr("dave"), timeout=30)
        self.assertEqual(d["queue_id"], qid)
        self.mtad.wait_queue_empty(timeout=STORE_TIMEOUT)
        self.assertEqual(self.db.messages.count_documents(
            {"headers.message_id": msgid.strip("<>")}), 1)
        # policy's client retries a failed server after a 5 s cooldown
        wait_for(lambda: self.rcpt_reply(addr("dave"))[0] == 250, 15,
                 interval=0.5, what="RCPT accepted again")


class StoreAuth(StoreCase):
    """AUTH PLAIN against credentials kept in MongoDB."""

    EXTRA = ("table creds mongo:credentials\n"
             "listen on 127.0.0.1 port {authport} auth <creds> "
             "auth-plaintext\n")

    @classmethod
    def setUpClass(cls):
        cls.authport = mtadtest.free_port()
        cls.EXTRA = StoreAuth.EXTRA.replace("{authport}", str(cls.authport))
        super().setUpClass()

    @classmethod
    def seed(cls):
        super().seed()
        r = subprocess.run(["openssl", "passwd", "-6", "s3cret"],
                           check=True, stdout=subprocess.PIPE, text=True)
        cls.db.credentials.insert_one({"_id": addr("authuser"),
                                       "value": r.stdout.strip()})

    def auth(self, user, password):
        token = base64.b64encode(("\0%s\0%s" % (user, password)).encode())
        c = SMTPClient(self.authport)
        c.greeting()
        r = c.cmd("EHLO client.test")
        self.assertEqual(r[0], 250, reply_text(r))
        self.assertTrue(any(x.upper().startswith("AUTH") and "PLAIN" in x
                            for x in r[1]), reply_text(r))
        return c, c.cmd("AUTH PLAIN " + token.decode())

    def test_auth_plain_with_mongo_credentials(self):
        c, r = self.auth(addr("authuser"), "wrong")
        c.close()
        self.assertReply(r, 535)
        c, r = self.auth(addr("authuser"), "s3cret")
        with c:
            self.assertReply(r, 235)
            msgid = new_msgid("auth")
            self.assertEqual(c.cmd("MAIL FROM:<%s>" % addr("authuser"))[0],
                             250)
            self.assertEqual(c.cmd("RCPT TO:<%s>" % addr("bob"))[0], 250)
            self.assertEqual(c.cmd("DATA")[0], 354)
            c.send(mtadtest.dot_stuff(make_message("authed", msgid,
                                                   to=addr("bob"))) +
                   b".\r\n")
            self.assertEqual(c.read_reply()[0], 250)
        d = self.wait_msgid(msgid, addr("bob"))
        self.assertEqual(d["envelope"]["auth_user"], addr("authuser"))
