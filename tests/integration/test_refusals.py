"""4. Refusals: relaying, unknown users, source-address rules, reject rules."""

from mtadtest import (SMTPClient, SharedDaemonCase, make_message, new_msgid,
                      reply_text)

SENDER = "sender@client.test"


class Refusals(SharedDaemonCase):
    RULES = """\
table blocked { mtadtest3@mx.test }
action "local" mbox "{mail}/%u"
match from local for rcpt <blocked> reject
match from local for local action "local"
"""

    def session(self, source="127.0.0.1"):
        c = SMTPClient(self.mtad.port, source=source)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        return c

    def test_relay_denied(self):
        c = self.session()
        for rcpt in ("someone@foreign.test", "mtadtest1@foreign.test",
                     "mtadtest1@mx.test.foreign.test",
                     "mtadtest1%foreign.test@mx.test"):
            with self.subTest(rcpt=rcpt):
                r = c.cmd("RCPT TO:<%s>" % rcpt)
                if rcpt.endswith("@mx.test"):
                    # percent hack: never relayed, refused one way or another
                    self.assertEqual(r[0], 550, reply_text(r))
                else:
                    self.assertReply(r, 550, "5.7.1")
        # nothing was accepted: DATA has no recipient
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")

    def test_unknown_local_user(self):
        c = self.session()
        self.assertReply(c.cmd("RCPT TO:<nosuchuser@mx.test>"), 550, "5.1.1")
        self.assertReply(c.cmd("RCPT TO:<nosuchuser@localhost>"), 550, "5.1.1")

    def test_local_domains(self):
        """for local: the hostname (case-insensitively) and localhost."""
        c = self.session()
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@MX.Test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@localhost>"), 250)

    def test_reject_rule(self):
        c = self.session()
        self.assertReply(c.cmd("RCPT TO:<mtadtest3@mx.test>"), 550, "5.7.1")
        self.assertReply(c.cmd("RCPT TO:<mtadtest2@mx.test>"), 250)

    def test_refused_recipient_does_not_stop_the_others(self):
        c = self.session()
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<someone@foreign.test>"), 550, "5.7.1")
        self.assertReply(c.cmd("RCPT TO:<nosuchuser@mx.test>"), 550, "5.1.1")
        self.assertReply(c.cmd("DATA"), 354)
        msgid = new_msgid("partial")
        c.send(make_message("partial", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        [m] = self.mtad.wait_message("mtadtest1", msgid)


class SourceRules(SharedDaemonCase):
    """`from src`: only the listed client addresses.  All of 127/8 is
    "local", so no `from local` rule covers these domains."""

    RULES = """\
table goodsrc { 127.0.0.2, 10.0.0.0/8 }
action "local" mbox "{mail}/%u"
match from src <goodsrc> for domain "src.test" action "local"
match from src 127.0.0.4 for domain "lit.test" action "local"
match from local for local action "local"
"""

    def rcpt_from(self, source, rcpt):
        c = SMTPClient(self.mtad.port, source=source)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        return c, c.cmd("RCPT TO:<%s>" % rcpt)

    def test_listed_source_accepted_and_delivered(self):
        c, r = self.rcpt_from("127.0.0.2", "mtadtest1@src.test")
        self.assertReply(r, 250)
        self.assertReply(c.cmd("DATA"), 354)
        msgid = new_msgid("src")
        c.send(make_message("from src", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        [m] = self.mtad.wait_message("mtadtest1", msgid)
        self.assertIn("([127.0.0.2])", m.msg["Received"])

    def test_unlisted_source_refused(self):
        for src in ("127.0.0.3", "127.0.0.1"):
            with self.subTest(source=src):
                _, r = self.rcpt_from(src, "mtadtest1@src.test")
                self.assertReply(r, 550, "5.7.1")

    def test_literal_source(self):
        _, r = self.rcpt_from("127.0.0.4", "mtadtest1@lit.test")
        self.assertReply(r, 250)
        _, r = self.rcpt_from("127.0.0.2", "mtadtest1@lit.test")
        self.assertReply(r, 550, "5.7.1")

    def test_listed_source_gets_no_relay_elsewhere(self):
        _, r = self.rcpt_from("127.0.0.2", "someone@foreign.test")
        self.assertReply(r, 550, "5.7.1")

    def test_local_rule_still_applies_from_any_loopback(self):
        _, r = self.rcpt_from("127.0.0.3", "mtadtest1@mx.test")
        self.assertReply(r, 250)
