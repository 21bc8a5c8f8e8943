"""Shared helpers of the mtad integration suite.

Everything here talks to loopback only.  The suite runs as root: it creates
the daemon's accounts and a few test mailbox users, starts mtad with a config
of its own in a temporary directory per test, and kills every daemon it
started in teardown, whatever happened in the test.

Environment: MTAD_BUILDDIR (where mtad and mtactl/mtactl were built) and
MTAD_SRCDIR (the source tree, for scripts/create-users.sh).  MTAD_KEEP=1
keeps the temporary directories for a post-mortem.
"""

import atexit
import email.parser
import email.policy
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("MTAD_SRCDIR") or os.path.abspath(
    os.path.join(HERE, "..", ".."))
# Unset: the current directory if mtad was built there (make check runs in
# the build tree), else the source tree (an in-tree build).
BUILDDIR = os.environ.get("MTAD_BUILDDIR") or (
    os.getcwd() if os.access("mtad", os.X_OK) else SRCDIR)
MTAD = os.path.join(BUILDDIR, "mtad")
MTACTL = os.path.join(BUILDDIR, "mtactl", "mtactl")

HOSTNAME = "mx.test"
TEST_USERS = ("mtadtest1", "mtadtest2", "mtadtest3")
CHILD_USERS = {
    "policy": "mtad-policy",
    "queue": "mtad-queue",
    "smtp-worker": "mtad-smtp",
    "deliver-worker": "mtad-deliver",
}

# Every bounded wait of the suite uses this unless told otherwise.
DEFAULT_TIMEOUT = 10.0

_suite = {"ready": False, "base": None}

# Daemons started during the current test: the runner prints their log
# tails when the test fails.
CURRENT_DAEMONS = []


# ---------------------------------------------------------------------------
# suite set-up

def _run(argv, check=True, **kw):
    return subprocess.run(argv, check=check, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, **kw)


def _remove_user(name):
    try:
        pwd.getpwnam(name)
    except KeyError:
        return
    _run(["userdel", "-f", name], check=False)
    # A leftover group of the same name would stop useradd -U next time.
    _run(["groupdel", name], check=False)


def suite_setup():
    """Idempotent: daemon accounts, test users, the suite's base temp dir."""
    if _suite["ready"]:
        return _suite["base"]
    if os.geteuid() != 0:
        raise unittest.SkipTest("the integration suite must run as root")
    for path in (MTAD, MTACTL):
        if not os.access(path, os.X_OK):
            raise RuntimeError("%s is not built (MTAD_BUILDDIR=%s)" %
                               (path, BUILDDIR))
    script = os.path.join(SRCDIR, "scripts", "create-users.sh")
    r = _run(["/bin/sh", script], check=False)
    if r.returncode != 0:
        raise RuntimeError("%s failed: %s" % (script, r.stderr))
    base = tempfile.mkdtemp(prefix="mtad-it-")
    os.chmod(base, 0o755)
    os.mkdir(os.path.join(base, "home"), 0o755)
    for u in TEST_USERS:
        _remove_user(u)
        home = os.path.join(base, "home", u)
        r = _run(["useradd", "--create-home", "--home-dir", home,
                  "--shell", "/usr/sbin/nologin", "--user-group", u],
                 check=False)
        if r.returncode != 0:
            raise RuntimeError("useradd %s failed: %s" % (u, r.stderr))
    _suite["base"] = base
    _suite["ready"] = True
    atexit.register(suite_teardown)
    return base


def suite_teardown():
    if not _suite["ready"]:
        return
    for d in list(ALL_DAEMONS):
        d.cleanup()
    for u in TEST_USERS:
        _remove_user(u)
    if not os.environ.get("MTAD_KEEP") and _suite["base"]:
        shutil.rmtree(_suite["base"], ignore_errors=True)
    _suite["ready"] = False


def base_dir():
    return suite_setup()


def user_home(name):
    return pwd.getpwnam(name).pw_dir


# ---------------------------------------------------------------------------
# waiting

class Timeout(AssertionError):
    pass


def wait_for(pred, timeout=DEFAULT_TIMEOUT, interval=0.05, what="condition"):
    """Polls pred() until it returns something true; returns that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise Timeout("timed out after %.1fs waiting for %s" %
                          (timeout, what))
        time.sleep(interval)


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


# ---------------------------------------------------------------------------
# /proc

def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return out


def proc_title(pid):
    """The process title (what `ps` shows up to the first NUL)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            raw = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw.split(b"\0")[0].decode("utf-8", "replace")


def proc_stat(pid):
    """(ppid, pgid) of a live process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = data[data.rindex(")") + 2:].split()
    # rest[0] = state, rest[1] = ppid, rest[2] = pgrp
    if rest[0] == "Z":
        return None
    return int(rest[1]), int(rest[2])


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def children_of(ppid):
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[0] == ppid:
            out.append(pid)
    return out


def group_members(pgid):
    out = []
    for pid in all_pids():
        st = proc_stat(pid)
        if st and st[1] == pgid:
            out.append(pid)
    return out


def pid_alive(pid):
    return proc_stat(pid) is not None


# ---------------------------------------------------------------------------
# the daemon

ALL_DAEMONS = []

CONFIG_HEAD = """\
# written by the mtad integration suite
hostname "{hostname}"
listen on 127.0.0.1 port {port}
queue path "{dir}/queue"
{retry}
chroot "{dir}/chroot"
control socket "{dir}/run/control.sock"
submit socket "{dir}/run/submit.sock"
pidfile "{dir}/run/mtad.pid"
"""

DEFAULT_RULES = """\
action "local" mbox "{mail}/%u"
match from local for local action "local"
"""


class Daemon:
    """One mtad instance with its own directory, port, spool and log.

    rules: the config text after the common head; {mail}, {dir}, {port}
    are substituted.  extra: more statements for the head (limits...).
    """

    def __init__(self, rules=DEFAULT_RULES, extra="",
                 retry="queue retry min 1s max 2s", name="mtad"):
        base = base_dir()
        self.dir = tempfile.mkdtemp(prefix=name + "-", dir=base)
        os.chmod(self.dir, 0o755)
        for sub in ("chroot", "run", "mail"):
            os.mkdir(os.path.join(self.dir, sub), 0o755)
        self.mail = os.path.join(self.dir, "mail")
        self.queue = os.path.join(self.dir, "queue")
        self.chroot = os.path.join(self.dir, "chroot")
        self.control = os.path.join(self.dir, "run", "control.sock")
        self.pidfile = os.path.join(self.dir, "run", "mtad.pid")
        self.conf = os.path.join(self.dir, "mtad.conf")
        self.logpath = os.path.join(self.dir, "mtad.log")
        self.port = free_port()
        self.retry = retry
        self.extra = extra
        self.rules = rules
        self.proc = None
        self.pgid = None
        self.logf = None
        self.write_config()
        ALL_DAEMONS.append(self)
        CURRENT_DAEMONS.append(self)

    # -- configuration --

    def subst(self, text):
        return (text.replace("{mail}", self.mail)
                    .replace("{dir}", self.dir)
                    .replace("{port}", str(self.port)))

    def config_text(self, rules=None, extra=None):
        head = CONFIG_HEAD.format(hostname=HOSTNAME, port=self.port,
                                  dir=self.dir, retry=self.retry)
        extra = self.extra if extra is None else extra
        rules = self.rules if rules is None else rules
        return head + self.subst(extra) + "\n" + self.subst(rules)

    def write_config(self, rules=None, extra=None):
        if rules is not None:
            self.rules = rules
        if extra is not None:
            self.extra = extra
        with open(self.conf, "w") as f:
            f.write(self.config_text())

    def check_config(self):
        return _run([MTAD, "-n", "-f", self.conf], check=False)

    # -- life cycle --

    def start(self, wait=True, timeout=DEFAULT_TIMEOUT):
        if self.logf is None:
            self.logf = open(self.logpath, "ab")
        self.proc = subprocess.Popen(
            [MTAD, "-d", "-f", self.conf], stdin=subprocess.DEVNULL,
            stdout=self.logf, stderr=subprocess.STDOUT,
            start_new_session=True, cwd=self.dir)
        self.pgid = self.proc.pid
        if wait:
            self.wait_ready(timeout)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout=DEFAULT_TIMEOUT):
        """Until a client gets the greeting and the control socket exists."""
        def greeted():
            if not self.running():
                raise AssertionError("mtad exited with status %s:\n%s" %
                                     (self.proc.returncode, self.log_tail()))
            try:
                c = SMTPClient(self.port, timeout=2)
            except OSError:
                return False
            try:
                code, _ = c.read_reply()
                c.close()
                return code == 220
            except (OSError, SMTPProtocolError):
                c.close()
                return False
        wait_for(greeted, timeout, what="mtad to greet on port %d" %
                 self.port)
        wait_for(lambda: os.path.exists(self.control), timeout,
                 what="control socket %s" % self.control)

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def members(self):
        """Live processes of the daemon's process group."""
        if self.pgid is None:
            return []
        return group_members(self.pgid)

    def kill_all(self, timeout=DEFAULT_TIMEOUT):
        """kill -9 of every process of the daemon, then reap the master."""
        if self.pgid is None:
            return
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        wait_for(lambda: not self.members(), timeout,
                 what="every mtad process to die")

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """SIGTERM; returns the exit status (None if it had to be killed)."""
        if not self.running():
            return self.proc.returncode if self.proc else None
        self.signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill_all()
            return None

    def cleanup(self):
        try:
            if self.running():
                self.stop(timeout=5)
            if self.pgid is not None and self.members():
                self.kill_all()
        finally:
            if self.logf is not None:
                self.logf.close()
                self.logf = None
            if self in ALL_DAEMONS:
                ALL_DAEMONS.remove(self)

    # -- log --

    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        return len(self.log())

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def wait_log(self, regex, since=0, timeout=DEFAULT_TIMEOUT, count=1):
        rx = re.compile(regex, re.M)

        def found():
            hits = rx.findall(self.log()[since:])
            return hits if len(hits) >= count else None
        return wait_for(found, timeout, what="log line /%s/ (x%d)" %
                        (regex, count))

    # -- processes --

    def children(self):
        return children_of(self.pid)

    def child_titles(self):
        """{pid: title} of the master's children (helpers excluded)."""
        return {p: proc_title(p) for p in self.children()}

    def pids_with_title(self, title):
        return sorted(p for p, t in self.child_titles().items() if t == title)

    # -- mtactl --

    def ctl(self, *args, json_out=False):
        argv = [MTACTL, "-s", self.control]
        if json_out:
            argv.append("-j")
        return _run(argv + list(args), check=False, timeout=DEFAULT_TIMEOUT)

    def queue_json(self):
        r = self.ctl("show", "queue", json_out=True)
        if r.returncode != 0:
            raise AssertionError("mtactl -j show queue: exit %d: %s" %
                                 (r.returncode, r.stderr))
        return json.loads(r.stdout)

    def stats(self):
        r = self.ctl("show", "stats", json_out=True)
        if r.returncode != 0:
            raise AssertionError("mtactl -j show stats: exit %d: %s" %
                                 (r.returncode, r.stderr))
        return json.loads(r.stdout)

    def wait_queue_empty(self, timeout=DEFAULT_TIMEOUT):
        return wait_for(lambda: self.queue_json() == [] or None, timeout,
                        what="an empty queue")

    # -- mailboxes --

    def mbox_path(self, user):
        return os.path.join(self.mail, user)

    def mbox(self, user):
        return read_mbox(self.mbox_path(user))

    def wait_mbox(self, user, pred=None, timeout=DEFAULT_TIMEOUT, what=None):
        """Until the mailbox of user has messages satisfying pred(msgs)."""
        pred = pred or (lambda msgs: len(msgs) > 0)

        def check():
            msgs = self.mbox(user)
            return msgs if pred(msgs) else None
        return wait_for(check, timeout,
                        what=what or "mail in %s" % self.mbox_path(user))

    def wait_message(self, user, msgid, timeout=DEFAULT_TIMEOUT):
        """The messages of user's mbox with that Message-Id (waits for one)."""
        def check():
            found = [m for m in self.mbox(user) if m.message_id == msgid]
            return found or None
        return wait_for(check, timeout,
                        what="%s in the mbox of %s" % (msgid, user))


# ---------------------------------------------------------------------------
# SMTP

class SMTPProtocolError(Exception):
    pass


class SMTPClient:
    """A raw SMTP client: exact bytes out, replies parsed as they come."""

    def __init__(self, port, source="127.0.0.1", timeout=DEFAULT_TIMEOUT,
                 host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        try:
            self.sock.bind((source, 0))
            self.sock.connect((host, port))
        except OSError:
            self.sock.close()
            raise
        self.buf = b""
        self.timeout = timeout

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _readline(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\r\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no reply line within %.1fs" % timeout)
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by the server")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def read_reply(self, timeout=None):
        """(code, [text lines]) of one (possibly multi-line) reply."""
        timeout = self.timeout if timeout is None else timeout
        lines = []
        while True:
            line = self._readline(timeout)
            m = re.match(r"^(\d{3})([ -])(.*)$", line)
            if not m:
                raise SMTPProtocolError("bad reply line %r" % line)
            lines.append(m.group(3))
            if m.group(2) == " ":
                return int(m.group(1)), lines

    def cmd(self, line, timeout=None):
        self.send(line + "\r\n")
        return self.read_reply(timeout)

    def greeting(self):
        return self.read_reply()

    def closed(self, timeout=5.0):
        """True if the server closes the connection within timeout (any
        unread data before the close is dropped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                return True
            if not chunk:
                return True
            self.buf += chunk


def reply_text(reply):
    code, lines = reply
    return "%d %s" % (code, " / ".join(lines))


def make_message(subject, msgid, body="Hello.\r\n",
                 sender="sender@client.test",
                 to="rcpt@mx.test", headers=()):
    """A message with CRLF line ends (body lines must be CRLF already)."""
    h = ["From: <%s>" % sender, "To: <%s>" % to, "Subject: %s" % subject,
         "Message-Id: %s" % msgid, "Date: Mon, 23 Nov 2026 12:00:00 +0000"]
    h.extend(headers)
    text = "\r\n".join(h) + "\r\n\r\n" + body
    return text.encode()


_msgid_counter = [0]


def new_msgid(tag="t"):
    _msgid_counter[0] += 1
    return "<%s.%d.%d.%d@client.test>" % (tag, os.getpid(), int(time.time()),
                                          _msgid_counter[0])


QUEUED_RX = re.compile(r"^2\.0\.0 Ok: queued as ([0-9a-f]{16})$")


def smtp_send(port, sender, rcpts, msg, source="127.0.0.1",
              helo="client.test"):
    """Sends one message over a raw session; returns (queue id, replies).

    Fails the test (AssertionError) on any unexpected reply.
    """
    with SMTPClient(port, source=source) as c:
        code, _ = c.greeting()
        assert code == 220, "greeting %d" % code
        r = c.cmd("EHLO " + helo)
        assert r[0] == 250, "EHLO: " + reply_text(r)
        r = c.cmd("MAIL FROM:<%s>" % sender)
        assert r[0] == 250, "MAIL: " + reply_text(r)
        for rc in rcpts:
            r = c.cmd("RCPT TO:<%s>" % rc)
            assert r[0] == 250, "RCPT %s: %s" % (rc, reply_text(r))
        r = c.cmd("DATA")
        assert r[0] == 354, "DATA: " + reply_text(r)
        c.send(dot_stuff(msg) + b".\r\n")
        r = c.read_reply()
        assert r[0] == 250, "end of DATA: " + reply_text(r)
        m = QUEUED_RX.match(r[1][0])
        assert m, "250 reply without a queue id: " + reply_text(r)
        c.cmd("QUIT")
        return m.group(1)


def dot_stuff(msg):
    if not msg.endswith(b"\r\n"):
        msg += b"\r\n"
    lines = msg.split(b"\r\n")
    return b"\r\n".join(b"." + l if l.startswith(b".") else l for l in lines)


# ---------------------------------------------------------------------------
# mailboxes

class MboxMessage:
    def __init__(self, from_line, raw):
        self.from_line = from_line          # "From sender date"
        self.raw = raw                      # bytes, LF line ends, unquoted
        self.msg = email.parser.BytesParser(
            policy=email.policy.compat32).parsebytes(raw)

    @property
    def message_id(self):
        v = self.msg.get("Message-Id")
        return v.strip() if v else None

    @property
    def subject(self):
        return self.msg.get("Subject")

    def header_block(self):
        return self.raw.split(b"\n\n", 1)[0].decode("utf-8", "replace")

    def body(self):
        parts = self.raw.split(b"\n\n", 1)
        return parts[1] if len(parts) == 2 else b""

    def __repr__(self):
        return "<MboxMessage %r %s>" % (self.from_line, self.message_id)


_FROMQ = re.compile(rb"^>(>*From )")


def read_mbox(path):
    """Messages of an mboxrd file ([] if it does not exist)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    msgs = []
    cur_from, cur = None, []
    prev_blank = True
    for line in data.split(b"\n"):
        if line.startswith(b"From ") and prev_blank:
            if cur_from is not None:
                msgs.append(_finish(cur_from, cur, 1))
            cur_from, cur = line.decode("utf-8", "replace"), []
        elif cur_from is not None:
            cur.append(_FROMQ.sub(rb"\1", line))
        prev_blank = line == b""
    if cur_from is not None:
        # the split's empty last item, then the separator
        msgs.append(_finish(cur_from, cur, 2))
    return msgs


def _finish(from_line, lines, strip):
    # The separator blank line after each message belongs to the mbox.
    for _ in range(strip):
        if lines and lines[-1] == b"":
            lines = lines[:-1]
    return MboxMessage(from_line, b"\n".join(lines) + b"\n")


def read_maildir(path):
    """[(filename, stat, bytes)] of path/new and path/cur."""
    out = []
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            continue
        for n in names:
            p = os.path.join(d, n)
            with open(p, "rb") as f:
                out.append((os.path.join(sub, n), os.stat(p), f.read()))
    return out


# ---------------------------------------------------------------------------
# test case base

class MtadTestCase(unittest.TestCase):
    """Starts and always stops daemons through self.daemon()."""

    @classmethod
    def setUpClass(cls):
        suite_setup()

    def daemon(self, *args, start=True, **kw):
        d = Daemon(*args, **kw)
        self.addCleanup(d.cleanup)
        if start:
            d.start()
        return d

    def assertReply(self, reply, code, status=None, msg=None):
        text = reply_text(reply)
        self.assertEqual(reply[0], code, msg or "unexpected reply: " + text)
        if status is not None:
            self.assertTrue(reply[1][-1].startswith(status + " ") or
                            reply[1][-1] == status,
                            msg or "expected %d %s, got %s" %
                            (code, status, text))


class SharedDaemonCase(MtadTestCase):
    """One daemon for every test of the class (started in setUpClass)."""

    RULES = DEFAULT_RULES
    EXTRA = ""

    @classmethod
    def setUpClass(cls):
        suite_setup()
        cls.mtad = Daemon(rules=cls.RULES, extra=cls.EXTRA,
                          name=cls.__name__.lower())
        try:
            cls.mtad.start()
        except BaseException:
            cls.mtad.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.mtad.cleanup()

    def setUp(self):
        # The shared daemon's log belongs to every test of the class.
        if self.mtad not in CURRENT_DAEMONS:
            CURRENT_DAEMONS.append(self.mtad)


# ---------------------------------------------------------------------------
# queue control, notifications (DSN), full disk and crash tests

def create_user(name):
    """A throw-away account without a home; returns its uid.  Create it
    before the daemon starts: policy reads the accounts once."""
    _remove_user(name)
    r = _run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin",
              "--user-group", name], check=False)
    if r.returncode != 0:
        raise RuntimeError("useradd %s failed: %s" % (name, r.stderr))
    return pwd.getpwnam(name).pw_uid


def delete_user(name):
    _remove_user(name)


def smtp_send_dsn(port, sender, rcpts, msg, mail_params="", source="127.0.0.1",
                  helo="client.test"):
    """smtp_send with ESMTP parameters: mail_params after MAIL FROM, rcpts a
    list of addresses or of (address, parameters).  Returns the queue id."""
    with SMTPClient(port, source=source) as c:
        code, _ = c.greeting()
        assert code == 220, "greeting %d" % code
        r = c.cmd("EHLO " + helo)
        assert r[0] == 250, "EHLO: " + reply_text(r)
        line = "MAIL FROM:<%s>" % sender
        if mail_params:
            line += " " + mail_params
        r = c.cmd(line)
        assert r[0] == 250, "%s: %s" % (line, reply_text(r))
        for rc in rcpts:
            addr, params = (rc, "") if isinstance(rc, str) else rc
            line = "RCPT TO:<%s>" % addr
            if params:
                line += " " + params
            r = c.cmd(line)
            assert r[0] == 250, "%s: %s" % (line, reply_text(r))
        r = c.cmd("DATA")
        assert r[0] == 354, "DATA: " + reply_text(r)
        c.send(dot_stuff(msg) + b".\r\n")
        r = c.read_reply()
        assert r[0] == 250, "end of DATA: " + reply_text(r)
        m = QUEUED_RX.match(r[1][0])
        assert m, "250 reply without a queue id: " + reply_text(r)
        c.cmd("QUIT")
        return m.group(1)


def is_dsn(mbox_msg):
    """A message mtad generated (null sender in the mbox From_ line)."""
    return mbox_msg.from_line.startswith("From MAILER-DAEMON ")


def dsns_about(mbox_msgs, msgid):
    """The notifications of an mbox that return the message with msgid."""
    return [m for m in mbox_msgs if is_dsn(m) and msgid.encode() in m.raw]


class DSN:
    """A delivery status notification parsed with the email package
    (policy default): the report, its per-message fields and one dict of
    fields per recipient (keys as in the report, e.g. "Action")."""

    def __init__(self, mbox_msg):
        self.mbox_msg = mbox_msg
        self.msg = email.message_from_bytes(mbox_msg.raw,
                                            policy=email.policy.default)
        parts = self.msg.get_payload() if self.msg.is_multipart() else []
        self.parts = parts
        self.per_message = None
        self.recipients = []
        for p in parts:
            if p.get_content_type() == "message/delivery-status":
                blocks = p.get_payload()
                self.per_message = dict(blocks[0].items())
                self.recipients = [dict(b.items()) for b in blocks[1:]]

    def content_types(self):
        return [p.get_content_type() for p in self.parts]

    def part(self, ctype):
        for p in self.parts:
            if p.get_content_type() == ctype:
                return p
        return None

    def actions(self):
        return sorted(r.get("Action", "").strip().lower()
                      for r in self.recipients)


def env_set_created(path, created):
    """Rewrites the `created` line of a spool envelope; the file is
    otherwise left byte-identical (mode and owner kept)."""
    with open(path, "rb") as f:
        data = f.read()
    new, n = re.subn(rb"(?m)^created [0-9]+$", b"created %d" % created, data)
    if n != 1:
        raise AssertionError("%s: %d created lines" % (path, n))
    st = os.stat(path)
    tmp = path + ".it-tmp"
    with open(tmp, "wb") as f:
        f.write(new)
    os.chown(tmp, st.st_uid, st.st_gid)
    os.chmod(tmp, st.st_mode & 0o7777)
    os.rename(tmp, path)


def spool_entries(d, sub):
    """Names in the spool's sub directory (incoming, queue, corrupt)."""
    try:
        return sorted(os.listdir(os.path.join(d.queue, sub)))
    except FileNotFoundError:
        return []


def temp_failing_mbox(d, user):
    """Makes delivery to user's mbox fail temporarily (4.2.0): the mailbox
    exists, belongs to the user, and the user may not open it.  Returns a
    function that fixes it."""
    path = d.mbox_path(user)
    pw = pwd.getpwnam(user)
    with open(path, "ab"):
        pass
    os.chown(path, pw.pw_uid, pw.pw_gid)
    os.chmod(path, 0)

    def fix():
        os.chmod(path, 0o600)
    return fix


# ---------------------------------------------------------------------------
# remote delivery: a DNS server of the test (dnsmasq), SMTP peers on
# loopback addresses (Postfix's smtp-sink, aiosmtpd), a test CA

DNSMASQ = "/usr/sbin/dnsmasq"
SMTP_SINK = "/usr/sbin/smtp-sink"
OPENSSL = "/usr/bin/openssl"

_loopback_next = [0]


def loopback_addr():
    """A fresh address of 127.0.0.0/8 for a peer, never 127.0.0.1."""
    base = 20 + os.getpid() % 200
    while True:
        _loopback_next[0] += 1
        n = _loopback_next[0]
        addr = "127.%d.%d.%d" % (base, n // 250, 2 + n % 250)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((addr, 0))
            return addr
        except OSError:
            continue
        finally:
            s.close()


def free_udp_tcp_port(addr="127.0.0.1"):
    """A port free for both UDP and TCP on addr (a DNS server needs both)."""
    for _ in range(100):
        port = free_port()
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((addr, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
    raise RuntimeError("no free port for a DNS server")


class DnsServer:
    """dnsmasq on 127.0.0.1:port, answering only from its own records
    (nothing is forwarded: --no-resolv, and *.test is local).

    mx:    [(domain, host, preference)]
    hosts: [(name, address, ...)] (A and AAAA records)
    extra: more dnsmasq options, e.g. "--dns-rr=..." or "--server=/d/ip#port"
    """

    def __init__(self, mx=(), hosts=(), extra=()):
        self.port = None
        self.args = [DNSMASQ, "--keep-in-foreground", "--conf-file=/dev/null",
                     "--listen-address=127.0.0.1",
                     "--bind-interfaces", "--no-resolv", "--no-hosts",
                     "--no-poll", "--local-ttl=0", "--pid-file=",
                     "--user=root", "--local=/test/", "--log-facility=-"]
        for domain, host, pref in mx:
            self.args.append("--mx-host=%s,%s,%d" % (domain, host, pref))
        for h in hosts:
            self.args.append("--host-record=%s" % ",".join(h))
        self.args.extend(extra)
        self.proc = None

    @property
    def resolver(self):
        return "127.0.0.1@%d" % self.port

    def start(self, tries=5):
        """Starts on a free port; another one if that was taken meanwhile
        (other test runs may share the machine)."""
        for i in range(tries):
            try:
                return self._start_once()
            except AssertionError as e:
                if "in use" not in str(e) or i == tries - 1:
                    raise
        return self

    def _start_once(self):
        self.port = free_udp_tcp_port()
        self.proc = subprocess.Popen(self.args + ["--port=%d" % self.port],
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("dnsmasq exited: %s" %
                                     self.proc.stderr.read().decode())
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.connect(("127.0.0.1", self.port))
                return True
            except OSError:
                return False
            finally:
                s.close()
        wait_for(ready, what="dnsmasq on port %d" % self.port)
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None and self.proc.stderr:
            self.proc.stderr.close()


class SmtpSink:
    """Postfix's smtp-sink on addr:port: accepts everything, one file per
    transaction in its directory."""

    def __init__(self, addr, port, tmpdir):
        self.addr, self.port = addr, port
        self.dir = tempfile.mkdtemp(prefix="sink-", dir=tmpdir)
        os.chmod(self.dir, 0o777)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [SMTP_SINK, "-u", "nobody", "-d", self.dir + "/%H%M%S.",
             "%s:%d" % (self.addr, self.port), "64"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("smtp-sink exited")
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.connect((self.addr, self.port))
                return True
            except OSError:
                return False
            finally:
                s.close()
        wait_for(ready, what="smtp-sink on %s:%d" % (self.addr, self.port))
        return self

    def messages(self):
        out = []
        for n in sorted(os.listdir(self.dir)):
            with open(os.path.join(self.dir, n), "rb") as f:
                out.append(f.read())
        return out

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class TestCA:
    """A throw-away CA and server certificates signed by it (openssl)."""

    def __init__(self, tmpdir):
        self.dir = tempfile.mkdtemp(prefix="ca-", dir=tmpdir)
        os.chmod(self.dir, 0o755)
        self.ca_key = os.path.join(self.dir, "ca.key")
        self.ca_pem = os.path.join(self.dir, "ca.pem")
        _run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
              "-keyout", self.ca_key, "-out", self.ca_pem, "-days", "2",
              "-subj", "/CN=mtad test CA"])
        os.chmod(self.ca_pem, 0o644)

    def server_cert(self, name, self_signed=False):
        """(certfile, keyfile) for name (CN and subjectAltName)."""
        key = os.path.join(self.dir, name + ".key")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s\n" % name)
        if self_signed:
            _run([OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                  "-keyout", key, "-out", cert, "-days", "2",
                  "-subj", "/CN=%s" % name, "-addext",
                  "subjectAltName=DNS:%s" % name])
            return cert, key
        csr = os.path.join(self.dir, name + ".csr")
        _run([OPENSSL, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
              "-out", csr, "-subj", "/CN=%s" % name])
        _run([OPENSSL, "x509", "-req", "-in", csr, "-CA", self.ca_pem,
              "-CAkey", self.ca_key, "-CAcreateserial", "-out", cert,
              "-days", "2", "-extfile", ext])
        return cert, key


class PeerMessage:
    def __init__(self, mail_from, rcpts, data, mail_options, rcpt_options,
                 auth_login, tls, client=None, helo=None):
        self.client = client                # the client's address
        self.helo = helo
        self.mail_from = mail_from
        self.rcpts = rcpts
        self.data = data
        self.mail_options = mail_options
        self.rcpt_options = rcpt_options    # one list per recipient
        self.auth_login = auth_login
        self.tls = tls


class ScriptedPeer:
    """An SMTP peer (aiosmtpd) with scripted replies.

    rcpt_replies: {address: "450 4.2.0 ..."}; others get 250.
    data_reply:   a reply to the end of DATA instead of 250.
    greeting:     a reply to send instead of the usual 220 banner.
    tls:          (certfile, keyfile): STARTTLS offered.
    auth:         {"user": "password"}: AUTH offered (after TLS) and required;
                  mechanisms: those offered, among PLAIN, LOGIN, CRAM-MD5.
    drop:         capabilities removed from EHLO ("8BITMIME", "SIZE", ...).
    add:          capabilities added ("PIPELINING", "DSN").
    size_limit:   the SIZE announced (0: none).
    delay:        seconds to wait before answering the end of DATA.
    implicit_tls: (certfile, keyfile): TLS from the first byte (smtps).
    ehlo_reply:   a reply to EHLO instead of the capabilities ("502 ...").
    """

    def __init__(self, addr, port, rcpt_replies=None, data_reply=None,
                 greeting=None, tls=None, auth=None, mechanisms=None,
                 drop=(), add=(), size_limit=0, delay=0.0,
                 implicit_tls=None, ehlo_reply=None):
        import asyncio
        import ssl
        import threading
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP, AuthResult, MISSING
        self.addr, self.port = addr, port
        self.messages = []
        self.connections = 0
        self.active = 0
        self.max_active = 0
        self.rsets = 0
        self.ehlos = []
        self.live = set()
        self.lock = threading.Lock()
        peer = self
        rcpt_replies = dict(rcpt_replies or {})
        mechanisms = list(mechanisms or ["PLAIN", "LOGIN", "CRAM-MD5"])

        class Handler:
            async def handle_EHLO(self, server, session, envelope, hostname,
                                  responses):
                session.host_name = hostname
                peer.ehlos.append(hostname)
                if ehlo_reply:
                    return [ehlo_reply]
                out = []
                for r in responses:
                    word = r[4:].split(" ")[0].upper()
                    if word in drop:
                        continue
                    if word == "SIZE" and size_limit:
                        r = "250-SIZE %d" % size_limit
                    out.append(r)
                last = out.pop()
                out.extend("250-" + a for a in add)
                out.append(last)
                return out

            async def handle_RCPT(self, server, session, envelope, address,
                                  rcpt_options):
                reply = rcpt_replies.get(address)
                if reply and not reply.startswith("2"):
                    return reply
                envelope.rcpt_tos.append(address)
                envelope.rcpt_options.append(list(rcpt_options))
                return "250 2.1.5 OK"

            async def handle_RSET(self, server, session, envelope):
                with peer.lock:
                    peer.rsets += 1
                return "250 2.0.0 OK"

            async def handle_DATA(self, server, session, envelope):
                if delay:
                    await asyncio.sleep(delay)
                if data_reply:
                    return data_reply
                with peer.lock:
                    peer.messages.append(PeerMessage(
                        envelope.mail_from, list(envelope.rcpt_tos),
                        envelope.content, list(envelope.mail_options),
                        list(envelope.rcpt_options), session.auth_data,
                        session.ssl is not None or bool(implicit_tls),
                        session.peer[0] if session.peer else None,
                        session.host_name))
                return "250 2.0.0 OK queued"

            async def auth_CRAM__MD5(self, server, args):
                import hmac
                challenge = b"<%d.%d@peer.test>" % (os.getpid(),
                                                    int(time.time()))
                resp = await server.challenge_auth(challenge)
                if resp is MISSING:
                    return AuthResult(success=False, handled=False)
                user, _, digest = resp.partition(b" ")
                pw = (auth or {}).get(user.decode(errors="replace"))
                ok = pw is not None and hmac.compare_digest(
                    hmac.new(pw.encode(), challenge, "md5").hexdigest()
                    .encode(), digest)
                return AuthResult(success=ok, auth_data=user, handled=False)

        def authenticator(server, session, envelope, mechanism, data):
            login = data.login.decode(errors="replace")
            ok = (auth or {}).get(login) == data.password.decode(
                errors="replace")
            # handled=False: aiosmtpd answers 535 itself
            return AuthResult(success=ok, auth_data=data, handled=False)

        class PeerSMTP(SMTP):
            def connection_made(self, transport):
                first = self._original_transport is None and \
                    self.transport is None
                super().connection_made(transport)
                if first:
                    with peer.lock:
                        peer.connections += 1
                        peer.live.add(id(self))
                        peer.max_active = max(peer.max_active,
                                              len(peer.live))
                    if greeting:
                        # replaces the banner: _handle_client sends it first
                        self.__dict__["_peer_greeting"] = greeting

            def connection_lost(self, error):
                with peer.lock:
                    peer.live.discard(id(self))
                super().connection_lost(error)

            async def push(self, status):
                g = self.__dict__.pop("_peer_greeting", None)
                if g is not None and status.startswith("220 "):
                    status = g
                return await super().push(status)

            def _getparams(self, params):
                # DSN parameters are accepted when DSN is offered.
                if "DSN" in add:
                    params = [p for p in params if p.split("=")[0] not in
                              ("RET", "ENVID", "NOTIFY", "ORCPT")]
                return super()._getparams(params)

        kw = {}
        if tls:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(tls[0], tls[1])
            kw["tls_context"] = ctx
        if auth is not None:
            kw["authenticator"] = authenticator
            kw["auth_required"] = True
            kw["auth_exclude_mechanism"] = [
                m for m in ("PLAIN", "LOGIN", "CRAM-MD5")
                if m not in mechanisms]

        class PeerController(Controller):
            def factory(self):
                return PeerSMTP(self.handler, **self.SMTP_kwargs)

        if size_limit:
            kw["data_size_limit"] = size_limit
        if implicit_tls:
            ictx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ictx.load_cert_chain(implicit_tls[0], implicit_tls[1])
            kw["ssl_context"] = ictx
        self.controller = PeerController(Handler(), hostname=addr, port=port,
                                         server_hostname="peer.test", **kw)

    def start(self):
        self.controller.start()
        # the controller's own check connection does not count
        time.sleep(0.1)
        with self.lock:
            self.connections = 0
            self.live.clear()
            self.max_active = 0
        return self

    def stop(self):
        try:
            self.controller.stop()
        except Exception:
            pass

    def wait_messages(self, n=1, timeout=DEFAULT_TIMEOUT):
        return wait_for(lambda: self.messages if len(self.messages) >= n
                        else None, timeout,
                        what="%d message(s) at %s:%d" % (n, self.addr,
                                                         self.port))


class ServfailServer:
    """A UDP DNS responder on 127.0.0.1 that answers SERVFAIL to every
    query: an upstream for dnsmasq (--server=/zone/127.0.0.1#port) that
    makes a zone fail temporarily, at once."""

    def __init__(self):
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.settimeout(0.2)
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self):
        while not self.stopping:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                continue
            if len(data) < 13:
                continue
            i = 12
            while i < len(data) and data[i] != 0:
                i += data[i] + 1
            if i + 5 > len(data):
                continue
            # QR, RD echoed, RA, RCODE 2; the question only
            hdr = (data[:2] + bytes([0x80 | (data[2] & 0x01), 0x82]) +
                   b"\0\1\0\0\0\0\0\0")
            try:
                self.sock.sendto(hdr + data[12:i + 5], peer)
            except OSError:
                pass

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        self.thread.join(2)
        self.sock.close()
