"""Postfix from Debian, as a private instance beside the system one.

The instance has its own config directory (main.cf and master.cf written
from bench/conf), queue directory and data directory, and is started with
`postfix -c DIR start`.  The system instance (/etc/postfix) is only
stopped, by bench/setup.sh; nothing of it is changed.
"""

import os
import pwd
import time

import mta_base
import procs


class Postfix(mta_base.Mta):
    name = "postfix"
    label = "Postfix"
    durability = ("queue file fsync()ed by cleanup before smtpd answers 250 "
                  "(mail_stream_finish_file; Postfix default, no setting "
                  "disables it)")
    problems = r"fatal|panic|error|warning|reject|refus|lost"

    def __init__(self, opts, port):
        super().__init__(opts, port)
        self.etc = os.path.join(self.dir, "etc")
        self.data = os.path.join(self.dir, "data")
        self.master_pid = None

    def smtpd_processes(self):
        """One smtpd per session: enough for the largest idle test and the
        largest accept concurrency, plus a margin."""
        wanted = list(self.opts.idle_sessions) + list(self.opts.concurrency)
        return max(wanted + [100]) + 10

    def prepare(self):
        for sub in ("etc", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.chmod(self.dir, 0o755)
        values = {"PORT": self.port, "SINK_PORT": self.opts.sink_port,
                  "SPOOL": self.spool, "DIR": self.dir,
                  "SMTPD_PROCS": self.smtpd_processes()}
        mta_base.write(os.path.join(self.etc, "main.cf"),
                       mta_base.render("postfix-main.cf.in", values))
        mta_base.write(os.path.join(self.etc, "master.cf"),
                       mta_base.render("postfix-master.cf.in", values))

    def _postfix(self, *args):
        return mta_base.run(["/usr/sbin/postfix", "-c", self.etc] + list(args))

    def _start(self):
        # postfix start creates the queue directories with their owners;
        # the data directory it only checks.
        os.makedirs(self.spool, mode=0o755, exist_ok=True)
        os.makedirs(self.data, mode=0o700, exist_ok=True)
        pw = pwd.getpwnam("postfix")
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        self._postfix("check")
        self._postfix("start")
        self.master_pid = self._read_pid()

    def _read_pid(self):
        path = os.path.join(self.spool, "pid", "master.pid")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with open(path) as f:
                    pid = int(f.read().split()[0])
                if procs.alive(pid):
                    return pid
            except (OSError, ValueError, IndexError):
                pass
            time.sleep(0.1)
        raise RuntimeError("postfix: no master pid in %s" % path)

    def _stop(self):
        if self.master_pid is None:
            return
        pid, self.master_pid = self.master_pid, None
        try:
            self._postfix("stop")
        except RuntimeError:
            pass
        if self._gone(pid, 40):
            return
        try:
            self._postfix("abort")
        except RuntimeError:
            pass
        if not self._gone(pid, 10):
            raise RuntimeError("postfix: master %d does not stop" % pid)

    @staticmethod
    def _gone(pid, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not procs.alive(pid):
                return True
            time.sleep(0.1)
        return False

    def roots(self):
        return [self.master_pid] if self.master_pid else []

    def version(self):
        out = mta_base.run(["/usr/sbin/postconf", "-h", "mail_version"])
        return "Postfix " + out.strip()

    def config_files(self):
        out = {}
        for name in ("main.cf", "master.cf"):
            path = os.path.join(self.etc, name)
            with open(path) as f:
                out[path] = f.read()
        return out

    def settings(self):
        return ["private instance: postfix -c %s start" % self.etc,
                "smtpd on 127.0.0.1:%d, process limit %d (default 100)"
                % (self.port, self.smtpd_processes()),
                "relayhost = [127.0.0.1]:%d, mynetworks = 127.0.0.0/8 "
                "(exempt from the per-client limits by default)"
                % self.opts.sink_port,
                "chroot off for every service; the rest default"]
