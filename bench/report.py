#!/usr/bin/env python3
"""Summarises a bench run: python3 bench/report.py bench/out/<run>

Reads results.jsonl (one JSON object per measured run, written by the scenario scripts) and
meta.json (machine facts, from run.sh), prints Markdown tables side by side (median, min, max of
the runs), the ratios to Kannel and to the machine's ceilings, and the issue's targets met or
missed. The same text is written to summary.md in the run's directory.
"""

import json
import statistics
import sys
from pathlib import Path

PIGEON_APIS = ["raspisms", "reach", "astandes"]
NAMES = {
    "raspisms": "Pigeon `POST /api/scheduled/`",
    "reach": "Pigeon Reach `create`",
    "astandes": "Pigeon Astandes `/api/v1/message`",
    "kannel": "Kannel 1.4.5 `sendsms`",
    "axum": "ceiling: trivial axum handler",
}


def name(system):
    base, _, tag = system.partition("-")
    return NAMES.get(base, base) + (f" ({tag})" if tag else "")


def accept_systems(acc):
    """Pigeon's APIs, each followed by its variants (e.g. raspisms-normal) in the order measured."""
    seen = list(dict.fromkeys(r["system"] for r in acc))
    return [s for api in PIGEON_APIS for s in seen if s.partition("-")[0] == api]


def load(out):
    rows = []
    path = out / "results.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            line = line.strip()
            if line:
                rows.append(json.loads(line))
    meta = {}
    if (out / "meta.json").exists():
        meta = json.loads((out / "meta.json").read_text())
    return rows, meta


def pick(rows, **kw):
    return [r for r in rows if all(r.get(k) == v for k, v in kw.items())]


def values(rows, key):
    return [r[key] for r in rows if isinstance(r.get(key), (int, float))]


class Stat:
    def __init__(self, xs):
        self.xs = sorted(xs)

    def __bool__(self):
        return bool(self.xs)

    @property
    def med(self):
        return statistics.median(self.xs) if self.xs else None

    def fmt(self, digits=0, unit=""):
        if not self.xs:
            return "–"
        f = (lambda x: f"{x:,.{digits}f}")
        if len(self.xs) == 1:
            return f"{f(self.xs[0])}{unit} (1 run)"
        return f"**{f(self.med)}**{unit} ({f(self.xs[0])}–{f(self.xs[-1])}, n={len(self.xs)})"


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def verdict(value, target, higher=True, fmt="{:.2f}"):
    if value is None:
        return "not measured"
    ok = value >= target if higher else value < target
    shown = fmt.format(value)
    if ok:
        return f"{shown} — **met**"
    if higher:
        return f"{shown} — **missed** (reaches {value / target:.0%} of the target)"
    return f"{shown} — **missed** ({value / target:.1f}× the limit)"


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/out/latest").resolve()
    rows, meta = load(out)
    lines = []
    p = lines.append

    p(f"# Pigeon benchmark — {out.name}\n")
    if meta:
        p("## Machine and code\n")
        for k in ["date", "git", "kannel", "rustc", "nproc", "cpu", "memory", "kernel", "disk",
                  "loadavg_start", "loadavg_end", "commands"]:
            if k in meta:
                p(f"- **{k}**: {meta[k]}")
        p("")

    la = {}
    for r in rows:
        if isinstance(r.get("loadavg1"), (int, float)):
            la.setdefault(r["scenario"], []).append(r["loadavg1"])
    if la:
        p("1-minute load average when each run ended (the benchmark itself makes about 2 on 2 cores; "
          "more means other work shared the machine): " +
          ", ".join(f"{k} {min(v):.1f}–{max(v):.1f}" for k, v in la.items()) + "\n")

    # ------------------------------------------------------------------ accept
    acc = pick(rows, scenario="accept")
    ceil_http = pick(rows, scenario="ceiling_http")
    sat = {}
    if acc or ceil_http:
        p("## Accept: single sends\n")
        p("Closed-loop saturation (accepted/s, latency of the saturated server), and the open loop at "
          "half the maximum rate (latency from the scheduled send time).\n")
        p("| system | accepted/s at saturation | p50 ms | p99 ms | errors | server CPU ms/msg "
          "| open loop at ½ max: achieved/s | p50 ms | p99 ms | errors |")
        p("|---|---|---|---|---|---|---|---|---|---|")
        for system in accept_systems(acc) + ["kannel", "axum"]:
            s = pick(acc, system=system, phase="saturation") or (
                pick(ceil_http, phase="saturation") if system == "axum" else [])
            if not s:
                continue
            h = pick(acc, system=system, phase="half")
            sat[system] = Stat(values(s, "rate"))
            p(f"| {name(system)} | {sat[system].fmt()} | {Stat(values(s, 'p50_ms')).fmt(2)} "
              f"| {Stat(values(s, 'p99_ms')).fmt(2)} | {sum(values(s, 'errors'))} "
              f"| {Stat(values(s, 'cpu_ms_per_msg')).fmt(3)} "
              f"| {Stat(values(h, 'rate')).fmt()} | {Stat(values(h, 'p50_ms')).fmt(2)} "
              f"| {Stat(values(h, 'p99_ms')).fmt(2)} | {sum(values(h, 'errors')) if h else '–'} |")
        p("")
        rising = [r for r in acc if str(r.get("phase", "")).startswith(("open", "half"))]
        if rising:
            p("Rising open-loop rates (offered → achieved, latency from the scheduled time; ½ max is the "
              "median of its runs):\n")
            p("| system | offered/s | achieved/s | p50 ms | p99 ms | max ms | errors | not sent |")
            p("|---|---|---|---|---|---|---|---|")
            for system in accept_systems(acc) + ["kannel"]:
                by_rate = {}
                for r in pick(rising, system=system):
                    by_rate.setdefault(r["rate_target"], []).append(r)
                for rate in sorted(by_rate):
                    rs = by_rate[rate]
                    med = lambda k: statistics.median(values(rs, k)) if values(rs, k) else 0
                    p(f"| {name(system)} | {rate:,.0f} | {med('rate'):,.0f} | {med('p50_ms'):.2f} "
                      f"| {med('p99_ms'):.2f} | {med('max_ms'):.1f} | {sum(values(rs, 'errors'))} "
                      f"| {sum(values(rs, 'not_sent'))} |")
            p("")

    # ------------------------------------------------------------------ ceilings
    cs = pick(rows, scenario="ceiling_sqlite")
    sqlite = {}
    if cs:
        p("## Ceiling: SQLite durable inserts (message-shaped rows, WAL)\n")
        p("| synchronous | rows per transaction | indexes | statements | rows/s | commits/s |")
        p("|---|---|---|---|---|---|")
        for variant in ["full-1", "normal-1", "full-1000", "normal-1000", "full-1000-bare", "full-1000-rowwise"]:
            rs = pick(cs, variant=variant)
            if not rs:
                continue
            sqlite[variant] = Stat(values(rs, "rows_per_s"))
            stmt = "one per row" if rs[0].get("row_by_row", True) else "multi-row (100)"
            p(f"| {rs[0]['synchronous']} | {rs[0]['batch']} | {'Pigeon’s 6' if rs[0]['indexes'] else 'none'} | {stmt} "
              f"| {sqlite[variant].fmt()} | {Stat(values(rs, 'commits_per_s')).fmt()} |")
        p("")

    # ------------------------------------------------------------------ bulk
    bulk = pick(rows, scenario="bulk")
    bulk_stats = {}
    if bulk:
        p("## Bulk: 1,000 numbers per `POST /api/scheduled/`\n")
        p("| variant | recipients accepted/s | requests/s | p50 ms | p99 ms | errors | messages dispatched meanwhile |")
        p("|---|---|---|---|---|---|---|")
        for variant in ["now", "later"]:
            rs = pick(bulk, variant=variant)
            if not rs:
                continue
            bulk_stats[variant] = Stat(values(rs, "recipients_per_s"))
            p(f"| {variant} | {bulk_stats[variant].fmt()} | {Stat(values(rs, 'rate')).fmt(1)} "
              f"| {Stat(values(rs, 'p50_ms')).fmt(1)} | {Stat(values(rs, 'p99_ms')).fmt(1)} "
              f"| {sum(values(rs, 'errors'))} | {Stat(values(rs, 'messages_dispatched')).fmt()} |")
        p("")

    # ------------------------------------------------------------------ e2e
    e2e = pick(rows, scenario="e2e")
    e2e_stats = {}
    if e2e:
        p("## End to end: API → final status, and webhooks\n")
        p("A run whose last final status had not come when the wait ended (BENCH_E2E_WAIT) is measured "
          "over the time it ran: its rate is what it sustained.\n")
        p("| system | messages | accepted/s | final status/s | webhooks/s | final / accepted | server CPU s |")
        p("|---|---|---|---|---|---|---|")
        found = sorted({r["system"] for r in e2e}, key=lambda s: (s == "kannel", s))
        for system in found:
            rs = pick(e2e, system=system)
            e2e_stats[system] = Stat(values(rs, "msgs_per_s"))
            finals = ", ".join("%s/%s%s" % (r["final"], r["accepted"], "" if r.get("complete", True) else " (wait ended)")
                               for r in rs)
            p(f"| {name(system)} | {rs[0]['n']:,} | {Stat(values(rs, 'accept_rate')).fmt()} "
              f"| {e2e_stats[system].fmt()} | {Stat(values(rs, 'webhooks_per_s')).fmt()} "
              f"| {finals} "
              f"| {Stat(values(rs, 'server_cpu_s')).fmt(1)} |")
        p("")

    # ------------------------------------------------------------------ scale
    sc = pick(rows, scenario="scale")
    ss = pick(rows, scenario="scale_sender")
    if sc or ss:
        sizes = sorted({r["size"] for r in sc + ss})
        p("## Scale: stored queue size\n")
        p("List endpoints with the phone disabled (closed loop, 4 connections, 3 s):\n")
        head = "| endpoint | " + " | ".join(f"{s:,} queued: p50 ms | p99 ms | req/s" for s in sizes) + " |"
        p(head)
        p("|---|" + "---|---|---|" * len(sizes))
        for endpoint in ["sended_first", "sended_after_mid", "sended_last_page", "reach_list", "astandes_list"]:
            cells = []
            for s in sizes:
                rs = pick(sc, size=s, endpoint=endpoint)
                cells += [Stat(values(rs, "p50_ms")).fmt(2), Stat(values(rs, "p99_ms")).fmt(2),
                          Stat(values(rs, "rate")).fmt()]
            p(f"| {endpoint} | " + " | ".join(cells) + " |")
        p("")
        p("| queued | fill s | DB MB | RSS idle MB | RSS max while sending MB | RSS end MB | sender msgs/s | sent in window |")
        p("|---|---|---|---|---|---|---|---|")
        for r in sorted(ss, key=lambda r: r["size"]):
            p(f"| {r['size']:,} | {r['fill_s']} | {r['db_mb']} | {r['rss_idle_kb'] / 1024:.0f} "
              f"| {r['rss_max_kb'] / 1024:.0f} | {r['rss_end_kb'] / 1024:.0f} "
              f"| {r['sender_per_s'] if r['sender_per_s'] is not None else '–'} | {r['sent']:,} |")
        p("")

    # ------------------------------------------------------------------ ratios and targets
    p("## Ratios and the issue's targets\n")
    k = sat.get("kannel").med if sat.get("kannel") else None
    ax = sat.get("axum").med if sat.get("axum") else None
    p("| figure | vs Kannel | fraction of the HTTP ceiling |")
    p("|---|---|---|")
    for system in list(sat):
        if system != "axum":
            r1, r2 = ratio(sat[system].med, k), ratio(sat[system].med, ax)
            p(f"| {name(system)} accepted/s | {f'{r1:.2f}×' if r1 else '–'} | {f'{r2:.0%}' if r2 else '–'} |")
    full1000 = sqlite.get("full-1000").med if sqlite.get("full-1000") else None
    rowwise = sqlite.get("full-1000-rowwise").med if sqlite.get("full-1000-rowwise") else None
    for variant, st in bulk_stats.items():
        r = ratio(st.med, full1000)
        r2 = ratio(st.med, rowwise)
        p(f"| bulk ({variant}) recipients/s | – | {f'{r:.0%} of the batched-insert ceiling (FULL, 1,000/tx, multi-row)' if r else '–'}"
          f"{f'; {r2:.0%} of the one-INSERT-per-row ceiling' if r2 else ''} |")
    ke = e2e_stats.get("kannel").med if e2e_stats.get("kannel") else None
    for system in e2e_stats:
        if system != "kannel":
            r = ratio(e2e_stats[system].med, ke)
            p(f"| {name(system)} end to end msgs/s | {f'{r:.2f}×' if r else '–'} | – |")
    p("")
    p("| target | measured | verdict |")
    p("|---|---|---|")
    rs = sat.get("raspisms")
    p(f"| accepted durable single sends ≥ 2× Kannel's sendsms | RaspiSMS API | "
      f"{verdict(ratio(rs.med, k) if rs else None, 2.0, fmt='{:.2f}×')} |")
    for system in ["reach", "astandes"]:
        if system in sat:
            p(f"| (same, {system} API) | | {verdict(ratio(sat[system].med, k), 2.0, fmt='{:.2f}×')} |")
    p(f"| accepted single sends ≥ 40 % of the trivial-handler ceiling | RaspiSMS API | "
      f"{verdict(ratio(rs.med, ax) if rs else None, 0.40, fmt='{:.0%}')} |")
    half = pick(acc, system="raspisms", phase="half")
    p99 = Stat(values(half, "p99_ms")).med if half else None
    p(f"| p99 accept latency < 10 ms at half the maximum rate | RaspiSMS API | "
      f"{verdict(p99, 10.0, higher=False, fmt='{:.2f} ms')} |")
    for system in ["reach", "astandes", "kannel"]:
        h = pick(acc, system=system, phase="half")
        if h:
            p(f"| (same, {system}) | | {verdict(Stat(values(h, 'p99_ms')).med, 10.0, higher=False, fmt='{:.2f} ms')} |")
    for variant in ["now", "later"]:
        if variant in bulk_stats:
            p(f"| bulk acceptance ≥ 50 % of the batched-insert ceiling | bulk {variant} | "
              f"{verdict(ratio(bulk_stats[variant].med, full1000), 0.5, fmt='{:.0%}')} |")
    es = e2e_stats.get("raspisms")
    p(f"| end-to-end throughput ≥ Kannel's | RaspiSMS API | "
      f"{verdict(ratio(es.med, ke) if es else None, 1.0, fmt='{:.2f}×')} |")
    p("")
    text = "\n".join(lines)
    print(text)
    (out / "summary.md").write_text(text + "\n")


if __name__ == "__main__":
    main()
