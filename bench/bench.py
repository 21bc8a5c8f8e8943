"""mtad, Postfix and OpenSMTPD under the same loads, in turn, several rounds.

Started by bench/run, which installs and builds what this needs and raises
the descriptor limit; see bench/README.md.  Modes:

  all     fsync rates, accept loads, idle sessions (the default)
  accept  fsync rates and the accept loads only
  idle    idle sessions only; by default mtad alone with 10,000 sessions
          (the issue #3 target: under 200 MiB of RSS in total)
  fsync   the disk's sync rates only

Writes results.md and results.json to the output directory and prints the
table.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time

import loads
import procs
import report
from mta_mtad import Mtad
from mta_opensmtpd import OpenSmtpd
from mta_postfix import Postfix

HERE = os.path.dirname(os.path.abspath(__file__))
MTA_CLASSES = {"mtad": Mtad, "postfix": Postfix, "opensmtpd": OpenSmtpd}
IDLE_TARGET_MIB = 200       # issue #3: 10,000 idle sessions under 200 MiB


def env(name, default):
    return os.environ.get("BENCH_" + name, default)


def int_list(text):
    try:
        values = [int(x) for x in text.replace(" ", "").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError("not a list of numbers: %r" % text)
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("need numbers >= 1: %r" % text)
    return values


def parse_args(argv):
    ap = argparse.ArgumentParser(
        prog="bench/run",
        description="Benchmark mtad against Postfix and OpenSMTPD on "
                    "loopback.  Every option also reads BENCH_<NAME> "
                    "from the environment (e.g. BENCH_MESSAGES=2000).")
    ap.add_argument("mode", nargs="?", default="all",
                    choices=["all", "accept", "idle", "fsync"])
    ap.add_argument("--messages", "-n", type=int,
                    default=int(env("MESSAGES", 5000)),
                    help="N: messages per accept run (%(default)s)")
    ap.add_argument("--size", "-s", type=int, default=int(env("SIZE", 4096)),
                    help="S: message body bytes (%(default)s)")
    ap.add_argument("--concurrency", "-c", type=int_list,
                    default=env("CONCURRENCY", "1,20,100"),
                    help="C: concurrent sessions of the accept runs "
                         "(%(default)s)")
    ap.add_argument("--idle-sessions", "-k", type=int_list, default=None,
                    help="K: idle sessions (default 1000,10000; "
                         "10000 in idle mode)")
    ap.add_argument("--rounds", "-r", type=int, default=int(env("ROUNDS", 3)),
                    help="rounds of the accept loads (%(default)s)")
    ap.add_argument("--idle-rounds", type=int,
                    default=int(env("IDLE_ROUNDS", 1)),
                    help="rounds of the idle loads (%(default)s)")
    ap.add_argument("--mtas", type=lambda s: s.split(","), default=None,
                    help="MTAs to measure, in this order in round 1 "
                         "(default mtad,postfix,opensmtpd; mtad in idle "
                         "mode)")
    ap.add_argument("--timed-sessions", type=int,
                    default=int(env("TIMED_SESSIONS", 10)),
                    help="of the C sessions, how many the harness's own "
                         "client runs (and times); smtp-source runs the rest "
                         "(%(default)s)")
    ap.add_argument("--e2e-timeout", type=int,
                    default=int(env("E2E_TIMEOUT", 20)),
                    help="seconds after the last 250 of a run to wait "
                         "for the sink to get all N (%(default)s)")
    ap.add_argument("--idle-timeout", type=int,
                    default=int(env("IDLE_TIMEOUT", 10)),
                    help="seconds an idle session may wait for its "
                         "greeting or EHLO reply (%(default)s)")
    ap.add_argument("--idle-parallel", type=int,
                    default=int(env("IDLE_PARALLEL", 4)),
                    help="idle sessions being opened at once; OpenSMTPD's "
                         "listen backlog is 5 (%(default)s)")
    ap.add_argument("--postfix-idle-max", type=int,
                    default=int(env("POSTFIX_IDLE_MAX", 1000)),
                    help="largest K for Postfix, which runs one smtpd "
                         "process per session (about 1.2 MiB PSS each; "
                         "10,000 took 6 minutes to open on 2 cores); "
                         "0: no cap (%(default)s)")
    ap.add_argument("--port-base", type=int,
                    default=int(env("PORT_BASE", 30025)),
                    help="mtad listens on BASE, Postfix BASE+1, OpenSMTPD "
                         "BASE+2, all on 127.0.0.1 (%(default)s)")
    ap.add_argument("--sink-port", type=int,
                    default=int(env("SINK_PORT", 30099)),
                    help="smtp-sink on 127.0.0.1 (%(default)s)")
    ap.add_argument("--workdir", default=env("WORKDIR", "/var/tmp/mtad-bench"),
                    help="configs, logs, the mtad build, OpenSMTPD "
                         "(%(default)s)")
    ap.add_argument("--spool-root",
                    default=env("SPOOL_ROOT", "/var/spool/mtad-bench"),
                    help="spools of mtad and Postfix (OpenSMTPD's is "
                         "compiled in: /var/spool/smtpd) (%(default)s)")
    ap.add_argument("--out", default=env("OUT", None),
                    help="results directory (default "
                         "WORKDIR/results-DATE)")
    ap.add_argument("--src", default=env("SRC", os.path.dirname(HERE)),
                    help="mtad source tree (%(default)s)")
    ap.add_argument("--mtad-build", default=env("MTAD_BUILD", None),
                    help="mtad build directory (default WORKDIR/build)")
    ap.add_argument("--opensmtpd-root", default=env("OPENSMTPD_ROOT", None),
                    help="unpacked opensmtpd .deb (default "
                         "WORKDIR/opensmtpd)")
    opts = ap.parse_args(argv)
    if opts.idle_sessions is None:
        default = "10000" if opts.mode == "idle" else "1000,10000"
        opts.idle_sessions = int_list(env("IDLE_SESSIONS", default))
    if opts.mtas is None:
        default = "mtad" if opts.mode == "idle" else "mtad,postfix,opensmtpd"
        opts.mtas = env("MTAS", default).split(",")
    for m in opts.mtas:
        if m not in MTA_CLASSES:
            ap.error("unknown MTA %r (known: %s)"
                     % (m, ", ".join(MTA_CLASSES)))
    if opts.messages < max(opts.concurrency):
        ap.error("need at least one message per session")
    opts.mtad_build = opts.mtad_build or os.path.join(opts.workdir, "build")
    opts.opensmtpd_root = (opts.opensmtpd_root
                           or os.path.join(opts.workdir, "opensmtpd"))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    opts.out = opts.out or os.path.join(opts.workdir, "results-" + stamp)
    return opts


# ---------------------------------------------------------------------------
# the machine

def _read(path, default="?"):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def _mount_of(path):
    """(device, mount point, type, options) of the file system of path."""
    path = os.path.realpath(path)
    best = ("?", "/", "?", "?")
    for line in _read("/proc/mounts", "").splitlines():
        dev, mnt, fstype, options = line.split()[:4]
        if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) \
                and len(mnt) >= len(best[1]):
            best = (dev, mnt, fstype, options)
    return {"device": best[0], "mount": best[1], "type": best[2],
            "options": best[3]}


def machine(opts):
    cpu = "?"
    for line in _read("/proc/cpuinfo", "").splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = 0
    for line in _read("/proc/meminfo", "").splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
    os.makedirs(opts.spool_root, exist_ok=True)
    return {
        "hostname": socket.gethostname(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "mem_gib": round(mem_kib / 1048576, 1),
        "kernel": "%s %s" % (platform.release(), platform.version()),
        "debian": _read("/etc/debian_version"),
        "python": platform.python_version(),
        "spool_fs": _mount_of(opts.spool_root),
        # Anything else running skews every figure: say how busy it was.
        "loadavg_start": _read("/proc/loadavg"),
        "opensmtpd_spool_fs": _mount_of("/var/spool"),
    }


# ---------------------------------------------------------------------------
# one measurement

class Bench:
    def __init__(self, opts):
        self.opts = opts
        self.mtas = []
        self.sink = None
        self.logdir = os.path.join(opts.out, "logs")
        os.makedirs(self.logdir, exist_ok=True)
        self.problems = []

    def make_mtas(self):
        ports = {"mtad": 0, "postfix": 1, "opensmtpd": 2}
        for name in self.opts.mtas:
            port = self.opts.port_base + ports[name]
            self.mtas.append(MTA_CLASSES[name](self.opts, port))
        for port in [m.port for m in self.mtas] + [self.opts.sink_port]:
            check_port_free(port)
        for m in self.mtas:
            m.prepare()

    def _problem(self, m, what, text):
        line = "%s, %s: %s" % (m.label, what, text)
        self.problems.append(line)
        print("  PROBLEM " + line, flush=True)

    def _start(self, m, what):
        m.wipe_spool()
        os.sync()       # what the last MTA left unsynced is not ours to pay
        self.sink = loads.Sink(self.opts.sink_port,
                               os.path.join(self.logdir, "smtp-sink.log"))
        self.sink.start()
        m.start()
        # Let the children finish starting (chroot, privileges, pools).
        time.sleep(2)
        if not m.alive():
            raise RuntimeError("%s died at start (%s)" % (m.label, what))

    def _finish(self, m, what, tag):
        alive = m.alive()
        try:
            m.stop()
        finally:
            self.sink.stop()
            self.sink = None
            procs.reap_orphans()
        count, first = m.log_problems()
        m.keep_log(os.path.join(self.logdir, "%s-%s.log.gz" % (m.name, tag)))
        if not alive:
            self._problem(m, what, "the MTA was not running at the end")
        return {"log_problem_lines": count, "log_problem_first": first,
                "alive_at_end": alive}

    def accept(self, m, c, rnd):
        o = self.opts
        what = "accept C=%d round %d" % (c, rnd)
        self._start(m, what)
        fd_limit = m.fd_limit()
        cpu0 = m.cpu()
        before = self.sink.received
        res = loads.accept_load(m.port, o.messages, o.size, c,
                                o.timed_sessions)
        cpu_accept = m.cpu() - cpu0
        if res["messages"] == 0:
            raise RuntimeError("no message accepted: %s"
                               % "; ".join(res["errors"]))
        deadline = res["t_end"] + o.e2e_timeout
        arrived = self.sink.wait_for(before + res["messages"], deadline)
        waited = deadline - res["t0"]
        cpu_total = m.cpu() - cpu0
        run = {
            "round": rnd, "concurrency": c,
            "messages": res["messages"],
            "planned": res["planned"],
            "sessions": res["sessions"],
            "accept_seconds": round(res["accept_seconds"], 3),
            "msgs_per_s": res["messages"] / res["accept_seconds"],
            "timed_messages": res["timed_messages"],
            "e2e_s": (arrived - res["t0"]) if arrived else None,
            "e2e_waited_s": None if arrived else round(waited, 1),
            "sink_received": self.sink.received - before,
            # How fast mail reached the sink, finished or not.
            "relay_msgs_per_s": (
                res["messages"] / (arrived - res["t0"]) if arrived
                else (self.sink.received - before) / waited),
            "cpu_accept_s": round(cpu_accept, 2),
            "cpu_total_s": round(cpu_total, 2),
            "cpu_accept_per_1000": cpu_accept * 1000 / res["messages"],
            # Only a relay that finished is comparable.
            "cpu_per_1000": (cpu_total * 1000 / res["messages"]
                             if arrived else None),
            "fd_limit": fd_limit,
            "errors": res["errors"],
        }
        lat = res["latencies"]
        if lat:
            run["latency_p50_ms"] = report.percentile(lat, 50) * 1000
            run["latency_p99_ms"] = report.percentile(lat, 99) * 1000
            run["latency_max_ms"] = max(lat) * 1000
            tx = res["transactions"]
            run["transaction_p50_ms"] = report.percentile(tx, 50) * 1000
            run["transaction_p99_ms"] = report.percentile(tx, 99) * 1000
        run.update(self._finish(m, what, "accept-c%d-r%d" % (c, rnd)))
        for e in res["errors"]:
            self._problem(m, what, e)
        if res["messages"] < res["planned"]:
            self._problem(m, what, "accepted %d of %d messages" % (
                res["messages"], res["planned"]))
        if not arrived:
            self._problem(m, what, "the sink had %d of %d messages %d s "
                          "after the last 250" % (
                              run["sink_received"], res["messages"],
                              o.e2e_timeout))
        e2e = ("%.1f s" % run["e2e_s"] if arrived else
               "> %.0f s (%d)" % (waited, run["sink_received"]))
        print("  %-9s C=%-4d %7.0f msg/s  p50 %6.1f ms  p99 %7.1f ms  "
              "e2e %s  cpu/1000: accept %.2f s, total %.2f s%s" % (
                  m.label, c, run["msgs_per_s"],
                  run.get("latency_p50_ms", 0), run.get("latency_p99_ms", 0),
                  e2e, run["cpu_accept_per_1000"],
                  cpu_total * 1000 / res["messages"],
                  "  (%d errors)" % len(res["errors"]) if res["errors"]
                  else ""), flush=True)
        return run

    def idle(self, m, k, rnd):
        o = self.opts
        what = "idle K=%d round %d" % (k, rnd)
        self._start(m, what)
        fd_limit = m.fd_limit()
        base = m.memory()

        def while_held(sessions):
            return {"memory": m.memory(),
                    "held": sessions.established - sessions.lost}

        sessions, held = loads.idle_load(m.port, k, while_held,
                                         parallel=o.idle_parallel,
                                         timeout=o.idle_timeout)
        mem = held["memory"]
        n = max(held["held"], 1)
        run = {
            "round": rnd, "sessions": k, "held": held["held"],
            "established": sessions.established,
            "failed": sessions.failed, "lost": sessions.lost,
            "failures": sessions.errors,
            "open_seconds": round(sessions.open_seconds, 1),
            "processes": mem["processes"],
            "baseline": base, "loaded": mem,
            "rss_mib": mem["rss_kib"] / 1024,
            "pss_mib": mem["pss_kib"] / 1024,
            "rss_per_session_kib": (mem["rss_kib"] - base["rss_kib"]) / n,
            "pss_per_session_kib": (mem["pss_kib"] - base["pss_kib"]) / n,
            "fd_limit": fd_limit,
        }
        run.update(self._finish(m, what, "idle-k%d-r%d" % (k, rnd)))
        if held["held"] < k:
            self._problem(m, what, "held %d of %d sessions (%s)" % (
                held["held"], k, ", ".join(
                    "%s x%d" % kv for kv in sessions.errors.items())
                or "%d closed by the server" % sessions.lost))
        print("  %-9s K=%-6d held %6d  RSS %8.1f MiB (%6.1f KiB/session)  "
              "PSS %8.1f MiB (%6.1f KiB/session)  %d processes" % (
                  m.label, k, run["held"], run["rss_mib"],
                  run["rss_per_session_kib"], run["pss_mib"],
                  run["pss_per_session_kib"], run["processes"]), flush=True)
        return run

    def attempt(self, m, what, measure, *args):
        """measure(m, *args), or None when the MTA or the harness failed:
        then the failure is a problem of the report, the MTA is stopped
        and the benchmark goes on with the next measurement."""
        try:
            return measure(m, *args)
        except (RuntimeError, OSError, subprocess.SubprocessError) as e:
            self._problem(m, what, "measurement failed: %s" % e)
            try:
                m.stop()
            except (RuntimeError, OSError) as e2:
                self._problem(m, what, "stopping: %s" % e2)
            if self.sink is not None:
                self.sink.stop()
                self.sink = None
            procs.reap_orphans()
            m.keep_log(os.path.join(self.logdir, "%s-failed-%d.log.gz" % (
                m.name, len(self.problems))))
            return None

    def stop_all(self):
        """Stop everything and empty the spools: mail left there (what
        OpenSMTPD had not relayed yet) must not be delivered by a later
        instance, to a sink that is gone."""
        for m in self.mtas:
            try:
                m.stop()
                m.wipe_spool()
            except Exception as e:          # noqa: BLE001 -- best effort
                print("stopping %s: %s" % (m.label, e), file=sys.stderr)
        if self.sink is not None:
            self.sink.stop()
            self.sink = None
        procs.reap_orphans()


def check_port_free(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the MTAs bind: connections of an earlier run in TIME_WAIT do not
    # make the port busy, a listener does.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", port))
        s.listen(1)
    except OSError as e:
        raise SystemExit("bench: 127.0.0.1:%d is busy (%s); choose other "
                         "ports with --port-base/--sink-port" % (port, e))
    finally:
        s.close()


def rotated(items, n):
    n %= len(items)
    return items[n:] + items[:n]


# ---------------------------------------------------------------------------

def run(opts, bench, results):
    o = opts
    if o.mode in ("all", "accept", "fsync"):
        print("disk: sync rates on %s" % o.spool_root, flush=True)
        results["fsync"] = loads.fsync_rates(o.spool_root)
        print("  %s" % results["fsync"], flush=True)
    if o.mode == "fsync":
        return
    bench.make_mtas()
    for m in bench.mtas:
        results["mtas"][m.name] = {
            "label": m.label, "version": m.version(),
            "durability": m.durability, "settings": m.settings(),
            "config": m.config_files(), "spool": m.spool}
    accept_runs = {c: {m.name: [] for m in bench.mtas} for c in o.concurrency}
    idle_runs = {k: {m.name: [] for m in bench.mtas}
                 for k in o.idle_sessions}
    do_accept = o.mode in ("all", "accept")
    do_idle = o.mode in ("all", "idle")
    rounds = max(o.rounds if do_accept else 0, o.idle_rounds if do_idle else 0)
    for rnd in range(1, rounds + 1):
        order = rotated(bench.mtas, rnd - 1)
        print("round %d of %d: %s" % (rnd, rounds,
                                      ", ".join(m.label for m in order)),
              flush=True)
        if do_accept and rnd <= o.rounds:
            for c in o.concurrency:
                for m in order:
                    got = bench.attempt(m, "accept C=%d round %d" % (c, rnd),
                                        bench.accept, c, rnd)
                    if got:
                        accept_runs[c][m.name].append(got)
        if do_idle and rnd <= o.idle_rounds:
            for k in o.idle_sessions:
                for m in order:
                    if idle_capped(o, m, k):
                        continue
                    got = bench.attempt(m, "idle K=%d round %d" % (k, rnd),
                                        bench.idle, k, rnd)
                    if got:
                        idle_runs[k][m.name].append(got)
    if do_accept:
        results["accept"] = {
            str(c): {name: {"runs": runs,
                            "median": report.accept_medians(runs)}
                     for name, runs in per.items()}
            for c, per in accept_runs.items()}
    if do_idle:
        results["idle"] = {}
        for k, per in idle_runs.items():
            results["idle"][str(k)] = section = {}
            for m in bench.mtas:
                runs = per[m.name]
                section[m.name] = {
                    "runs": runs,
                    "median": report.medians(runs, report.IDLE_KEYS)}
                if idle_capped(o, m, k):
                    section[m.name]["median"]["note"] = (
                        "not run (K > %d)" % o.postfix_idle_max)
        verdict = idle_verdict(results)
        if verdict:
            results["idle_target"] = verdict


def idle_capped(opts, m, k):
    return (m.name == "postfix" and opts.postfix_idle_max
            and k > opts.postfix_idle_max)


def idle_verdict(results):
    """Issue #3: mtad holds 10,000 idle sessions in under 200 MiB of RSS."""
    mtad = results.get("idle", {}).get("10000", {}).get("mtad")
    if not mtad:
        return None
    med = mtad["median"]
    ok = (med["held"] == 10000 and med["rss_mib"] is not None
          and med["rss_mib"] < IDLE_TARGET_MIB)
    return {"sessions": 10000, "target_mib": IDLE_TARGET_MIB,
            "rss_mib": med["rss_mib"], "held": med["held"],
            "met": bool(ok)}


def main(argv):
    opts = parse_args(argv)
    if os.geteuid() != 0:
        raise SystemExit("bench: run as root (through bench/run)")
    t_start = float(os.environ.get("BENCH_T0", time.time()))
    os.makedirs(opts.out, exist_ok=True)
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "command": ["bench/run"] + argv,
        "parameters": {
            "mode": opts.mode, "messages": opts.messages, "size": opts.size,
            "concurrency": opts.concurrency,
            "idle_sessions": opts.idle_sessions, "rounds": opts.rounds,
            "idle_rounds": opts.idle_rounds,
            "timed_sessions": opts.timed_sessions,
            "idle_parallel": opts.idle_parallel,
            "idle_timeout": opts.idle_timeout,
            "postfix_idle_max": opts.postfix_idle_max,
            "e2e_timeout": opts.e2e_timeout, "mtas": opts.mtas,
            "ports": {"base": opts.port_base, "sink": opts.sink_port}},
        "machine": machine(opts),
        "resolver": os.environ.get("BENCH_RESOLVER", "system"),
        "limits": {"nofile": nofile[0],
                   "how": os.environ.get(
                       "BENCH_NOFILE_HOW",
                       "inherited: soft %d, hard %d" % nofile)},
        "mtas": {},
        # Columns in a fixed order, whatever order the runs took.
        "mtas_order": [n for n in MTA_CLASSES if n in opts.mtas],
    }
    procs.become_subreaper()
    bench = Bench(opts)

    def on_signal(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        run(opts, bench, results)
    finally:
        bench.stop_all()
        results["problems"] = bench.problems
        results["machine"]["loadavg_end"] = _read("/proc/loadavg")
        wall = time.time() - t_start
        results["wall_seconds"] = round(wall)
        results["wall"] = "%d min %02d s" % (wall // 60, wall % 60)
        write_results(opts, results)


def write_results(opts, results):
    with open(os.path.join(opts.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True, default=str)
    text = report.markdown(results) if results.get("mtas") else ""
    if "fsync" in results and not text:
        text = "Disk sync rates: %s\n" % results["fsync"]
    if results.get("idle_target"):
        t = results["idle_target"]
        text += ("\nIssue #3 target (10,000 idle sessions under %d MiB RSS, "
                 "all mtad processes): %s (%.1f MiB, %d held).\n" % (
                     t["target_mib"], "MET" if t["met"] else "NOT MET",
                     t["rss_mib"] or 0, t["held"] or 0))
    with open(os.path.join(opts.out, "results.md"), "w") as f:
        f.write(text)
    print()
    print(text)
    print("results: %s/results.md, results.json, logs/" % opts.out)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit(130)
