"""Remote delivery: MX routing, smarthosts, TLS, AUTH, per-recipient
outcomes, connection reuse and limits, backup MX.

Every test runs its own DNS server (dnsmasq on 127.0.0.1, zone *.test) whose
records point at loopback addresses, and its own SMTP peers there: Postfix's
smtp-sink for plain acceptance, aiosmtpd for scripted replies.  The daemon's
`resolver` directive points at that DNS server and `relay port` at the
peers' port; nothing leaves loopback.
"""

import logging
import os
import re
import socket
import unittest
import warnings

import mtadtest
from mtadtest import (DSN, DnsServer, MtadTestCase, ScriptedPeer,
                      ServfailServer, SmtpSink, TestCA, dsns_about,
                      free_port, loopback_addr, make_message, new_msgid,
                      smtp_send, smtp_send_dsn)

# The sender, who receives the bounces: an account of this file's own, so
# that nothing else that shares the machine's test accounts disturbs it.
SENDER_USER = "mtadrelay"
SENDER = SENDER_USER + "@" + mtadtest.HOSTNAME

# aiosmtpd's own chatter (refused handshakes...) is not a test result.
logging.getLogger("mail.log").setLevel(logging.CRITICAL)
warnings.filterwarnings("ignore", message=".*login_data is deprecated.*")

HAVE_TOOLS = all(os.access(p, os.X_OK) for p in
                 (mtadtest.DNSMASQ, mtadtest.SMTP_SINK, mtadtest.OPENSSL))
try:
    import aiosmtpd  # noqa: F401
    HAVE_AIOSMTPD = True
except ImportError:
    HAVE_AIOSMTPD = False


@unittest.skipUnless(HAVE_TOOLS and HAVE_AIOSMTPD,
                     "needs dnsmasq, smtp-sink (postfix), openssl and "
                     "python3-aiosmtpd (scripts/install-deps.sh)")
class RelayCase(MtadTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        mtadtest.create_user(SENDER_USER)

    @classmethod
    def tearDownClass(cls):
        mtadtest.delete_user(SENDER_USER)
        super().tearDownClass()

    def setUp(self):
        # Held on 127.0.0.1 so that the daemon's own port cannot be it.
        self.port_guard = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.port_guard.bind(("127.0.0.1", 0))
        self.addCleanup(self.port_guard.close)
        self.relay_port = self.port_guard.getsockname()[1]
        self.tmp = mtadtest.base_dir()

    # -- fixtures --

    def dns(self, mx=(), hosts=(), extra=()):
        d = DnsServer(mx=mx, hosts=hosts, extra=extra).start()
        self.addCleanup(d.stop)
        return d

    def peer(self, addr=None, **kw):
        p = ScriptedPeer(addr or loopback_addr(), self.relay_port, **kw)
        p.start()
        self.addCleanup(p.stop)
        return p

    def sink(self, addr=None):
        s = SmtpSink(addr or loopback_addr(), self.relay_port, self.tmp)
        s.start()
        self.addCleanup(s.stop)
        return s

    def relay_daemon(self, dns, action='relay', extra="", rules_extra="",
                     tables=""):
        rules = (tables + 'action "local" mbox "{mail}/%u"\n'
                 'action "out" ' + action + '\n' + rules_extra +
                 'match from local for local action "local"\n'
                 'match from local for any action "out"\n')
        head = ("resolver %s\nrelay port %d\nrelay timeout connect 5s\n"
                % (dns.resolver, self.relay_port)) + extra
        d = self.daemon(rules=rules, extra=head, start=False)
        # The port was free when chosen; on a busy machine it may not be
        # any more when mtad binds it: another one then.
        for i in range(5):
            try:
                return d.start()
            except AssertionError as e:
                if "Address already in use" not in str(e) or i == 4:
                    raise
                d.port = free_port()
                d.write_config()
        return d

    def send(self, d, rcpts, subject="relay", body="Hello.\r\n",
             sender=SENDER, params=None):
        mid = new_msgid("relay")
        msg = make_message(subject, mid, body=body, sender=sender,
                           to=rcpts[0])
        if params is not None:
            return smtp_send_dsn(d.port, sender, params, msg), mid
        return smtp_send(d.port, sender, rcpts, msg), mid

    def wait_status(self, d, rcpt, status, since=0, relay=r"[^,]+", count=1,
                    timeout=mtadtest.DEFAULT_TIMEOUT):
        """The deliver-worker's log line of an attempt for rcpt."""
        rx = (r"deliver-worker[^:]*: [0-9a-f]{16}: to=<%s>, relay=%s, "
              r"tls=[^,]+, delay=[0-9.]+s, status=%s \((.*)\)$"
              % (re.escape(rcpt), relay, status))
        return d.wait_log(rx, since=since, count=count, timeout=timeout)

    def bounce_for(self, d, mid, timeout=mtadtest.DEFAULT_TIMEOUT):
        msgs = d.wait_mbox(SENDER_USER,
                           lambda m: dsns_about(m, mid), timeout=timeout,
                           what="a bounce for %s" % mid)
        return DSN(dsns_about(msgs, mid)[0])


class TestMX(RelayCase):

    def test_mx_preference_order(self):
        a1, a2 = loopback_addr(), loopback_addr()
        dns = self.dns(mx=[("pref.test", "mxb.test", 20),
                           ("pref.test", "mxa.test", 10)],
                       hosts=[("mxa.test", a1), ("mxb.test", a2)])
        best, other = self.peer(a1), self.peer(a2)
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["bob@pref.test"])
        msgs = best.wait_messages(1)
        self.assertEqual(msgs[0].rcpts, ["bob@pref.test"])
        self.assertEqual(msgs[0].mail_from, SENDER)
        self.assertIn(mid.encode(), msgs[0].data)
        self.assertEqual(other.messages, [])
        self.wait_status(d, "bob@pref.test", "sent",
                         relay=r"mxa\.test \[%s\]:%d" %
                         (re.escape(a1), self.relay_port))
        d.wait_queue_empty()

    def test_mx_fallback_when_best_is_down(self):
        down, up = loopback_addr(), loopback_addr()
        dns = self.dns(mx=[("fb.test", "mx1.fb.test", 10),
                           ("fb.test", "mx2.fb.test", 20)],
                       hosts=[("mx1.fb.test", down), ("mx2.fb.test", up)])
        sink = self.sink(up)
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["carol@fb.test"])
        mtadtest.wait_for(lambda: len(sink.messages()) == 1,
                          what="the message at the second MX")
        self.assertIn(mid.encode(), sink.messages()[0])
        # the first MX was tried (refused) before the second
        log = d.log()
        i = log.index("relay=mx1.fb.test [%s]" % down)
        self.assertIn("status=deferred (4.4.1 connect to mx1.fb.test",
                      log[i:])
        self.wait_status(d, "carol@fb.test", "sent",
                         relay=r"mx2\.fb\.test \[[0-9.]+\]:\d+")
        d.wait_queue_empty()

    def test_all_mx_down_defers(self):
        dns = self.dns(mx=[("dead.test", "mx1.dead.test", 10),
                           ("dead.test", "mx2.dead.test", 20)],
                       hosts=[("mx1.dead.test", loopback_addr()),
                              ("mx2.dead.test", loopback_addr())])
        d = self.relay_daemon(dns)
        qid, _ = self.send(d, ["dan@dead.test"])
        # both hosts are tried in one attempt, then the queue retries
        self.wait_status(d, "dan@dead.test", "deferred",
                         relay=r"mx1\.dead\.test [^,]+")
        self.wait_status(d, "dan@dead.test", "deferred",
                         relay=r"mx2\.dead\.test [^,]+")
        rows = mtadtest.wait_for(
            lambda: [r for r in d.queue_json()
                     if r["id"] == qid and r["attempts"] >= 1] or None,
            what="a deferred entry")
        self.assertTrue(rows[0]["last_error"].startswith("4.4.1 connect to "
                                                         "mx2.dead.test"),
                        rows[0]["last_error"])

    def test_a_fallback_without_mx(self):
        addr = loopback_addr()
        dns = self.dns(hosts=[("nomx.test", addr)])
        sink = self.sink(addr)
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["erin@nomx.test"])
        mtadtest.wait_for(lambda: len(sink.messages()) == 1,
                          what="the message at the A record's host")
        self.assertIn(b"erin@nomx.test", sink.messages()[0])
        d.wait_queue_empty()

    def test_address_literal(self):
        addr = loopback_addr()
        dns = self.dns()
        peer = self.peer(addr)
        d = self.relay_daemon(dns)
        self.send(d, ["lit@[%s]" % addr])
        msgs = peer.wait_messages(1)
        self.assertEqual(msgs[0].rcpts, ["lit@[%s]" % addr])
        self.wait_status(d, "lit@[%s]" % addr, "sent",
                         relay=r"\[%s\] \[%s\]:\d+" % (re.escape(addr),
                                                       re.escape(addr)))

    def test_ipv6_mx(self):
        try:
            p = ScriptedPeer("::1", self.relay_port)
            p.start()
        except Exception as e:     # no IPv6 on this machine's loopback
            self.skipTest("no ::1: %s" % e)
        self.addCleanup(p.stop)
        dns = self.dns(mx=[("six.test", "mx6.six.test", 10)],
                       hosts=[("mx6.six.test", "::1")])
        d = self.relay_daemon(dns)
        self.send(d, ["frank@six.test"])
        p.wait_messages(1)
        self.wait_status(d, "frank@six.test", "sent",
                         relay=r"mx6\.six\.test \[::1\]:\d+")

    def test_null_mx_bounces(self):
        dns = self.dns(extra=["--dns-rr=nullmx.test,15,000000"])
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["gina@nullmx.test"])
        dsn = self.bounce_for(d, mid)
        self.assertEqual(dsn.recipients[0]["Status"].strip(), "5.1.10")
        self.assertIn("null MX", dsn.recipients[0]["Diagnostic-Code"])

    def test_nxdomain_bounces(self):
        dns = self.dns()
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["hank@nowhere.test"])
        dsn = self.bounce_for(d, mid)
        self.assertEqual(dsn.recipients[0]["Status"].strip(), "5.1.2")
        self.assertIn("NXDOMAIN", dsn.recipients[0]["Diagnostic-Code"])

    def test_dns_temporary_failure_defers(self):
        # queries for tmp.test are forwarded to a server that fails them
        sf = ServfailServer().start()
        self.addCleanup(sf.stop)
        dns = self.dns(extra=["--server=/tmp.test/127.0.0.1#%d" % sf.port])
        d = self.relay_daemon(dns)
        qid, _ = self.send(d, ["ian@tmp.test"])
        self.wait_status(d, "ian@tmp.test", "deferred", relay="none")
        rows = mtadtest.wait_for(
            lambda: [r for r in d.queue_json()
                     if r["id"] == qid and r["attempts"] >= 1] or None,
            what="a deferred entry")
        self.assertTrue(rows[0]["last_error"].startswith("4.4.3"),
                        rows[0]["last_error"])
        self.assertEqual(dsns_about(d.mbox(SENDER_USER), qid), [])

    def test_mx_pointing_at_us_loops(self):
        # mx.test is the daemon's own hostname
        dns = self.dns(mx=[("loop.test", mtadtest.HOSTNAME, 10)],
                       hosts=[(mtadtest.HOSTNAME, loopback_addr())])
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["jack@loop.test"])
        dsn = self.bounce_for(d, mid)
        self.assertEqual(dsn.recipients[0]["Status"].strip(), "5.4.6")
        self.assertIn("loops back to myself",
                      dsn.recipients[0]["Diagnostic-Code"])


class TestOutcomes(RelayCase):

    def test_per_recipient_outcomes(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("mix.test", "mx.mix.test", 10)],
                       hosts=[("mx.mix.test", addr)])
        peer = self.peer(addr, rcpt_replies={
            "temp@mix.test": "450 4.2.1 mailbox busy",
            "perm@mix.test": "550 5.1.1 no such user"})
        d = self.relay_daemon(dns)
        qid, mid = self.send(d, ["ok@mix.test", "temp@mix.test",
                                 "perm@mix.test"])
        msgs = peer.wait_messages(1)
        self.assertEqual(msgs[0].rcpts, ["ok@mix.test"])
        # the permanent failure: a bounce quoting the remote reply
        dsn = self.bounce_for(d, mid)
        self.assertEqual(len(dsn.recipients), 1)
        r = dsn.recipients[0]
        self.assertIn("perm@mix.test", r["Final-Recipient"])
        self.assertEqual(r["Status"].strip(), "5.1.1")
        self.assertRegex(r["Diagnostic-Code"],
                         r"host mx\.mix\.test \[[0-9.]+\] said: 550 5\.1\.1 "
                         r"no such user \(in reply to RCPT TO\)")
        # the temporary one stays queued for a retry
        rows = mtadtest.wait_for(
            lambda: [x for x in d.queue_json() if x["id"] == qid] or None,
            what="the deferred recipient in the queue")
        self.assertEqual([x["recipient"] for x in rows], ["temp@mix.test"])
        self.assertIn("450 4.2.1 mailbox busy", rows[0]["last_error"])
        self.assertTrue(rows[0]["last_error"].startswith("4.2.1 "))

    def test_data_refused_bounces_every_accepted_recipient(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("rej.test", "mx.rej.test", 10)],
                       hosts=[("mx.rej.test", addr)])
        self.peer(addr, data_reply="554 5.7.1 content rejected")
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["a@rej.test", "b@rej.test"])
        dsn = self.bounce_for(d, mid)
        self.assertEqual(sorted(r["Final-Recipient"].split(";")[1].strip()
                                for r in dsn.recipients),
                         ["a@rej.test", "b@rej.test"])
        self.assertIn("(in reply to end of DATA)",
                      dsn.recipients[0]["Diagnostic-Code"])

    def test_size_over_the_server_limit_bounces(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("small.test", "mx.small.test", 10)],
                       hosts=[("mx.small.test", addr)])
        peer = self.peer(addr, size_limit=2000)
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["big@small.test"], body="x" * 70 + "\r\n" * 1
                           + ("y" * 70 + "\r\n") * 60)
        dsn = self.bounce_for(d, mid)
        self.assertEqual(dsn.recipients[0]["Status"].strip(), "5.3.4")
        self.assertEqual(peer.messages, [])

    def test_8bit_message_to_a_7bit_server_bounces(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("old.test", "mx.old.test", 10)],
                       hosts=[("mx.old.test", addr)])
        self.peer(addr, drop=("8BITMIME",))
        d = self.relay_daemon(dns)
        _, mid = self.send(d, ["kim@old.test"],
                           body="caf\u00e9\r\n")
        dsn = self.bounce_for(d, mid)
        self.assertEqual(dsn.recipients[0]["Status"].strip(), "5.6.3")

    def test_pipelining_and_dsn_parameters(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("dsn.test", "mx.dsn.test", 10)],
                       hosts=[("mx.dsn.test", addr)])
        peer = self.peer(addr, add=("PIPELINING", "DSN"))
        d = self.relay_daemon(dns)
        self.send(d, ["lea@dsn.test"],
                  params=[("lea@dsn.test",
                           "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;lea@dsn.test")])
        msgs = peer.wait_messages(1)
        self.assertIn("NOTIFY=SUCCESS,FAILURE", msgs[0].rcpt_options[0])
        self.assertIn("ORCPT=RFC822;LEA@DSN.TEST", msgs[0].rcpt_options[0])
        self.assertTrue(any(o.startswith("SIZE=")
                            for o in msgs[0].mail_options),
                        msgs[0].mail_options)


class TestConnections(RelayCase):

    def test_one_connection_carries_several_messages(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("reuse.test", "mx.reuse.test", 10)],
                       hosts=[("mx.reuse.test", addr)])
        peer = self.peer(addr)
        d = self.relay_daemon(dns, extra="workers deliver 1\n"
                              "relay connections 1\n")
        for i in range(5):
            self.send(d, ["r%d@reuse.test" % i], subject="reuse %d" % i)
        peer.wait_messages(5)
        self.assertEqual(peer.connections, 1)
        self.assertGreaterEqual(peer.rsets, 4)
        d.wait_queue_empty()

    def test_connection_limit_per_destination(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("limit.test", "mx.limit.test", 10)],
                       hosts=[("mx.limit.test", addr)])
        peer = self.peer(addr, delay=0.5)
        d = self.relay_daemon(dns, extra="workers deliver 1\n"
                              "relay connections 2\n")
        for i in range(6):
            self.send(d, ["l%d@limit.test" % i], subject="limit %d" % i)
        peer.wait_messages(6, timeout=20)
        self.assertLessEqual(peer.max_active, 2)
        self.assertGreaterEqual(peer.max_active, 1)


class TestSession(RelayCase):

    def test_helo_fallback_and_helo_name(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("old.test", "mx.old.test", 10)],
                       hosts=[("mx.old.test", addr)])
        peer = self.peer(addr, ehlo_reply="502 5.5.1 EHLO not implemented")
        d = self.relay_daemon(dns, action="relay helo out.example.test")
        self.send(d, ["w@old.test"])
        msgs = peer.wait_messages(1)
        self.assertEqual(peer.ehlos, ["out.example.test"])
        self.assertEqual(msgs[0].helo, "out.example.test")
        # no ESMTP: no parameters
        self.assertEqual(msgs[0].mail_options, [])

    def test_source_address(self):
        addr, src = loopback_addr(), loopback_addr()
        dns = self.dns(mx=[("src.test", "mx.src.test", 10)],
                       hosts=[("mx.src.test", addr)])
        peer = self.peer(addr)
        d = self.relay_daemon(dns, action="relay src %s" % src)
        self.send(d, ["x@src.test"])
        self.assertEqual(peer.wait_messages(1)[0].client, src)

    def test_greeting_timeout_defers(self):
        addr = loopback_addr()
        dns = self.dns(mx=[("slow.test", "mx.slow.test", 10)],
                       hosts=[("mx.slow.test", addr)])
        # listens, never speaks
        mute = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        mute.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        mute.bind((addr, self.relay_port))
        mute.listen(16)
        self.addCleanup(mute.close)
        d = self.relay_daemon(dns, extra="relay timeout greeting 1s\n")
        self.send(d, ["y@slow.test"])
        text = self.wait_status(d, "y@slow.test", "deferred")[0]
        self.assertTrue(text.startswith("4.4.2 timeout with host "
                                        "mx.slow.test"), text)
        self.assertIn("waiting for the greeting", text)

    def test_smtps_relay_host(self):
        ca = TestCA(self.tmp)
        addr = loopback_addr()
        dns = self.dns(hosts=[("smtps.relay.test", addr)])
        peer = self.peer(addr, implicit_tls=ca.server_cert(
            "smtps.relay.test"))
        d = self.relay_daemon(dns, action='relay host "smtps://'
                              'smtps.relay.test:%d" tls verify ca "%s"'
                              % (self.relay_port, ca.ca_pem))
        self.send(d, ["z@far.test"])
        self.assertTrue(peer.wait_messages(1)[0].tls)
        self.wait_status(d, "z@far.test", "sent",
                         relay=r"smtps\.relay\.test \[[0-9.]+\]:\d+")


class TestSmarthost(RelayCase):

    def smarthost(self, mechanism, password="s3cret"):
        ca = TestCA(self.tmp)
        addr = loopback_addr()
        cert = ca.server_cert("smtp.relay.test")
        dns = self.dns(hosts=[("smtp.relay.test", addr)])
        peer = self.peer(addr, tls=cert, auth={"user1": "s3cret"},
                         mechanisms=[mechanism])
        secrets = os.path.join(self.tmp, "secrets-%s" % mechanism)
        with open(secrets, "w") as f:
            f.write("# host user:password\nsmtp.relay.test user1:%s\n"
                    % password)
        os.chmod(secrets, 0o600)
        d = self.relay_daemon(
            dns, action='relay host "smtp+tls://smtp.relay.test:%d" '
            'auth <secrets>' % self.relay_port,
            tables='table secrets file:%s\n' % secrets)
        return d, peer

    def check_auth(self, mechanism):
        d, peer = self.smarthost(mechanism)
        self.send(d, ["someone@far.away.test"])
        msgs = peer.wait_messages(1)
        self.assertTrue(msgs[0].tls)
        login = msgs[0].auth_login
        self.assertEqual(login if isinstance(login, bytes) else
                         getattr(login, "login", login), b"user1")
        self.wait_status(d, "someone@far.away.test", "sent",
                         relay=r"smtp\.relay\.test \[[0-9.]+\]:\d+")
        self.assertRegex(d.log(), r"to=<someone@far\.away\.test>, "
                         r"relay=[^,]+, tls=TLSv1\.[23],")

    def test_auth_plain(self):
        self.check_auth("PLAIN")

    def test_auth_login(self):
        self.check_auth("LOGIN")

    def test_auth_cram_md5(self):
        self.check_auth("CRAM-MD5")

    def test_auth_refused_defers(self):
        d, peer = self.smarthost("PLAIN", password="wrong")
        qid, _ = self.send(d, ["x@far.away.test"])
        text = self.wait_status(d, "x@far.away.test", "deferred")[0]
        self.assertIn("535", text)
        self.assertIn("(in reply to AUTH)", text)
        self.assertEqual(peer.messages, [])


class TestTLS(RelayCase):

    def tls_setup(self, cert_name, self_signed=False, starttls=True):
        self.ca = TestCA(self.tmp)
        addr = loopback_addr()
        cert = self.ca.server_cert(cert_name, self_signed=self_signed)
        dns = self.dns(mx=[("tls.test", "mx.tls.test", 10)],
                       hosts=[("mx.tls.test", addr)])
        peer = self.peer(addr, tls=cert if starttls else None)
        return dns, peer

    def test_opportunistic_tls_by_default(self):
        dns, peer = self.tls_setup("mx.tls.test", self_signed=True)
        d = self.relay_daemon(dns)
        self.send(d, ["o@tls.test"])
        msgs = peer.wait_messages(1)
        self.assertTrue(msgs[0].tls)

    def test_tls_required_without_starttls_defers(self):
        dns, peer = self.tls_setup("mx.tls.test", starttls=False)
        d = self.relay_daemon(dns, action="relay tls required")
        self.send(d, ["p@tls.test"])
        text = self.wait_status(d, "p@tls.test", "deferred")[0]
        self.assertTrue(text.startswith("4.7.4 TLS is required"), text)
        self.assertEqual(peer.messages, [])

    def test_tls_required_accepts_any_certificate(self):
        dns, peer = self.tls_setup("other.name.test", self_signed=True)
        d = self.relay_daemon(dns, action="relay tls required")
        self.send(d, ["q@tls.test"])
        self.assertTrue(peer.wait_messages(1)[0].tls)

    def test_tls_verify_success(self):
        dns, peer = self.tls_setup("mx.tls.test")
        d = self.relay_daemon(dns, action='relay tls verify ca "%s"' %
                              self.ca.ca_pem)
        self.send(d, ["r@tls.test"])
        self.assertTrue(peer.wait_messages(1)[0].tls)
        self.wait_status(d, "r@tls.test", "sent")

    def test_tls_verify_wrong_name_defers(self):
        dns, peer = self.tls_setup("wrong.name.test")
        d = self.relay_daemon(dns, action='relay tls verify ca "%s"' %
                              self.ca.ca_pem)
        self.send(d, ["s@tls.test"])
        text = self.wait_status(d, "s@tls.test", "deferred")[0]
        self.assertTrue(text.startswith("4.7.5"), text)
        self.assertIn("certificate verif", text)
        self.assertEqual(peer.messages, [])

    def test_tls_verify_untrusted_ca_defers(self):
        dns, peer = self.tls_setup("mx.tls.test", self_signed=True)
        d = self.relay_daemon(dns, action='relay tls verify ca "%s"' %
                              self.ca.ca_pem)
        self.send(d, ["t@tls.test"])
        text = self.wait_status(d, "t@tls.test", "deferred")[0]
        self.assertTrue(text.startswith("4.7.5"), text)
        self.assertEqual(peer.messages, [])


class TestBackupMX(RelayCase):

    def test_backup_delivers_only_to_preferred_mx(self):
        primary, lesser = loopback_addr(), loopback_addr()
        dns = self.dns(mx=[("bk.test", "primary.bk.test", 10),
                           ("bk.test", mtadtest.HOSTNAME, 20),
                           ("bk.test", "lesser.bk.test", 30)],
                       hosts=[("primary.bk.test", primary),
                              ("lesser.bk.test", lesser)])
        low = self.peer(lesser)
        d = self.relay_daemon(dns, action="relay backup")
        # the primary is down: the mail waits, never goes to the lesser MX
        qid, mid = self.send(d, ["u@bk.test"])
        self.wait_status(d, "u@bk.test", "deferred",
                         relay=r"primary\.bk\.test [^,]+")
        self.assertNotIn("lesser.bk.test", d.log())
        self.assertEqual(low.messages, [])
        # the primary comes back: delivered there
        high = self.peer(primary)
        high.wait_messages(1, timeout=15)
        self.assertEqual(low.messages, [])

    def test_backup_when_we_are_the_best_mx_loops(self):
        other = loopback_addr()
        dns = self.dns(mx=[("bk2.test", mtadtest.HOSTNAME, 5),
                           ("bk2.test", "other.bk2.test", 10)],
                       hosts=[("other.bk2.test", other)])
        d = self.relay_daemon(dns, action="relay backup mx %s" %
                              mtadtest.HOSTNAME)
        _, mid = self.send(d, ["v@bk2.test"])
        dsn = self.bounce_for(d, mid)
        self.assertEqual(dsn.recipients[0]["Status"].strip(), "5.4.6")


class TestConfig(RelayCase):

    def test_relay_options_are_checked(self):
        d = mtadtest.Daemon(rules='action "x" relay host "ftp://h" '
                            'tls verify\nmatch from local for any '
                            'action "x"\n', extra="resolver nowhere\n")
        self.addCleanup(d.cleanup)
        r = d.check_config()
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad resolver \"nowhere\"", r.stderr + r.stdout)
        self.assertIn("bad relay host \"ftp://h\"", r.stderr + r.stdout)

    def test_auth_without_tls_is_refused(self):
        secrets = os.path.join(self.tmp, "secrets-plain")
        with open(secrets, "w") as f:
            f.write("h.test user password\n")
        d = mtadtest.Daemon(rules='table s file:%s\naction "x" relay host '
                            '"smtp://h.test" auth <s>\n' % secrets)
        self.addCleanup(d.cleanup)
        r = d.check_config()
        self.assertEqual(r.returncode, 1)
        self.assertIn("auth needs TLS", r.stderr + r.stdout)


if __name__ == "__main__":
    unittest.main()
