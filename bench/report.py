#!/usr/bin/env python3
"""Medians, charts and the README's performance tables from `bench/run.py`'s raw runs.

    python bench/report.py docs/bench/runs.json [--readme README.md]

Writes docs/bench/summary.json (the median of every figure over the repetitions, per
implementation and network size), docs/bench/{throughput,latency,memory}.png, and
docs/bench/tables.md; with --readme, replaces the text between the README's
`<!-- bench:begin -->` and `<!-- bench:end -->` markers with those tables.

A ratio is the ratio of the two medians, followed by the lowest and highest ratio of the two
implementations' runs within one repetition (`rep`): those runs are minutes apart at most, so
the range shows how far this machine's drift moves the ratio.
"""
import argparse
import json
import os
import statistics

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "docs", "bench")
ORDER = ["kadmium", "kadmium-k8", "kadmium-baseline", "kademlia", "opendht"]
NAMES = {"kadmium": "kadmium (k = 20)", "kadmium-k8": "kadmium (k = 8)",
         "kadmium-baseline": "kadmium, previous driver", "kademlia": "kademlia 2.2.3 (k = 20)",
         "opendht": "OpenDHT 4.4.2 (stores on 8)"}
FIGURES = {  # summary name -> path in one run's report
    "put_ops_s": ("par", "put_ops_s"), "put_p50_ms": ("par", "put_p50_ms"),
    "put_p99_ms": ("par", "put_p99_ms"), "put_cpu_ms": ("par", "put_cpu_ms_per_op"),
    "get_ops_s": ("par", "get_ops_s"), "get_p50_ms": ("par", "get_p50_ms"),
    "get_p99_ms": ("par", "get_p99_ms"),
    "netget_ops_s": ("netget", "get_ops_s"), "netget_p50_ms": ("netget", "get_p50_ms"),
    "netget_p99_ms": ("netget", "get_p99_ms"), "netget_cpu_ms": ("netget", "get_cpu_ms_per_op"),
    "seq_put_p50_ms": ("seq", "put_p50_ms"), "seq_get_p50_ms": ("seq", "get_p50_ms"),
    "local_share": ("local_share",), "mem_per_node_kb": ("mem_per_node_kb",),
    "peak_rss_mb": ("peak_rss_mb",), "bootstrap_s": ("bootstrap_s",), "ops": ("ops",),
    "loadavg_1m": ("loadavg_1m",),
}


def dig(report, path):
    for part in path:
        if not isinstance(report, dict) or part not in report:
            return None
        report = report[part]
    return report


def summarize(runs):
    groups = {}
    for run in runs:
        groups.setdefault((run["label"], run["nodes"]), []).append(run)
    summary = []
    for (label, nodes), group in sorted(groups.items(), key=lambda g: (g[0][1], rank(g[0][0]))):
        row = {"label": label, "nodes": nodes, "runs": len(group)}
        for name, path in FIGURES.items():
            values = [v for v in (dig(r, path) for r in group) if v is not None]
            row[name] = round(statistics.median(values), 3) if values else None
        row["all_found"] = all(dig(r, ("par", "get_found")) == dig(r, ("ops",)) for r in group)
        summary.append(row)
    return summary


def rank(label):
    return ORDER.index(label) if label in ORDER else len(ORDER)


def num(x, digits=0):
    if x is None:
        return "–"
    return f"{x:,.{digits}f}"


def ms(x):
    return "–" if x is None else (f"{x:.2f}" if x < 10 else f"{x:.0f}")


def ratio(a, b):
    return "–" if not a or not b else f"{a / b:.1f}×"


def rep_ratio(runs, by, nodes, figure, top, bottom):
    """`ratio` of the medians of `figure` (from the summary rows `by`), with the range of the
    per-repetition ratios."""
    path = FIGURES[figure]
    by_rep = {}
    for run in runs:
        if run["nodes"] == nodes and run["label"] in (top, bottom) and "rep" in run:
            by_rep.setdefault(run["rep"], {})[run["label"]] = dig(run, path)
    per_rep = [r[top] / r[bottom] for r in by_rep.values() if r.get(top) and r.get(bottom)]
    text = ratio(by.get((top, nodes), {}).get(figure), by.get((bottom, nodes), {}).get(figure))
    if len(per_rep) > 1:
        text += f" ({min(per_rep):.1f}–{max(per_rep):.1f})"
    return text


def tables(summary, meta, runs):
    sizes = sorted({row["nodes"] for row in summary})
    by = {(row["label"], row["nodes"]): row for row in summary}
    reps = max(row["runs"] for row in summary)
    lines = [f"Median of {reps} interleaved run(s) per figure; {meta}. In brackets after a "
             "ratio: its lowest and highest value within one repetition.", ""]
    lines.append("| nodes | implementation | put ops/s (p50 / p99 ms) | get ops/s (p50 / p99 ms) | "
                 "network-only get ops/s (p50 / p99 ms) | CPU ms per put / per network get | "
                 "memory per node | gets answered locally |")
    lines.append("|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for label in ORDER:
            r = by.get((label, n))
            if r is None:
                continue
            note = "" if r["ops"] in (None, 300) else f" ({int(r['ops'])} ops)"
            lines.append(
                f"| {n} | {NAMES[label]}{note} | {num(r['put_ops_s'])} ({ms(r['put_p50_ms'])} / "
                f"{ms(r['put_p99_ms'])}) | {num(r['get_ops_s'])} ({ms(r['get_p50_ms'])} / "
                f"{ms(r['get_p99_ms'])}) | {num(r['netget_ops_s'])} ({ms(r['netget_p50_ms'])} / "
                f"{ms(r['netget_p99_ms'])}) | {ms(r['put_cpu_ms'])} / {ms(r['netget_cpu_ms'])} | "
                f"{num(r['mem_per_node_kb'])} KB | {num((r['local_share'] or 0) * 100)}% |")
    lines += ["", "| nodes | put ×kademlia | get ×kademlia | put ×OpenDHT (k = 20 / k = 8) | "
              "network get ×OpenDHT (k = 20 / k = 8) | put CPU ÷OpenDHT's | network-get p99 "
              "kadmium / OpenDHT ms | memory per node kadmium / OpenDHT |",
              "|---|---|---|---|---|---|---|---|"]
    for n in sizes:
        k, k8, py, od = (by.get((x, n), {}) for x in ("kadmium", "kadmium-k8", "kademlia", "opendht"))
        lines.append(
            f"| {n} | {rep_ratio(runs, by, n, 'put_ops_s', 'kadmium', 'kademlia')} | "
            f"{rep_ratio(runs, by, n, 'get_ops_s', 'kadmium', 'kademlia')} | "
            f"{rep_ratio(runs, by, n, 'put_ops_s', 'kadmium', 'opendht')} / "
            f"{rep_ratio(runs, by, n, 'put_ops_s', 'kadmium-k8', 'opendht')} | "
            f"{rep_ratio(runs, by, n, 'netget_ops_s', 'kadmium', 'opendht')} / "
            f"{rep_ratio(runs, by, n, 'netget_ops_s', 'kadmium-k8', 'opendht')} | "
            f"{ratio(od.get('put_cpu_ms'), k.get('put_cpu_ms'))} less | "
            f"{ms(k.get('netget_p99_ms'))} / {ms(od.get('netget_p99_ms'))} | "
            f"{num(k.get('mem_per_node_kb'))} / {num(od.get('mem_per_node_kb'))} KB |")
    return "\n".join(lines) + "\n"


def efficiency(path):
    """The efficiency example's runs (one JSON object a line), as a sentence of medians."""
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        runs = [json.loads(line) for line in f if line.strip()]
    if not runs:
        return ""

    def med(*keys):
        return statistics.median(dig(r, keys) for r in runs)

    k = runs[0]["kadmium_put_phase"]
    text = (f"\nEfficiency (median of {len(runs)}; `efficiency` example, {k['nodes']} nodes, "
            f"{k['puts']} puts at concurrency 32): kadmium sends "
            f"{med('kadmium_put_phase', 'datagrams_per_cpu_s'):,.0f} datagrams per CPU-second "
            f"during the put phase ({med('kadmium_put_phase', 'datagrams') / k['puts']:.0f} "
            f"datagrams per put); a raw UDP ping-pong between two sockets on two threads moves "
            f"{med('floor_ping_pong', 'datagrams_per_cpu_s'):,.0f} per CPU-second: "
            f"**{med('ratio') * 100:.0f}%** of that floor (loopback round trip p50: "
            f"{med('floor_ping_pong', 'rtt_p50_us'):.1f} µs)")
    # Runs of the example before it timed the one-thread floor lack it.
    if all("floor_one_thread" in r for r in runs):
        text += (f"; the same ping-pong on one thread, no wake-ups, moves "
                 f"{med('floor_one_thread', 'datagrams_per_cpu_s'):,.0f}: "
                 f"**{med('ratio_one_thread') * 100:.0f}%** of the kernel's own cost")
    return text + ".\n"


def native_seq(path):
    """The bench example's sequential runs at 1,000 nodes (one JSON report a line): get p50
    against the loopback round trip measured in the same process just before."""
    if not os.path.exists(path):
        return ""
    with open(path) as f:
        reports = [json.loads(line) for line in f if line.strip()]
    ops = reports[0]["ops"] if reports else 0
    runs = [r for report in reports for r in report["runs"] if "floor_ping_pong" in r and "seq" in r]
    if not runs:
        return ""

    def med(*keys):
        return statistics.median(dig(r, keys) for r in runs)

    ratios = sorted(r["seq"]["get_p50_per_floor_rtt"] for r in runs)
    answered = sorted(r["seq"]["gets_answered_by_first"] for r in runs)
    return (f"\nSequential native gets (median of {len(runs)}; `bench` example, {runs[0]['nodes']} "
            f"nodes, {ops} gets one at a time through the Rust API): get p50 "
            f"{med('seq', 'get_p50_ms') * 1e3:.1f} µs, p99 {med('seq', 'get_p99_ms') * 1e3:.0f} µs, "
            f"{med('seq', 'get_rpcs_per_get'):.2f} RPCs a get, {answered[0]}–{answered[-1]} of {ops} "
            f"answered by the one likely holder asked first; the loopback round trip measured in "
            f"the same process just before: p50 {med('floor_ping_pong', 'rtt_p50_us'):.1f} µs. "
            f"Get p50 in round trips: **{statistics.median(ratios):.2f}×** "
            f"(runs {ratios[0]:.2f}–{ratios[-1]:.2f}).\n")


def charts(summary):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({row["nodes"] for row in summary})
    labels = [l for l in ORDER if any(r["label"] == l for r in summary)]
    by = {(row["label"], row["nodes"]): row for row in summary}

    def bars(ax, figure, title, log=False):
        width = 0.8 / len(labels)
        for i, label in enumerate(labels):
            ys = [(by.get((label, n)) or {}).get(figure) or 0 for n in sizes]
            ax.bar([x + i * width for x in range(len(sizes))], ys, width, label=NAMES[label])
        ax.set_xticks([x + 0.4 - width / 2 for x in range(len(sizes))], [f"{n} nodes" for n in sizes])
        ax.set_title(title)
        if log:
            ax.set_yscale("log")

    for name, panels in (
        ("throughput", [("put_ops_s", "puts/s, concurrency 32"), ("get_ops_s", "gets/s"),
                        ("netget_ops_s", "network-only gets/s")]),
        ("latency", [("put_p50_ms", "put p50 ms"), ("put_p99_ms", "put p99 ms"),
                     ("netget_p50_ms", "network get p50 ms"), ("netget_p99_ms", "network get p99 ms")]),
        ("memory", [("mem_per_node_kb", "memory per node, KB"), ("put_cpu_ms", "CPU ms per put")]),
    ):
        fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
        for ax, (figure, title) in zip(axes, panels):
            bars(ax, figure, title, log=name != "memory")
        # One legend under the panels, where it hides no bar.
        handles, names = axes[0].get_legend_handles_labels()
        fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8)
        fig.tight_layout(rect=(0, 0.07, 1, 1))
        fig.savefig(os.path.join(OUT, f"{name}.png"), dpi=80)
        plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="?", default=os.path.join(OUT, "runs.json"))
    parser.add_argument("--readme")
    args = parser.parse_args()
    with open(args.runs) as f:
        data = json.load(f)
    summary = summarize(data["runs"])
    m = data["machine"]
    loads = [r["loadavg_1m"] for r in data["runs"]]
    meta = (f"{m['cpus']} cores, Linux {m['uname']}, Python {m['python']}, started "
            f"{m['started']}, 1-minute load average {min(loads):.1f}–{max(loads):.1f} during the runs")
    with open(os.path.join(OUT, "summary.json"), "w") as f:
        json.dump({"machine": m, "summary": summary}, f, indent=1)
    text = tables(summary, meta, data["runs"])
    here = os.path.dirname(os.path.abspath(args.runs))
    text += efficiency(os.path.join(here, "efficiency.json"))
    text += native_seq(os.path.join(here, "native_seq.json"))
    with open(os.path.join(OUT, "tables.md"), "w") as f:
        f.write(text)
    charts(summary)
    if args.readme:
        with open(args.readme) as f:
            readme = f.read()
        begin, end = "<!-- bench:begin -->\n", "<!-- bench:end -->"
        head, _, rest = readme.partition(begin)
        _, _, tail = rest.partition(end)
        if not rest:
            raise SystemExit(f"{args.readme} has no {begin.strip()} marker")
        with open(args.readme, "w") as f:
            f.write(head + begin + text + end + tail)
    print(text)


if __name__ == "__main__":
    main()
