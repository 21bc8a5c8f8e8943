"""1. mtad -n: configuration check."""

import os
import re
import subprocess
import tempfile
import textwrap

import mtadtest
from mtadtest import MTAD, MtadTestCase


GOOD = """\
# a complete configuration
hostname "mx.test"
listen on 127.0.0.1 port 2525
listen on localhost port 2526
queue path "{d}/queue"
queue retry min 30s max 2h
chroot "{d}/chroot"
control socket "{d}/control.sock"
pidfile "{d}/mtad.pid"
workers smtp 3
workers deliver 2
limit message-size 10M
limit recipients 50
sandbox on
table aliases file:{d}/aliases
table domains { mx.test, example.test }
table nets { 127.0.0.0/8, 10.1.2.3 }
table virt { "info@example.test" = mtadtest1, list = "mtadtest1, mtadtest2" }
action "local" mbox "{d}/mail/%u" alias <aliases>
action md maildir "~/Maildir" alias <virt>
match from local for local action "local"
match from src <nets> for domain <domains> action md
match !from local for domain "example.test" reject
match for domain "*.example.test" from any action "local"
match from any for any reject
"""


class ConfigCheck(MtadTestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="conf-", dir=mtadtest.base_dir())

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text).replace("{d}", self.dir))
        return path

    def check(self, path):
        r = subprocess.run([MTAD, "-n", "-f", path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, timeout=10)
        return r.returncode, r.stdout + r.stderr

    def assertBad(self, text, expected, name="bad.conf"):
        """expected: [(file, line, regex of the message)], all reported."""
        path = self.write(name, text)
        rc, out = self.check(path)
        self.assertEqual(rc, 1, "mtad -n on a bad file: exit %d, output:\n%s"
                         % (rc, out))
        self.assertNotIn("configuration OK", out)
        for f, line, what in expected:
            f = path if f is None else f
            # A leading "mtad[pid]: " is tolerated here: the exact
            # format has its own test (test_error_lines_start_with_file).
            rx = re.compile(r"^(?:mtad\[\d+\]: )?%s:%d: .*%s" %
                            (re.escape(f), line, what), re.M | re.I)
            self.assertRegex(out, rx, "expected an error %s:%d: /%s/ in:\n%s"
                             % (f, line, what, out))
        return out

    def test_good_file(self):
        self.write("aliases", "postmaster: root\nabuse: root, mtadtest1\n")
        path = self.write("good.conf", GOOD)
        rc, out = self.check(path)
        self.assertEqual(rc, 0, "mtad -n on a good file: exit %d:\n%s" %
                         (rc, out))
        self.assertIn("configuration OK", out)

    def test_unknown_keyword(self):
        self.assertBad("""\
            hostname "mx.test"

            frobnicate yes
            action "local" mbox
            match from local for local action "local"
            """, [(None, 3, "")])

    def test_undefined_table(self):
        self.assertBad("""\
            # comment
            action "local" mbox alias <nosuch>
            match from local for local action "local"
            """, [(None, 2, "nosuch")])

    def test_table_referenced_before_definition(self):
        self.assertBad("""\
            action "local" mbox alias <later>
            table later { a = b }
            match for local action "local"
            """, [(None, 1, "later")])

    def test_undefined_action(self):
        self.assertBad("""\
            action "local" mbox
            match from local for local action "nosuch"
            """, [(None, 2, "nosuch")])

    def test_bad_port(self):
        for port in ("0", "65536", "70000", "25x", "-1"):
            with self.subTest(port=port):
                self.assertBad("""\
                    hostname "mx.test"
                    listen on 127.0.0.1 port %s
                    action "local" mbox
                    match from local for local action "local"
                    """ % port, [(None, 2, "port")],
                    name="port-%s.conf" % port)

    def test_duplicate_table(self):
        self.assertBad("""\
            table t { a, b }
            table t { c }
            action "local" mbox
            match from local for local action "local"
            """, [(None, 2, r"\bt\b")])

    def test_duplicate_action(self):
        self.assertBad("""\
            action "local" mbox
            action "local" maildir
            match from local for local action "local"
            """, [(None, 2, "local")])

    def test_all_errors_reported(self):
        """Every error of the file, not just the first, with its own line."""
        self.assertBad("""\
            listen on 127.0.0.1 port 99999
            queue retry min 1h max 1m
            frobnicate
            action "local" mbox alias <nosuch>
            match from local for local action "missing"
            workers smtp 0
            limit message-size lots
            """, [(None, 1, "port"), (None, 2, ""), (None, 3, ""),
                  (None, 4, "nosuch"), (None, 5, "missing"), (None, 6, ""),
                  (None, 7, "")])

    def test_retry_min_greater_than_max(self):
        self.assertBad("""\
            queue retry min 2h max 1h
            action "local" mbox
            match from local for local action "local"
            """, [(None, 1, "")])

    def test_missing_table_file(self):
        missing = os.path.join(self.dir, "no-such-aliases")
        self.assertBad("""\
            hostname "mx.test"
            table aliases file:%s
            action "local" mbox alias <aliases>
            match from local for local action "local"
            """ % missing,
            [(None, 2, re.escape("table aliases: %s: No such file or "
                                 "directory" % missing))])

    def test_bad_line_in_table_file(self):
        tfile = self.write("aliases", "# aliases\npostmaster: root\n"
                           "broken:\nabuse: root\n")
        self.assertBad("""\
            table aliases file:%s
            action "local" mbox alias <aliases>
            match from local for local action "local"
            """ % tfile, [(tfile, 3, "broken")])

    def test_error_names_the_file_as_given(self):
        """FILE is the path as given on the command line (relative here)."""
        self.write("rel.conf", "hostname \"mx.test\"\nbogus line\n")
        r = subprocess.run([MTAD, "-n", "-f", "rel.conf"], cwd=self.dir,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=10)
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertRegex(r.stdout, re.compile(r"^(?:mtad\[\d+\]: )?"
                                              r"rel\.conf:2: ", re.M))

    def test_error_lines_start_with_file(self):
        """The error lines are exactly FILE:LINE: what (nothing before FILE),
        so that editors and scripts can use them."""
        path = self.write("exact.conf", "hostname \"mx.test\"\nbogus line\n"
                          "action a mbox alias <nosuch>\n")
        rc, out = self.check(path)
        self.assertEqual(rc, 1, out)
        for line, what in ((2, "bogus"), (3, "nosuch")):
            self.assertRegex(out, re.compile(r"^%s:%d: \S.*%s" %
                                             (re.escape(path), line, what),
                                             re.M),
                             "an error line must start with %s:%d: (got:\n%s)"
                             % (path, line, out))
