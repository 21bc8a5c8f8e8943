"""2. Local delivery end to end: smtplib and swaks, users, aliases, maildir."""

import os
import re
import smtplib
import subprocess

import mtadtest
from mtadtest import HOSTNAME, SharedDaemonCase, make_message, new_msgid

RULES = """\
table aliases { alias1 = mtadtest1, list1 = "mtadtest1, mtadtest2", \
chain1 = alias1, chain2 = chain1, Mixed = mtadtest2 }
action "local" mbox "{mail}/%u" alias <aliases>
action "md" maildir alias <aliases>
match from local for domain "maildir.test" action "md"
match from local for local action "local"
"""

SENDER = "sender@client.test"
FROM_LINE_RX = (r"^From %s (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                r"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                r"[ 0-9]\d \d\d:\d\d:\d\d \d{4}$")


def smtplib_send(port, sender, rcpts, msg, helo="client.test"):
    """Sends with smtplib; returns the queue id from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname=helo,
                      timeout=10) as s:
        code, _ = s.ehlo()
        assert code == 250
        code, resp = s.mail(sender)
        assert code == 250, resp
        for r in rcpts:
            code, resp = s.rcpt(r)
            assert code == 250, "RCPT %s: %d %s" % (r, code, resp)
        code, resp = s.data(msg)
        assert code == 250, "DATA: %d %s" % (code, resp)
        m = re.match(r"2\.0\.0 Ok: queued as ([0-9a-f]{16})$", resp.decode())
        assert m, "bad 250 text %r" % resp
        return m.group(1)


class Delivery(SharedDaemonCase):
    RULES = RULES

    def check_envelope_headers(self, m, sender, rcpt, qid, helo="client.test",
                               esmtp="ESMTP"):
        self.assertRegex(m.from_line, FROM_LINE_RX % re.escape(sender))
        hb = m.header_block()
        expect = ("Return-Path: <%s>\nDelivered-To: %s\n"
                  "Received: from %s ([127.0.0.1])\n\tby %s (mtad) with %s "
                  "id %s" % (sender, rcpt, helo, HOSTNAME, esmtp, qid))
        self.assertTrue(hb.startswith(expect),
                        "headers do not start with\n%s\n---- got:\n%s" %
                        (expect, hb))
        self.assertNotIn(b"\r", m.raw, "CR left in the mbox")

    def test_smtplib_to_local_user(self):
        msgid = new_msgid("plain")
        body = ("Line one.\r\nFrom the start of a line.\r\n"
                "Last line, no blank after.\r\n")
        msg = make_message("plain delivery", msgid, body=body,
                           to="mtadtest1@mx.test")
        qid = smtplib_send(self.mtad.port, SENDER, ["mtadtest1@mx.test"], msg)
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.check_envelope_headers(m, SENDER, "mtadtest1@mx.test", qid)
        self.assertEqual(m.subject, "plain delivery")
        self.assertEqual(m.body(), body.replace("\r\n", "\n").encode())
        # the mailbox file itself: owned by the user, mode 0600
        st = os.stat(self.mtad.mbox_path("mtadtest1"))
        self.assertEqual(st.st_uid, mtadtest.pwd.getpwnam("mtadtest1").pw_uid)
        self.assertEqual(st.st_mode & 0o777, 0o600)

    def test_log_lines_of_a_delivery(self):
        mark = self.mtad.log_mark()
        msgid = new_msgid("log")
        qid = smtplib_send(self.mtad.port, SENDER, ["mtadtest2@mx.test"],
                           make_message("log", msgid))
        self.mtad.wait_message("mtadtest2", msgid)
        q = re.escape(qid)
        self.mtad.wait_log(r"queue\[\d+\]: %s: queued, from=<%s>, size=\d+, "
                           r"nrcpt=1, client=127\.0\.0\.1" % (q, SENDER),
                           since=mark)
        self.mtad.wait_log(r"master\[\d+\]: %s: to=<mtadtest2@mx\.test>, "
                           r"user=mtadtest2, mailbox=%s, status=sent "
                           r"\(2\.0\.0 delivered\)" %
                           (q, re.escape(self.mtad.mbox_path("mtadtest2"))),
                           since=mark)
        self.mtad.wait_log(r"queue\[\d+\]: %s: removed" % q, since=mark)

    def swaks(self, to, msgid, subject, *extra):
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1:%d" % self.mtad.port,
             "--helo", "swaks.test", "--from", SENDER, "--to", to,
             "--header", "Subject: %s" % subject,
             "--header", "Message-Id: %s" % msgid,
             "--body", "Sent by swaks.\n.leading dot\n"] + list(extra),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=30)
        self.assertEqual(r.returncode, 0, "swaks failed:\n" + r.stdout)
        m = re.search(r"<-\s+250 2\.0\.0 Ok: queued as ([0-9a-f]{16})",
                      r.stdout)
        self.assertTrue(m, "no queue id in swaks output:\n" + r.stdout)
        return m.group(1), r.stdout

    def test_swaks(self):
        msgid = new_msgid("swaks")
        qid, _ = self.swaks("mtadtest2@mx.test", msgid, "by swaks")
        [m] = self.mtad.wait_message("mtadtest2", msgid)
        self.check_envelope_headers(m, SENDER, "mtadtest2@mx.test", qid,
                                    helo="swaks.test")
        self.assertIn(b"Sent by swaks.\n.leading dot\n", m.body())

    def test_swaks_pipelining(self):
        msgid = new_msgid("pipe")
        qid, out = self.swaks("mtadtest1@mx.test", msgid, "pipelined",
                              "--pipeline")
        self.assertNotIn("does not support PIPELINING", out)
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.check_envelope_headers(m, SENDER, "mtadtest1@mx.test", qid,
                                    helo="swaks.test")

    def test_alias(self):
        msgid = new_msgid("alias")
        qid = smtplib_send(self.mtad.port, SENDER, ["alias1@mx.test"],
                           make_message("alias", msgid))
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.check_envelope_headers(m, SENDER, "mtadtest1@mx.test", qid)
        self.assertIn("for <alias1@mx.test>", m.msg["Received"])

    def test_alias_key_case_insensitive(self):
        """Local parts are matched case-insensitively against alias keys."""
        msgid = new_msgid("mixed")
        smtplib_send(self.mtad.port, SENDER, ["MIXED@MX.TEST"],
                     make_message("mixed case", msgid))
        self.mtad.wait_message("mtadtest2", msgid)

    def test_list_alias(self):
        msgid = new_msgid("list")
        qid = smtplib_send(self.mtad.port, SENDER, ["list1@mx.test"],
                           make_message("list", msgid))
        for u in ("mtadtest1", "mtadtest2"):
            [m] = self.mtad.wait_message(u, msgid)
            self.check_envelope_headers(m, SENDER, "%s@mx.test" % u, qid)

    def test_chained_alias(self):
        msgid = new_msgid("chain")
        qid = smtplib_send(self.mtad.port, SENDER, ["chain2@mx.test"],
                           make_message("chain", msgid))
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.check_envelope_headers(m, SENDER, "mtadtest1@mx.test", qid)

    def test_multi_recipient_each_mailbox_once(self):
        msgid = new_msgid("multi")
        smtplib_send(self.mtad.port, SENDER,
                     ["mtadtest1@mx.test", "mtadtest2@mx.test"],
                     make_message("multi", msgid))
        for u in ("mtadtest1", "mtadtest2"):
            self.mtad.wait_message(u, msgid)
        self.mtad.wait_queue_empty()
        for u in ("mtadtest1", "mtadtest2"):
            n = len([m for m in self.mtad.mbox(u) if m.message_id == msgid])
            self.assertEqual(n, 1, "%s got %d copies" % (u, n))

    def test_duplicate_recipients_each_mailbox_once(self):
        """The same mailbox reached several times in one message (directly,
        through an alias, a list and a chain, in another case) gets it once,
        as sendmail and Postfix do."""
        msgid = new_msgid("dup")
        smtplib_send(self.mtad.port, SENDER,
                     ["mtadtest1@mx.test", "alias1@mx.test", "list1@mx.test",
                      "chain2@mx.test", "MTADTEST1@mx.test"],
                     make_message("duplicates", msgid))
        for u in ("mtadtest1", "mtadtest2"):
            self.mtad.wait_message(u, msgid)
        self.mtad.wait_queue_empty()
        for u in ("mtadtest1", "mtadtest2"):
            n = len([m for m in self.mtad.mbox(u) if m.message_id == msgid])
            self.assertEqual(n, 1, "%s got %d copies" % (u, n))

    def test_maildir(self):
        home = mtadtest.user_home("mtadtest3")
        uid = mtadtest.pwd.getpwnam("mtadtest3").pw_uid
        msgid = new_msgid("maildir")
        body = "Into a maildir.\r\n"
        qid = smtplib_send(self.mtad.port, SENDER, ["mtadtest3@maildir.test"],
                           make_message("maildir", msgid, body=body))
        md = os.path.join(home, "Maildir")

        def delivered():
            return [f for f in mtadtest.read_maildir(md)
                    if msgid.encode() in f[2]]
        [(name, st, data)] = mtadtest.wait_for(delivered,
                                               what="a file in %s/new" % md)
        self.assertTrue(name.startswith("new/"), name)
        self.assertEqual(st.st_uid, uid, "maildir file not owned by the user")
        self.assertEqual(os.stat(md).st_uid, uid, "Maildir not owned by user")
        self.assertFalse(st.st_mode & 0o077,
                         "maildir file readable by others: %o" % st.st_mode)
        self.assertTrue(data.startswith(
            ("Return-Path: <%s>\nDelivered-To: mtadtest3@maildir.test\n"
             "Received: from client.test ([127.0.0.1])\n\tby %s (mtad) with "
             "ESMTP id %s" % (SENDER, HOSTNAME, qid)).encode()),
            data[:300])
        self.assertTrue(data.endswith(b"\n\nInto a maildir.\n"), data[-100:])
        self.assertEqual(os.listdir(os.path.join(md, "tmp")), [])
