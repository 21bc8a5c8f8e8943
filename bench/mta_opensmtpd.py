"""OpenSMTPD from Debian, unpacked beside Postfix, in the foreground.

Debian's opensmtpd package conflicts with postfix (both provide
mail-transport-agent), so bench/setup.sh does not install it: it unpacks
the .deb (apt-get download; dpkg -x) under the work directory and creates
the package's two accounts.  The binary keeps its compiled-in paths: the
spool /var/spool/smtpd, the chroot /var/lib/opensmtpd/empty and the control
socket /var/run/smtpd.sock; nothing else on a machine with postfix uses
them.
"""

import os
import re
import shutil
import subprocess

import mta_base

SPOOL = "/var/spool/smtpd"


class OpenSmtpd(mta_base.Mta):
    name = "opensmtpd"
    label = "OpenSMTPD"
    # Read in OpenSMTPD's queue_fs.c: envelopes are written with
    # fsqueue_envelope_dump(..., do_atomic=0, do_sync=0) and the message is
    # committed by rename(2) alone; only envelope updates after delivery
    # attempts are fsynced.  No setting changes this.
    durability = ("NONE: no fsync before 250 (queue_fs.c writes the "
                  "envelope without fsync and commits the message by "
                  "rename only; not configurable), so its figures are not "
                  "durable ones")
    problems = r"fatal|warn|error|lost|refus|reject"

    def __init__(self, opts, port):
        super().__init__(opts, port)
        self.root = opts.opensmtpd_root
        self.binary = os.path.join(self.root, "usr/sbin/smtpd")
        self.conf = os.path.join(self.dir, "smtpd.conf")
        self.spool = SPOOL

    def prepare(self):
        os.makedirs(os.path.join(self.dir, "log"), exist_ok=True)
        os.makedirs("/var/lib/opensmtpd/empty", mode=0o755, exist_ok=True)
        mta_base.write(self.conf, mta_base.render("smtpd.conf.in", {
            "PORT": self.port, "SINK_PORT": self.opts.sink_port}))
        mta_base.run([self.binary, "-n", "-f", self.conf])

    def _start(self):
        # The helpers (mail.local...) are looked up in the compiled-in
        # /usr/libexec/opensmtpd; relaying needs none of them.
        self._spawn([self.binary, "-d", "-f", self.conf])

    def _stop(self):
        self._terminate()

    def wipe_spool(self):
        if os.path.isdir(SPOOL):
            shutil.rmtree(SPOOL)

    def roots(self):
        return [self.proc.pid] if self.proc else []

    def version(self):
        p = subprocess.run([self.binary, "-h"], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        m = re.search(r"OpenSMTPD \S+", p.stdout.decode("ascii", "replace"))
        deb = ""
        # bench/setup.sh records the version of the .deb it unpacked.
        stamp = os.path.join(self.root, "VERSION")
        if os.path.exists(stamp):
            with open(stamp) as f:
                deb = " (Debian %s)" % f.read().strip()
        return (m.group(0) if m else "OpenSMTPD") + deb

    def config_files(self):
        with open(self.conf) as f:
            return {self.conf: f.read()}

    def settings(self):
        return ["smtpd -d -f %s (unpacked %s)" % (self.conf, self.root),
                "listen on 127.0.0.1 port %d" % self.port,
                "relay host smtp://127.0.0.1:%d" % self.opts.sink_port,
                "smtp limit max-mails 1000000 (default 100 per session)"]
