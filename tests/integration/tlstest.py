"""Helpers of the ESMTP server tests: a test PKI, password hashes, a raw
SMTP client that can switch to TLS, swaks, counters.

Loopback only, like the rest of the suite.  The test CA and the server
certificate of HOSTNAME are made once per run (openssl) in the suite's
temporary directory.
"""

import base64
import ctypes
import os
import re
import socket
import ssl
import subprocess
import time

import mtadtest
from mtadtest import HOSTNAME, SMTPClient, TestCA, free_port

SWAKS = "/usr/bin/swaks"
OPENSSL = mtadtest.OPENSSL

_pki = {}


def _openssl(*args):
    subprocess.run([OPENSSL] + list(args), check=True,
                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)


# ---------------------------------------------------------------------------
# test PKI

class TestPKI:
    """The run's CA and a server certificate for HOSTNAME (RSA 2048)."""

    def __init__(self):
        self.ca = TestCA(mtadtest.base_dir())
        self.dir = self.ca.dir
        self.cert, self.key = self.server_cert(HOSTNAME)
        # a second, valid pair, and a key that matches neither
        self.other_cert, self.other_key = self.server_cert("other.test")
        self.stray_key = os.path.join(self.dir, "stray.key")
        _openssl("genpkey", "-algorithm", "RSA", "-pkeyopt",
                 "rsa_keygen_bits:2048", "-out", self.stray_key)
        for name in os.listdir(self.dir):
            if name.endswith(".key"):
                os.chmod(os.path.join(self.dir, name), 0o600)

    def server_cert(self, name):
        """(cert, key) signed by the CA for name and for 127.0.0.1, so
        that clients connecting to the address can check the name too."""
        key = os.path.join(self.dir, name + ".key")
        csr = os.path.join(self.dir, name + ".csr")
        cert = os.path.join(self.dir, name + ".pem")
        ext = os.path.join(self.dir, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=DNS:%s,IP:127.0.0.1\n"
                    "extendedKeyUsage=serverAuth\n" % name)
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                 "-out", csr, "-subj", "/CN=%s" % name)
        _openssl("x509", "-req", "-in", csr, "-CA", self.ca.ca_pem,
                 "-CAkey", self.ca.ca_key, "-CAcreateserial", "-out", cert,
                 "-days", "2", "-extfile", ext)
        return cert, key

    @property
    def ca_pem(self):
        return self.ca.ca_pem

    def config(self, name=HOSTNAME):
        """`pki` statements naming the server certificate."""
        return ('pki "%s" cert "%s"\npki "%s" key "%s"\n' %
                (name, self.cert, name, self.key))

    def client_context(self, verify=True, **versions):
        """A client context trusting only the test CA (hostname checked).
        versions: minimum_version / maximum_version (ssl.TLSVersion)."""
        ctx = ssl.create_default_context(cafile=self.ca_pem)
        if not verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        for k, v in versions.items():
            setattr(ctx, k, v)
        return ctx


def pki():
    """The run's TestPKI (made on first use)."""
    if "pki" not in _pki:
        _pki["pki"] = TestPKI()
    return _pki["pki"]


# ---------------------------------------------------------------------------
# crypt(3) hashes through libxcrypt (yescrypt and bcrypt included, which
# Python's crypt module cannot salt)

_libcrypt = None


def _crypt_lib():
    global _libcrypt
    if _libcrypt is None:
        lib = ctypes.CDLL("libcrypt.so.1")
        lib.crypt_gensalt.restype = ctypes.c_char_p
        lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong,
                                      ctypes.c_char_p, ctypes.c_int]
        lib.crypt.restype = ctypes.c_char_p
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        _libcrypt = lib
    return _libcrypt


def crypt_hash(password, prefix="$6$"):
    """A crypt(3) hash of password: prefix "$y$", "$2b$", "$6$", "$5$"."""
    if prefix == "$6$":
        # the issue asks for `openssl passwd -6` for sha512-crypt
        r = subprocess.run([OPENSSL, "passwd", "-6", "-stdin"],
                           input=password, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, check=True)
        h = r.stdout.strip()
    else:
        lib = _crypt_lib()
        salt = lib.crypt_gensalt(prefix.encode(), 0, None, 0)
        if not salt:
            raise RuntimeError("crypt_gensalt %s failed" % prefix)
        out = lib.crypt(password.encode(), salt)
        if not out or out.startswith(b"*"):
            raise RuntimeError("crypt %s failed" % prefix)
        h = out.decode()
    if not h.startswith(prefix):
        raise RuntimeError("unexpected hash %r for %s" % (h, prefix))
    return h


def creds_table(name, users):
    """`table NAME { user = "hash", ... }` of {user: hash}."""
    items = ", ".join('%s = "%s"' % (u, h) for u, h in users.items())
    return "table %s { %s }\n" % (name, items)


# ---------------------------------------------------------------------------
# a raw client that can start TLS

class TLSClient(SMTPClient):
    """SMTPClient with STARTTLS, or TLS from the first byte (implicit)."""

    def __init__(self, port, ctx=None, implicit=False, **kw):
        super().__init__(port, **kw)
        self.tls_version = None
        if implicit:
            self.wrap(ctx)

    def wrap(self, ctx, server_hostname=HOSTNAME):
        ssock = ctx.wrap_socket(self.sock, server_hostname=server_hostname,
                                do_handshake_on_connect=False)
        ssock.settimeout(self.timeout)
        try:
            ssock.do_handshake()
        except BaseException:
            ssock.close()
            raise
        self.sock = ssock
        self.tls_version = ssock.version()
        return ssock

    def starttls(self, ctx):
        """STARTTLS and the handshake; the reply to STARTTLS."""
        r = self.cmd("STARTTLS")
        if r[0] == 220:
            if self.buf:
                raise mtadtest.SMTPProtocolError(
                    "bytes in the clear after 220 to STARTTLS: %r" % self.buf)
            self.wrap(ctx)
        return r

    def ehlo(self, name="client.test"):
        return self.cmd("EHLO " + name)

    def pending(self, wait=0.5):
        """Whatever the server sends within wait seconds (b"" if none)."""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                break
            if not chunk:
                break
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out


def b64(s):
    if isinstance(s, str):
        s = s.encode()
    return base64.b64encode(s).decode()


def plain_response(user, password, authzid=""):
    return b64("%s\0%s\0%s" % (authzid, user, password))


def ehlo_keywords(reply):
    """The extension keywords of an EHLO reply, upper-cased, with args."""
    return [l.upper() for l in reply[1][1:]]


# ---------------------------------------------------------------------------
# config pieces

def listen(port, *opts):
    return "listen on 127.0.0.1 port %d %s\n" % (port, " ".join(opts))


def ports(n):
    """n distinct free ports."""
    out = []
    while len(out) < n:
        p = free_port()
        if p not in out:
            out.append(p)
    return out


# ---------------------------------------------------------------------------
# swaks

def swaks(port, *args, timeout=30):
    """Runs swaks against 127.0.0.1:port; (exit status, transcript)."""
    argv = [SWAKS, "--server", "127.0.0.1", "--port", str(port),
            "--helo", "client.test", "--timeout", "10"] + list(args)
    r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=timeout)
    return r.returncode, r.stdout.decode("utf-8", "replace")


# ---------------------------------------------------------------------------
# Received header

def received(mbox_msg):
    """The first Received: field, unfolded."""
    v = mbox_msg.msg.get("Received")
    assert v is not None, "no Received: header in %r" % mbox_msg
    return re.sub(r"\s+", " ", v)


# ---------------------------------------------------------------------------
# counters

def stat(d, name):
    """One counter of `mtactl show stats` (0 when not listed yet)."""
    return d.stats().get(name, 0)


def wait_stat(d, name, pred, timeout=mtadtest.DEFAULT_TIMEOUT):
    """Until pred(value of counter name); returns the value."""
    box = {}

    def ok():
        box["v"] = stat(d, name)
        return pred(box["v"])
    try:
        mtadtest.wait_for(ok, timeout, what="counter %s" % name)
    except mtadtest.Timeout:
        raise AssertionError("counter %s stayed at %r" %
                             (name, box.get("v")))
    return box["v"]


# ---------------------------------------------------------------------------
# a client whose ClientHello is on the wire with its connection

class EagerTLS:
    """Connects and sends prefix + a ClientHello made in advance in one
    send, as a fast client (or a balancer) does, then completes the
    handshake over memory BIOs and reads the greeting.  Raises
    socket.timeout, ConnectionError or ssl.SSLError."""

    def __init__(self, port, ctx, prefix=b"", source="127.0.0.1",
                 timeout=5.0):
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = ctx.wrap_bio(self.inc, self.out,
                                server_hostname=HOSTNAME)
        self.timeout = timeout
        self.buf = b""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        hello = self.out.read()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.bind((source, 0))
            self.sock.connect(("127.0.0.1", port))
            self.sock.sendall(prefix + hello)
            self._handshake()
            self.greeting = self.read_reply()
        except BaseException:
            self.sock.close()
            raise

    def version(self):
        return self.obj.version()

    def close(self):
        self.sock.close()

    def _flush(self):
        pending = self.out.read()
        if pending:
            self.sock.sendall(pending)

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("nothing from the server within %.1fs" %
                                 self.timeout)
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("closed by the server")
        self.inc.write(data)

    def _handshake(self):
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self.obj.do_handshake()
                self._flush()
                return
            except ssl.SSLWantReadError:
                self._flush()
            self._recv(deadline)

    def read_reply(self):
        """The text of one whole reply (all its lines)."""
        deadline = time.monotonic() + self.timeout
        while not re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n", self.buf):
            try:
                self.buf += self.obj.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            self._recv(deadline)
        m = re.search(rb"(^|\r\n)\d{3} [^\r\n]*\r\n", self.buf)
        text, self.buf = self.buf[:m.end()], self.buf[m.end():]
        return text.decode("utf-8", "replace")

    def cmd(self, line):
        self.obj.write(line.encode() + b"\r\n")
        self._flush()
        return self.read_reply()
