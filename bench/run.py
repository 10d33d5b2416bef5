#!/usr/bin/env python3
"""Run kadmium (k = 20 and k = 8), `kademlia` 2.2.3 and OpenDHT side by side, interleaved.

    python bench/run.py [--sizes 64,256,1000] [--reps 3] [--out docs/bench/runs.json]

Each run is one process of `bench/workload.py` (the shared dht_bench.py workload plus
network-only gets and memory per node). Runs are interleaved — every implementation at a
size, then the next size, then the next repetition — so load from elsewhere on the machine
falls on all of them alike. `kademlia` at 1,000 nodes runs KADEMLIA_1000_OPS operations
instead of 300: at its ~10 puts/s a full run would take about half an hour. The raw reports
go to --out as a JSON list, with the load average when each run started.

--baseline-python PATH adds "kadmium-baseline": the same kadmium runs under another
interpreter (a venv holding an earlier kadmium wheel), interleaved, for before/after figures.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
# label -> (workload --impl, extra arguments)
IMPLS = {
    "kadmium": ("kadmium", []),
    "kadmium-k8": ("kadmium", ["--ksize", "8"]),
    "kademlia": ("kademlia", []),
    "opendht": ("opendht", []),
}
KADEMLIA_1000_OPS = 100


def one_run(label, nodes, ops, base_port, python):
    impl, extra = IMPLS.get(label, ("kadmium", []))
    if label == "kademlia" and nodes >= 1000:
        ops = min(ops, KADEMLIA_1000_OPS)
    cmd = [python, os.path.join(HERE, "workload.py"), "--impl", impl,
           "--nodes", str(nodes), "--ops", str(ops), "--base-port", str(base_port), *extra]
    load = os.getloadavg()[0]
    started = time.time()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=1200, check=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print(f"  {label} at {nodes} nodes failed: {e}", file=sys.stderr)
        return None
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report.update({"label": label, "loadavg_1m": round(load, 2),
                   "wall_s": round(time.time() - started, 1)})
    return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="64,256,1000")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--impls", default=",".join(IMPLS))
    parser.add_argument("--baseline-python", help="interpreter of a venv with an earlier kadmium")
    parser.add_argument("--out", default=os.path.join(HERE, "..", "docs", "bench", "runs.json"))
    args = parser.parse_args()
    runs, started = [], machine()
    labels = args.impls.split(",")
    if args.baseline_python:
        labels.insert(1, "kadmium-baseline")
    for rep in range(args.reps):
        for nodes in (int(n) for n in args.sizes.split(",")):
            for i, label in enumerate(labels):
                print(f"rep {rep + 1}/{args.reps}: {label} at {nodes} nodes", file=sys.stderr)
                python = args.baseline_python if label == "kadmium-baseline" else sys.executable
                report = one_run(label, nodes, args.ops, 21000 + 2000 * i, python)
                if report is not None:
                    report["rep"] = rep + 1
                    runs.append(report)
                    par = report["par"]
                    print(f"  put {par['put_ops_s']}/s get {par['get_ops_s']}/s "
                          f"netget {report['netget']['get_ops_s']}/s "
                          f"({report['wall_s']} s)", file=sys.stderr)
                with open(args.out, "w") as f:  # after every run: a killed run keeps its data
                    json.dump({"machine": started, "runs": runs}, f, indent=1)


def machine():
    return {"cpus": os.cpu_count(), "uname": " ".join(os.uname()[2:5:2]),
            "python": sys.version.split()[0], "started": time.strftime("%Y-%m-%d %H:%M UTC",
                                                                       time.gmtime())}


if __name__ == "__main__":
    main()
