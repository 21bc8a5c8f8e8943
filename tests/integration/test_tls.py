"""STARTTLS (RFC 3207) and implicit TLS (RFC 8314) in the SMTP server.

Clients check the server's certificate against the test CA; TLS 1.0/1.1
are refused; bytes pipelined after STARTTLS in the clear are never taken
as commands; the session starts over under TLS.
"""

import re
import smtplib
import ssl
import warnings

import mtadtest
from mtadtest import (HOSTNAME, MtadTestCase, SharedDaemonCase,
                      make_message, new_msgid, reply_text)
import tlstest
from tlstest import TLSClient, listen, pki, ports

SENDER = "sender@client.test"
RULES = """\
action "local" mbox "{mail}/%u"
match from any for local action "local"
"""
# TLS 1.0 and 1.1 clients are made on purpose
warnings.filterwarnings("ignore", category=DeprecationWarning,
                        message=r"ssl\.TLSVersion\.TLSv1")
TLS_INFO_RX = (r"\(version=(TLSv1\.[23]) cipher=([A-Z0-9_-]+) "
               r"bits=(128|256)\)")


class TLSListeners(SharedDaemonCase):
    """The plain default listener, a STARTTLS one, a tls-require one and
    an smtps one, all with the test certificate."""

    RULES = RULES

    @classmethod
    def setUpClass(cls):
        mtadtest.suite_setup()
        cls.pki = pki()
        cls.tls_port, cls.req_port, cls.smtps_port = ports(3)
        cls.EXTRA = (cls.pki.config() +
                     listen(cls.tls_port, "tls") +
                     listen(cls.req_port, "tls-require") +
                     listen(cls.smtps_port, "smtps"))
        super().setUpClass()

    # -- helpers --

    def client(self, port, ctx=None, implicit=False, source="127.0.0.1"):
        c = TLSClient(port, ctx=ctx, implicit=implicit, source=source)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        return c

    def ctx(self, **kw):
        return self.pki.client_context(**kw)

    def tls_session(self, port=None):
        """A client past STARTTLS and the second EHLO."""
        c = self.client(port or self.tls_port)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.starttls(self.ctx()), 220, "2.0.0")
        self.assertReply(c.ehlo(), 250)
        return c

    def send_on(self, c, user, subject="tls"):
        """A message to user@mx.test on a ready session; its Message-Id."""
        msgid = new_msgid(subject)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s@mx.test>" % user), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message(subject, msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250, "2.0.0")
        return msgid

    def assert_tls_received(self, m, proto="ESMTPS"):
        rcv = tlstest.received(m)
        self.assertRegex(rcv, r"\bwith %s\b" % proto, rcv)
        mt = re.search(TLS_INFO_RX, rcv)
        self.assertTrue(mt, "no TLS details in Received: " + rcv)
        return mt

    # -- STARTTLS with real clients --

    def test_smtplib_starttls_verified(self):
        msgid = new_msgid("smtplib-tls")
        mark = self.mtad.log_mark()
        with smtplib.SMTP("127.0.0.1", self.tls_port, timeout=10) as s:
            s.ehlo("client.test")
            self.assertTrue(s.has_extn("starttls"), s.esmtp_features)
            code, _ = s.starttls(context=self.ctx())
            self.assertEqual(code, 220)
            peer = s.sock.getpeercert()
            self.assertIn(("DNS", HOSTNAME), peer["subjectAltName"])
            version = s.sock.version()
            s.ehlo("client.test")
            self.assertFalse(s.has_extn("starttls"),
                             "STARTTLS offered again under TLS")
            s.sendmail(SENDER, ["mtadtest1@mx.test"],
                       make_message("smtplib tls", msgid))
        m = self.mtad.wait_message("mtadtest1", msgid)[0]
        mt = self.assert_tls_received(m)
        self.assertEqual(mt.group(1), version)
        self.mtad.wait_log(r"TLS established with 127\.0\.0\.1: "
                           r"version=%s cipher=\S+ bits=\d+" %
                           re.escape(version), since=mark)

    def test_certificate_checked_against_the_ca(self):
        """A client trusting only the system CAs refuses the test
        certificate: the verification in the other tests is real."""
        ctx = ssl.create_default_context()
        with smtplib.SMTP("127.0.0.1", self.tls_port, timeout=10) as s:
            s.ehlo("client.test")
            with self.assertRaises(ssl.SSLCertVerificationError):
                s.starttls(context=ctx)

    def test_tls12_with_ecdhe_aead(self):
        c = self.client(self.tls_port,
                        ctx=None)
        self.assertReply(c.ehlo(), 250)
        ctx = self.ctx(maximum_version=ssl.TLSVersion.TLSv1_2)
        self.assertReply(c.starttls(ctx), 220)
        self.assertEqual(c.tls_version, "TLSv1.2")
        cipher = c.sock.cipher()[0]
        self.assertRegex(cipher, r"^ECDHE-(RSA|ECDSA)-"
                         r"(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$")
        self.assertReply(c.ehlo(), 250)
        msgid = self.send_on(c, "mtadtest2", "tls12")
        m = self.mtad.wait_message("mtadtest2", msgid)[0]
        mt = self.assert_tls_received(m)
        self.assertEqual((mt.group(1), mt.group(2)), ("TLSv1.2", cipher))

    def check_old_version_refused(self, version):
        ctx = self.ctx(verify=False)
        # let this client offer the old version at all
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = version
        before = tlstest.stat(self.mtad, "smtp.tls.failed")
        mark = self.mtad.log_mark()
        c = self.client(self.tls_port)
        self.assertReply(c.ehlo(), 250)
        with self.assertRaises(ssl.SSLError) as cm:
            c.starttls(ctx)
        # the server said no (an alert or a close), not this client's own
        # OpenSSL before sending anything
        self.assertRegex(str(cm.exception), r"(?i)protocol.version|"
                         r"unsupported.protocol|EOF|reset")
        self.assertNotIn("NO_PROTOCOLS_AVAILABLE", str(cm.exception))
        self.mtad.wait_log(r"TLS handshake with 127\.0\.0\.1 failed: "
                           r".*unsupported protocol", since=mark)
        tlstest.wait_stat(self.mtad, "smtp.tls.failed",
                          lambda v: v > before)

    def test_tls11_refused(self):
        self.check_old_version_refused(ssl.TLSVersion.TLSv1_1)

    def test_tls10_refused(self):
        self.check_old_version_refused(ssl.TLSVersion.TLSv1)

    def test_tls11_gets_a_protocol_version_alert(self):
        """RFC 8446 4.2.1 / RFC 5246 E.1: the handshake is aborted with a
        protocol_version alert, so the client learns why."""
        ctx = self.ctx(verify=False)
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
        inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
        obj = ctx.wrap_bio(inc, out, server_hostname=HOSTNAME)
        with self.assertRaises(ssl.SSLWantReadError):
            obj.do_handshake()
        hello = out.read()
        c = self.client(self.tls_port)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.send(hello)
        self.assertTrue(c.closed(), "still connected")
        # an alert record: type 21, 2 bytes, level fatal (2), 70
        self.assertRegex(c.buf.hex(), r"^15030[0-3]00020246",
                         "no protocol_version alert, got %r" % c.buf)

    # -- the dialogue around STARTTLS --

    def test_starttls_injection_discarded(self):
        before = tlstest.stat(self.mtad,
                              "smtp.dialog.error.starttls_injection")
        mark = self.mtad.log_mark()
        c = self.client(self.tls_port)
        self.assertReply(c.ehlo(), 250)
        # one packet: the RSET must die with the clear-text connection
        c.send(b"STARTTLS\r\nRSET\r\n")
        self.assertReply(c.read_reply(), 220, "2.0.0")
        self.assertEqual(c.buf, b"", "a reply in the clear after the 220")
        c.wrap(self.ctx())
        self.assertEqual(c.pending(0.5), b"",
                         "the server answered the injected RSET under TLS")
        # the first reply under TLS is the reply to our own next command
        r = c.cmd("HELP")
        self.assertEqual(r[0], 214, "first reply under TLS: " +
                         reply_text(r))
        self.assertReply(c.ehlo(), 250)
        tlstest.wait_stat(self.mtad, "smtp.dialog.error.starttls_injection",
                          lambda v: v == before + 1)
        self.mtad.wait_log(r"sent data after STARTTLS", since=mark)

    def test_session_reset_after_starttls(self):
        c = self.client(self.tls_port)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.starttls(self.ctx()), 220)
        # RFC 3207 4.2: the client must say EHLO again
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 503, "5.5.1")
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertNotIn("STARTTLS", tlstest.ehlo_keywords(r))
        self.assertReply(c.cmd("STARTTLS"), 503, "5.5.1")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)

    def test_starttls_on_a_listener_without_tls(self):
        c = self.client(self.mtad.port)
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertNotIn("STARTTLS", tlstest.ehlo_keywords(r))
        self.assertReply(c.cmd("STARTTLS"), 502, "5.5.1")
        self.assertReply(c.cmd("NOOP"), 250)

    def test_ehlo_offers_starttls(self):
        c = self.client(self.tls_port)
        r = c.ehlo()
        self.assertIn("STARTTLS", tlstest.ehlo_keywords(r))

    def test_tls_require(self):
        c = self.client(self.req_port)
        r = c.ehlo()
        self.assertIn("STARTTLS", tlstest.ehlo_keywords(r))
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 530, "5.7.0")
        self.assertEqual(c.cmd("MAIL FROM:<%s>" % SENDER)[1][-1],
                         "5.7.0 Must issue a STARTTLS command first")
        self.assertReply(c.starttls(self.ctx()), 220)
        self.assertReply(c.ehlo(), 250)
        msgid = self.send_on(c, "mtadtest3", "tls-require")
        self.assert_tls_received(self.mtad.wait_message("mtadtest3",
                                                        msgid)[0])

    def test_handshake_garbage_counted(self):
        before = tlstest.stat(self.mtad, "smtp.tls.failed")
        c = self.client(self.tls_port)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.cmd("STARTTLS"), 220)
        c.send(b"this is no ClientHello\r\n" * 4)
        self.assertTrue(c.closed(), "the connection stayed open")
        tlstest.wait_stat(self.mtad, "smtp.tls.failed",
                          lambda v: v > before)

    # -- implicit TLS --

    def test_smtplib_smtps(self):
        msgid = new_msgid("smtps")
        with smtplib.SMTP_SSL("127.0.0.1", self.smtps_port, timeout=10,
                              context=self.ctx()) as s:
            code, _ = s.ehlo("client.test")
            self.assertEqual(code, 250)
            self.assertFalse(s.has_extn("starttls"),
                             "STARTTLS offered on smtps")
            s.sendmail(SENDER, ["mtadtest1@mx.test"],
                       make_message("smtps", msgid))
        self.assert_tls_received(self.mtad.wait_message("mtadtest1",
                                                        msgid)[0])

    def test_smtps_client_hello_with_the_connection(self):
        """A ClientHello that is already there when the connection is
        accepted (fast clients, balancers) is the handshake, not data to
        throw away: the client gets its 220 under TLS."""
        # a race in a server that drops it: several tries, up to the first
        # failure
        for i in range(10):
            try:
                e = tlstest.EagerTLS(self.smtps_port, self.ctx(), timeout=3)
            except (OSError, ssl.SSLError) as err:
                self.fail("attempt %d: no TLS session: %r" % (i + 1, err))
            e.close()
            self.assertEqual(e.greeting, "220 %s ESMTP mtad\r\n" % HOSTNAME)
            self.assertIn(e.version(), ("TLSv1.2", "TLSv1.3"))

    def test_smtps_clear_text_client(self):
        """A client that does not speak TLS gets no 220 in the clear."""
        c = TLSClient(self.smtps_port)
        self.addCleanup(c.close)
        c.send(b"EHLO client.test\r\n")
        self.assertTrue(c.closed(), "smtps kept a clear-text client")
        self.assertNotIn(b"220 ", c.buf)

    # -- swaks --

    def swaks_tls(self, user, *args):
        msgid = new_msgid("swaks")
        code, out = tlstest.swaks(
            self.tls_port if "--tls" in args else self.smtps_port,
            "--to", "%s@mx.test" % user, "--from", SENDER,
            "--header", "Message-Id: %s" % msgid,
            "--tls-verify", "--tls-ca-path", self.pki.ca_pem, *args)
        self.assertEqual(code, 0, out)
        m = self.mtad.wait_message(user, msgid)[0]
        self.assert_tls_received(m)
        return out

    def test_swaks_starttls(self):
        out = self.swaks_tls("mtadtest2", "--tls")
        self.assertIn("STARTTLS", out)
        self.assertRegex(out, r"TLS started with cipher TLSv1\.[23]")

    def test_swaks_tls_on_connect(self):
        out = self.swaks_tls("mtadtest3", "--tls-on-connect")
        self.assertRegex(out, r"TLS started with cipher TLSv1\.[23]")


class BadPKI(MtadTestCase):
    """`mtad -n` loads every pki and says which line is wrong."""

    def check(self, cert, key, want):
        d = self.daemon(start=False, name="badpki",
                        extra='pki "mx.test" cert "%s"\n'
                              'pki "mx.test" key "%s"\n'
                              "listen on 127.0.0.1 port %d tls\n" %
                              (cert, key, mtadtest.free_port()))
        lines = d.config_text().splitlines()
        pki_lines = [i + 1 for i, l in enumerate(lines)
                     if l.startswith("pki ")]
        r = d.check_config()
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, out)
        rx = r"%s:(%s): pki mx\.test: .*%s" % (
            re.escape(d.conf), "|".join(map(str, pki_lines)), want)
        self.assertRegex(out, rx)
        return out

    def test_key_not_matching_certificate(self):
        k = pki()
        self.check(k.cert, k.stray_key, r"[Mm]atch")

    def test_missing_certificate_file(self):
        k = pki()
        self.check(k.dir + "/no-such.pem", k.key, re.escape(k.dir +
                                                            "/no-such.pem"))

    def test_missing_key_file(self):
        k = pki()
        self.check(k.cert, k.dir + "/no-such.key", re.escape(k.dir +
                                                             "/no-such.key"))

    def test_smtps_with_tls_refused(self):
        d = self.daemon(start=False, name="smtpstls",
                        extra=pki().config() + "listen on 127.0.0.1 port "
                        "%d smtps tls\n" % mtadtest.free_port())
        r = d.check_config()
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"%s:\d+: .*smtps" %
                         re.escape(d.conf))

    def test_tls_without_pki_refused(self):
        d = self.daemon(start=False, name="nopki",
                        extra="listen on 127.0.0.1 port %d tls\n" %
                        mtadtest.free_port())
        r = d.check_config()
        self.assertNotEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertRegex(r.stdout + r.stderr, r"%s:\d+: .*pki" %
                         re.escape(d.conf))

    def test_good_pki_passes(self):
        k = pki()
        d = self.daemon(start=False, name="goodpki",
                        extra=k.config() + "listen on 127.0.0.1 port %d "
                        "tls\n" % mtadtest.free_port())
        r = d.check_config()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
