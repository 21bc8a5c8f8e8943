"""The loads the benchmark puts on an MTA, and the peer that takes its mail.

- Sink: Postfix's smtp-sink on loopback, where every MTA relays; counts
  the messages it receives and when.
- accept_load: N messages of S bytes over C concurrent sessions.  Postfix's
  smtp-source runs C-k of the sessions; the harness's own client runs the
  other k and timestamps each end of DATA and its 250 (smtp-source does not
  report latencies).  Both send the same dialogue and the same message
  shape, N/C messages per session.
- IdleSessions: K sessions that are greeted, say EHLO, get the 250, and
  then stay silent.
- fsync_rates: what the disk under the spools allows, since it bounds every
  MTA that syncs before it answers 250.

Everything talks to 127.0.0.1 only.
"""

import asyncio
import ctypes
import os
import socket
import subprocess
import threading
import time

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
LOOPBACK = "127.0.0.1"
SENDER = "bench@source.bench.test"
RECIPIENT = "rcpt@sink.bench.test"
HELO_NAME = "source.bench.test"
REPLY_TIMEOUT = 60          # seconds for one SMTP reply
STALL_TIMEOUT = 30          # seconds smtp-source may go without progress


# ---------------------------------------------------------------------------
# the sink

class Sink:
    """smtp-sink on LOOPBACK:port, and when each of its messages came."""

    def __init__(self, port, logpath):
        self.port = port
        self.logpath = logpath
        self.proc = None
        self.received = 0
        self._arrivals = []         # (monotonic time, count), count rising
        self._cond = threading.Condition()
        self._thread = None

    def start(self):
        # -c prints "sess=N quit=N mesg=N" after every message and session,
        # flushed at once, which is how we see deliveries arrive.  -m: more
        # simultaneous connections than any MTA opens to one destination.
        argv = [SMTP_SINK, "-c", "-u", "nobody", "-m", "1024",
                "%s:%d" % (LOOPBACK, self.port), "1024"]
        with open(self.logpath, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                         stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        wait_port(self.port, 10)

    def _read(self):
        buf = b""
        while True:
            chunk = self.proc.stdout.read1(65536)
            if not chunk:
                return
            now = time.monotonic()
            buf += chunk
            *records, buf = buf.split(b"\r")
            counts = [c for c in map(_parse_mesg, records) if c is not None]
            if counts and counts[-1] > self.received:
                with self._cond:
                    self.received = counts[-1]
                    self._arrivals.append((now, self.received))
                    self._cond.notify_all()

    def wait_for(self, count, deadline):
        """The monotonic time the sink had `count` messages, waiting for it
        until the monotonic deadline; None if it did not get them."""
        with self._cond:
            while self.received < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(min(left, 0.5))
            for t, n in self._arrivals:
                if n >= count:
                    return t
        return None

    def stop(self):
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._thread.join(5)
        self.proc = None


def _parse_mesg(record):
    for word in record.split():
        if word.startswith(b"mesg="):
            try:
                return int(word[5:])
            except ValueError:
                return None
    return None


def wait_port(port, timeout):
    """Until LOOPBACK:port accepts and sends a 220 greeting."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=2) as s:
                s.settimeout(5)
                data = s.recv(512)
                if data.startswith(b"220"):
                    s.sendall(b"QUIT\r\n")
                    return
                last = data[:80]
        except OSError as e:
            last = e
        time.sleep(0.2)
    raise RuntimeError("nothing greets on %s:%d (%s)" % (LOOPBACK, port, last))


# ---------------------------------------------------------------------------
# one SMTP client session, as smtp-source speaks it

class SmtpError(Exception):
    pass


def message_bytes(size, seq):
    """A message as smtp-source builds it: From, To, Date, Message-Id, then
    `size` bytes of body in lines of at most 80 bytes; CRLF, dot-terminated.
    """
    head = ("From: <%s>\r\nTo: <%s>\r\nDate: %s\r\n"
            "Message-Id: <%d.%d@%s>\r\n\r\n"
            % (SENDER, RECIPIENT,
               time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
               os.getpid(), seq, HELO_NAME)).encode()
    lines, left = [], size
    while left > 0:
        n = min(78, left)
        lines.append(b"X" * n + b"\r\n")
        left -= n + 2
    return head + b"".join(lines) + b".\r\n"


async def _reply(reader, timeout):
    """One SMTP reply: (code, last line)."""
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        if not line.endswith(b"\n"):
            raise SmtpError("connection closed")
        if len(line) < 4 or not line[:3].isdigit():
            raise SmtpError("bad reply %r" % line[:80])
        if line[3:4] != b"-":
            return int(line[:3]), line.rstrip()


async def _expect(reader, timeout, what, code=2):
    got, line = await _reply(reader, timeout)
    if got // 100 != code:
        raise SmtpError("%s: %s" % (what, line.decode("ascii", "replace")))
    return line


async def timed_session(port, count, size, timings, done_at, timeout):
    """Send `count` messages over one session.  For each, append to
    `timings` (seconds from the final dot to its 250, seconds from MAIL to
    that 250) and to `done_at` the monotonic time of the 250."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(LOOPBACK, port), timeout)
    try:
        await _expect(reader, timeout, "greeting")
        writer.write(b"HELO %s\r\n" % HELO_NAME.encode())
        await _expect(reader, timeout, "HELO")
        for seq in range(count):
            body = message_bytes(size, seq)
            t_mail = time.monotonic()
            writer.write(b"MAIL FROM:<%s>\r\n" % SENDER.encode())
            await _expect(reader, timeout, "MAIL")
            writer.write(b"RCPT TO:<%s>\r\n" % RECIPIENT.encode())
            await _expect(reader, timeout, "RCPT")
            writer.write(b"DATA\r\n")
            await _expect(reader, timeout, "DATA", code=3)
            writer.write(body)
            await writer.drain()
            t = time.monotonic()
            await _expect(reader, timeout, "end of DATA")
            now = time.monotonic()
            timings.append((now - t, now - t_mail))
            done_at.append(now)
        writer.write(b"QUIT\r\n")
        await _expect(reader, timeout, "QUIT")
    finally:
        writer.close()


# ---------------------------------------------------------------------------
# load 1 and 2: accept, then end to end

def split_sessions(n, c, timed):
    """(messages per session, timed sessions, smtp-source sessions,
    smtp-source messages) for n messages over c sessions."""
    per = max(1, n // c)
    k = max(1, min(timed, c))
    return per, k, c - k, n - k * per


async def _watch_source(src, stall):
    """Follow smtp-source's -c counter (one number per accepted message).

    smtp-source has no timeout of its own: a session whose connection the
    server never serves (a listen queue that overflowed) waits forever.  So
    a run that makes no progress for `stall` seconds is killed.  Returns
    (messages accepted, monotonic time of the last one, output, stalled).
    """
    count, last, out, buf = 0, None, b"", b""
    stalled = False
    while True:
        try:
            chunk = await asyncio.wait_for(src.stdout.read(4096), stall)
        except asyncio.TimeoutError:
            stalled = True
            src.kill()
            break
        if not chunk:
            break
        buf += chunk
        *records, buf = buf.replace(b"\n", b"\r").split(b"\r")
        for rec in records:
            if rec.strip().isdigit():
                count, last = int(rec), time.monotonic()
            elif rec.strip():
                out += rec + b"\n"
    await src.wait()
    return count, last, out + buf, stalled


async def _accept(port, n, size, c, timed, timeout):
    per, k, src_sessions, src_messages = split_sessions(n, c, timed)
    timings, done_at, errors = [], [], []
    t0 = time.monotonic()
    watch = None
    if src_sessions > 0 and src_messages > 0:
        # -d: one session carries many messages, as the timed ones do.
        # -c: a counter on stdout, how we see its progress.
        argv = [SMTP_SOURCE, "-c", "-d", "-s", str(src_sessions),
                "-m", str(src_messages), "-l", str(size),
                "-M", HELO_NAME, "-f", SENDER, "-t", RECIPIENT,
                "%s:%d" % (LOOPBACK, port)]
        src = await asyncio.create_subprocess_exec(
            *argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT)
        watch = asyncio.ensure_future(_watch_source(src, STALL_TIMEOUT))
    tasks = [asyncio.ensure_future(
        timed_session(port, per, size, timings, done_at, timeout))
        for _ in range(k)]
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for r in results:
        if isinstance(r, BaseException):
            errors.append("timed session: %s" % (
                str(r) or type(r).__name__))
    accepted, last = len(timings), max(done_at, default=None)
    if watch is not None:
        count, src_last, out, stalled = await watch
        accepted += count
        if src_last is not None:
            last = max(last or src_last, src_last)
        if stalled:
            errors.append("smtp-source: no progress for %d s after %d of "
                          "%d messages (a session left waiting); killed"
                          % (STALL_TIMEOUT, count, src_messages))
        elif src.returncode != 0:
            errors.append("smtp-source: exit %s after %d of %d messages: %s"
                          % (src.returncode, count, src_messages,
                             out.decode("ascii", "replace").strip()[-300:]))
    # The run ends with the last 250, not when the clients have exited.
    t_end = last if last is not None else time.monotonic()
    return {
        "t0": t0, "t_end": t_end,
        "accept_seconds": t_end - t0,
        "messages": accepted,
        "planned": (src_messages if watch else 0) + k * per,
        "timed_messages": len(timings),
        "sessions": {"smtp_source": src_sessions if watch else 0,
                     "timed": k, "messages_per_session": per},
        "latencies": [t[0] for t in timings],
        "transactions": [t[1] for t in timings],
        "errors": errors,
    }


def accept_load(port, n, size, c, timed=10, timeout=REPLY_TIMEOUT):
    """Run the accept load; `timeout` bounds each reply of a timed session,
    STALL_TIMEOUT the time smtp-source may go without accepting a message.
    """
    return asyncio.run(_accept(port, n, size, c, timed, timeout))


# ---------------------------------------------------------------------------
# load 3: idle sessions

class IdleSessions:
    """K sessions, each greeted and EHLO answered, then held silent.

    Opening is bounded (`parallel` handshakes in flight, 4 by default:
    OpenSMTPD listens with a backlog of 5) so that the test measures how
    many sessions an MTA holds, not how fast it accepts a burst.  A session
    that the server closes while held is counted as lost.
    """

    def __init__(self, port, count, parallel=4, timeout=60):
        self.port = port
        self.count = count
        self.parallel = parallel
        self.timeout = timeout
        self.established = 0
        self.failed = 0
        self.lost = 0
        self.errors = {}
        self._release = None
        self._writers = []

    async def _one(self, gate, ready):
        writer, stage = None, "connect"
        try:
            async with gate:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(LOOPBACK, self.port),
                    self.timeout)
                stage = "greeting"
                await _expect(reader, self.timeout, "greeting")
                stage = "EHLO"
                writer.write(b"EHLO idle.bench.test\r\n")
                await _expect(reader, self.timeout, "EHLO")
        except (OSError, asyncio.TimeoutError, SmtpError) as e:
            self.failed += 1
            if isinstance(e, SmtpError):
                key = str(e)[:80]       # says the stage and the reply
            else:
                key = "%s: %s" % (stage, str(e)[:60] or type(e).__name__)
            self.errors[key] = self.errors.get(key, 0) + 1
            if writer is not None:
                writer.close()
            ready()
            return
        self.established += 1
        self._writers.append(writer)
        ready()
        # Held: anything but the release means the server gave up on us.
        read = asyncio.ensure_future(reader.read(1))
        done, _ = await asyncio.wait({read, self._release},
                                     return_when=asyncio.FIRST_COMPLETED)
        if read in done:
            self.lost += 1
        else:
            read.cancel()

    async def run(self, while_held):
        """Open the sessions, call while_held(self) once all have settled,
        then close them; returns while_held's result."""
        loop = asyncio.get_running_loop()
        self._release = loop.create_future()
        gate = asyncio.Semaphore(self.parallel)
        settled = [0]
        all_settled = loop.create_future()

        def ready():
            settled[0] += 1
            if settled[0] == self.count and not all_settled.done():
                all_settled.set_result(None)

        t0 = time.monotonic()
        tasks = [asyncio.ensure_future(self._one(gate, ready))
                 for _ in range(self.count)]
        await all_settled
        self.open_seconds = time.monotonic() - t0
        # Let the MTA finish whatever it does after an EHLO before counting.
        await asyncio.sleep(2)
        result = while_held(self)
        self._release.set_result(None)
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in self._writers:
            w.close()
        return result


def idle_load(port, count, while_held, parallel=4, timeout=60):
    idle = IdleSessions(port, count, parallel, timeout)
    result = asyncio.run(idle.run(while_held))
    return idle, result


# ---------------------------------------------------------------------------
# the disk

_libc = ctypes.CDLL(None, use_errno=True)


def _syncfs(fd):
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _rate(seconds, step):
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        step(n)
        n += 1
    return n / (time.monotonic() - t0)


def fsync_rates(directory, seconds=2.0, size=4096):
    """Operations per second on the file system of `directory`:
    - new_file_fsync: create a file, write `size` bytes, fsync it;
    - new_file_fsync_dir: the same, then fsync the directory;
    - new_file_syncfs: create and write, then syncfs(2) (mtad's commit);
    - rewrite_fdatasync: overwrite one file in place, fdatasync.
    """
    work = os.path.join(directory, "fsync-test")
    os.makedirs(work, exist_ok=True)
    data = b"x" * size
    dfd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    out = {}
    try:
        def new_file(n, then):
            fd = os.open(os.path.join(work, "f%d" % n),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, data)
                then(fd)
            finally:
                os.close(fd)

        def clean():
            for name in os.listdir(work):
                os.unlink(os.path.join(work, name))
            os.fsync(dfd)

        out["new_file_fsync"] = _rate(
            seconds, lambda n: new_file(n, os.fsync))
        clean()
        out["new_file_fsync_dir"] = _rate(
            seconds, lambda n: new_file(n, lambda fd: (os.fsync(fd),
                                                       os.fsync(dfd))))
        clean()
        out["new_file_syncfs"] = _rate(
            seconds, lambda n: new_file(n, _syncfs))
        clean()
        fd = os.open(os.path.join(work, "rewrite"),
                     os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)

            def rewrite(n):
                os.pwrite(fd, data, 0)
                os.fdatasync(fd)
            out["rewrite_fdatasync"] = _rate(seconds, rewrite)
        finally:
            os.close(fd)
        clean()
    finally:
        os.close(dfd)
        os.rmdir(work)
    return {k: round(v) for k, v in out.items()}
