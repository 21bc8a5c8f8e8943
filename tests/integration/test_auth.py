"""AUTH PLAIN and LOGIN (RFC 4954) against crypt(3) tables.

Hashes of every family the issue names (sha512-crypt from `openssl passwd
-6`, yescrypt, bcrypt, sha256-crypt through libxcrypt); AUTH only under TLS
unless auth-plaintext; auth required before MAIL; submission; the per
session and per address failure limits; `match from auth` relays.
"""

import re
import smtplib

import mtadtest
from mtadtest import (MtadTestCase, SharedDaemonCase, loopback_addr,
                      make_message, new_msgid, reply_text)
import tlstest
from tlstest import (TLSClient, b64, creds_table, crypt_hash, listen, pki,
                     plain_response, ports)

SENDER = "sender@client.test"
PASSWORDS = {"alice": "alice-pw", "bob": "bob pw 42!", "carol": "carol-pw",
             "dave": "dave-pw"}
HASHES = {"alice": "$6$", "bob": "$y$", "carol": "$2b$", "dave": "$5$"}

# Authenticated clients may send anywhere (here: to the mbox of the local
# part); the others only to local users.  bob alone is in <senders>.
RULES = """\
table senders { bob }
action "local" mbox "{mail}/%u"
action "tagged" mbox "{mail}/%u"
match from auth <senders> for domain "bob-only.test" action "tagged"
match from auth for domain "relay.test" action "local"
match from any for local action "local"
"""


def creds():
    return creds_table("creds", {u: crypt_hash(PASSWORDS[u], HASHES[u])
                                 for u in PASSWORDS})


class Auth(SharedDaemonCase):
    """Listeners: tls + auth-optional, tls + auth (required), auth-optional
    in the clear with auth-plaintext, submission, smtps + auth."""

    RULES = RULES

    @classmethod
    def setUpClass(cls):
        mtadtest.suite_setup()
        cls.pki = pki()
        (cls.opt_port, cls.req_port, cls.plain_port, cls.sub_port,
         cls.smtps_port) = ports(5)
        cls.EXTRA = (cls.pki.config() + creds() +
                     listen(cls.opt_port, "tls", "auth-optional <creds>") +
                     listen(cls.req_port, "tls", "auth <creds>") +
                     listen(cls.plain_port, "auth-optional <creds>",
                            "auth-plaintext") +
                     listen(cls.sub_port, "submission", "auth <creds>") +
                     listen(cls.smtps_port, "smtps", "auth <creds>"))
        super().setUpClass()

    # -- helpers --

    def ctx(self):
        return self.pki.client_context()

    def client(self, port, tls=True, source=None):
        """A session past EHLO, and past STARTTLS + EHLO when tls.  Each
        test uses addresses of its own: failures are counted per IP."""
        c = TLSClient(port, source=source or self.source())
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        if tls:
            self.assertReply(c.starttls(self.ctx()), 220)
            self.last_ehlo = c.ehlo()
            self.assertReply(self.last_ehlo, 250)
        return c

    def source(self):
        if not hasattr(self, "_source"):
            self._source = loopback_addr()
        return self._source

    def smtp(self, port=None):
        s = smtplib.SMTP("127.0.0.1", port or self.opt_port, timeout=10,
                         source_address=(self.source(), 0))
        self.addCleanup(s.close)
        s.ehlo("client.test")
        s.starttls(context=self.ctx())
        s.ehlo("client.test")
        return s

    def login(self, s, user, password, mechanism):
        s.user, s.password = user, password
        method = {"PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mechanism]
        return s.auth(mechanism, method)

    def send(self, s, rcpt, subject):
        msgid = new_msgid(subject)
        refused = s.sendmail(SENDER, [rcpt], make_message(subject, msgid))
        self.assertEqual(refused, {})
        return msgid

    def assert_authenticated(self, user, msgid, who, proto="ESMTPSA"):
        m = self.mtad.wait_message(user, msgid)[0]
        rcv = tlstest.received(m)
        self.assertRegex(rcv, r"\bwith %s\b" % proto, rcv)
        self.assertIn("(authenticated as %s)" % who, rcv)
        return rcv

    def auth_plain(self, c, user, password):
        return c.cmd("AUTH PLAIN " + plain_response(user, password))

    # -- the hash families, both mechanisms, with smtplib --

    def check_login(self, user, mechanism):
        s = self.smtp()
        self.assertIn(mechanism, s.esmtp_features.get("auth", "").split())
        code, text = self.login(s, user, PASSWORDS[user], mechanism)
        self.assertEqual((code, text), (235,
                                        b"2.7.0 Authentication successful"))
        msgid = self.send(s, "mtadtest1@mx.test", "auth-" + user)
        self.assert_authenticated("mtadtest1", msgid, user)

    def test_plain_sha512_crypt(self):
        self.check_login("alice", "PLAIN")

    def test_login_sha512_crypt(self):
        self.check_login("alice", "LOGIN")

    def test_plain_yescrypt(self):
        self.check_login("bob", "PLAIN")

    def test_login_yescrypt(self):
        self.check_login("bob", "LOGIN")

    def test_plain_bcrypt(self):
        self.check_login("carol", "PLAIN")

    def test_login_bcrypt(self):
        self.check_login("carol", "LOGIN")

    def test_plain_sha256_crypt(self):
        self.check_login("dave", "PLAIN")

    def test_smtplib_login_default(self):
        """smtplib's own choice of mechanism."""
        s = self.smtp()
        code, _ = s.login("alice", PASSWORDS["alice"])
        self.assertEqual(code, 235)

    # -- refusals --

    def test_wrong_password(self):
        before = tlstest.stat(self.mtad, "smtp.auth.failure")
        s = self.smtp()
        for mech in ("PLAIN", "LOGIN"):
            with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                self.login(s, "alice", "not-alice-pw", mech)
            self.assertEqual(cm.exception.smtp_code, 535)
            self.assertEqual(cm.exception.smtp_error,
                             b"5.7.8 Authentication credentials invalid")
        tlstest.wait_stat(self.mtad, "smtp.auth.failure",
                          lambda v: v >= before + 2)

    def test_password_of_another_user(self):
        c = self.client(self.opt_port)
        self.assertReply(self.auth_plain(c, "alice", PASSWORDS["bob"]),
                         535, "5.7.8")

    def test_unknown_user(self):
        c = self.client(self.opt_port)
        self.assertReply(self.auth_plain(c, "mallory", "alice-pw"),
                         535, "5.7.8")

    def test_auth_required_before_mail(self):
        c = self.client(self.req_port)
        r = c.cmd("MAIL FROM:<%s>" % SENDER)
        self.assertReply(r, 530, "5.7.0")
        self.assertEqual(r[1][-1], "5.7.0 Authentication required")
        self.assertReply(self.auth_plain(c, "alice", PASSWORDS["alice"]),
                         235, "2.7.0")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)

    def test_no_auth_in_the_clear(self):
        c = self.client(self.opt_port, tls=False)
        r = c.ehlo()
        self.assertNotIn("AUTH PLAIN LOGIN", tlstest.ehlo_keywords(r))
        self.assertFalse([k for k in tlstest.ehlo_keywords(r)
                          if k.startswith("AUTH")], r)
        self.assertReply(self.auth_plain(c, "alice", PASSWORDS["alice"]),
                         538, "5.7.11")
        self.assertReply(c.cmd("AUTH LOGIN"), 538, "5.7.11")
        # offered once under TLS
        self.assertReply(c.starttls(self.ctx()), 220)
        r = c.ehlo()
        self.assertIn("AUTH PLAIN LOGIN", tlstest.ehlo_keywords(r))
        self.assertReply(self.auth_plain(c, "alice", PASSWORDS["alice"]),
                         235, "2.7.0")

    def test_auth_plaintext_listener(self):
        c = self.client(self.plain_port, tls=False)
        r = c.ehlo()
        self.assertIn("AUTH PLAIN LOGIN", tlstest.ehlo_keywords(r))
        self.assertReply(self.auth_plain(c, "bob", PASSWORDS["bob"]),
                         235, "2.7.0")
        msgid = new_msgid("plaintext")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest2@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("plaintext", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        rcv = self.assert_authenticated("mtadtest2", msgid, "bob",
                                        proto="ESMTPA")
        self.assertNotIn("version=TLS", rcv)

    def test_auth_optional_not_required(self):
        c = self.client(self.opt_port)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)

    def test_auth_twice(self):
        c = self.client(self.opt_port)
        self.assertReply(self.auth_plain(c, "alice", PASSWORDS["alice"]),
                         235)
        self.assertReply(self.auth_plain(c, "alice", PASSWORDS["alice"]),
                         503, "5.5.1")

    def test_unknown_mechanism(self):
        c = self.client(self.opt_port)
        self.assertReply(c.cmd("AUTH CRAM-MD5"), 504, "5.5.4")
        self.assertReply(c.cmd("AUTH X-NONE abc"), 504, "5.5.4")

    def test_cancel(self):
        c = self.client(self.opt_port)
        r = c.cmd("AUTH LOGIN")
        self.assertEqual(r, (334, [b64("Username:")]))
        self.assertReply(c.cmd("*"), 501, "5.7.0")
        r = c.cmd("AUTH PLAIN")
        self.assertEqual(r[0], 334, reply_text(r))
        self.assertReply(c.cmd("*"), 501, "5.7.0")
        # the session goes on
        self.assertReply(c.cmd("NOOP"), 250)

    def test_bad_base64(self):
        c = self.client(self.opt_port)
        self.assertReply(c.cmd("AUTH PLAIN !!!notbase64"), 501, "5.5.2")
        r = c.cmd("AUTH LOGIN")
        self.assertEqual(r[0], 334)
        self.assertReply(c.cmd("%%%"), 501, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_login_step_by_step(self):
        c = self.client(self.opt_port)
        self.assertEqual(c.cmd("AUTH LOGIN"), (334, [b64("Username:")]))
        self.assertEqual(c.cmd(b64("carol")), (334, [b64("Password:")]))
        self.assertReply(c.cmd(b64(PASSWORDS["carol"])), 235, "2.7.0")

    def test_plain_with_empty_initial_challenge(self):
        c = self.client(self.opt_port)
        self.assertEqual(c.cmd("AUTH PLAIN"), (334, [""]))
        self.assertReply(c.cmd(plain_response("dave", PASSWORDS["dave"])),
                         235, "2.7.0")

    def test_authzid_of_another_user_refused(self):
        c = self.client(self.opt_port)
        r = c.cmd("AUTH PLAIN " + plain_response("alice", PASSWORDS["alice"],
                                                 authzid="bob"))
        self.assertNotEqual(r[0], 235, "alice acts as bob: " + reply_text(r))
        self.assertTrue(500 <= r[0] < 600, reply_text(r))

    def test_three_failures_close_the_session(self):
        c = self.client(self.opt_port)
        for _ in range(3):
            self.assertReply(self.auth_plain(c, "alice", "wrong"), 535,
                             "5.7.8")
        r = c.read_reply()
        self.assertEqual(r[0], 421, reply_text(r))
        self.assertEqual(r[1][-1], "4.7.0 mx.test Error: too many failed "
                         "authentication attempts")
        self.assertTrue(c.closed(), "still connected")

    # -- submission and smtps --

    def test_submission(self):
        c = self.client(self.sub_port, tls=False)
        r = c.ehlo()
        self.assertIn("STARTTLS", tlstest.ehlo_keywords(r))
        self.assertFalse([k for k in tlstest.ehlo_keywords(r)
                          if k.startswith("AUTH")], r)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 530, "5.7.0")
        self.assertReply(c.starttls(self.ctx()), 220)
        self.assertIn("AUTH PLAIN LOGIN", tlstest.ehlo_keywords(c.ehlo()))
        r = c.cmd("MAIL FROM:<%s>" % SENDER)
        self.assertReply(r, 530, "5.7.0")
        self.assertEqual(r[1][-1], "5.7.0 Authentication required")
        self.assertReply(self.auth_plain(c, "carol", PASSWORDS["carol"]),
                         235)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)

    def test_smtps_login(self):
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, timeout=10,
                              context=self.ctx(),
                              source_address=(self.source(), 0)) as s:
            s.ehlo("client.test")
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                s.sendmail(SENDER, ["mtadtest3@mx.test"], b"x\r\n")
            self.assertEqual(cm.exception.smtp_code, 530)
            s.rset()
            self.assertEqual(self.login(s, "bob", PASSWORDS["bob"],
                                        "LOGIN")[0], 235)
            msgid = self.send(s, "mtadtest3@mx.test", "smtps-auth")
        self.assert_authenticated("mtadtest3", msgid, "bob")

    # -- authenticated relaying --

    def test_match_from_auth_relays(self):
        c = self.client(self.opt_port)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        r = c.cmd("RCPT TO:<mtadtest2@relay.test>")
        self.assertReply(r, 550, "5.7.1")
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(self.auth_plain(c, "alice", PASSWORDS["alice"]),
                         235)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest2@relay.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        msgid = new_msgid("relay")
        c.send(make_message("relay", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assert_authenticated("mtadtest2", msgid, "alice")

    def test_match_from_auth_table(self):
        """Only the users of <senders> match `from auth <senders>`."""
        for user, code in (("alice", 550), ("bob", 250)):
            with self.subTest(user=user):
                c = self.client(self.opt_port)
                self.assertReply(self.auth_plain(c, user, PASSWORDS[user]),
                                 235)
                self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
                r = c.cmd("RCPT TO:<mtadtest3@bob-only.test>")
                self.assertEqual(r[0], code, reply_text(r))

    # -- swaks --

    def check_swaks(self, mech, user):
        msgid = new_msgid("swaks-auth")
        code, out = tlstest.swaks(
            self.req_port, "--tls", "--tls-verify", "--tls-ca-path",
            self.pki.ca_pem, "--auth", mech, "--auth-user", user,
            "--auth-password", PASSWORDS[user],
            "--to", "mtadtest1@relay.test", "--from", SENDER,
            "--header", "Message-Id: %s" % msgid,
            "--local-interface", self.source())
        self.assertEqual(code, 0, out)
        self.assertIn("235 2.7.0 Authentication successful", out)
        self.assert_authenticated("mtadtest1", msgid, user)

    def test_swaks_auth_plain(self):
        self.check_swaks("PLAIN", "carol")

    def test_swaks_auth_login(self):
        self.check_swaks("LOGIN", "alice")

    def test_swaks_wrong_password(self):
        code, out = tlstest.swaks(
            self.req_port, "--tls", "--tls-verify", "--tls-ca-path",
            self.pki.ca_pem, "--auth", "PLAIN", "--auth-user", "alice",
            "--auth-password", "wrong", "--to", "mtadtest1@mx.test",
            "--from", SENDER, "--local-interface", self.source())
        self.assertNotEqual(code, 0, out)
        self.assertIn("535 5.7.8", out)


class AuthFailureLimit(MtadTestCase):
    """limit auth-failures 2: the third attempt from the address is refused
    with 454 whatever the password; other addresses are not affected."""

    def test_per_address_limit(self):
        k = pki()
        port = mtadtest.free_port()
        d = self.daemon(name="authlimit", rules=RULES,
                        extra=k.config() + creds() +
                        "limit auth-failures 2\n" +
                        listen(port, "tls", "auth-optional <creds>"))
        ctx = k.client_context()
        bad_ip, good_ip = loopback_addr(), loopback_addr()

        def session(src):
            c = TLSClient(port, source=src)
            self.addCleanup(c.close)
            self.assertReply(c.greeting(), 220)
            self.assertReply(c.ehlo(), 250)
            self.assertReply(c.starttls(ctx), 220)
            self.assertReply(c.ehlo(), 250)
            return c

        def auth(c, pw):
            return c.cmd("AUTH PLAIN " + plain_response("alice", pw))

        # two failures in two sessions
        for _ in range(2):
            c = session(bad_ip)
            self.assertReply(auth(c, "wrong"), 535, "5.7.8")
            c.cmd("QUIT")
            c.close()
        c = session(bad_ip)
        r = auth(c, PASSWORDS["alice"])
        self.assertEqual(r[0], 454, reply_text(r))
        self.assertEqual(r[1][-1], "4.7.0 Too many authentication failures, "
                         "try again later")
        # another address is not blocked
        c2 = session(good_ip)
        self.assertReply(auth(c2, PASSWORDS["alice"]), 235, "2.7.0")
        self.assertGreaterEqual(tlstest.stat(d, "policy.auth.blocked"), 1)


class ListenerConfig(MtadTestCase):
    """`mtad -n` refuses AUTH set-ups that would send passwords in the
    clear or cannot work, and says where."""

    def check(self, options, want):
        k = pki()
        stmt = listen(mtadtest.free_port(), *options)
        d = self.daemon(start=False, name="authconf",
                        extra=k.config() + creds() + stmt)
        r = d.check_config()
        out = r.stdout + r.stderr
        line = d.config_text().splitlines().index(stmt.strip()) + 1
        self.assertNotEqual(r.returncode, 0, out)
        self.assertRegex(out, r"%s:%d: .*%s" % (re.escape(d.conf), line,
                                                want))

    def test_auth_without_tls(self):
        self.check(["auth <creds>"], "auth")

    def test_auth_optional_without_tls(self):
        self.check(["auth-optional <creds>"], "auth")

    def test_submission_without_auth(self):
        self.check(["submission", "tls"], "auth")

    def test_auth_plaintext_without_auth(self):
        self.check(["tls", "auth-plaintext"], "auth")

    def test_good_ones_pass(self):
        k = pki()
        d = self.daemon(start=False, name="authconf-ok",
                        extra=k.config() + creds() + "".join(
                            listen(p, *o) for p, o in zip(ports(4), (
                                ["tls", "auth <creds>"],
                                ["smtps", "auth-optional <creds>"],
                                ["submission", "auth <creds>"],
                                ["auth <creds>", "auth-plaintext"]))))
        r = d.check_config()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
