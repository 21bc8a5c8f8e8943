"""5. Privilege separation: users, chroots, no_new_privs, seccomp."""

import os
import pwd

import mtadtest
from mtadtest import CHILD_USERS, MtadTestCase, proc_status, proc_title


def ids(status, key):
    return [int(x) for x in status[key].split()]


class PrivSep(MtadTestCase):

    @classmethod
    def setUpClass(cls):
        mtadtest.suite_setup()
        cls.mtad = mtadtest.Daemon(extra="workers smtp 2\nworkers deliver 2\n",
                                   name="privsep")
        try:
            cls.mtad.start()
            # every pool full: 1 policy, 1 queue, 2 + 2 workers
            mtadtest.wait_for(lambda: len(cls.mtad.children()) >= 6,
                              what="six children of the master")
        except BaseException:
            cls.mtad.cleanup()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.mtad.cleanup()

    def setUp(self):
        mtadtest.CURRENT_DAEMONS.append(self.mtad)

    def test_process_titles(self):
        self.assertEqual(proc_title(self.mtad.pid), "mtad: master")
        titles = sorted(t for t in self.mtad.child_titles().values()
                        if not t.startswith("mtad: local delivery"))
        self.assertEqual(titles, sorted([
            "mtad: policy", "mtad: queue",
            "mtad: smtp-worker #0", "mtad: smtp-worker #1",
            "mtad: deliver-worker #0", "mtad: deliver-worker #1"]))

    def test_master_is_root(self):
        st = proc_status(self.mtad.pid)
        self.assertEqual(ids(st, "Uid"), [0, 0, 0, 0])

    def test_children(self):
        real = os.path.realpath
        roots = {
            "policy": real(self.mtad.chroot),
            "smtp-worker": real(self.mtad.chroot),
            "deliver-worker": real(self.mtad.chroot),
            "queue": real(self.mtad.queue),
        }
        seen = set()

        # Children name themselves first and confine themselves once they
        # have loaded what needs root: wait (bounded) until every one did.
        def all_confined():
            for pid, title in self.mtad.child_titles().items():
                kind = title.replace("mtad: ", "").split(" #")[0]
                st = proc_status(pid)
                if kind in CHILD_USERS and st and st.get("Seccomp") != "2":
                    return False
            return True
        mtadtest.wait_for(all_confined, 10, what="every child confined")
        for pid, title in sorted(self.mtad.child_titles().items()):
            kind = title.replace("mtad: ", "").split(" #")[0]
            if kind not in CHILD_USERS:
                continue        # a short-lived delivery helper
            seen.add(kind)
            with self.subTest(process=title, pid=pid):
                pw = pwd.getpwnam(CHILD_USERS[kind])
                st = proc_status(pid)
                self.assertIsNotNone(st, "process vanished")
                self.assertEqual(ids(st, "Uid"), [pw.pw_uid] * 4,
                                 "uids (real, effective, saved, fs)")
                self.assertEqual(ids(st, "Gid"), [pw.pw_gid] * 4,
                                 "gids (real, effective, saved, fs)")
                groups = [int(g) for g in st.get("Groups", "").split()]
                self.assertTrue(set(groups) <= {pw.pw_gid},
                                "supplementary groups %s" % groups)
                self.assertEqual(os.readlink("/proc/%d/root" % pid),
                                 roots[kind], "chroot")
                self.assertEqual(st.get("NoNewPrivs"), "1")
                self.assertEqual(st.get("Seccomp"), "2")
                self.assertEqual(st.get("CapEff"), "0" * 16,
                                 "effective capabilities")
                self.assertEqual(st.get("CapPrm"), "0" * 16,
                                 "permitted capabilities")
        self.assertEqual(seen, set(CHILD_USERS), "process kinds found")

    def test_children_keep_no_privileged_fds(self):
        """No child holds the config file or the pidfile open; the control
        socket is the master's only."""
        for pid, title in self.mtad.child_titles().items():
            with self.subTest(process=title):
                try:
                    fds = os.listdir("/proc/%d/fd" % pid)
                except FileNotFoundError:
                    continue
                targets = []
                for fd in fds:
                    try:
                        targets.append(os.readlink("/proc/%d/fd/%s" %
                                                   (pid, fd)))
                    except OSError:
                        pass
                for bad in (self.mtad.conf, self.mtad.pidfile):
                    self.assertNotIn(bad, targets)

    def test_spool_not_readable_by_others(self):
        """The spool belongs to the queue user; nobody else may list it or
        read the messages in it."""
        uid = pwd.getpwnam("mtad-queue").pw_uid
        st = os.stat(self.mtad.queue)
        self.assertEqual(st.st_uid, uid)
        self.assertFalse(st.st_mode & 0o066, "spool mode %o" % st.st_mode)
        for sub in ("queue", "incoming", "corrupt"):
            with self.subTest(dir=sub):
                st = os.stat(os.path.join(self.mtad.queue, sub))
                self.assertEqual(st.st_uid, uid)
                self.assertEqual(st.st_mode & 0o777, 0o700,
                                 "%s mode %o" % (sub, st.st_mode))
