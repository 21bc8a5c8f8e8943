"""sendmail(8), mailq and newaliases: local submission over the submit
socket as an unprivileged user, header completion, -t, -i, -f/-F, -bs,
the offline/ drop while mtad is down and its pickup, the control-socket
modes (-bp, -bi, -q), refused recipients and malformed drops."""

import os
import pwd
import re
import stat
import subprocess
import time

import mtadtest
from mtadtest import BUILDDIR, HOSTNAME, MtadTestCase

SENDMAIL = os.path.join(BUILDDIR, "mtactl", "sendmail")

EX_USAGE = 64
EX_NOUSER = 67
EX_NOPERM = 77
EX_CONFIG = 78

ALIAS_RULES = """\
table aliases file:{dir}/aliases
action "local" mbox "{mail}/%u" alias <aliases>
match from local for local action "local"
"""

_counter = [0]


def subject(tag):
    _counter[0] += 1
    return "sendmail-%s-%d-%d" % (tag, os.getpid(), _counter[0])


def as_user(name):
    """preexec_fn: the child runs as that user, in its own group only."""
    pw = pwd.getpwnam(name)

    def drop():
        os.setgroups([])
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)
    return drop


def run_sendmail(d, args, data=b"", user=None, argv0=None, conf=True,
                 env=None, timeout=mtadtest.DEFAULT_TIMEOUT):
    """Runs sendmail for daemon d (-C its config) as user (None: root)."""
    argv = [argv0 or SENDMAIL]
    if conf:
        argv += ["-C", d.conf]
    argv += list(args)
    environ = {"PATH": "/usr/bin:/bin"}
    environ.update(env or {})
    return subprocess.run(
        argv, executable=SENDMAIL, input=data, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, timeout=timeout, cwd="/", env=environ,
        preexec_fn=as_user(user) if user else None)


def text(r):
    return "exit %d\nstdout: %r\nstderr: %r" % (r.returncode, r.stdout,
                                                 r.stderr)


class Sendmail(MtadTestCase):

    def wait_subject(self, d, user, subj):
        """The message with that Subject in user's mbox (waits for it)."""
        msgs = d.wait_mbox(user, lambda ms: any(m.subject == subj
                                                for m in ms),
                           what="%r in the mbox of %s" % (subj, user))
        found = [m for m in msgs if m.subject == subj]
        self.assertEqual(len(found), 1, "%r delivered %d times to %s" %
                         (subj, len(found), user))
        return found[0]

    def no_subject(self, d, user, subj, wait=1.0):
        time.sleep(wait)
        self.assertFalse([m for m in d.mbox(user) if m.subject == subj],
                         "%r reached %s" % (subj, user))

    def offline_dir(self, d):
        return os.path.join(d.queue, "offline")

    def offline_files(self, d):
        return sorted(n for n in os.listdir(self.offline_dir(d))
                      if not n.startswith("."))

    def stopped_daemon(self, **kw):
        """A daemon that has made its spool once and is stopped again."""
        d = self.daemon(**kw)
        self.assertEqual(d.stop(), 0)
        self.assertTrue(os.path.isdir(self.offline_dir(d)))
        return d

    # -- sending -----------------------------------------------------------

    def test_t_as_user(self):
        d = self.daemon(name="sm-t")
        subj = subject("t")
        msg = ("To: mtadtest2@%s,\n"
               "  \"Three, User\" <mtadtest3@%s> (third)\n"
               "Bcc: Hidden <mtadtest1@%s>\n"
               "Subject: %s\n"
               "\n"
               "Hello from cron.\n" % (HOSTNAME, HOSTNAME, HOSTNAME, subj))
        r = run_sendmail(d, ["-t", "-i"], msg.encode(), user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual(r.stdout, b"", text(r))
        self.assertEqual(r.stderr, b"", text(r))
        uid = pwd.getpwnam("mtadtest1").pw_uid
        for user in ("mtadtest1", "mtadtest2", "mtadtest3"):
            m = self.wait_subject(d, user, subj)
            h = m.header_block()
            self.assertNotRegex(h, r"(?im)^bcc:", h)
            self.assertNotIn("Hidden", h)
            self.assertEqual(m.msg["From"], "mtadtest1@%s" % HOSTNAME)
            self.assertRegex(m.msg["Date"], r"^\w{3}, \d\d \w{3} \d{4} "
                             r"\d\d:\d\d:\d\d [+-]\d{4}$")
            self.assertRegex(m.message_id, r"^<[^<>@\s]+@%s>$" %
                             re.escape(HOSTNAME))
            self.assertIn("local uid %d" % uid, m.msg["Received"])
            self.assertTrue(m.from_line.startswith(
                "From mtadtest1@%s " % HOSTNAME), m.from_line)
            # the folded To is kept as written
            self.assertIn("To: mtadtest2@%s,\n  \"Three, User\"" % HOSTNAME,
                          h)
            self.assertEqual(m.body(), b"Hello from cron.\n")

    def test_recipients_as_arguments(self):
        d = self.daemon(name="sm-args")
        subj = subject("args")
        msg = "Subject: %s\n\nbody\n" % subj
        r = run_sendmail(d, ["mtadtest2", "User Three <mtadtest3@%s>, "
                             "mtadtest2@%s" % (HOSTNAME, HOSTNAME)],
                         msg.encode(), user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        self.wait_subject(d, "mtadtest2", subj)
        self.wait_subject(d, "mtadtest3", subj)
        self.no_subject(d, "mtadtest1", subj, wait=0)

        # no recipient at all: a usage error, nothing sent
        r = run_sendmail(d, [], msg.encode(), user="mtadtest1")
        self.assertEqual(r.returncode, EX_USAGE, text(r))
        self.assertIn(b"no recipient", r.stderr)
        # an argument that looks like an option is refused
        r = run_sendmail(d, ["mtadtest2", "-X/tmp/log"], msg.encode(),
                         user="mtadtest1")
        self.assertEqual(r.returncode, EX_USAGE, text(r))

    def test_sender_and_full_name(self):
        d = self.daemon(name="sm-from")
        subj = subject("from")
        r = run_sendmail(d, ["-f", "robot@%s" % HOSTNAME, "-F",
                             "Jane Q. Doe", "mtadtest2"],
                         ("Subject: %s\n\nx\n" % subj).encode(),
                         user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        m = self.wait_subject(d, "mtadtest2", subj)
        self.assertTrue(m.from_line.startswith("From robot@%s " % HOSTNAME),
                        m.from_line)
        self.assertEqual(m.msg["From"], '"Jane Q. Doe" <robot@%s>' % HOSTNAME)

        # -fADDR, and a From: header of the message is kept as it is
        subj = subject("from2")
        r = run_sendmail(d, ["-fbounces@%s" % HOSTNAME, "-F", "Ignored",
                             "mtadtest2"],
                         ("From: Me <me@example.org>\nSubject: %s\n\nx\n" %
                          subj).encode(), user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        m = self.wait_subject(d, "mtadtest2", subj)
        self.assertTrue(m.from_line.startswith("From bounces@%s " %
                                               HOSTNAME), m.from_line)
        self.assertEqual(m.msg.get_all("From"), ["Me <me@example.org>"])

        # -r is -f
        subj = subject("from3")
        r = run_sendmail(d, ["-r", "<other@%s>" % HOSTNAME, "mtadtest2"],
                         ("Subject: %s\n\nx\n" % subj).encode(),
                         user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        m = self.wait_subject(d, "mtadtest2", subj)
        self.assertEqual(m.msg["From"], "other@%s" % HOSTNAME)

    def test_config_from_environment(self):
        d = self.daemon(name="sm-env")
        subj = subject("env")
        r = run_sendmail(d, ["mtadtest2"], ("Subject: %s\n\nx\n" %
                                            subj).encode(), user="mtadtest1",
                         conf=False, env={"MTAD_CONF": d.conf,
                                          "NAME": "From The Environment"})
        self.assertEqual(r.returncode, 0, text(r))
        m = self.wait_subject(d, "mtadtest2", subj)
        self.assertEqual(m.msg["From"], "From The Environment <mtadtest1@%s>"
                         % HOSTNAME)

        # an explicit -C that does not exist is an error, not the defaults
        r = run_sendmail(d, ["-C", d.conf + ".missing", "mtadtest2"], b"x\n",
                         user="mtadtest1", conf=False)
        self.assertEqual(r.returncode, EX_CONFIG, text(r))
        self.assertIn(b"No such file", r.stderr)

    def test_lone_dot(self):
        d = self.daemon(name="sm-dot")
        # without -i a line with a lone dot ends the message
        subj = subject("dot")
        msg = "Subject: %s\n\nline one\n.leading dot\n.\nafter the dot\n" % subj
        r = run_sendmail(d, ["mtadtest2"], msg.encode(), user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        m = self.wait_subject(d, "mtadtest2", subj)
        self.assertEqual(m.body(), b"line one\n.leading dot\n")

        # with -i (and -oi) it is text like any other, CRLF input too
        for opt in ("-i", "-oi"):
            subj = subject("dot" + opt)
            msg = ("Subject: %s\r\n\r\nline one\r\n.\r\n..two\r\nafter\r\n"
                   % subj)
            r = run_sendmail(d, [opt, "mtadtest2"], msg.encode(),
                             user="mtadtest1")
            self.assertEqual(r.returncode, 0, text(r))
            m = self.wait_subject(d, "mtadtest2", subj)
            self.assertEqual(m.body(), b"line one\n.\n..two\nafter\n")

    def test_ignored_options(self):
        d = self.daemon(name="sm-compat")
        subj = subject("compat")
        r = run_sendmail(d, ["-oem", "-oep", "-odb", "-odi", "-oq", "-ov",
                             "-oQ/var/spool", "-B", "8BITMIME", "-U", "-L",
                             "tag", "-N", "success,failure", "-R", "hdrs",
                             "-V", "env-id", "mtadtest2"],
                         ("Subject: %s\n\nx\n" % subj).encode(),
                         user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        self.wait_subject(d, "mtadtest2", subj)
        r = run_sendmail(d, ["-N", "sometimes", "mtadtest2"], b"x\n",
                         user="mtadtest1")
        self.assertEqual(r.returncode, EX_USAGE, text(r))

    def test_verbose(self):
        d = self.daemon(name="sm-v")
        subj = subject("v")
        r = run_sendmail(d, ["-v", "mtadtest2"],
                         ("Subject: %s\n\nx\n" % subj).encode(),
                         user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        err = r.stderr.decode()
        self.assertRegex(err, r"(?m)^>>> MAIL FROM:<mtadtest1@%s>" %
                         re.escape(HOSTNAME))
        self.assertRegex(err, r"(?m)^<<< 250 2\.0\.0 Ok: queued as "
                         r"[0-9a-f]{16}$")
        self.wait_subject(d, "mtadtest2", subj)

    def test_bs(self):
        d = self.daemon(name="sm-bs")
        subj = subject("bs")
        dialogue = ("EHLO client\r\n"
                    "MAIL FROM:<mtadtest1@%s>\r\n"
                    "RCPT TO:<mtadtest2@%s>\r\n"
                    "DATA\r\n"
                    "Subject: %s\r\n\r\nvia -bs\r\n..dot\r\n.\r\n"
                    "QUIT\r\n" % (HOSTNAME, HOSTNAME, subj))
        r = run_sendmail(d, ["-bs"], dialogue.encode(), user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        codes = [int(l[:3]) for l in r.stdout.decode().split("\r\n")
                 if re.match(r"^\d{3} ", l)]
        self.assertEqual(codes, [220, 250, 250, 250, 354, 250, 221],
                         text(r))
        m = self.wait_subject(d, "mtadtest2", subj)
        self.assertEqual(m.body(), b"via -bs\n.dot\n")
        self.assertIn("local uid %d" % pwd.getpwnam("mtadtest1").pw_uid,
                      m.msg["Received"])

    def test_bs_offline(self):
        d = self.stopped_daemon(name="sm-bs-offline")
        subj = subject("bs-offline")
        dialogue = ("EHLO client\r\n"
                    "MAIL FROM:<mtadtest1@%s>\r\n"
                    "RCPT TO:<mtadtest2@%s>\r\n"
                    "RCPT TO:<not an address>\r\n"
                    "DATA\r\n"
                    "Subject: %s\r\n\r\nkept\r\n..dot\r\n.\r\n"
                    "QUIT\r\n" % (HOSTNAME, HOSTNAME, subj))
        r = run_sendmail(d, ["-bs"], dialogue.encode(), user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        codes = [int(l[:3]) for l in r.stdout.decode().split("\r\n")
                 if re.match(r"^\d{3} ", l)]
        self.assertEqual(codes, [220, 250, 250, 250, 501, 354, 250, 221],
                         text(r))
        self.assertEqual(len(self.offline_files(d)), 1)
        d.start()
        m = self.wait_subject(d, "mtadtest2", subj)
        self.assertEqual(m.body(), b"kept\n.dot\n")
        self.assertEqual(m.msg["From"], "mtadtest1@%s" % HOSTNAME)
        mtadtest.wait_for(lambda: self.offline_files(d) == [],
                          what="an empty offline/")

    def test_refused_recipient(self):
        d = self.daemon(name="sm-relay")
        subj = subject("relay")
        r = run_sendmail(d, ["someone@remote.example", "mtadtest2"],
                         ("Subject: %s\n\nx\n" % subj).encode(),
                         user="mtadtest1")
        self.assertEqual(r.returncode, EX_NOUSER, text(r))
        self.assertRegex(r.stderr.decode(), r"<someone@remote\.example>: "
                         r"550 5\.7\.1 ")
        # the accepted recipient still gets it
        self.wait_subject(d, "mtadtest2", subj)

        # every recipient refused: nothing is sent
        r = run_sendmail(d, ["someone@remote.example"], b"Subject: no\n\nx\n",
                         user="mtadtest1")
        self.assertEqual(r.returncode, EX_NOUSER, text(r))
        self.assertIn(b"550 5.7.1", r.stderr)
        self.assertEqual(self.offline_files(d), [])

    # -- offline -----------------------------------------------------------

    def test_offline_drop_and_pickup(self):
        d = self.stopped_daemon(name="sm-offline")
        subj = subject("offline")
        msg = ("To: mtadtest2@%s\nBcc: mtadtest3@%s\nSubject: %s\n\n"
               "written while mtad was down\n" % (HOSTNAME, HOSTNAME, subj))
        r = run_sendmail(d, ["-t", "-i"], msg.encode(), user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual(r.stdout + r.stderr, b"", text(r))
        files = self.offline_files(d)
        self.assertEqual(len(files), 1, files)
        path = os.path.join(self.offline_dir(d), files[0])
        st = os.lstat(path)
        self.assertEqual(st.st_uid, pwd.getpwnam("mtadtest1").pw_uid)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        with open(path, "rb") as f:
            data = f.read()
        head, _, body = data.partition(b"\n\n")
        lines = head.split(b"\n")
        self.assertEqual(lines[0], b"mtad-offline 1")
        self.assertIn(b"sender <mtadtest1@%s>" % HOSTNAME.encode(), lines)
        self.assertIn(b"rcpt <mtadtest2@%s>" % HOSTNAME.encode(), lines)
        self.assertIn(b"rcpt <mtadtest3@%s>" % HOSTNAME.encode(), lines)
        self.assertIn(b"size %d" % len(body), lines)
        self.assertNotIn(b"\r", body)
        self.assertNotIn(b"Bcc", body)
        self.assertIn(b"\nMessage-Id: <", body)

        mark = d.log_mark()
        d.start()
        for user in ("mtadtest2", "mtadtest3"):
            m = self.wait_subject(d, user, subj)
            self.assertIn("local uid %d" %
                          pwd.getpwnam("mtadtest1").pw_uid,
                          m.msg["Received"])
            self.assertEqual(m.body(), b"written while mtad was down\n")
        mtadtest.wait_for(lambda: self.offline_files(d) == [],
                          what="an empty offline/")
        d.wait_log(r"offline: %s from mtadtest1 submitted: 250 " %
                   re.escape(files[0]), since=mark)

    def test_offline_verbose_says_where(self):
        d = self.stopped_daemon(name="sm-offline-v")
        r = run_sendmail(d, ["-v", "mtadtest2"], b"Subject: v\n\nx\n",
                         user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        self.assertIn(b"mtad is not running", r.stderr)
        self.assertIn(self.offline_dir(d).encode(), r.stderr)
        self.assertEqual(len(self.offline_files(d)), 1)

    def test_malformed_offline_file(self):
        d = self.stopped_daemon(name="sm-corrupt")
        path = os.path.join(self.offline_dir(d), "handmade")
        pid = os.fork()
        if pid == 0:        # as mtadtest1, as anyone could
            try:
                as_user("mtadtest1")()
                with open(path, "w") as f:
                    f.write("mtad-offline 1\nsender <>\nrcpt <mtadtest2@%s>\n"
                            "size 999\n\nSubject: forged size\n\nx\n" %
                            HOSTNAME)
                os._exit(0)
            except BaseException:
                os._exit(1)
        self.assertEqual(os.waitpid(pid, 0)[1], 0)
        # unfinished writes: removed after a day, not before
        for name, age in ((".stale", 2 * 86400), (".fresh", 60)):
            p = os.path.join(self.offline_dir(d), name)
            with open(p, "w") as f:
                f.write("mtad-offline 1\n")
            t = time.time() - age
            os.utime(p, (t, t))
        mark = d.log_mark()
        d.start()
        corrupt = os.path.join(d.queue, "corrupt", "offline.handmade")
        d.wait_log(r"offline: handmade from mtadtest1 moved to %s: size 999 "
                   r"announced" % re.escape(corrupt), since=mark)
        self.assertTrue(os.path.exists(corrupt))
        self.assertEqual(self.offline_files(d), [])
        self.assertEqual(sorted(os.listdir(self.offline_dir(d))), [".fresh"])
        d.wait_log(r"offline: removed \.stale, left unfinished by uid 0",
                   since=mark)
        self.no_subject(d, "mtadtest2", "forged size", wait=0.5)

    # -- the control socket ------------------------------------------------

    def deferred(self, d):
        """A message that waits in the queue (the mail directory is gone)."""
        os.rmdir(d.mail)
        subj = subject("deferred")
        r = run_sendmail(d, ["mtadtest2"], ("Subject: %s\n\nx\n" %
                                            subj).encode(), user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))

        def waiting():
            for e in d.queue_json():
                if e["state"] == "deferred":
                    return e
            return None
        return subj, mtadtest.wait_for(waiting, what="a deferred message")

    def test_mailq(self):
        d = self.daemon(name="sm-mailq")
        r = run_sendmail(d, [], argv0="mailq")
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual(r.stdout, b"Mail queue is empty\n")

        _, e = self.deferred(d)
        for how in (dict(argv0="mailq", args=[]),
                    dict(argv0=None, args=["-bp"])):
            r = run_sendmail(d, how["args"], argv0=how["argv0"])
            self.assertEqual(r.returncode, 0, text(r))
            out = r.stdout.decode()
            self.assertRegex(out, r"(?m)^%s\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
                             r"\s+<mtadtest1@%s>$" % (e["id"],
                                                      re.escape(HOSTNAME)))
            self.assertRegex(out, r"(?m)^\s+<mtadtest2@%s> deferred, " %
                             re.escape(HOSTNAME))
            self.assertIn("-- 1 message, 1 recipient", out)

        # an ordinary user may not read the queue
        r = run_sendmail(d, [], argv0="mailq", user="mtadtest1")
        self.assertEqual(r.returncode, EX_NOPERM, text(r))
        self.assertRegex(r.stderr.decode(), r"^mailq: permission denied: "
                         r"only root and members of group mtactl")
        self.assertEqual(r.stdout, b"")

    def test_flush(self):
        # no retry of its own for an hour: only -q delivers now
        d = self.daemon(name="sm-flush", retry="queue retry min 1h max 2h")
        subj, _ = self.deferred(d)
        os.mkdir(d.mail, 0o755)
        self.no_subject(d, "mtadtest2", subj, wait=1.5)
        r = run_sendmail(d, ["-q"])
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual(r.stdout + r.stderr, b"", text(r))
        self.wait_subject(d, "mtadtest2", subj)

        r = run_sendmail(d, ["-q"], user="mtadtest1")
        self.assertEqual(r.returncode, EX_NOPERM, text(r))

    def test_newaliases(self):
        d = self.daemon(name="sm-aliases", rules=ALIAS_RULES, start=False)
        aliases = os.path.join(d.dir, "aliases")
        with open(aliases, "w") as f:
            f.write("old: mtadtest3\n")
        d.start()
        subj = subject("alias1")
        r = run_sendmail(d, ["team"], ("Subject: %s\n\nx\n" % subj).encode(),
                         user="mtadtest1")
        self.assertEqual(r.returncode, EX_NOUSER, text(r))
        self.assertIn(b"<team@%s>: 550 5.1.1" % HOSTNAME.encode(), r.stderr)

        with open(aliases, "w") as f:
            f.write("old: mtadtest3\nteam: mtadtest2, mtadtest3\n")
        r = run_sendmail(d, [], argv0="newaliases")
        self.assertEqual(r.returncode, 0, text(r))
        self.assertEqual(r.stdout + r.stderr, b"", text(r))
        subj = subject("alias2")
        r = run_sendmail(d, ["team"], ("Subject: %s\n\nx\n" % subj).encode(),
                         user="mtadtest1")
        self.assertEqual(r.returncode, 0, text(r))
        self.wait_subject(d, "mtadtest2", subj)
        self.wait_subject(d, "mtadtest3", subj)

        # -bi is newaliases; a broken file is refused and shown
        with open(aliases, "w") as f:
            f.write("team: mtadtest2\nbroken:\n")
        r = run_sendmail(d, ["-bi"])
        self.assertEqual(r.returncode, EX_CONFIG, text(r))
        self.assertIn(("%s:2:" % aliases).encode(), r.stderr)

        r = run_sendmail(d, [], argv0="newaliases", user="mtadtest1")
        self.assertEqual(r.returncode, EX_NOPERM, text(r))
        self.assertIn(b"newaliases: permission denied", r.stderr)
