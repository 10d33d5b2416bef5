#!/usr/bin/env python3
"""Where the shared benchmark's concurrency-32 get phase spends its wall time.

    python bench/get_phase.py [--impls kadmium,kademlia] [--nodes 64] [--runs 3] [--ops 300]

Runs the shared `dht_bench.main` unchanged (the file is imported, not copied), with two
of its helpers wrapped to note times: `timed` (around each operation) and
`run_concurrently` (around each phase). For the last phase (the concurrency-32 gets) it
splits the phase's wall time, from which the benchmark's get ops/s is computed, into:

* `before_first_get_ms`: from the phase's start until the first get starts. This is the
  harness alone: `asyncio.gather` making a coroutine and a task per get (300 of them)
  before any of them runs.
  No code of the implementation runs in it.
* `span_ms`: from the first get's start to the last get's end, and `span_ops_s`, the
  phase's gets over that span.
* `after_last_get_ms`: from the last get's end until the phase returns.

`phase_ops_s` is the phase's gets over `phase_ms`: the benchmark's get ops/s (which this
script's readings of thread times would lower, so it is not reported), less the few
microseconds of its own bookkeeping around the phase. It also splits each thread's time in the phase per get, as `bridge_cost.py` does for its
steady get loop (`thread_times.py`): the Python thread's running, waiting for a CPU and
asleep, and the runtime threads' running and waiting (kadmium's; 0 for the others).

Implementations run interleaved (each run of each, then the next run), one process
each. Prints one JSON object per run, then the medians.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SHARED = os.environ.get("KADMIUM_BENCH", os.path.join(os.path.dirname(__file__), "..", "..",
                                                      "shared", "bench", "dht_bench.py"))


def one_run(impl, nodes, ops, seed, base_port):
    """In a child process: the shared benchmark with its helpers wrapped."""
    import asyncio
    sys.path.insert(0, os.path.dirname(os.path.abspath(SHARED)))
    import dht_bench
    from thread_times import split_per_call, thread_times

    operations, phases = [], []
    plain_run_concurrently = dht_bench.run_concurrently

    async def timed(coro):
        # dht_bench.timed, plus one append.
        start = time.perf_counter()
        result = await coro
        end = time.perf_counter()
        operations.append((start, end))
        return result, end - start

    async def run_concurrently(jobs, concurrency):
        threads = thread_times(caller_last=True)
        start = time.perf_counter()
        results = await plain_run_concurrently(jobs, concurrency)
        end = time.perf_counter()
        # Read outside `phase_ms`, but inside dht_bench's own clock around the
        # phase (0.1 ms a reading with kadmium's threads): its get ops/s is
        # lower here than in a plain run, so it is not reported; `phase_ops_s`
        # is the same figure without the readings.
        split = split_per_call(threads, thread_times(), len(jobs), end - start)
        phases.append((start, end, len(jobs), split))
        return results

    dht_bench.timed = timed
    dht_bench.run_concurrently = run_concurrently
    args = argparse.Namespace(impl=impl, nodes=nodes, ops=ops, concurrency=32, value_size=100,
                              ksize=20, alpha=3, base_port=base_port, seed=seed)
    report = asyncio.run(dht_bench.main(args))
    phase_start, phase_end, count, split = phases[-1]
    gets = operations[-count:]
    first_start = min(start for start, _ in gets)
    last_end = max(end for _, end in gets)
    return {
        "impl": impl,
        "nodes": nodes,
        "phase_ms": round((phase_end - phase_start) * 1e3, 3),
        "phase_ops_s": round(count / (phase_end - phase_start), 1),
        "before_first_get_ms": round((first_start - phase_start) * 1e3, 3),
        "span_ms": round((last_end - first_start) * 1e3, 3),
        "after_last_get_ms": round((phase_end - last_end) * 1e3, 3),
        "span_ops_s": round(count / (last_end - first_start), 1),
        "get_found": report["par"]["get_found"],
        **{key: float(value) for key, value in split.items()},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impls", default="kadmium,kademlia")
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--base-port", type=int, default=21000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(one_run(args.child, args.nodes, args.ops, args.seed, args.base_port)))
        return
    impls = [name for name in args.impls.split(",") if name]
    runs = {impl: [] for impl in impls}
    for _ in range(args.runs):
        for impl in impls:
            child = [sys.executable, __file__, "--child", impl, "--nodes", str(args.nodes),
                     "--ops", str(args.ops), "--seed", str(args.seed),
                     "--base-port", str(args.base_port)]
            out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
            run = json.loads(out.strip().splitlines()[-1])
            runs[impl].append(run)
            print(json.dumps(run), flush=True)
    medians = {impl: {key: statistics.median(run[key] for run in results)
                      for key in results[0] if isinstance(results[0][key], float)}
               for impl, results in runs.items()}
    print(json.dumps({"medians": medians}))


if __name__ == "__main__":
    main()
