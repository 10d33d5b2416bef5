#!/usr/bin/env python3
"""Hops and RPCs per lookup against network size, from the simulator.

Runs `simulate` (dht-core's example: join N nodes, put 200 values, then
1,000 gets from random nodes) for each N, and writes into docs/sim/:
  scaling.json  the example's JSON line for each N (the raw figures),
  scaling.md    a table of hops and RPCs per lookup next to log2(N),
  scaling.png   the same as a chart (needs matplotlib: scripts/requirements-bench.txt).

    make sim-scaling                                   # N = 10^3 ... 3*10^5
    python3 scripts/sim_scaling.py --nodes 1000,10000  # chosen sizes
    python3 scripts/sim_scaling.py --replot            # table and chart from scaling.json
    make sim-million                                   # adds N = 10^6 to scaling.json (~15 GB, ~42 min)

What the columns compare to: the Kademlia paper (Maymounkov & Mazieres 2002,
sections 2.3 and 4.2) bounds a lookup by ceil(log_{2^b} N) steps, each step at
least halving the XOR distance; with b = 1 (one bit per bucket, as here) that
is log2(N). It is an upper-bound-like prediction: every answer carries the k
closest contacts the answering node knows, so a real lookup gains more than
one bit per hop, and a get stops at the first of the k nodes holding the value.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "docs", "sim")
BIN = os.path.join(ROOT, "target", "release", "examples", "simulate")


def run(binary, nodes, gets, seed):
    """One simulate run; returns its JSON figures."""
    cmd = [binary, "--nodes", str(nodes), "--gets", str(gets), "--seed", str(seed)]
    print("running:", " ".join(cmd[1:]), file=sys.stderr, flush=True)
    started = time.monotonic()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
    figures = json.loads(out.strip().splitlines()[-1])
    print(
        f"  {nodes} nodes: hops {figures['hops_per_lookup']} rpcs {figures['rpcs_per_lookup']} "
        f"found {figures['found']}/{figures['gets']} wall {time.monotonic() - started:.0f}s "
        f"peak {figures['peak_rss_mb']} MB",
        file=sys.stderr,
        flush=True,
    )
    return figures


def table(rows):
    lines = [
        "| N | log2(N) (paper, b = 1) | hops per lookup | RPCs per lookup | found | join + gets wall s | threads | CPU s | peak RSS MB | KB a node | datagrams | virtual join s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        n = r["nodes"]
        datagrams = f"{r['datagrams']:,}" if "datagrams" in r else ""
        lines.append(
            f"| {n:,} | {math.log2(n):.2f} | {r['hops_per_lookup']:.2f} | {r['rpcs_per_lookup']:.2f} "
            f"| {r['found']}/{r['gets']} | {r['total_wall_s']} | {r.get('threads', 1)} | {r['cpu_s']} | {r['peak_rss_mb']} "
            f"| {r['peak_rss_mb'] * 1000 / n:.1f} | {datagrams} | {r.get('join_virtual_s', '')} |"
        )
    return "\n".join(lines)


def write_markdown(rows, command):
    slope_text = ""
    if len(rows) >= 2 and rows[-1]["nodes"] > rows[0]["nodes"]:
        first, last = rows[0], rows[-1]
        decades = math.log10(last["nodes"] / first["nodes"])
        per_decade = (last["hops_per_lookup"] - first["hops_per_lookup"]) / decades
        slope_text = (
            f"Measured, hops grow by {per_decade:.2f} per tenfold growth of N "
            f"(from N = {first['nodes']:,} to {last['nodes']:,}), where log2(N) grows by 3.32."
        )
    text = f"""# Lookup cost against network size (simulator)

Measured by {command} (`scripts/sim_scaling.py`): for each N, the `simulate`
example joins N nodes (k = 20, alpha = 3, one-way latency 5-50 ms per pair),
puts 200 values and gets 1,000 of them from random nodes that do not hold
them. Every datagram goes through the full msgpack encode/decode path.
Hops: sequential rounds until the answer that carried the value. RPCs: the
requests the lookup sent. Wall and CPU seconds are for the whole run (join
included) on the 2-core development machine, shared with other work; CPU
seconds add up both threads where the run used two (the run itself, datagram
for datagram, is the same on one thread). Peak RSS is the process's
(`VmHWM`); KB a node divides it by N. Datagrams: all the network delivered,
join included. Virtual join: simulated seconds until the last node joined
(the network grows by 100 nodes a step up to 10⁴, then by 1% of itself, at
most 1,000; see `Simulation::join_network`).

{table(rows)}

The paper's prediction, ceil(log_(2^b) N) steps with b = 1, is log2(N): each
step at least halves the XOR distance to the target. It bounds rather than
predicts: a reply carries the k = 20 closest contacts the replying node knows,
so a hop typically gains several bits, not one, and a get ends at the first of
the k nodes holding the value. {slope_text}

![hops and RPCs per lookup](scaling.png)
"""
    with open(os.path.join(OUT, "scaling.md"), "w") as f:
        f.write(text)


def write_chart(rows):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib missing: pip install -r scripts/requirements-bench.txt; no chart written",
              file=sys.stderr)
        return False
    ns = [r["nodes"] for r in rows]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(ns, [math.log2(n) for n in ns], "k--", label="log2(N) (paper, b = 1)")
    ax.plot(ns, [r["hops_per_lookup"] for r in rows], "o-", label="hops per lookup (measured)")
    ax.plot(ns, [r["rpcs_per_lookup"] for r in rows], "s-", label="RPCs per lookup (measured)")
    ax.set_xscale("log")
    ax.set_xlabel("nodes N")
    ax.set_ylabel("per lookup")
    ax.set_title("kadmium simulator: 1,000 gets after joining N nodes")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(OUT, "scaling.png"), dpi=100)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", default="1000,10000,100000",
                        help="comma-separated network sizes (default 1000,10000,100000)")
    parser.add_argument("--gets", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bin", default=BIN, help="the simulate binary (default: the release build)")
    parser.add_argument("--replot", action="store_true",
                        help="write the table and chart from docs/sim/scaling.json, running nothing")
    parser.add_argument("--add", action="store_true",
                        help="run the --nodes sizes and add them to docs/sim/scaling.json, keeping "
                             "the sizes it holds (a size run again replaces its row)")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    data_path = os.path.join(OUT, "scaling.json")
    if args.replot:
        with open(data_path) as f:
            saved = json.load(f)
        rows, command = saved["runs"], saved["command"]
    else:
        try:
            sizes = [int(n) for n in args.nodes.split(",")]
        except ValueError:
            sys.exit(f"sim_scaling: --nodes {args.nodes!r}: expected comma-separated integers")
        if not os.path.exists(args.bin):
            sys.exit("sim_scaling: build it first: cargo build --release -p dht-core --example simulate")
        flags = " --add" if args.add else ""
        this = f"python3 scripts/sim_scaling.py{flags} --nodes {args.nodes} --gets {args.gets} --seed {args.seed}"
        rows, command = [], f"`{this}`"
        if args.add and os.path.exists(data_path):
            with open(data_path) as f:
                saved = json.load(f)
            rows, command = saved["runs"], f"{saved['command']}, then `{this}`"
        for n in sizes:
            rows = [r for r in rows if r["nodes"] != n] + [run(args.bin, n, args.gets, args.seed)]
            rows.sort(key=lambda r: r["nodes"])
            # Saved after every size: a long run stopped midway keeps the rest.
            with open(data_path, "w") as f:
                json.dump({"command": command, "runs": rows}, f, indent=1)
                f.write("\n")
    write_markdown(rows, command)
    charted = write_chart(rows)
    print(table(rows))
    print(f"written: {OUT}/scaling.md, scaling.json" + (", scaling.png" if charted else ""))


if __name__ == "__main__":
    main()
