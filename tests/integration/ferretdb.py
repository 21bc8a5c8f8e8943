"""A FerretDB server for the store tests: loopback only, SQLite backend in a
temporary directory, telemetry disabled.

The binary is $MTAD_FERRETDB, else the cache of scripts/install-ferretdb.sh
(/var/cache/mtad-test/ferretdb-v1.24.2/ferretdb).  A missing binary is an
error, never a skip: the store tests must not pass by not running.
"""

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

VERSION = "v1.24.2"
CACHE_BIN = "/var/cache/mtad-test/ferretdb-%s/ferretdb" % VERSION


# Every server started and not yet cleaned up: stopped at exit whatever
# happened (the runner turns SIGTERM into SystemExit).
_RUNNING = []


class FerretDBMissing(AssertionError):
    pass


@atexit.register
def _stop_all():
    for f in list(_RUNNING):
        f.cleanup()


def binary():
    """Path of the FerretDB binary; raises FerretDBMissing (a failure)."""
    path = os.environ.get("MTAD_FERRETDB") or CACHE_BIN
    if not os.access(path, os.X_OK):
        raise FerretDBMissing(
            "FerretDB %s not found at %s: run scripts/install-ferretdb.sh "
            "(or set MTAD_FERRETDB to the binary)" % (VERSION, path))
    return path


def _free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _connectable(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class FerretDB:
    """One server.  start() / stop() may be repeated (the data stays in
    the directory, so a restart finds what was stored: the outage tests
    rely on that); cleanup() stops it and removes the directory."""

    def __init__(self, base=None):
        self.bin = binary()
        self.dir = tempfile.mkdtemp(prefix="ferretdb-", dir=base)
        self.data = os.path.join(self.dir, "data")
        os.mkdir(self.data, 0o700)
        self.port = _free_port()
        self.debug_port = _free_port()
        self.logpath = os.path.join(self.dir, "ferretdb.log")
        self.proc = None
        self.logf = None
        _RUNNING.append(self)

    @property
    def uri(self):
        return "mongodb://127.0.0.1:%d/" % self.port

    def start(self, timeout=30.0):
        if self.running():
            return self
        self.logf = open(self.logpath, "ab")
        argv = [self.bin, "--handler=sqlite",
                "--sqlite-url=file:%s/" % self.data,
                "--listen-addr=127.0.0.1:%d" % self.port,
                "--debug-addr=127.0.0.1:%d" % self.debug_port,
                "--state-dir=%s" % self.dir,
                "--telemetry=disable",
                "--log-level=warn"]
        env = dict(os.environ, FERRETDB_TELEMETRY="disable",
                   DO_NOT_TRACK="1")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=self.logf,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=True, env=env)
        deadline = time.monotonic() + timeout
        while not _connectable(self.port):
            if self.proc.poll() is not None:
                raise AssertionError("ferretdb exited with %s:\n%s" %
                                     (self.proc.returncode, self.log_tail()))
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError("ferretdb did not listen on port %d "
                                     "within %.0fs" % (self.port, timeout))
            time.sleep(0.05)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        self.proc = None
        if self.logf is not None:
            self.logf.close()
            self.logf = None

    def cleanup(self):
        try:
            self.stop()
        finally:
            if self in _RUNNING:
                _RUNNING.remove(self)
            if not os.environ.get("MTAD_KEEP"):
                shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, n=30):
        try:
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except FileNotFoundError:
            return ""
        return "\n".join(lines[-n:])

    def client(self, **kw):
        import pymongo
        kw.setdefault("serverSelectionTimeoutMS", 5000)
        return pymongo.MongoClient(self.uri, **kw)
