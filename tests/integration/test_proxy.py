"""The client's address from a balancer (PROXY protocol v1 and v2) or a
mail proxy (Postfix's XCLIENT): used in the dialogue, the log, the
Received: header, policy and limits."""

import socket
import struct
import time

import mtadtest
from mtadtest import (HOSTNAME, MtadTestCase, SharedDaemonCase,
                      loopback_addr, make_message, new_msgid, reply_text)
import tlstest
from tlstest import TLSClient, listen, pki, ports

SENDER = "sender@client.test"
RULES = """\
action "local" mbox "{mail}/%u"
match from auth for domain "relay.test" action "local"
match from any for local action "local"
"""
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
XCLIENT_ATTRS = "XCLIENT ADDR NAME PORT HELO LOGIN PROTO DESTADDR DESTPORT"


def proxy_v1(src, dst="127.0.0.1", sport=40000, dport=25, fam="TCP4"):
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport,
                                          dport)).encode()


def proxy_v2(src=None, dst=None, sport=40000, dport=25, command=1,
             tlvs=b""):
    """A v2 header: PROXY (command 1) over TCP for src/dst, or LOCAL
    (command 0, no address)."""
    if command == 0:
        return V2_SIG + struct.pack("!BBH", 0x20, 0x00, len(tlvs)) + tlvs
    if ":" in src:
        fam, af = 0x21, socket.AF_INET6
    else:
        fam, af = 0x11, socket.AF_INET
    addrs = (socket.inet_pton(af, src) + socket.inet_pton(af, dst) +
             struct.pack("!HH", sport, dport)) + tlvs
    return V2_SIG + struct.pack("!BBH", 0x21, fam, len(addrs)) + addrs


class Proxy(SharedDaemonCase):
    """A proxy-protocol listener, an smtps one behind a balancer too, and
    an XCLIENT listener open to 127.0.0.1 only."""

    RULES = RULES

    @classmethod
    def setUpClass(cls):
        mtadtest.suite_setup()
        cls.pki = pki()
        cls.proxy_port, cls.proxy_tls_port, cls.xc_port = ports(3)
        cls.EXTRA = (cls.pki.config() +
                     "table xc { 127.0.0.1 }\n" +
                     listen(cls.proxy_port, "proxy-protocol") +
                     listen(cls.proxy_tls_port, "smtps", "proxy-protocol") +
                     listen(cls.xc_port, "xclient <xc>"))
        super().setUpClass()

    # -- helpers --

    def raw(self, port, source="127.0.0.1"):
        c = TLSClient(port, source=source)
        self.addCleanup(c.close)
        return c

    def proxied(self, header):
        """A client past its header and the greeting."""
        c = self.raw(self.proxy_port)
        c.send(header)
        self.assertReply(c.greeting(), 220)
        return c

    def hello_addr(self, c):
        r = c.cmd("EHLO client.test")
        self.assertReply(r, 250)
        first = r[1][0]
        self.assertTrue(first.startswith("%s Hello client.test [" % HOSTNAME),
                        first)
        return first.rsplit("[", 1)[1].rstrip("]")

    def deliver(self, c, user, subject):
        msgid = new_msgid(subject)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s@mx.test>" % user), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message(subject, msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        return tlstest.received(self.mtad.wait_message(user, msgid)[0])

    def assert_no_reply_and_closed(self, c, what):
        self.assertTrue(c.closed(), "%s: the connection stayed open" % what)
        self.assertEqual(c.buf, b"", "%s: the server replied" % what)

    # -- PROXY v1 --

    def test_v1(self):
        mark = self.mtad.log_mark()
        c = self.proxied(proxy_v1("192.0.2.1"))
        self.assertEqual(self.hello_addr(c), "192.0.2.1")
        rcv = self.deliver(c, "mtadtest1", "proxy-v1")
        self.assertIn("from client.test ([192.0.2.1])", rcv)
        self.mtad.wait_log(r"connect from 192\.0\.2\.1 \(proxied\)",
                           since=mark)

    def test_v1_tcp6(self):
        c = self.proxied(proxy_v1("2001:db8::61", "::1", fam="TCP6"))
        self.assertEqual(self.hello_addr(c), "2001:db8::61")

    def test_v1_unknown_keeps_the_real_address(self):
        c = self.proxied(b"PROXY UNKNOWN\r\n")
        self.assertEqual(self.hello_addr(c), "127.0.0.1")

    def test_v1_in_two_pieces(self):
        c = self.raw(self.proxy_port)
        h = proxy_v1("192.0.2.2")
        c.send(h[:9])
        time.sleep(0.3)
        c.send(h[9:])
        self.assertReply(c.greeting(), 220)
        self.assertEqual(self.hello_addr(c), "192.0.2.2")

    # -- PROXY v2 --

    def test_v2_ipv4(self):
        mark = self.mtad.log_mark()
        c = self.proxied(proxy_v2("198.51.100.7", "203.0.113.1"))
        self.assertEqual(self.hello_addr(c), "198.51.100.7")
        rcv = self.deliver(c, "mtadtest2", "proxy-v2")
        self.assertIn("from client.test ([198.51.100.7])", rcv)
        self.mtad.wait_log(r"connect from 198\.51\.100\.7 \(proxied\)",
                           since=mark)

    def test_v2_ipv6(self):
        c = self.proxied(proxy_v2("2001:db8::7", "2001:db8::1"))
        self.assertEqual(self.hello_addr(c), "2001:db8::7")

    def test_v2_with_tlvs(self):
        # PP2_TYPE_AUTHORITY "mx.test", PP2_TYPE_NOOP
        tlvs = (struct.pack("!BH", 0x02, 7) + b"mx.test" +
                struct.pack("!BH", 0x04, 3) + b"\0\0\0")
        c = self.proxied(proxy_v2("198.51.100.8", "203.0.113.1", tlvs=tlvs))
        self.assertEqual(self.hello_addr(c), "198.51.100.8")

    def test_v2_local_keeps_the_real_address(self):
        c = self.proxied(proxy_v2(command=0))
        self.assertEqual(self.hello_addr(c), "127.0.0.1")

    # -- what is not a header --

    def test_garbage_closes_without_a_reply(self):
        before = tlstest.stat(self.mtad, "smtp.dialog.error.proxy")
        cases = {
            "smtp": b"EHLO client.test\r\n",
            "v1 bad address": b"PROXY TCP4 1.2.3 127.0.0.1 1 25\r\n",
            "v1 bad family": b"PROXY UDP4 1.2.3.4 127.0.0.1 1 25\r\n",
            "v1 bad port": b"PROXY TCP4 1.2.3.4 127.0.0.1 70000 25\r\n",
            "v1 too long": b"PROXY TCP4 " + b"1" * 200 + b"\r\n",
            "v2 bad version": V2_SIG + b"\x31\x11\x00\x0c" + b"\0" * 12,
            "v2 short addresses": V2_SIG + b"\x21\x11\x00\x04" + b"\0" * 4,
            "binary": bytes(range(256)),
        }
        for name, data in cases.items():
            with self.subTest(case=name):
                c = self.raw(self.proxy_port)
                c.send(data)
                self.assert_no_reply_and_closed(c, name)
        tlstest.wait_stat(self.mtad, "smtp.dialog.error.proxy",
                          lambda v: v >= before + len(cases))

    def test_no_header_at_all_times_out_or_waits(self):
        """A client that waits for a greeting gets none: the header comes
        first."""
        c = self.raw(self.proxy_port)
        with self.assertRaises(socket.timeout):
            c.read_reply(timeout=1)

    def test_smtps_behind_a_balancer(self):
        """The header and the ClientHello in one segment, as a balancer in
        front of an smtps port sends them."""
        e = tlstest.EagerTLS(self.proxy_tls_port, self.pki.client_context(),
                             prefix=proxy_v2("198.51.100.9", "203.0.113.1"),
                             timeout=3)
        self.addCleanup(e.close)
        self.assertEqual(e.greeting, "220 %s ESMTP mtad\r\n" % HOSTNAME)
        r = e.cmd("EHLO client.test")
        self.assertTrue(r.startswith("250-%s Hello client.test "
                                     "[198.51.100.9]\r\n" % HOSTNAME), r)

    # -- XCLIENT --

    def xclient_session(self, source="127.0.0.1"):
        c = self.raw(self.xc_port, source)
        self.assertReply(c.greeting(), 220)
        r = c.cmd("EHLO client.test")
        self.assertReply(r, 250)
        return c, tlstest.ehlo_keywords(r)

    def test_xclient_offered_to_allowed_clients_only(self):
        _, kw = self.xclient_session()
        self.assertIn(XCLIENT_ATTRS, kw)
        c, kw = self.xclient_session(loopback_addr())
        self.assertFalse([k for k in kw if k.startswith("XCLIENT")], kw)
        r = c.cmd("XCLIENT ADDR=192.0.2.50")
        self.assertReply(r, 550, "5.7.0")
        self.assertNotEqual(self.hello_addr(c), "192.0.2.50")

    def test_xclient_addr(self):
        mark = self.mtad.log_mark()
        c, _ = self.xclient_session()
        r = c.cmd("XCLIENT ADDR=192.0.2.51 NAME=mail.client.example "
                  "PORT=4242 HELO=relay.client.example")
        self.assertEqual(reply_text(r), "220 %s ESMTP mtad" % HOSTNAME)
        # the session started over: EHLO first
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 503, "5.5.1")
        self.assertEqual(self.hello_addr(c), "192.0.2.51")
        rcv = self.deliver(c, "mtadtest3", "xclient")
        self.assertIn("([192.0.2.51])", rcv)
        self.mtad.wait_log(r"XCLIENT: client 192\.0\.2\.51", since=mark)

    def test_xclient_ipv6_addr(self):
        c, _ = self.xclient_session()
        r = c.cmd("XCLIENT ADDR=IPV6:2001:db8::52")
        self.assertEqual(r[0], 220, reply_text(r))
        self.assertEqual(self.hello_addr(c), "2001:db8::52")

    def test_xclient_login(self):
        c, _ = self.xclient_session()
        # xtext: +69 is "i"
        r = c.cmd("XCLIENT ADDR=192.0.2.53 LOGIN=al+69ce")
        self.assertEqual(r[0], 220, reply_text(r))
        self.hello_addr(c)
        msgid = new_msgid("xclient-login")
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        # authenticated: `match from auth` lets it relay
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@relay.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        c.send(make_message("xclient login", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        rcv = tlstest.received(self.mtad.wait_message("mtadtest1", msgid)[0])
        self.assertIn("(authenticated as alice)", rcv)
        self.assertRegex(rcv, r"\bwith ESMTPA\b")

    def test_xclient_without_login_does_not_relay(self):
        c, _ = self.xclient_session()
        self.assertEqual(c.cmd("XCLIENT ADDR=192.0.2.54")[0], 220)
        self.hello_addr(c)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@relay.test>"), 550,
                         "5.7.1")

    def test_xclient_in_a_transaction(self):
        c, _ = self.xclient_session()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("XCLIENT ADDR=192.0.2.55"), 503, "5.5.1")
        # nothing changed
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test>"), 250)

    def test_xclient_bad_attributes(self):
        c, _ = self.xclient_session()
        for line in ("XCLIENT", "XCLIENT FOO=bar", "XCLIENT ADDR",
                     "XCLIENT ADDR=not-an-address",
                     "XCLIENT ADDR=192.0.2.1 ADDR=192.0.2.2",
                     "XCLIENT LOGIN=a+zz"):
            with self.subTest(line=line):
                r = c.cmd(line)
                self.assertEqual(r[0], 501, "%s -> %s" % (line,
                                                          reply_text(r)))
                self.assertTrue(r[1][-1].startswith("5.5.4"), reply_text(r))
        self.assertEqual(self.hello_addr(c), "127.0.0.1")


class ProxiedLimits(MtadTestCase):
    """Limits count the address from the header, not the balancer's."""

    def test_connections_per_proxied_address(self):
        port = mtadtest.free_port()
        self.daemon(name="proxylimits", rules=RULES,
                    extra="limit connections-per-ip 1\n" +
                    listen(port, "proxy-protocol"))

        def connect(src):
            c = TLSClient(port)
            self.addCleanup(c.close)
            c.send(proxy_v1(src))
            return c

        def connect6(src):
            c = TLSClient(port)
            self.addCleanup(c.close)
            c.send(proxy_v2(src, "2001:db8::25"))
            return c

        a = connect("192.0.2.70")
        self.assertReply(a.greeting(), 220)
        b = connect("192.0.2.71")
        self.assertReply(b.greeting(), 220)
        c = connect("192.0.2.70")
        r = c.read_reply()
        self.assertEqual(reply_text(r), "421 4.7.0 %s Error: too many "
                         "connections from your address" % HOSTNAME)
        self.assertTrue(c.closed())
        # IPv6: one /64 is one address
        a6 = connect6("2001:db8:0:7::1")
        self.assertReply(a6.greeting(), 220)
        b6 = connect6("2001:db8:0:8::1")
        self.assertReply(b6.greeting(), 220)
        c6 = connect6("2001:db8:0:7:ffff::2")
        self.assertEqual(reply_text(c6.read_reply()), "421 4.7.0 %s Error: "
                         "too many connections from your address" % HOSTNAME)
        self.assertTrue(c6.closed())

    def test_xclient_address_counted_by_limits(self):
        port = mtadtest.free_port()
        d = self.daemon(name="xclimits", rules=RULES,
                        extra="table xc { 127.0.0.1 }\n"
                              "limit connections-per-ip 1\n" +
                        listen(port, "xclient <xc>"))
        mtadtest.wait_for(lambda: tlstest.stat(d, "policy.connections") == 0,
                          what="the readiness probe to be forgotten")

        def session():
            c = TLSClient(port)
            self.addCleanup(c.close)
            self.assertReply(c.greeting(), 220)
            self.assertReply(c.cmd("EHLO client.test"), 250)
            return c

        a = session()
        self.assertEqual(a.cmd("XCLIENT ADDR=192.0.2.80")[0], 220)
        # 127.0.0.1 holds no connection now: b is welcome
        b = session()
        r = b.cmd("XCLIENT ADDR=192.0.2.80")
        self.assertEqual(reply_text(r), "421 4.7.0 %s Error: too many "
                         "connections from your address" % HOSTNAME)
        self.assertTrue(b.closed())
        self.assertReply(a.cmd("EHLO client.test"), 250)
