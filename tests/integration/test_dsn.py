"""Delivery status notifications (RFC 3461/3464): the SMTP parameters,
failure, success and delay reports, expiry, and where a notification goes
when its own recipient fails."""

import os
import re
import time

import mtadtest
from mtadtest import (DSN, MtadTestCase, SharedDaemonCase, SMTPClient,
                      dsns_about, make_message, new_msgid, reply_text)

# The postmaster is a test user, so that what reaches it can be read.
RULES = """\
table aliases { postmaster = mtadtest3 }
action "local" mbox "{mail}/%u" alias <aliases>
match from local for local action "local"
"""
# The postmaster is an account that the test deletes.
RULES_GONE_POSTMASTER = RULES.replace("postmaster = mtadtest3",
                                      "postmaster = mtadgone3")

# A local sender: its notifications land in a local mbox.
SENDER = "mtadtest2@mx.test"
GONE = ("mtadgone1", "mtadgone2", "mtadgone3")
BODY_MARK = "body-marker-7f3a"


def ws(value):
    """A field value with its folding and runs of blanks made one space."""
    return re.sub(r"\s+", " ", str(value)).strip()


class DSNParameters(SharedDaemonCase):
    """The MAIL and RCPT parameters of RFC 3461 in the dialogue."""

    RULES = RULES

    def session(self, ehlo=True):
        c = SMTPClient(self.mtad.port)
        self.addCleanup(c.close)
        self.assertEqual(c.greeting()[0], 220)
        r = c.cmd(("EHLO" if ehlo else "HELO") + " client.test")
        self.assertReply(r, 250)
        return c, r

    def test_ehlo_advertises_dsn(self):
        c, r = self.session()
        self.assertIn("DSN", [l.split()[0] for l in r[1][1:]],
                      reply_text(r))

    def test_good_parameters(self):
        c, _ = self.session()
        for params in ("RET=FULL", "RET=HDRS", "RET=hdrs", "ENVID=QQ314159",
                       "ENVID=a+2Bb+3Dc", "RET=FULL ENVID=x.y-z",
                       "SIZE=100 RET=HDRS ENVID=1"):
            with self.subTest(mail=params):
                self.assertReply(c.cmd("MAIL FROM:<%s> %s" %
                                       (SENDER, params)), 250, "2.1.0")
                for rparams in ("NOTIFY=NEVER", "NOTIFY=SUCCESS",
                                "NOTIFY=FAILURE",
                                "NOTIFY=SUCCESS,FAILURE,DELAY",
                                "NOTIFY=delay,failure",
                                "ORCPT=rfc822;mtadtest1@mx.test",
                                "ORCPT=rfc822;a+2Bb@client.test",
                                "NOTIFY=FAILURE ORCPT=rfc822;x+40y"):
                    self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test> %s"
                                           % rparams), 250, "2.1.5",
                                     "RCPT with %s" % rparams)
                self.assertReply(c.cmd("RSET"), 250)

    def test_bad_mail_parameters(self):
        c, _ = self.session()
        for params in ("RET=NONE", "RET=FULL,HDRS", "ENVID=a+zz",
                       "ENVID=a+4", "ENVID=" + "x" * 101):
            with self.subTest(mail=params):
                self.assertReply(c.cmd("MAIL FROM:<%s> %s" %
                                       (SENDER, params)), 501, "5.5.4")
        # the session goes on
        self.assertReply(c.cmd("MAIL FROM:<%s> RET=FULL" % SENDER), 250)

    def test_bad_rcpt_parameters(self):
        c, _ = self.session()
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        for params in ("NOTIFY=NEVER,SUCCESS", "NOTIFY=SOMETIMES",
                       "NOTIFY=SUCCESS,SUCCESS", "NOTIFY=FAILURE,",
                       "ORCPT=mtadtest1@mx.test", "ORCPT=;x@y",
                       "ORCPT=rfc822;a+zzb", "ORCPT=rfc 822;x"):
            with self.subTest(rcpt=params):
                r = c.cmd("RCPT TO:<mtadtest1@mx.test> %s" % params)
                if params == "ORCPT=rfc 822;x":
                    # a blank splits it: "822;x" is no parameter
                    self.assertEqual(r[0] // 100, 5, reply_text(r))
                    continue
                self.assertReply(r, 501, "5.5.4")
        self.assertReply(c.cmd("RCPT TO:<mtadtest1@mx.test> NOTIFY=NEVER"),
                         250)

    def test_parameters_need_ehlo(self):
        c, _ = self.session(ehlo=False)
        r = c.cmd("MAIL FROM:<%s> RET=FULL" % SENDER)
        self.assertEqual(r[0] // 100, 5, reply_text(r))
        self.assertTrue(r[1][-1].startswith("5.5.4"), reply_text(r))


class Notifications(MtadTestCase):
    """One daemon per test; mtadgone1..3 exist when it starts and are
    deleted before delivery to make deliveries fail for good (5.1.1)."""

    def setUp(self):
        for u in GONE:
            mtadtest.create_user(u)
            self.addCleanup(mtadtest.delete_user, u)

    def start(self, rules=RULES, extra="", **kw):
        d = self.daemon(rules=rules, extra=extra, name="dsn", **kw)
        r = d.ctl("pause", "delivery")
        self.assertEqual(r.returncode, 0, r.stderr)
        return d

    def send(self, d, rcpts, sender=SENDER, mail_params="", tag="dsn"):
        msgid = new_msgid(tag)
        qid = mtadtest.smtp_send_dsn(
            d.port, sender, rcpts,
            make_message(tag, msgid, body=BODY_MARK + "\r\n"),
            mail_params=mail_params)
        return msgid, qid

    def delete_and_resume(self, d, *users):
        for u in users:
            mtadtest.delete_user(u)
        r = d.ctl("resume", "delivery")
        self.assertEqual(r.returncode, 0, r.stderr)

    def wait_dsns(self, d, user, msgid, n=1, timeout=15):
        msgs = d.wait_mbox(user, lambda ms: len(dsns_about(ms, msgid)) >= n,
                           timeout=timeout,
                           what="%d notification(s) about %s for %s" %
                           (n, msgid, user))
        return [DSN(m) for m in dsns_about(msgs, msgid)]

    def settle(self, d, timeout=15):
        """Queue empty, then a moment for anything that should not come."""
        d.wait_queue_empty(timeout=timeout)
        time.sleep(1.5)
        self.assertEqual(d.queue_json(), [])

    def assertReport(self, dsn, user_to, kind):
        """The common shape of every notification."""
        mm = dsn.mbox_msg
        self.assertTrue(mm.from_line.startswith("From MAILER-DAEMON "),
                        mm.from_line)
        self.assertEqual(mm.msg["Return-Path"].strip(), "<>")
        m = dsn.msg
        self.assertEqual(m.get_content_type(), "multipart/report")
        self.assertEqual(m.get_param("report-type"), "delivery-status")
        self.assertIn("MAILER-DAEMON@%s" % mtadtest.HOSTNAME, str(m["From"]))
        self.assertIn(user_to, str(m["To"]))
        self.assertEqual(dsn.parts[0].get_content_type(), "text/plain")
        self.assertEqual(dsn.parts[1].get_content_type(),
                         "message/delivery-status")
        self.assertIsNotNone(dsn.per_message, "no per-message fields")
        self.assertEqual(ws(dsn.per_message["Reporting-MTA"]),
                         "dns; %s" % mtadtest.HOSTNAME)
        self.assertTrue(dsn.recipients, "no per-recipient fields")
        for r in dsn.recipients:
            self.assertEqual(r["Action"].strip().lower(), kind)
            self.assertIn("Final-Recipient", r)
            self.assertIn("Status", r)

    def by_final(self, dsn):
        out = {}
        for r in dsn.recipients:
            out[ws(r["Final-Recipient"]).split(";", 1)[1].strip()] = r
        return out

    # -- failures --

    def test_failure_user_deleted(self):
        """The recipient existed at RCPT time and is gone at delivery:
        bounced with 5.1.1, one failure report, headers only by default."""
        d = self.start()
        msgid, qid = self.send(d, ["mtadgone1@mx.test"])
        self.delete_and_resume(d, "mtadgone1")
        d.wait_log(r"%s: to=<mtadgone1@mx.test>, .*status=bounced "
                   r"\(5\.1\.1 user mtadgone1 does not exist\)" % qid)
        [dsn] = self.wait_dsns(d, "mtadtest2", msgid)
        self.assertReport(dsn, SENDER, "failed")
        self.assertEqual(dsn.content_types(),
                         ["text/plain", "message/delivery-status",
                          "text/rfc822-headers"])
        self.assertIn("Undelivered", str(dsn.msg["Subject"]))
        [r] = dsn.recipients
        self.assertEqual(ws(r["Final-Recipient"]),
                         "rfc822; mtadgone1@mx.test")
        self.assertEqual(r["Status"].strip(), "5.1.1")
        self.assertIn("5.1.1 user mtadgone1 does not exist",
                      ws(r["Diagnostic-Code"]))
        self.assertNotIn("Original-Envelope-Id", dsn.per_message)
        returned = dsn.part("text/rfc822-headers").get_content()
        self.assertIn(msgid, returned)
        self.assertIn("id %s" % qid, returned)
        self.assertNotIn(BODY_MARK.encode(), dsn.mbox_msg.raw,
                         "the body came back without RET=FULL")
        self.assertIn("mtadgone1@mx.test", dsn.part("text/plain")
                      .get_content())
        self.settle(d)
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), msgid)), 1)
        self.assertEqual(d.mbox("mtadtest3"), [], "the postmaster got mail")
        self.assertEqual(mtadtest.spool_entries(d, "queue"), [])

    def test_ret_full_envid_orcpt(self):
        d = self.start()
        full, _ = self.send(
            d, [("mtadgone1@mx.test",
                 "NOTIFY=FAILURE ORCPT=rfc822;orig+2Bx@client.test")],
            mail_params="RET=FULL ENVID=QQ314159", tag="full")
        hdrs, _ = self.send(d, ["mtadgone1@mx.test"],
                            mail_params="RET=HDRS ENVID=env-2", tag="hdrs")
        self.delete_and_resume(d, "mtadgone1")
        [dfull] = self.wait_dsns(d, "mtadtest2", full)
        [dhdrs] = self.wait_dsns(d, "mtadtest2", hdrs)
        for dsn in (dfull, dhdrs):
            self.assertReport(dsn, SENDER, "failed")

        # RET=FULL: the whole message, body too
        self.assertEqual(dfull.content_types(),
                         ["text/plain", "message/delivery-status",
                          "message/rfc822"])
        orig = dfull.part("message/rfc822").get_payload()[0]
        self.assertEqual(orig["Message-Id"].strip(), full)
        self.assertIn(BODY_MARK, orig.get_content())
        self.assertEqual(ws(dfull.per_message["Original-Envelope-Id"]),
                         "QQ314159")
        [r] = dfull.recipients
        self.assertEqual(ws(r["Original-Recipient"]).replace("; ", ";"),
                         "rfc822;orig+x@client.test")
        self.assertEqual(ws(r["Final-Recipient"]),
                         "rfc822; mtadgone1@mx.test")

        # RET=HDRS: the header block only
        self.assertEqual(dhdrs.content_types(),
                         ["text/plain", "message/delivery-status",
                          "text/rfc822-headers"])
        self.assertNotIn(BODY_MARK.encode(), dhdrs.mbox_msg.raw)
        self.assertEqual(ws(dhdrs.per_message["Original-Envelope-Id"]),
                         "env-2")
        self.settle(d)
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), full)), 1)
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), hdrs)), 1)

    def test_ret_full_too_large(self):
        """RET=FULL of a message larger than half the size limit: only the
        headers come back, with a note saying so."""
        d = self.start(extra="limit message-size 8K")
        msgid = new_msgid("large")
        body = ("%s %s\r\n" % (BODY_MARK, "y" * 60)) * 80     # ~6 KB
        mtadtest.smtp_send_dsn(d.port, SENDER, ["mtadgone1@mx.test"],
                               make_message("large", msgid, body=body),
                               mail_params="RET=FULL")
        self.delete_and_resume(d, "mtadgone1")
        [dsn] = self.wait_dsns(d, "mtadtest2", msgid)
        self.assertReport(dsn, SENDER, "failed")
        self.assertEqual(dsn.content_types()[2], "text/rfc822-headers")
        self.assertNotIn(BODY_MARK.encode(), dsn.mbox_msg.raw)
        self.assertIn("too large", dsn.part("text/plain").get_content())

    def test_notify_never(self):
        d = self.start()
        mark = d.log_mark()
        msgid, qid = self.send(d, [("mtadgone1@mx.test", "NOTIFY=NEVER")])
        self.delete_and_resume(d, "mtadgone1")
        d.wait_log(r"%s: to=<mtadgone1@mx.test>, .*status=bounced" % qid,
                   since=mark)
        d.wait_log(r"%s: removed" % qid, since=mark)
        self.settle(d)
        self.assertEqual(d.mbox("mtadtest2"), [], "a notification came")
        self.assertEqual(d.mbox("mtadtest3"), [], "the postmaster got mail")
        self.assertNotRegex(d.log()[mark:], r"notification")

    def test_notify_success(self):
        """NOTIFY=SUCCESS: a success report after the local delivery, for
        that recipient only."""
        d = self.start()
        msgid, qid = self.send(
            d, [("mtadtest1@mx.test", "NOTIFY=SUCCESS,FAILURE"),
                "mtadtest3@mx.test"],
            mail_params="RET=FULL ENVID=ok-1")
        self.delete_and_resume(d)
        d.wait_message("mtadtest1", msgid)
        d.wait_message("mtadtest3", msgid)
        [dsn] = self.wait_dsns(d, "mtadtest2", msgid)
        self.assertReport(dsn, SENDER, "delivered")
        [r] = dsn.recipients
        self.assertEqual(ws(r["Final-Recipient"]),
                         "rfc822; mtadtest1@mx.test")
        self.assertEqual(r["Status"].strip(), "2.0.0")
        self.assertEqual(ws(dsn.per_message["Original-Envelope-Id"]),
                         "ok-1")
        # RET concerns failures only: a success report has the headers
        self.assertEqual(dsn.content_types()[2], "text/rfc822-headers")
        self.settle(d)
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), msgid)), 1)
        # nobody asked about mtadtest3: it got the message, not a report
        self.assertEqual([m for m in d.mbox("mtadtest3") if
                          mtadtest.is_dsn(m)], [])

    def test_one_report_per_outcome(self):
        """Two failures and a success of one message: one failure report
        naming both, one success report."""
        d = self.start()
        msgid, qid = self.send(
            d, ["mtadgone1@mx.test", "mtadgone2@mx.test",
                ("mtadtest1@mx.test", "NOTIFY=SUCCESS")])
        self.delete_and_resume(d, "mtadgone1", "mtadgone2")
        dsns = self.wait_dsns(d, "mtadtest2", msgid, n=2)
        self.settle(d)
        dsns = [DSN(m) for m in dsns_about(d.mbox("mtadtest2"), msgid)]
        self.assertEqual(len(dsns), 2, "reports: %s" %
                         [x.actions() for x in dsns])
        kinds = {x.actions()[0]: x for x in dsns}
        self.assertEqual(set(kinds), {"failed", "delivered"})
        self.assertEqual(kinds["failed"].actions(), ["failed", "failed"])
        self.assertEqual(set(self.by_final(kinds["failed"])),
                         {"mtadgone1@mx.test", "mtadgone2@mx.test"})
        for r in kinds["failed"].recipients:
            self.assertEqual(r["Status"].strip(), "5.1.1")
        self.assertEqual(set(self.by_final(kinds["delivered"])),
                         {"mtadtest1@mx.test"})

    # -- where a notification goes --

    def test_refused_sender_gets_postmaster(self):
        """The sender's domain is not ours and there is no relay rule: the
        report goes to the postmaster (here mtadtest3)."""
        d = self.start()
        mark = d.log_mark()
        msgid, qid = self.send(d, ["mtadgone1@mx.test"],
                               sender="someone@client.test")
        self.delete_and_resume(d, "mtadgone1")
        [dsn] = self.wait_dsns(d, "mtadtest3", msgid)
        self.assertReport(dsn, "someone@client.test", "failed")
        self.assertEqual(dsn.recipients[0]["Status"].strip(), "5.1.1")
        d.wait_log(r"notification recipient <someone@client\.test> refused",
                   since=mark)
        self.settle(d)
        self.assertEqual(len(dsns_about(d.mbox("mtadtest3"), msgid)), 1)

    def test_failed_report_goes_to_postmaster_once(self):
        """The sender is gone too: its report fails, and that failure is
        reported to the postmaster, once."""
        d = self.start()
        msgid, qid = self.send(d, ["mtadgone1@mx.test"],
                               sender="mtadgone2@mx.test")
        self.delete_and_resume(d, "mtadgone1", "mtadgone2")
        msgs = d.wait_mbox("mtadtest3", lambda ms: any(
            mtadtest.is_dsn(m) for m in ms), timeout=15,
            what="the postmaster's report")
        self.settle(d)
        msgs = d.mbox("mtadtest3")
        self.assertEqual(len(msgs), 1, "postmaster got %d messages" %
                         len(msgs))
        dsn = DSN(msgs[0])
        self.assertReport(dsn, "postmaster", "failed")
        [r] = dsn.recipients
        self.assertEqual(ws(r["Final-Recipient"]),
                         "rfc822; mtadgone2@mx.test")
        self.assertEqual(r["Status"].strip(), "5.1.1")
        # what failed was the first report: its headers come back
        returned = dsn.part("text/rfc822-headers").get_content()
        self.assertIn("MAILER-DAEMON@%s" % mtadtest.HOSTNAME, returned)
        self.assertFalse(os.path.exists(d.mbox_path("mtadgone1")))
        self.assertFalse(os.path.exists(d.mbox_path("mtadgone2")))

    def test_double_failure_dropped_no_loop(self):
        """Sender, recipient and postmaster all gone: the report to the
        postmaster fails too, is logged and dropped; nothing loops."""
        d = self.start(rules=RULES_GONE_POSTMASTER)
        mark = d.log_mark()
        msgid, qid = self.send(d, ["mtadgone1@mx.test"],
                               sender="mtadgone2@mx.test")
        self.delete_and_resume(d, *GONE)
        d.wait_log(r"a notification to the postmaster failed too: dropped",
                   since=mark, timeout=15)
        self.settle(d)
        time.sleep(2)
        log = d.log()[mark:]
        self.assertEqual(len(re.findall(r"notification [0-9a-f]{16} to",
                                        log)), 2, log)
        self.assertEqual(len(re.findall(r"dropped", log)), 1, log)
        self.assertEqual(d.queue_json(), [])
        self.assertEqual(mtadtest.spool_entries(d, "queue"), [])
        self.assertEqual(os.listdir(d.mail), [])
        st = d.stats()
        self.assertEqual(st.get("queue.bounce"), 2, st)
        self.assertEqual(st.get("queue.bounce.dropped"), 1, st)

    # -- delays and expiry --

    def wait_attempts(self, d, qid, n, timeout=20):
        def tried():
            for e in d.queue_json():
                if (e["id"] == qid and e["attempts"] >= n and
                        e["state"] != "delivering"):
                    return e
            return None
        return mtadtest.wait_for(tried, timeout=timeout,
                                 what="%d attempts of %s" % (n, qid))

    def test_delay_warning_once(self):
        d = self.start(extra="queue delay-warning 1s")
        fix = mtadtest.temp_failing_mbox(d, "mtadtest1")
        msgid, qid = self.send(d, ["mtadtest1@mx.test"], tag="delay")
        self.delete_and_resume(d)
        [dsn] = self.wait_dsns(d, "mtadtest2", msgid)
        self.assertReport(dsn, SENDER, "delayed")
        self.assertIn("Delayed", str(dsn.msg["Subject"]))
        [r] = dsn.recipients
        self.assertEqual(ws(r["Final-Recipient"]),
                         "rfc822; mtadtest1@mx.test")
        self.assertTrue(r["Status"].strip().startswith("4."), r["Status"])
        self.assertIn("Will-Retry-Until", r)
        # more failed attempts: no second warning
        self.wait_attempts(d, qid, 4)
        time.sleep(1)
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), msgid)), 1)
        # nor after a restart: the warning is recorded in the envelope
        self.assertEqual(d.stop(), 0)
        d.start()
        self.wait_attempts(d, qid, 6)
        time.sleep(1)
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), msgid)), 1)
        fix()
        d.wait_message("mtadtest1", msgid, timeout=10)
        self.settle(d)
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), msgid)), 1,
                         "a report after the delivery nobody asked for")

    def test_no_delay_warning_for_notify_failure(self):
        d = self.start(extra="queue delay-warning 1s")
        fix1 = mtadtest.temp_failing_mbox(d, "mtadtest1")
        fix3 = mtadtest.temp_failing_mbox(d, "mtadtest3")
        only_failure, q1 = self.send(
            d, [("mtadtest1@mx.test", "NOTIFY=FAILURE")], tag="nodelay")
        mixed, q2 = self.send(
            d, [("mtadtest1@mx.test", "NOTIFY=FAILURE"),
                ("mtadtest3@mx.test", "NOTIFY=DELAY")], tag="mixed")
        self.delete_and_resume(d)
        [dsn] = self.wait_dsns(d, "mtadtest2", mixed)
        self.assertReport(dsn, SENDER, "delayed")
        self.assertEqual(set(self.by_final(dsn)), {"mtadtest3@mx.test"})
        self.wait_attempts(d, q1, 3)
        self.wait_attempts(d, q2, 3)
        time.sleep(1)
        self.assertEqual(dsns_about(d.mbox("mtadtest2"), only_failure), [])
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), mixed)), 1)
        fix1()
        fix3()
        d.wait_message("mtadtest1", only_failure)
        d.wait_message("mtadtest3", mixed)
        self.settle(d)
        self.assertEqual(dsns_about(d.mbox("mtadtest2"), only_failure), [])

    def test_expiry(self):
        """queue lifetime 1m: a message created two minutes ago (its
        envelope rewritten while mtad is down) expires at the next start:
        4.4.7, and a failure report to the sender."""
        d = self.start(extra="queue lifetime 1m")
        fix = mtadtest.temp_failing_mbox(d, "mtadtest1")
        msgid, qid = self.send(d, ["mtadtest1@mx.test"],
                               mail_params="ENVID=exp-1", tag="expire")
        self.delete_and_resume(d)
        e = self.wait_attempts(d, qid, 1)
        self.assertTrue(e["last_error"].startswith("4."), e)
        self.assertEqual(d.stop(), 0)
        env = os.path.join(d.queue, "queue", qid + ".env")
        created = int(time.time()) - 120
        mtadtest.env_set_created(env, created)
        mark = d.log_mark()
        d.start()
        [dsn] = self.wait_dsns(d, "mtadtest2", msgid)
        self.assertReport(dsn, SENDER, "failed")
        [r] = dsn.recipients
        self.assertEqual(r["Status"].strip(), "4.4.7")
        self.assertRegex(ws(r["Diagnostic-Code"]), r"4\.4\.7 .*expired")
        self.assertEqual(ws(dsn.per_message["Original-Envelope-Id"]),
                         "exp-1")
        d.wait_log(r"%s: to=<mtadtest1@mx.test>, status=expired" % qid,
                   since=mark)
        self.settle(d)
        fix()
        self.assertEqual(d.mbox("mtadtest1"), [], "delivered after expiry")
        self.assertEqual(len(dsns_about(d.mbox("mtadtest2"), msgid)), 1)
        self.assertEqual(mtadtest.spool_entries(d, "queue"), [])

    def test_held_message_still_expires(self):
        """mtactl(8): a held message "still expires after the queue
        lifetime"."""
        d = self.start(extra="queue lifetime 1m")
        msgid, qid = self.send(d, ["mtadtest1@mx.test"], tag="heldexp")
        r = d.ctl("hold", qid)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(d.stop(), 0)
        env = os.path.join(d.queue, "queue", qid + ".env")
        mtadtest.env_set_created(env, int(time.time()) - 120)
        d.start()
        [dsn] = self.wait_dsns(d, "mtadtest2", msgid)
        self.assertReport(dsn, SENDER, "failed")
        self.assertEqual(dsn.recipients[0]["Status"].strip(), "4.4.7")
        self.settle(d)
        self.assertEqual(d.mbox("mtadtest1"), [])

    def test_no_postmaster_dropped(self):
        """The sender is refused and nobody is the postmaster (no alias, no
        account): the report is logged and dropped."""
        d = self.start(rules=mtadtest.DEFAULT_RULES)
        mark = d.log_mark()
        msgid, qid = self.send(d, ["mtadgone1@mx.test"],
                               sender="someone@client.test")
        self.delete_and_resume(d, "mtadgone1")
        d.wait_log(r"the postmaster cannot receive notifications .*dropped",
                   since=mark, timeout=15)
        self.settle(d)
        self.assertEqual(mtadtest.spool_entries(d, "queue"), [])
        self.assertEqual(mtadtest.spool_entries(d, "incoming"), [])
        self.assertEqual(os.listdir(d.mail), [])
