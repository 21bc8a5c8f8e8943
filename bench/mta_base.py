"""What the three MTA set-ups share: templates, start and stop, accounting.

An MTA object owns one instance: its config files (written from
bench/conf/*.in), its spool, its log, and the processes it started.
Subclasses say how to start and stop it, where its spool is, and what it
promises before it answers 250.
"""

import os
import re
import shutil
import signal
import subprocess

import loads
import procs

CONF_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf")


def render(template, values):
    """bench/conf/TEMPLATE with every @KEY@ replaced; an unknown key is an
    error, so that a template and its caller cannot drift apart."""
    with open(os.path.join(CONF_DIR, template)) as f:
        text = f.read()

    def sub(m):
        if m.group(1) not in values:
            raise KeyError("%s: no value for @%s@" % (template, m.group(1)))
        return str(values[m.group(1)])
    return re.sub(r"@([A-Z_]+)@", sub, text)


def write(path, text, mode=0o644):
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def run(argv, **kw):
    """Run a command, fail loudly with its output if it fails."""
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, **kw)
    if p.returncode != 0:
        raise RuntimeError("%s: exit %d: %s" % (
            " ".join(argv), p.returncode,
            p.stdout.decode("utf-8", "replace").strip()[-500:]))
    return p.stdout.decode("utf-8", "replace")


class Mta:
    name = ""           # key in results.json
    label = ""          # column title in results.md
    durability = ""     # what the MTA has made durable when it says 250
    # log lines worth reporting (case-insensitive)
    problems = r"fatal|panic|error|warn|refus|restart|killed|lost|denied"

    def __init__(self, opts, port):
        self.opts = opts
        self.port = port
        self.dir = os.path.join(opts.workdir, "mta", self.name)
        self.spool = os.path.join(opts.spool_root, self.name)
        self.logpath = os.path.join(self.dir, "log", self.name + ".log")
        self.proc = None

    # -- to be provided --

    def prepare(self):
        """Write the configuration once, before the first start."""
        raise NotImplementedError

    def _start(self):
        raise NotImplementedError

    def _stop(self):
        raise NotImplementedError

    def roots(self):
        """pids whose process trees make up the running MTA."""
        raise NotImplementedError

    def version(self):
        raise NotImplementedError

    def config_files(self):
        """{path: text} of everything that configures this instance."""
        raise NotImplementedError

    def settings(self):
        """Non-default settings and why, for the report."""
        return []

    # -- shared --

    def start(self):
        os.makedirs(os.path.dirname(self.logpath), exist_ok=True)
        # A log per start, so that one measurement's problems are its own.
        if os.path.exists(self.logpath):
            os.unlink(self.logpath)
        self._start()
        loads.wait_port(self.port, 60)

    def stop(self):
        try:
            self._stop()
        finally:
            self.proc = None

    def pids(self):
        return procs.tree(self.roots())

    def cpu(self):
        return procs.cpu_seconds(self.pids())

    def memory(self):
        return procs.memory(self.pids())

    def alive(self):
        return any(procs.alive(p) for p in self.roots())

    def fd_limit(self):
        """The soft RLIMIT_NOFILE of the MTA's processes (the smallest)."""
        limits = []
        for pid in self.pids():
            try:
                with open("/proc/%d/limits" % pid) as f:
                    for line in f:
                        if line.startswith("Max open files"):
                            limits.append(int(line.split()[3]))
            except (OSError, ValueError, IndexError):
                pass
        return min(limits) if limits else None

    def wipe_spool(self):
        """Each measurement starts on an empty spool."""
        if os.path.isdir(self.spool):
            shutil.rmtree(self.spool)

    def log_problems(self, limit=5):
        """(count, first lines) of log lines that look like trouble."""
        pat = re.compile(self.problems, re.I)
        count, first = 0, []
        try:
            with open(self.logpath, errors="replace") as f:
                for line in f:
                    if pat.search(line):
                        count += 1
                        if len(first) < limit:
                            first.append(line.rstrip()[:300])
        except OSError:
            pass
        return count, first

    def keep_log(self, dest):
        """Move this start's log to the results directory, compressed."""
        if not os.path.exists(self.logpath):
            return None
        import gzip
        with open(self.logpath, "rb") as src, gzip.open(dest, "wb") as out:
            shutil.copyfileobj(src, out)
        os.unlink(self.logpath)
        return dest

    # helpers for MTAs that run in the foreground under us

    def _spawn(self, argv, env=None):
        log = open(self.logpath, "ab")
        try:
            # Own session: a ^C to bench/run is handled by the harness,
            # which stops the MTA in order.
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, env=env)
        finally:
            log.close()

    def _terminate(self, grace=40):
        """SIGTERM to the process we started, then SIGKILL to its process
        group if it has not exited within `grace` seconds."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        # Children that outlive their master (they should not) go too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
