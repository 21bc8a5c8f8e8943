"""9. SIGHUP: rules and tables reloaded; a broken config changes nothing."""

import os
import signal

import mtadtest
from mtadtest import MtadTestCase, SMTPClient, make_message, new_msgid

SENDER = "sender@client.test"

RULES = """\
table aliases file:{dir}/aliases
action "local" mbox "{mail}/%u" alias <aliases>
match from local for local action "local"
"""


class Reload(MtadTestCase):

    def setUp(self):
        self.d = mtadtest.Daemon(rules=RULES, name="reload")
        self.addCleanup(self.d.cleanup)
        self.aliases = os.path.join(self.d.dir, "aliases")
        self.write_aliases("# test aliases\nold: mtadtest1\n")
        self.d.start()

    def write_aliases(self, text):
        tmp = self.aliases + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.rename(tmp, self.aliases)

    def rcpt(self, rcpt):
        with SMTPClient(self.d.port) as c:
            c.greeting()
            c.cmd("EHLO client.test")
            c.cmd("MAIL FROM:<%s>" % SENDER)
            return c.cmd("RCPT TO:<%s>" % rcpt)

    def deliver(self, rcpt, user):
        msgid = new_msgid("reload")
        mtadtest.smtp_send(self.d.port, SENDER, [rcpt],
                           make_message("reload", msgid))
        self.d.wait_message(user, msgid)

    def reload(self):
        """SIGHUP; waits for the new policy process."""
        [old] = self.d.pids_with_title("mtad: policy")
        mark = self.d.log_mark()
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"received SIGHUP", since=mark)
        mtadtest.wait_for(
            lambda: (self.d.pids_with_title("mtad: policy") or [old])[0] !=
            old, what="a new policy process")
        return mark

    def test_new_alias_after_sighup(self):
        self.assertReply(self.rcpt("new@mx.test"), 550, "5.1.1")
        self.write_aliases("# test aliases\nold: mtadtest1\n"
                           "new: mtadtest2, mtadtest3\n")
        self.reload()
        # the reload must not depend on a lucky moment: retry briefly
        mtadtest.wait_for(lambda: self.rcpt("new@mx.test")[0] == 250,
                          timeout=5, what="new@ accepted after SIGHUP")
        self.deliver("new@mx.test", "mtadtest2")
        self.deliver("new@mx.test", "mtadtest3")
        self.deliver("old@mx.test", "mtadtest1")
        self.assertTrue(self.d.running())

    def test_removed_alias_after_sighup(self):
        self.deliver("old@mx.test", "mtadtest1")
        self.write_aliases("other: mtadtest2\n")
        self.reload()
        mtadtest.wait_for(lambda: self.rcpt("old@mx.test")[0] == 550,
                          timeout=5, what="old@ refused after SIGHUP")

    def test_rules_reloaded(self):
        """A new match rule (a new domain) is used after SIGHUP."""
        self.assertReply(self.rcpt("mtadtest1@other.test"), 550, "5.7.1")
        self.d.write_config(rules=RULES + 'match from local for domain '
                            '"other.test" action "local"\n')
        self.reload()
        self.deliver("mtadtest1@other.test", "mtadtest1")

    def test_broken_config_keeps_old_rules(self):
        [policy] = self.d.pids_with_title("mtad: policy")
        good = open(self.d.conf).read()
        # a new alias and a syntax error: nothing of it may be applied
        self.write_aliases("old: mtadtest1\nnew: mtadtest2\n")
        with open(self.d.conf, "a") as f:
            f.write("this is not a statement\n")
        mark = self.d.log_mark()
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"reload failed", since=mark)
        self.assertTrue(self.d.running(), "mtad exited on a bad reload")
        self.assertEqual(self.d.pids_with_title("mtad: policy"), [policy])
        self.assertReply(self.rcpt("new@mx.test"), 550, "5.1.1")
        self.deliver("old@mx.test", "mtadtest1")
        # and once fixed, the next SIGHUP works
        with open(self.d.conf, "w") as f:
            f.write(good)
        self.reload()
        mtadtest.wait_for(lambda: self.rcpt("new@mx.test")[0] == 250,
                          timeout=5, what="new@ accepted after the fix")

    def test_broken_table_file_keeps_old_rules(self):
        [policy] = self.d.pids_with_title("mtad: policy")
        self.write_aliases("old: mtadtest1\nnew: mtadtest2\nbroken:\n")
        mark = self.d.log_mark()
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"reload failed", since=mark)
        self.assertEqual(self.d.pids_with_title("mtad: policy"), [policy])
        self.assertReply(self.rcpt("new@mx.test"), 550, "5.1.1")
        self.deliver("old@mx.test", "mtadtest1")

    def test_session_open_across_reload(self):
        c = SMTPClient(self.d.port)
        self.addCleanup(c.close)
        c.greeting()
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.write_aliases("old: mtadtest1\nnew: mtadtest2\n")
        self.reload()
        # a reload is seamless: no 451 for a session that was open
        self.assertReply(c.cmd("RCPT TO:<old@mx.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<new@mx.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)
        msgid = new_msgid("across")
        c.send(make_message("across", msgid) + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        self.d.wait_message("mtadtest1", msgid)
