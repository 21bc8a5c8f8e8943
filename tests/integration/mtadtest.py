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
