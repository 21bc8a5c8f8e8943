"""ESMTP in the server: the EHLO keywords of each kind of listener, SIZE,
PIPELINING (RFC 2920) edge cases, SMTPUTF8 (RFC 6531) with smtplib,
ENHANCEDSTATUSCODES (RFC 2034) on every reply, DSN parameters kept."""

import re
import smtplib
import time

import mtadtest
from mtadtest import (DSN, HOSTNAME, SharedDaemonCase, make_message,
                      new_msgid, reply_text)
import tlstest
from tlstest import (TLSClient, creds_table, crypt_hash, listen, pki,
                     plain_response, ports)

SENDER = "sender@client.test"
LOCAL_SENDER = "mtadtest2@mx.test"
MAX_SIZE = 20 * 1024
BASE = ["PIPELINING", "SIZE %d" % MAX_SIZE, "8BITMIME", "SMTPUTF8",
        "CHUNKING", "DSN", "ENHANCEDSTATUSCODES"]
XCLIENT = "XCLIENT ADDR NAME PORT HELO LOGIN PROTO DESTADDR DESTPORT"
RULES = """\
table aliases { "d\u00e9j\u00e0" = mtadtest3, postmaster = mtadtest3 }
action "local" mbox "{mail}/%u" alias <aliases>
match from any for local action "local"
"""
ESC_RX = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}( |$)")


def split_replies(data):
    """[(code, [lines])] of a byte stream of whole replies."""
    out, cur = [], []
    for line in data.decode("utf-8", "replace").split("\r\n"):
        if not line:
            continue
        m = re.match(r"^(\d{3})([ -])(.*)$", line)
        assert m, "bad reply line %r" % line
        cur.append(m.group(3))
        if m.group(2) == " ":
            out.append((int(m.group(1)), cur))
            cur = []
    assert not cur, "unfinished reply %r" % cur
    return out


class ESMTP(SharedDaemonCase):
    RULES = RULES

    @classmethod
    def setUpClass(cls):
        mtadtest.suite_setup()
        cls.pki = pki()
        cls.tls_port, cls.plain_auth_port, cls.xc_port = ports(3)
        cls.EXTRA = (cls.pki.config() +
                     creds_table("creds", {"alice": crypt_hash("pw-a",
                                                               "$y$")}) +
                     "table xc { 127.0.0.1 }\n"
                     "limit message-size 20K\n"
                     "limit recipients 1000\n"
                     "limit errors 100\n" +
                     listen(cls.tls_port, "tls", "auth-optional <creds>") +
                     listen(cls.plain_auth_port, "auth-optional <creds>",
                            "auth-plaintext") +
                     listen(cls.xc_port, "xclient <xc>"))
        super().setUpClass()

    def client(self, port=None, ehlo=True):
        c = TLSClient(port or self.mtad.port)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        if ehlo:
            self.assertReply(c.ehlo(), 250)
        return c

    def read_replies(self, c, n, timeout=10):
        deadline = time.monotonic() + timeout
        out = []
        for _ in range(n):
            out.append(c.read_reply(timeout=max(0.1, deadline -
                                                time.monotonic())))
        return out

    # -- EHLO per listener --

    def keywords(self, r):
        self.assertReply(r, 250)
        self.assertEqual(r[1][0], "%s Hello client.test [127.0.0.1]"
                         % HOSTNAME)
        return r[1][1:]

    def test_ehlo_plain_listener(self):
        c = self.client(ehlo=False)
        self.assertEqual(self.keywords(c.ehlo()), BASE + ["HELP"])

    def test_ehlo_tls_listener(self):
        c = self.client(self.tls_port, ehlo=False)
        self.assertEqual(self.keywords(c.ehlo()),
                         BASE + ["STARTTLS", "HELP"])
        self.assertReply(c.starttls(self.pki.client_context()), 220)
        self.assertEqual(self.keywords(c.ehlo()),
                         BASE + ["AUTH PLAIN LOGIN", "HELP"])
        self.assertReply(c.cmd("AUTH PLAIN " +
                               plain_response("alice", "pw-a")), 235)
        # authenticated: AUTH is not offered again
        self.assertEqual(self.keywords(c.ehlo()), BASE + ["HELP"])

    def test_ehlo_auth_plaintext_listener(self):
        c = self.client(self.plain_auth_port, ehlo=False)
        self.assertEqual(self.keywords(c.ehlo()),
                         BASE + ["AUTH PLAIN LOGIN", "HELP"])

    def test_ehlo_xclient_listener(self):
        c = self.client(self.xc_port, ehlo=False)
        self.assertEqual(self.keywords(c.ehlo()), BASE + [XCLIENT, "HELP"])

    def test_helo_has_no_keywords(self):
        c = self.client(ehlo=False)
        r = c.cmd("HELO client.test")
        self.assertReply(r, 250)
        self.assertEqual(len(r[1]), 1)

    # -- SIZE --

    def test_size_parameter(self):
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER,
                                                           MAX_SIZE + 1)),
                         552, "5.3.4")
        for bad in ("SIZE=", "SIZE=abc", "SIZE=-1",
                    "SIZE=99999999999999999999999"):
            with self.subTest(param=bad):
                r = c.cmd("MAIL FROM:<%s> %s" % (SENDER, bad))
                self.assertTrue(r[0] in (501, 552, 555), reply_text(r))
        self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=%d" % (SENDER, MAX_SIZE)),
                         250)

    def test_size_of_the_data(self):
        c = self.client()
        msgid = new_msgid("oversize")
        self.assertReply(c.cmd("MAIL FROM:<%s> SIZE=1000" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        body = ("y" * 98 + "\r\n") * 210         # 21000 bytes: a lie
        c.send(make_message("oversize", msgid, body=body) + b".\r\n")
        self.assertReply(c.read_reply(), 552, "5.3.4")
        self.assertReply(c.cmd("NOOP"), 250)

    # -- PIPELINING --

    def test_whole_transaction_in_one_send(self):
        msgid = new_msgid("pipe-all")
        c = self.client(ehlo=False)
        c.send(b"EHLO client.test\r\n"
               b"MAIL FROM:<" + SENDER.encode() + b">\r\n"
               b"RCPT TO:<mtadtest1@mx.test>\r\n"
               b"RCPT TO:<mtadtest2@mx.test>\r\n"
               b"DATA\r\n" +
               make_message("pipe all", msgid) + b".\r\n"
               b"QUIT\r\n")
        rs = self.read_replies(c, 7)
        self.assertEqual([r[0] for r in rs],
                         [250, 250, 250, 250, 354, 250, 221],
                         [reply_text(r) for r in rs])
        self.assertTrue(len(rs[0][1]) > 1, "EHLO reply: %r" % (rs[0],))
        self.assertTrue(mtadtest.QUEUED_RX.match(rs[5][1][0]), rs[5])
        self.assertTrue(c.closed())
        self.mtad.wait_message("mtadtest1", msgid)
        self.mtad.wait_message("mtadtest2", msgid)

    def test_refused_rcpt_in_the_middle(self):
        msgid = new_msgid("pipe-mid")
        c = self.client()
        c.send("MAIL FROM:<%s>\r\n"
               "RCPT TO:<mtadtest1@mx.test>\r\n"
               "RCPT TO:<no-such-user-x@mx.test>\r\n"
               "RCPT TO:<mtadtest3@mx.test>\r\n"
               "DATA\r\n" % SENDER)
        rs = self.read_replies(c, 5)
        self.assertEqual([r[0] for r in rs], [250, 250, 550, 250, 354],
                         [reply_text(r) for r in rs])
        self.assertTrue(rs[2][1][-1].startswith("5.1.1 "), rs[2])
        c.send(make_message("pipe mid", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250, "2.0.0")
        self.mtad.wait_message("mtadtest1", msgid)
        self.mtad.wait_message("mtadtest3", msgid)

    def test_all_rcpts_refused_data_refused(self):
        """RFC 2920 3.1: DATA after no accepted recipient fails; the client
        then sends no data, and the session is in order."""
        c = self.client()
        c.send("MAIL FROM:<%s>\r\n"
               "RCPT TO:<no-such-user-y@mx.test>\r\n"
               "RCPT TO:<somebody@elsewhere.test>\r\n"
               "DATA\r\n"
               "RSET\r\n"
               "NOOP\r\n" % SENDER)
        rs = self.read_replies(c, 6)
        codes = [r[0] for r in rs]
        self.assertEqual(codes[:3], [250, 550, 550],
                         [reply_text(r) for r in rs])
        self.assertIn(codes[3], (503, 554), reply_text(rs[3]))
        self.assertTrue(rs[3][1][-1].startswith("5.5.1 ") or
                        rs[3][1][-1].startswith("5.5.0 "), rs[3])
        self.assertEqual(codes[4:], [250, 250])

    def test_thousand_rcpts_in_one_send(self):
        c = self.client()
        lines = ["MAIL FROM:<%s>" % SENDER]
        users = ("mtadtest1", "mtadtest2", "mtadtest3")
        lines += ["RCPT TO:<%s@mx.test>" % users[i % 3] for i in range(1000)]
        lines += ["RSET", "QUIT"]
        t0 = time.monotonic()
        c.send("\r\n".join(lines) + "\r\n")
        rs = self.read_replies(c, len(lines), timeout=20)
        dt = time.monotonic() - t0
        codes = [r[0] for r in rs]
        bad = [(i, reply_text(r)) for i, r in enumerate(rs[:-1])
               if r[0] != 250]
        self.assertEqual(bad, [])
        self.assertEqual(codes[-1], 221)
        self.assertLess(dt, 10, "1002 pipelined replies took %.1fs" % dt)

    # -- SMTPUTF8 --

    def test_smtputf8_smtplib(self):
        msgid = new_msgid("utf8")
        sender = "j\u00f6rg.m\u00fcller@client.test"
        subject = "Gr\u00fc\u00dfe aus K\u00f6ln \u2709"
        msg = ("From: <%s>\r\nTo: <d\u00e9j\u00e0@mx.test>\r\n"
               "Subject: %s\r\nMessage-Id: %s\r\n"
               "Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
               "MIME-Version: 1.0\r\n"
               "Content-Type: text/plain; charset=utf-8\r\n"
               "Content-Transfer-Encoding: 8bit\r\n\r\n"
               "S\u00fc\u00dfes Gr\u00fc\u00dfen.\r\n" %
               (sender, subject, msgid)).encode()
        with smtplib.SMTP("127.0.0.1", self.mtad.port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("smtputf8"))
            refused = s.sendmail(sender, ["d\u00e9j\u00e0@mx.test",
                                          "mtadtest1@mx.test"], msg,
                                 mail_options=["SMTPUTF8", "BODY=8BITMIME"])
            self.assertEqual(refused, {})
        for user in ("mtadtest3", "mtadtest1"):
            m = self.mtad.wait_message(user, msgid)[0]
            self.assertIn(subject.encode(), m.raw)
            self.assertIn(sender.encode(), m.from_line.encode())
            rcv = tlstest.received(m)
            self.assertRegex(rcv, r"\bwith UTF8SMTP\b", rcv)

    def test_utf8_address_without_smtputf8(self):
        c = self.client()
        r = c.cmd("MAIL FROM:<j\u00f6rg@client.test>")
        self.assertReply(r, 553, "5.6.7")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<d\u00e9j\u00e0@mx.test>"), 553,
                         "5.6.7")
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)

    def test_smtputf8_takes_no_value(self):
        c = self.client()
        self.assertReply(c.cmd("MAIL FROM:<%s> SMTPUTF8=yes" % SENDER),
                         501, "5.5.4")

    def test_smtputf8_smtplib_refused_address_reply(self):
        """smtplib sees 553 for a UTF-8 recipient when it did not ask."""
        with smtplib.SMTP("127.0.0.1", self.mtad.port, timeout=10) as s:
            s.ehlo("client.test")
            s.command_encoding = "utf-8"
            s.mail(SENDER)
            code, text = s.rcpt("d\u00e9j\u00e0@mx.test")
            self.assertEqual(code, 553)
            self.assertTrue(text.startswith(b"5.6.7 "), text)

    # -- ENHANCEDSTATUSCODES --

    def test_enhanced_status_codes_everywhere(self):
        """Every reply carries x.y.z on each of its lines, except the
        greeting, HELO/EHLO, 334 and 354 (RFC 2034, RFC 4954)."""
        seen = []
        c = TLSClient(self.tls_port)
        self.addCleanup(c.close)
        seen.append(("greeting", c.greeting(), False))

        def cmd(line, check=True, data=b""):
            c.send(line.encode() + b"\r\n" + data)
            try:
                r = c.read_reply(timeout=5)
            except OSError as e:
                self.fail("%s: no reply (%r) after %s" % (
                    line, e, [(w, reply_text(r)) for w, r, _ in seen]))
            seen.append((line, r, check and r[0] not in (334, 354)))
            return r

        cmd("HELO client.test", check=False)
        cmd("EHLO client.test", check=False)
        for line in ("NOOP", "RSET", "VRFY mtadtest1", "VRFY", "HELP",
                     "EXPN staff", "ETRN mx.test", "TURN", "FROBNICATE",
                     "MAIL FROM:", "MAIL FROM:<a@@b>", "RCPT TO:<x@mx.test>",
                     "DATA", "AUTH PLAIN", "XCLIENT ADDR=1.2.3.4",
                     "MAIL FROM:<%s> FOO=bar" % SENDER,
                     "MAIL FROM:<%s> SIZE=999999999" % SENDER,
                     "MAIL FROM:<%s> RET=WHATEVER" % SENDER,
                     "MAIL FROM:<%s>" % SENDER,
                     "MAIL FROM:<%s>" % SENDER,
                     "RCPT TO:<no-such-user-z@mx.test>",
                     "RCPT TO:<x@elsewhere.test>",
                     "RCPT TO:<mtadtest1@mx.test> NOTIFY=SOMETIMES",
                     "RCPT TO:<mtadtest1@mx.test>",
                     "RCPT TO:<d\u00e9j\u00e0@mx.test>",
                     "STARTTLS", "RCPT TO:<bad address>", "RSET"):
            cmd(line)
        # a refused chunk is still read (RFC 3030)
        cmd("BDAT 10", data=b"0123456789")
        cmd("STARTTLS")
        c.wrap(self.pki.client_context())
        cmd("MAIL FROM:<%s>" % SENDER)
        cmd("EHLO client.test", check=False)
        cmd("STARTTLS")
        cmd("AUTH CRAM-MD5")
        cmd("AUTH PLAIN " + plain_response("alice", "wrong"))
        cmd("AUTH LOGIN")
        cmd("*")
        cmd("AUTH PLAIN " + plain_response("alice", "pw-a"))
        cmd("AUTH PLAIN " + plain_response("alice", "pw-a"))
        cmd("MAIL FROM:<%s>" % SENDER)
        cmd("RCPT TO:<mtadtest1@mx.test>")
        cmd("DATA")
        c.send(make_message("esc", new_msgid("esc")) + b".\r\n")
        seen.append(("end of data", c.read_reply(), True))
        cmd("MAIL FROM:<%s>" % SENDER)
        cmd("RCPT TO:<mtadtest1@mx.test>")
        c.send(b"BDAT 5 LAST\r\nHi!\r\n")
        seen.append(("BDAT", c.read_reply(), True))
        cmd("QUIT")
        codes = set()
        bad = []
        for what, (code, lines), check in seen:
            codes.add(code)
            if not check:
                continue
            for line in lines:
                if not ESC_RX.match(line) or line[0] != str(code)[0]:
                    bad.append("%s -> %d %s" % (what, code, line))
        self.assertEqual(bad, [])
        # the dialogue went through many kinds of replies
        for code in (214, 221, 235, 250, 252, 354, 334, 500, 501, 502, 503,
                     504, 535, 538, 550, 552, 553, 555):
            self.assertIn(code, codes, "no %d reply in the dialogue" % code)

    # -- DSN parameters --

    def test_dsn_parameters_kept_when_pipelined(self):
        msgid = new_msgid("dsn-pipe")
        c = self.client(ehlo=False)
        c.send(b"EHLO client.test\r\n"
               b"MAIL FROM:<" + LOCAL_SENDER.encode() + b"> RET=HDRS "
               b"ENVID=esmtp-pipe-1\r\n"
               b"RCPT TO:<mtadtest1@mx.test> NOTIFY=SUCCESS "
               b"ORCPT=rfc822;original+40example.test\r\n"
               b"DATA\r\n")
        rs = self.read_replies(c, 4)
        self.assertEqual([r[0] for r in rs], [250, 250, 250, 354],
                         [reply_text(r) for r in rs])
        c.send(make_message("dsn", msgid, sender=LOCAL_SENDER) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        self.mtad.wait_message("mtadtest1", msgid)

        def report():
            return mtadtest.dsns_about(self.mtad.mbox("mtadtest2"), msgid)
        [m] = mtadtest.wait_for(report, what="the success report")
        dsn = DSN(m)
        self.assertEqual(dsn.actions(), ["delivered"])
        self.assertEqual(re.sub(r"\s+", " ",
                                dsn.per_message["Original-Envelope-Id"])
                         .strip(), "esmtp-pipe-1")
        [r] = dsn.recipients
        self.assertEqual(re.sub(r"\s+", "", r["Original-Recipient"]),
                         "rfc822;original@example.test")

    # -- swaks --

    def test_swaks_pipeline(self):
        msgid = new_msgid("swaks-pipe")
        code, out = tlstest.swaks(
            self.mtad.port, "--pipeline", "--from", SENDER,
            "--to", "mtadtest1@mx.test,mtadtest2@mx.test",
            "--header", "Message-Id: %s" % msgid)
        self.assertEqual(code, 0, out)
        # swaks sent MAIL, both RCPTs and DATA as one group
        self.assertRegex(out, r"(?s)-> MAIL FROM:<[^\n]*\n -> RCPT TO:"
                         r"<mtadtest1@mx\.test>\n -> RCPT TO:"
                         r"<mtadtest2@mx\.test>\n -> DATA\n")
        self.mtad.wait_message("mtadtest1", msgid)
        self.mtad.wait_message("mtadtest2", msgid)
