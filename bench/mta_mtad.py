"""mtad, as built by bench/run (-O2, no sanitizers), in the foreground."""

import os

import mta_base


class Mtad(mta_base.Mta):
    name = "mtad"
    label = "mtad"
    durability = ("message and envelope made durable by one syncfs(2) of "
                  "the spool per group of commits, before any 250 of the "
                  "group (built in, not configurable)")
    problems = (r"fatal|restarting|killed|seccomp|cannot|failed|refus|"
                r"lost|error")

    def __init__(self, opts, port):
        super().__init__(opts, port)
        self.binary = os.path.join(opts.mtad_build, "mtad")
        self.conf = os.path.join(self.dir, "mtad.conf")

    def prepare(self):
        for sub in ("chroot", "run", "log"):
            os.makedirs(os.path.join(self.dir, sub), exist_ok=True)
        os.chmod(self.dir, 0o755)
        os.chmod(os.path.join(self.dir, "chroot"), 0o755)
        mta_base.write(self.conf, mta_base.render("mtad.conf.in", {
            "PORT": self.port, "SINK_PORT": self.opts.sink_port,
            "SPOOL": self.spool, "DIR": self.dir}))
        mta_base.run([self.binary, "-n", "-f", self.conf])

    def _start(self):
        # mtad creates its spool (owner mtad-queue) under this directory.
        os.makedirs(os.path.dirname(self.spool), mode=0o755, exist_ok=True)
        self._spawn([self.binary, "-d", "-f", self.conf])

    def _stop(self):
        self._terminate()

    def roots(self):
        return [self.proc.pid] if self.proc else []

    def version(self):
        # Written by bench/setup.sh when it built the binary.
        path = os.path.join(self.opts.mtad_build, "version")
        try:
            with open(path) as f:
                return "mtad (git %s)" % f.read().strip()
        except OSError:
            return "mtad (%s, version unknown)" % self.binary

    def config_files(self):
        with open(self.conf) as f:
            return {self.conf: f.read()}

    def settings(self):
        return ["mtad -d -f %s" % self.conf,
                "listen on 127.0.0.1 port %d" % self.port,
                "relay host smtp://127.0.0.1:%d" % self.opts.sink_port,
                "limit connections-per-ip 0 (default 100; all sessions "
                "come from 127.0.0.1)",
                "everything else default (2 smtp-workers, 2 deliver-workers)"]
