#!/usr/bin/env python3
"""What a Python call into kadmium costs, in two loops run by the shared benchmark's harness.

    python bench/bridge_cost.py [--seconds 3] [--nodes 64]

* `bridge`: `get_async` on a node with no peers, at concurrency 32. The node answers at
  once, so this measures the way into the node's driver and back to asyncio and nothing
  else.
* `get`: `Server.get` of 300 stored keys from random nodes of a `--nodes` network (the
  harness of `dht_bench.py`, concurrency 32), over and over for `--seconds`.
* `harness`: the same harness awaiting a coroutine that returns at once (its own cost).
* `asyncio_floor`: the harness awaiting futures made and settled the way `bridge` does it
  (`loop.create_future`, a done-callback for cancelling, settled in batches by a callback on
  the loop), in pure Python with no kadmium: what asyncio itself charges for an awaited
  operation, the floor under `bridge` (without the wake-up of the loop from another thread,
  which `bridge` also pays).
* `sensitivity` (with `--sensitivity N`): N interleaved pairs of `get` loops of `--seconds`
  each, one as above and one whose every call first does extra Python work (digesting its
  key `--extra-digests` times, about 0.5 us each): calls per second and the Python thread's
  CPU microseconds per call of each. If the Python thread bounded the get loop, the second
  would be slower by about the extra work's share.

Prints one JSON object: calls per second, CPU microseconds per call for the whole process
and for the Python thread alone. For `get` it also splits each thread's time per call, from
`/proc/self/task/*/schedstat`: the Python thread's time running, waiting for a CPU (another
thread had it) and asleep (waiting for the runtime), and the runtime threads' time running
and waiting for a CPU. For a before/after comparison run it under two
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
from kadmium.utils import digest  # noqa: E402
from thread_times import split_per_call, thread_times  # noqa: E402


class PythonBridge:
    """What `bridge` does, in pure Python: a future per call with a done-callback, settled
    (callback removed, result set) in batches by one callback scheduled on the loop."""

    def __init__(self, loop):
        self.loop, self.ready, self.scheduled = loop, [], False

    def _stop_on_cancel(self, future):
        if future.cancelled():
            pass  # kadmium's stops the operation here

    def get_async(self):
        future = self.loop.create_future()
        future.add_done_callback(self._stop_on_cancel)
        self.ready.append(future)
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._settle)
        return future

    def _settle(self):
        self.scheduled = False
        ready, self.ready = self.ready, []
        for future in ready:
            if not future.done():
                future.remove_done_callback(self._stop_on_cancel)
                future.set_result(None)


def cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def measure(make_jobs, seconds, split=False):
    """Run batches of jobs at concurrency 32 for `seconds`; cost per call."""
    threads0 = thread_times(caller_last=True) if split else None
    calls, wall0, cpu0, thread0 = 0, time.perf_counter(), cpu_s(), time.thread_time()
    while time.perf_counter() - wall0 < seconds:
        jobs = make_jobs()
        await dht_bench.run_concurrently(jobs, 32)
        calls += len(jobs)
    wall = time.perf_counter() - wall0
    out = {"calls_per_s": round(calls / wall),
           "cpu_us_per_call": round((cpu_s() - cpu0) * 1e6 / calls, 1),
           "python_thread_us_per_call": round((time.thread_time() - thread0) * 1e6 / calls, 1)}
    if split:
        out.update(split_per_call(threads0, thread_times(), calls, wall))
    return out


async def main(args):
    server_class = dht_bench.load_server_class("kadmium")
    out = {}

    async def instant():
        return None
    out["harness"] = await measure(lambda: [instant for _ in range(300)], args.seconds)
    python_bridge = PythonBridge(asyncio.get_running_loop())
    out["asyncio_floor"] = await measure(
        lambda: [python_bridge.get_async for _ in range(300)], args.seconds)

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
    def gets():
        return [lambda k=k: nodes[rnd.randrange(args.nodes)].get(k) for k in keys]
    out["get"] = await measure(gets, args.seconds, split=True)

    async def get_after_work(server, key):
        for _ in range(args.extra_digests):
            digest(key)
        return await server.get(key)

    def gets_after_work():
        return [lambda k=k: get_after_work(nodes[rnd.randrange(args.nodes)], k) for k in keys]
    if args.sensitivity:
        pairs = {"get": [], "with_extra_work": []}
        for _ in range(args.sensitivity):
            pairs["get"].append(await measure(gets, args.seconds))
            pairs["with_extra_work"].append(await measure(gets_after_work, args.seconds))
        out["sensitivity"] = {"extra_digests": args.extra_digests}
        for name, runs in pairs.items():
            out["sensitivity"][f"{name}_calls_per_s"] = [r["calls_per_s"] for r in runs]
            out["sensitivity"][f"{name}_python_thread_us"] = [
                r["python_thread_us_per_call"] for r in runs]
    for server in nodes:
        server.stop()
    print(json.dumps(out))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--sensitivity", type=int, default=0, metavar="N",
                        help="N interleaved pairs of get loops without and with extra work")
    parser.add_argument("--extra-digests", type=int, default=6)
    asyncio.run(main(parser.parse_args()))
