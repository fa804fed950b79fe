#!/usr/bin/env python3
"""Turns the runs of bench-matrix.sh into tables and plots: for every cell (target, policy,
cores, op, size, concurrency) the median and min-max over repeats of MiB/s, ops/s, p50/p99
latency, the measured process's CPU seconds per GiB (and CPU microseconds per operation) and
its peak RSS; the issue's targets checked against them; PNG plots of throughput against object
size and against concurrency.

    perf-scripts/bench-report.py OUT_DIR      (reads OUT_DIR/runs, writes OUT_DIR/RESULTS.md
                                               and OUT_DIR/throughput-vs-*.png)
"""

import json
import re
import statistics
import sys
from collections import defaultdict
from pathlib import Path

GIB = float(1 << 30)


def load_runs(out):
    runs = []
    for meta_path in sorted((out / "runs").glob("*.meta")):
        meta = dict(
            line.split("=", 1) for line in meta_path.read_text().splitlines() if "=" in line
        )
        json_path = meta_path.with_suffix(".json")
        try:
            report = json.loads(json_path.read_text())
        except (OSError, ValueError):
            print(f"warning: {json_path} has no JSON result", file=sys.stderr)
            continue
        rows = [r for r in report["results"] if r["phase"] not in ("prepare", "cleanup")]
        if not rows:
            continue
        row = rows[0]
        cpu_s = int(meta["cpu_ticks"]) / int(meta["clk_tck"])
        run = {
            "target": meta["target"],
            "policy": meta["policy"],
            "cores": meta["cores"],
            "op": meta["op"],
            "size": meta["size"],
            "size_bytes": int(meta["size_bytes"]),
            "concurrency": int(meta["concurrency"]),
            "mib_s": row["mib_s"],
            "ops_s": row["ops_s"],
            "p50_ms": row["latency_us"]["p50"] / 1000.0,
            "p99_ms": row["latency_us"]["p99"] / 1000.0,
            "errors": row["errors"],
            "cpu_s": cpu_s,
            "cpu_s_per_gib": cpu_s / (row["bytes"] / GIB) if row["bytes"] else None,
            "cpu_us_per_op": cpu_s / row["ops"] * 1e6 if row["ops"] else None,
            "rss_mib": int(meta.get("rss_peak_kib") or 0) / 1024.0,
        }
        runs.append(run)
    return runs


def cell_key(run):
    return (run["target"], run["policy"], run["cores"], run["op"], run["size_bytes"],
            run["concurrency"])


def summarize(runs):
    cells = defaultdict(list)
    for run in runs:
        cells[cell_key(run)].append(run)
    out = {}
    for key, group in cells.items():
        summary = {"size": group[0]["size"], "n": len(group),
                   "errors": sum(r["errors"] for r in group)}
        for field in ("mib_s", "ops_s", "p50_ms", "p99_ms", "cpu_s_per_gib", "cpu_us_per_op",
                      "rss_mib"):
            values = [r[field] for r in group if r[field] is not None]
            summary[field] = (
                (statistics.median(values), min(values), max(values)) if values else None
            )
        out[key] = summary
    return out


def series_label(target, policy, cores):
    if policy == "-":
        return target
    return f"{target} {policy} cores={cores}"


def human(size_bytes):
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size_bytes >= 1 << shift and size_bytes % (1 << shift) == 0:
            return f"{size_bytes >> shift} {unit}"
    return f"{size_bytes} B"


def fmt(stat, digits=1):
    if stat is None:
        return "n/a"
    median, low, high = stat
    if low == high:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({low:.{digits}f}–{high:.{digits}f})"


def table(cells, op):
    lines = [
        "| target | policy | cores | size | conc | MiB/s | ops/s | p50 ms | p99 ms "
        "| CPU-s/GiB | CPU-µs/op | peak RSS MiB | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in sorted(k for k in cells if k[3] == op):
        target, policy, cores, _, _, conc = key
        c = cells[key]
        lines.append(
            f"| {target} | {policy} | {cores} | {c['size']} | {conc} | {fmt(c['mib_s'])} "
            f"| {fmt(c['ops_s'], 0)} | {fmt(c['p50_ms'], 2)} | {fmt(c['p99_ms'], 2)} "
            f"| {fmt(c['cpu_s_per_gib'], 2)} | {fmt(c['cpu_us_per_op'], 0)} "
            f"| {fmt(c['rss_mib'], 0)} | {c['errors']} |"
        )
    return "\n".join(lines)


def find(cells, target, policy, cores, op, size_bytes, conc=None):
    """The matching cells (any concurrency when conc is None)."""
    return [v for k, v in cells.items()
            if k[0] == target and k[1] == policy and (cores is None or k[2] == cores)
            and k[3] == op and k[4] == size_bytes and (conc is None or k[5] == conc)]


def targets(cells, etag="md5"):
    """The issue's targets, evaluated on the gateway rows that exist. The PUT CPU target
    depends on the ETag mode the run used (`etag=` in machine.txt): 1.5 s with MD5, 0.5 s fast."""
    all_cores = sorted({k[2] for k in cells if k[0] == "gateway"}) or ["2"]
    mib64, mib1, kib4 = 64 << 20, 1 << 20, 4 << 10

    def median_of(found, field, pick=min):
        values = [c[field][0] for c in found if c[field] is not None]
        return pick(values) if values else None

    rows = []

    def add(name, target, value, ok, unit=""):
        shown = "not measured" if value is None else f"{value:,.2f}{unit}"
        verdict = "" if value is None else ("met" if ok(value) else "**missed**")
        rows.append(f"| {name} | {target} | {shown} | {verdict} |")

    for most in all_cores:
        put64 = find(cells, "gateway", "ec:2+1", most, "put", mib64)
        get64 = find(cells, "gateway", "ec:2+1", most, "get", mib64)
        v = median_of(put64, "cpu_s_per_gib")
        limit = 0.5 if etag == "fast" else 1.5
        add(f"gateway CPU per GiB, PUT 64 MiB ({etag} ETag), ec 2+1 (best concurrency), --cores {most}",
            f"≤ {limit} s", v, lambda x: x <= limit, " s")
        v = median_of(get64, "cpu_s_per_gib")
        add(f"gateway CPU per GiB, GET 64 MiB, ec 2+1 (best concurrency), --cores {most}", "≤ 0.4 s", v,
            lambda x: x <= 0.4, " s")
        v = median_of(find(cells, "gateway", "ec:2+1", most, "get", mib64, 4), "mib_s", max)
        add(f"GET 64 MiB, ec 2+1, concurrency 4, --cores {most}", "≥ 1.5 GiB/s", None if v is None else v / 1024,
            lambda x: x >= 1.5, " GiB/s")
        v = median_of(find(cells, "gateway", "ec:2+1", most, "put", kib4, 64), "ops_s", max)
        add(f"PUT 4 KiB, concurrency 64, --cores {most}", "≥ 10,000 ops/s", v, lambda x: x >= 10_000)
        v = median_of(find(cells, "gateway", "ec:2+1", most, "get", kib4, 64), "ops_s", max)
        add(f"GET 4 KiB, concurrency 64, --cores {most}", "≥ 20,000 ops/s", v, lambda x: x >= 20_000)
        v = median_of(find(cells, "gateway", "ec:2+1", most, "get", kib4, 16), "p99_ms")
        add(f"p99 GET 4 KiB, concurrency 16, --cores {most}", "≤ 5 ms", v, lambda x: x <= 5, " ms")
    one = median_of(find(cells, "gateway", "ec:2+1", "1", "get", mib1), "cpu_s_per_gib")
    two = median_of(find(cells, "gateway", "ec:2+1", "2", "get", mib1), "cpu_s_per_gib")
    ratio = two / one if one and two else None
    add("CPU per GiB, GET 1 MiB, --cores 2 / --cores 1", "≤ 1.1×", ratio, lambda x: x <= 1.1, "×")
    header = ["| figure | target | measured (median) | |", "|---|---|---|---|"]
    return "\n".join(header + rows)


def plots(out, cells):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib missing (pip install matplotlib); no plots", file=sys.stderr)
        return []
    written = []
    series = sorted({(k[0], k[1], k[2]) for k in cells})
    for op in sorted({k[3] for k in cells}):
        # Throughput against object size, at each series' highest concurrency.
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for target, policy, cores in series:
            keys = [k for k in cells if k[:4] == (target, policy, cores, op)]
            if not keys:
                continue
            conc = max(k[5] for k in keys)
            points = sorted((k[4], cells[k]["mib_s"][0]) for k in keys if k[5] == conc)
            label = f"{series_label(target, policy, cores)} c={conc}"
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("object size (bytes)")
        ax.set_ylabel("MiB/s (log)")
        ax.set_yscale("log")
        ax.set_title(f"{op.upper()} throughput vs object size")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        path = out / f"throughput-vs-size-{op}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
        # Throughput against concurrency, at the largest size.
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for target, policy, cores in series:
            keys = [k for k in cells if k[:4] == (target, policy, cores, op)]
            if not keys:
                continue
            size = max(k[4] for k in keys)
            points = sorted((k[5], cells[k]["mib_s"][0]) for k in keys if k[4] == size)
            label = f"{series_label(target, policy, cores)} {human(size)}"
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrency")
        ax.set_ylabel("MiB/s (log)")
        ax.set_yscale("log")
        ax.set_title(f"{op.upper()} throughput vs concurrency (largest size)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        path = out / f"throughput-vs-concurrency-{op}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    out = Path(sys.argv[1])
    runs = load_runs(out)
    if not runs:
        print(f"no runs under {out}/runs", file=sys.stderr)
        sys.exit(1)
    cells = summarize(runs)
    machine = (out / "machine.txt").read_text() if (out / "machine.txt").exists() else ""
    etag_mode = re.search(r"\betag=(\w+)", machine)
    etag = etag_mode.group(1) if etag_mode else "md5"
    images = plots(out, cells)
    # Free-form observations about this run (load, what else ran), if the operator wrote any.
    notes = (out / "notes.md").read_text().strip() + "\n" if (out / "notes.md").exists() else ""

    parts = [
        "# Tessera benchmark results",
        "",
        "Produced by `perf-scripts/bench-matrix.sh` (tessera-bench against the gateway, the "
        "baseline site and the no-op server, in one run). Each cell: median (min–max) over "
        "the repeats. CPU-s/GiB and CPU-µs/op are the measured server process's own user+sys "
        "time (/proc/PID/stat) over the run, divided by the payload moved; peak RSS is its "
        "VmHWM, reset before each run.",
        "",
        "```",
        machine.strip(),
        "```",
        "",
        notes,
        "## Targets",
        "",
        targets(cells, etag),
    ]
    for op in ("put", "get", "head", "delete", "list", "mixed"):
        if any(k[3] == op for k in cells):
            parts += ["", f"## {op.upper()}", "", table(cells, op)]
    if images:
        parts += ["", "## Plots", ""]
        parts += [f"![{p.stem}](plots/{p.name})" for p in images]
    (out / "RESULTS.md").write_text("\n".join(parts) + "\n")
    print(f"wrote {out / 'RESULTS.md'} ({len(runs)} runs, {len(cells)} cells, "
          f"{len(images)} plots)")


if __name__ == "__main__":
    main()
