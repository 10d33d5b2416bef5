#!/usr/bin/env python3
"""What a Python call into kadmium costs, in two loops run by the shared benchmark's harness.

    python bench/bridge_cost.py [--seconds 3] [--nodes 64]

* `bridge`: `get_async` on a node with no peers, at concurrency 32. The node answers at
  once, so this measures the way into the node's driver and back to asyncio and nothing
  else.
* `get`: `Server.get` of 300 stored keys from random nodes of a `--nodes` network (the
  harness of `dht_bench.py`, concurrency 32), over and over for `--seconds`.
* `harness`: the same harness awaiting a coroutine that returns at once (its own cost).

Prints one JSON object: calls per second, CPU microseconds per call for the whole process
and for the Python thread alone. For a before/after comparison run it under two
interpreters (or PYTHONPATHs) holding the two wheels, interleaved, several times: this
machine's runs spread by ±20%.
"""
import argparse
import asyncio
import hashlib
import json
import os
import random
import resource
import sys
import time

SHARED = os.environ.get("KADMIUM_BENCH", os.path.join(os.path.dirname(__file__), "..", "..",
                                                      "shared", "bench", "dht_bench.py"))
sys.path.insert(0, os.path.dirname(os.path.abspath(SHARED)))
import dht_bench  # noqa: E402  (the shared script: load_server_class, run_concurrently)


def cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(make_jobs, seconds):
    """Run batches of jobs at concurrency 32 for `seconds`; cost per call."""
    calls, wall0, cpu0, thread0 = 0, time.perf_counter(), cpu_s(), time.thread_time()
    while time.perf_counter() - wall0 < seconds:
        jobs = make_jobs()
        await dht_bench.run_concurrently(jobs, 32)
        calls += len(jobs)
    wall = time.perf_counter() - wall0
    return {"calls_per_s": round(calls / wall),
            "cpu_us_per_call": round((cpu_s() - cpu0) * 1e6 / calls, 1),
            "python_thread_us_per_call": round((time.thread_time() - thread0) * 1e6 / calls, 1)}


async def main(args):
    server_class = dht_bench.load_server_class("kadmium")
    out = {}

    async def instant():
        return None
    out["harness"] = await measure(lambda: [instant for _ in range(300)], args.seconds)

    lone = server_class(ksize=20, alpha=3)
    await lone.listen(0, interface="127.0.0.1")
    node, key = lone._node(), hashlib.sha1(b"k").digest()
    out["bridge"] = await measure(lambda: [lambda: node.get_async(key) for _ in range(300)],
                                  args.seconds)
    lone.stop()

    rnd = random.Random(1)
    nodes = []
    for _ in range(args.nodes):
        server = server_class(ksize=20, alpha=3)
        await server.listen(0, interface="127.0.0.1")
        nodes.append(server)
    for i in range(1, args.nodes):
        seeds = sorted(rnd.sample(range(i), min(i, 3)))
        await nodes[i].bootstrap([("127.0.0.1", nodes[j].node.port) for j in seeds])
    keys = [f"bridge-{i}" for i in range(300)]
    await dht_bench.run_concurrently(
        [lambda k=k: nodes[rnd.randrange(args.nodes)].set(k, "x" * 100) for k in keys], 32)
    out["get"] = await measure(
        lambda: [lambda k=k: nodes[rnd.randrange(args.nodes)].get(k) for k in keys], args.seconds)
    for server in nodes:
        server.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--nodes", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
