#!/usr/bin/env python3
"""Turns the raw figures of one benchmark run into the markdown report and the chart.

Usage: report.py RESULTS.tsv META.txt OUT.md
       report.py OUT.tsv OUT.md          (again from the raw figures a run kept)
Writes OUT.md, OUT.png (the chart) and OUT.tsv (the raw figures, the run's description on
its first line). RESULTS.tsv has one measurement a line as tab-separated key=value pairs
(written by run.sh); META.txt holds key=value lines describing the run. Ratios compare rates
measured in the same run.
"""

import sys
from pathlib import Path

# The targets at full size: (measurement, reference, minimum ratio, description).
GOALS = [
    ("cdc_capture", "cdc_recvlogical", 1.0, "capture vs pg_recvlogical"),
    ("cdc_duckdb", "cdc_recvlogical", 0.9, "CDC end to end into DuckDB vs pg_recvlogical"),
    ("cdc_pg", "cdc_native", 1.2, "CDC end to end into PostgreSQL vs native LR catch-up"),
    ("snap_duckdb", "snap_native", 2.0, "snapshot into DuckDB vs native initial sync"),
    ("snap_pg", "snap_native", 1.2, "snapshot into PostgreSQL vs native initial sync"),
]


def read_results(path):
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rows.append(dict(kv.split("=", 1) for kv in line.split("\t")))
    return rows


def read_meta(path):
    meta = {}
    for line in Path(path).read_text().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            meta[k] = v
    return meta


def rate(r):
    s = float(r["seconds"])
    return float(r["events"]) / s if s > 0 else float("nan")


def ratio(r, ref):
    if ref is None:
        return None
    return rate(r) / rate(ref)


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}"


def rss(r):
    v = r.get("rss_mb", "-")
    if v == "-":
        return f"- ({r['rss_note']})" if r.get("rss_note") else "-"
    return f"{v} MiB" + (f" ({r['rss_note']})" if r.get("rss_note") else "")


def markdown(rows, meta):
    by_id = {r["id"]: r for r in rows}
    out = ["# Sluice benchmark", ""]
    out.append(
        f"Workload: {meta.get('workload', '?')} ({meta.get('expected', '')}). "
        f"Binary: {meta.get('binary', '?')}; {meta.get('date', '?')}; {meta.get('machine', '?')}. "
        f"Load average {meta.get('load', '?')} (other work on the machine skews absolute "
        f"figures; ratios compare systems measured one after the other in the same run). "
        f"Whole run: {float(meta.get('duration', 'nan')):.0f} s."
    )
    out.append("")
    out.append(
        "Every result was checked against the source (`workload.sh checksum`: row count and "
        "content hash per table) before its figure was kept."
    )

    snap = [r for r in rows if r["section"] == "snapshot"]
    if snap:
        ref = by_id.get("snap_native")
        out += ["", "## Snapshot (initial copy of the preloaded tables)", ""]
        out.append("| system | how | rows | seconds | rows/s | × native initial sync | peak RSS | check |")
        out.append("|---|---|---:|---:|---:|---:|---:|---|")
        for r in snap:
            out.append(
                f"| {r['system']} | {r['phase']} | {r['events']} | {float(r['seconds']):.2f} | "
                f"{rate(r):.0f} | {fmt_ratio(ratio(r, ref))} | {rss(r)} | {r['check']} |"
            )

    cdc = [r for r in rows if r["section"] == "cdc"]
    if cdc:
        recv, native = by_id.get("cdc_recvlogical"), by_id.get("cdc_native")
        out += ["", "## CDC phase (the same slot contents, one system after the other)", ""]
        out.append(
            "| system | what | events | seconds | events/s | × pg_recvlogical | × native LR catch-up | peak RSS | check |"
        )
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---|")
        for r in cdc:
            out.append(
                f"| {r['system']} | {r['phase']} | {r['events']} | {float(r['seconds']):.2f} | "
                f"{rate(r):.0f} | {fmt_ratio(ratio(r, recv))} | {fmt_ratio(ratio(r, native))} | "
                f"{rss(r)} | {r['check']} |"
            )

    fresh = [r for r in rows if r["section"] == "fresh"]
    if fresh:
        out += ["", "## Freshness (source commit to target, per row, under a steady load)", ""]
        out.append(f"Generator: {meta.get('fresh', '')}.")
        out.append("")
        out.append(
            "| target | rows | generated/s | p50 ms | p95 ms | p99 ms | max ms | mean ms | "
            "measured to | /metrics at commit: mean, p50, p99 bucket ms | mean batch apply ms | batches | peak RSS | check |"
        )
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
        for r in fresh:
            basis = (
                "target commit (`pg_xact_commit_timestamp`)"
                if r["basis"] == "target_commit"
                else "`_sluice_synced_at` (load transaction start)"
            )
            # pgbench's own rate (without connection time) when known.
            if r.get("gen_tps") and r.get("txn"):
                gen = float(r["gen_tps"]) * int(r["txn"])
            else:
                gen = float(r["rows"]) / float(r["seconds"])
            out.append(
                f"| {r['system']} | {r['rows']} | {gen:.0f} | {r['p50']} | {r['p95']} | {r['p99']} | "
                f"{r['max']} | {r['mean']} | {basis} | {r.get('metrics_mean_ms', '')}, "
                f"≤ {r.get('hist_p50_ms', '?')}, ≤ {r.get('hist_p99_ms', '?')} | "
                f"{r.get('batch_mean_ms', '')} | {r.get('batches', '')} | {rss(r)} | {r['check']} |"
            )
        for r in fresh:
            m = r.get("applied_metric")
            if m and m != r["rows"]:
                out.append("")
                out.append(
                    f"{r['system']}: `sluice_changes_applied_total` said {m} rows when the "
                    f"target held all {r['rows']} (a metrics discrepancy, not a data one: the "
                    f"check above compares the rows themselves)."
                )
        pg = by_id.get("fresh_postgres")
        if pg and pg.get("sync_p50"):
            out.append("")
            out.append(
                f"PostgreSQL target measured to `_sluice_synced_at` instead (as for DuckDB): "
                f"p50 {pg['sync_p50']} ms, p99 {pg['sync_p99']} ms, mean {pg['sync_mean']} ms."
            )

    large = [r for r in rows if r["section"] == "large"]
    if large:
        out += ["", "## One large source transaction (inserts, then updates and deletes of its own rows)", ""]
        out.append("| target | rows | WAL MiB | seconds | rows/s | peak RSS | check |")
        out.append("|---|---:|---:|---:|---:|---:|---|")
        for r in large:
            out.append(
                f"| {r['system']} | {r['rows']} | {r.get('wal_mb', '')} | {float(r['seconds']):.2f} | "
                f"{float(r['rows']) / float(r['seconds']):.0f} | {rss(r)} | {r['check']} |"
            )

    standin = [r for r in rows if r["section"] == "standin"]
    if standin:
        out += ["", "## Snowflake, on its stand-in (fakesnow: a stand-in's figures, not Snowflake's)", ""]
        out.append("| target | phase | changes | seconds | changes/s | batches | batches/min | s per batch | peak RSS |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for r in standin:
            secs, events, batches = float(r["seconds"]), float(r["events"]), float(r["batches"] or 0)
            per_min = batches / secs * 60 if secs else 0
            per_batch = secs / batches if batches else 0
            out.append(
                f"| {r['system']} | {r['phase']} | {r['events']} | {secs:.2f} | {events / secs:.0f} | "
                f"{r['batches']} | {per_min:.1f} | {per_batch:.2f} | {rss(r)} |"
            )

    goals = [(m, ref, lo, d) for m, ref, lo, d in GOALS if m in by_id and ref in by_id]
    if goals:
        out += ["", "## Targets (issue 5; they apply at full size)", ""]
        out.append("| target | ratio | goal | holds |")
        out.append("|---|---:|---:|---|")
        for m, ref, lo, d in goals:
            x = ratio(by_id[m], by_id[ref])
            out.append(f"| {d} | {x:.2f} | ≥ {lo:.1f} | {'yes' if x >= lo else '**no**'} |")
    return "\n".join(out) + "\n"


def chart(rows, meta, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_id = {r["id"]: r for r in rows}
    has = {sec: any(r["section"] == sec for r in rows) for sec in ("snapshot", "cdc", "fresh")}
    # CDC across the top (the most bars), snapshot and freshness below it.
    fig = plt.figure(figsize=(11, 8.5))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.25, 1])
    panels = []
    if has["cdc"]:
        panels.append(("cdc", fig.add_subplot(grid[0, :])))
    if has["snapshot"]:
        panels.append(("snapshot", fig.add_subplot(grid[1, 0])))
    if has["fresh"]:
        panels.append(("fresh", fig.add_subplot(grid[1, 1])))

    def colour(r):
        return "#9e9e9e" if "sluice" not in r["system"] else "#1f77b4"

    for panel, ax in panels:
        if panel in ("snapshot", "cdc"):
            sel = [r for r in rows if r["section"] == panel]
            ref = by_id.get("snap_native" if panel == "snapshot" else "cdc_recvlogical")
            labels = [f"{r['system']}\n{r['phase']}" for r in sel]
            values = [rate(r) / 1000 for r in sel]
            y = range(len(sel))
            ax.barh(list(y), values, color=[colour(r) for r in sel])
            ax.set_yticks(list(y))
            ax.set_yticklabels(labels, fontsize=7)
            ax.invert_yaxis()
            for i, r in enumerate(sel):
                text = f" {values[i]:.0f}k  ({ratio(r, ref):.2f}×)"
                if r["id"] == "cdc_pg" and "cdc_native" in by_id:
                    text += f", {ratio(r, by_id['cdc_native']):.2f}× native LR"
                ax.text(values[i], i, text, va="center", fontsize=7)
            ax.set_xlim(0, max(values) * 1.45)
            refname = "native initial sync" if panel == "snapshot" else "pg_recvlogical"
            ax.set_xlabel(f"thousand {'rows' if panel == 'snapshot' else 'row changes'} per second "
                          f"(ratio vs {refname})", fontsize=8)
            ax.set_title("Snapshot" if panel == "snapshot" else "CDC phase catch-up", fontsize=10)
        else:
            sel = [r for r in rows if r["section"] == "fresh"]
            keys = ["p50", "p95", "p99", "max"]
            width = 0.8 / len(sel)
            for j, r in enumerate(sel):
                vals = [float(r[k]) for k in keys]
                xs = [i + j * width for i in range(len(keys))]
                to = "target commit" if r.get("basis") == "target_commit" else "load start"
                ax.bar(xs, vals, width=width, label=f"{r['system']} (to {to})",
                       color=["#1f77b4", "#ff7f0e", "#2ca02c"][j % 3])
                for x, v in zip(xs, vals):
                    ax.text(x, v, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
            ax.set_xticks([i + width * (len(sel) - 1) / 2 for i in range(len(keys))])
            ax.set_xticklabels(keys)
            ax.set_ylabel("ms, source commit to target", fontsize=8)
            ax.set_title("Freshness under a steady load", fontsize=10)
            ax.legend(fontsize=8)
    fig.suptitle(f"Sluice benchmark, {meta.get('workload', '')}, {meta.get('date', '')}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    if len(sys.argv) == 3:
        out = Path(sys.argv[2])
        rows = read_results(sys.argv[1])
        meta = next((r for r in rows if r["section"] == "meta"), {})
        rows = [r for r in rows if r["section"] != "meta"]
    else:
        out = Path(sys.argv[3])
        rows = read_results(sys.argv[1])
        meta = read_meta(sys.argv[2])
    out.write_text(markdown(rows, meta))
    chart(rows, meta, out.with_suffix(".png"))
    lines = ["\t".join(["section=meta"] + [f"{k}={v}" for k, v in meta.items()])]
    lines += ["\t".join(f"{k}={v}" for k, v in r.items()) for r in rows]
    out.with_suffix(".tsv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
