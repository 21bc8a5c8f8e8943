"""Statistics over the rounds, and the markdown report."""

import re
import statistics


def percentile(values, p):
    """Nearest-rank percentile (p in 0..100) of a non-empty list."""
    s = sorted(values)
    rank = max(1, -(-len(s) * p // 100))    # ceil(len * p / 100)
    return s[int(rank) - 1]


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def median_or_over(values):
    """Median where None means "did not finish in time" and ranks above
    every number; None if the median run did not finish."""
    ranked = [float("inf") if v is None else v for v in values]
    if not ranked:
        return None
    m = statistics.median(ranked)
    return None if m == float("inf") else m


def medians(runs, keys):
    """{key: median over the runs} for every key."""
    return {k: median([r.get(k) for r in runs]) for k in keys}


def accept_medians(runs):
    out = medians(runs, ACCEPT_KEYS)
    for key in ("e2e_s", "cpu_per_1000"):
        out[key] = median_or_over([r.get(key) for r in runs])
    late = [r for r in runs if r.get("e2e_s") is None]
    if late and out["e2e_s"] is None:
        out["e2e_note"] = "> %.0f s (%d of %d)" % (
            median([r["e2e_waited_s"] for r in late]),
            median([r["sink_received"] for r in late]),
            late[0]["messages"])
    return out


ACCEPT_ROWS = [
    # (key, label) -- ratios are always mtad / peer
    ("msgs_per_s", "accepted msg/s (higher is better)"),
    ("latency_p50_ms", "final 250 latency p50, ms"),
    ("latency_p99_ms", "final 250 latency p99, ms"),
    ("transaction_p50_ms", "MAIL to final 250, p50, ms"),
    ("transaction_p99_ms", "MAIL to final 250, p99, ms"),
    ("e2e_s", "end to end: all N at the sink, s"),
    ("relay_msgs_per_s", "relayed msg/s (at the sink)"),
    ("cpu_accept_per_1000", "CPU s per 1,000 msgs, accepting"),
    ("cpu_per_1000", "CPU s per 1,000 msgs, accepting + relaying"),
]
ACCEPT_KEYS = [k for k, _ in ACCEPT_ROWS] + ["latency_max_ms",
                                             "sink_received"]

IDLE_ROWS = [
    ("held", "sessions held"),
    ("rss_mib", "total RSS, MiB"),
    ("rss_per_session_kib", "RSS per session, KiB"),
    ("pss_mib", "total PSS, MiB"),
    ("pss_per_session_kib", "PSS per session, KiB"),
]
IDLE_KEYS = [k for k, _ in IDLE_ROWS] + ["processes", "open_seconds"]


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    if abs(v) >= 100:
        return "%.0f" % v
    if abs(v) >= 10:
        return "%.1f" % v
    return "%.2f" % v


def _ratio(a, b):
    if a is None or b in (None, 0):
        return "-"
    return "%.2f" % (a / b)


def _cell(med, key, value):
    if value is not None:
        return _fmt(value)
    if key == "e2e_s" and "e2e_note" in med:
        return med["e2e_note"]
    return med.get("note", "-")


def table(results):
    """The markdown table of medians, one row per load and figure."""
    mtas = results["mtas_order"]
    labels = [results["mtas"][m]["label"] for m in mtas]
    peers = [m for m in mtas if m != "mtad"]
    head = ["load", "figure"] + labels
    if "mtad" in mtas:
        head += ["mtad/" + results["mtas"][p]["label"] for p in peers]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "---|" * 2 + "---:|" * (len(head) - 2)]

    def rows(section, loadname, rowdefs):
        for key, label in rowdefs:
            meds = {m: section.get(m, {}).get("median", {}) for m in mtas}
            vals = {m: meds[m].get(key) for m in mtas}
            cells = [loadname, label] + [
                _cell(meds[m], key, vals[m]) for m in mtas]
            if "mtad" in mtas:
                cells += [_ratio(vals["mtad"], vals[p]) for p in peers]
            lines.append("| " + " | ".join(cells) + " |")

    for c, section in results.get("accept", {}).items():
        rows(section, "accept C=%s" % c, ACCEPT_ROWS)
    for k, section in results.get("idle", {}).items():
        rows(section, "idle K=%s" % k, IDLE_ROWS)
    return "\n".join(lines)


def grouped(problems):
    """[(first problem, how many alike)]: problems that differ only in
    their numbers (round, counts) are one line."""
    order, seen = [], {}
    for prob in problems:
        key = re.sub(r"[0-9]+", "#", prob)
        if key not in seen:
            seen[key] = [prob, 0]
            order.append(key)
        seen[key][1] += 1
    return [tuple(seen[k]) for k in order]


def markdown(results):
    p = results["parameters"]
    mach = results["machine"]
    out = []
    out.append("# mtad benchmark, %s" % results["date"])
    out.append("")
    out.append("Machine: %s, %d cores (%s), %s GiB RAM, kernel %s, "
               "Debian %s; spools on %s (%s)." % (
                   mach.get("hostname", "?"), mach["cores"], mach["cpu"],
                   mach["mem_gib"], mach["kernel"], mach["debian"],
                   mach["spool_fs"]["device"], mach["spool_fs"]["type"]))
    if "fsync" in results:
        f = results["fsync"]
        out.append("Disk (spool file system, 4 KiB writes): %s new file + "
                   "fsync/s, %s new file + fsync + directory fsync/s, "
                   "%s new file + syncfs/s, %s rewrite + fdatasync/s." % (
                       f["new_file_fsync"], f["new_file_fsync_dir"],
                       f["new_file_syncfs"], f["rewrite_fdatasync"]))
    if "accept" in results:
        out.append(
            "Accept loads: N=%d messages of S=%d bytes over C sessions "
            "(%d of them timed by the harness's client, the rest "
            "smtp-source), relayed to smtp-sink; end to end waits at most "
            "%d s after the last 250; medians of %d rounds." % (
                p["messages"], p["size"], p["timed_sessions"],
                p["e2e_timeout"], p["rounds"]))
    if "idle" in results:
        out.append(
            "Idle loads: K sessions greeted and EHLO answered, opened %d at "
            "a time; RSS = sum of VmRSS, PSS = sum of Pss (smaps_rollup) "
            "over all the MTA's processes, per session = (with K sessions "
            "- before) / K; %d round(s)." % (
                p["idle_parallel"], p["idle_rounds"]))
    out.append("Every MTA and client ran with a descriptor limit of %s (%s; "
               "set by ulimit in bench/run and inherited); DNS: %s.  The "
               "MTAs ran in turn, in rotating order from round to round." % (
                   results["limits"]["nofile"], results["limits"]["how"],
                   results.get("resolver", "?")))
    out.append("Wall time of the run: %s.  Load average (1, 5, 15 min) "
               "at the start: %s; at the end: %s." % (
                   results.get("wall", "?"),
                   " ".join(mach["loadavg_start"].split()[:3]),
                   " ".join(mach.get("loadavg_end", "? ? ?").split()[:3])))
    out.append("")
    out.append(table(results))
    out.append("")
    if "mtad" in results["mtas_order"] and len(results["mtas_order"]) > 1:
        out.append("Ratios are mtad / peer for every figure: above 1 is "
                   "better for msg/s, below 1 for times, CPU and memory.")
        out.append("")
    out.append("| MTA | version | durability at 250 |")
    out.append("|---|---|---|")
    for m in results["mtas_order"]:
        d = results["mtas"][m]
        out.append("| %s | %s | %s |" % (d["label"], d["version"],
                                         d["durability"]))
    out.append("")
    out.append("Settings that differ from each MTA's defaults (the files "
               "are in results.json):")
    for m in results["mtas_order"]:
        d = results["mtas"][m]
        out.append("- %s: %s." % (d["label"], "; ".join(d["settings"])))
    if results.get("problems"):
        out.append("")
        out.append("Problems seen (details in results.json and logs/):")
        for prob, count in grouped(results["problems"]):
            out.append("- " + prob + (" (and %d more like it)" % (count - 1)
                                      if count > 1 else ""))
    out.append("")
    return "\n".join(out)
