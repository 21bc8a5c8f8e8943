"""Process trees of an MTA, and what they cost: CPU time and memory.

Every figure is read from /proc so that the three MTAs are measured by the
same code, whatever their process model (one master with a few event-loop
children, or one process per session).
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """The fields of /proc/PID/stat after the command name, or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: cut at the last ')'.
    end = data.rfind(b")")
    if end < 0:
        return None
    return data[end + 2:].split()


def _all_parents():
    """{pid: ppid} of every process on the machine."""
    parents = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None:
            parents[int(name)] = int(fields[1])
    return parents


def tree(roots):
    """The given pids and all their descendants that are alive now."""
    parents = _all_parents()
    children = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [p for p in roots if p in parents]
    while todo:
        pid = todo.pop()
        if pid in found:
            continue
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return sorted(found)


def cpu_seconds(pids):
    """User + system CPU of the processes and of the children they reaped.

    A child that exited and was waited for (a Postfix smtpd at max_use,
    a short-lived helper) is counted in its parent's cutime/cstime, so a
    difference of two readings covers processes that came and went between
    them.
    """
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is None:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), 11-14 here.
        total += sum(int(x) for x in fields[11:15])
    return total / CLK_TCK


def _status_kib(pid, key):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _pss_kib(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory(pids):
    """Memory of a set of processes, in KiB.

    rss_kib sums VmRSS, as ps and top show it; shared pages (libraries,
    the pages a forked child still shares with its parent) are counted
    once per process, which overstates many-process designs.  pss_kib sums
    the proportional set size (smaps_rollup), where a page shared by n
    processes counts 1/n in each: the sum is what the processes really
    take from the machine.
    """
    rss = pss = count = 0
    for pid in pids:
        r = _status_kib(pid, "VmRSS:")
        if r == 0 and not os.path.exists("/proc/%d" % pid):
            continue
        rss += r
        pss += _pss_kib(pid)
        count += 1
    return {"rss_kib": rss, "pss_kib": pss, "processes": count}


def alive(pid):
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in (b"Z", b"X")


def names(pids):
    """{pid: command name} for a log of what an MTA runs."""
    out = {}
    for pid in pids:
        try:
            with open("/proc/%d/comm" % pid) as f:
                out[pid] = f.read().strip()
        except OSError:
            pass
    return out


# Daemons that fork into the background (the Postfix master) are orphans
# once their parent exits.  Where pid 1 does not reap orphans (some
# containers), each stopped instance would leave zombies that eat the pid
# space; as a subreaper the harness inherits them and reaps them itself.
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def reap_orphans(keep=()):
    """waitpid() our zombie children, except the pids in `keep` (children
    whose subprocess.Popen object will wait for them itself)."""
    me = os.getpid()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in keep:
            continue
        fields = _stat_fields(int(name))
        if fields is None or int(fields[1]) != me or fields[0] != b"Z":
            continue
        try:
            os.waitpid(int(name), os.WNOHANG)
        except ChildProcessError:
            pass
