#!/usr/bin/env python3
"""The shared benchmark's workload (`shared/bench/dht_bench.py`) plus the two figures it lacks.

    python bench/workload.py --impl kadmium|kademlia|opendht [--nodes 64] [--ksize 20] [--ops 300]

Runs exactly the steps of `dht_bench.main` (same seeds, same keys, same putters and getters,
its helpers imported from the shared script, which stays unchanged), then adds:

* `netget`: the concurrency-32 keys fetched once more, each from a node that holds no copy
  of it, so every get searches the network. kadmium and `kademlia` answer a get from the
  getter's own copy; OpenDHT always searches. `local_share` is the fraction of the par
  phase's gets whose getter held a copy (0 for OpenDHT, which we cannot ask).
* `cpu_ms_per_op` in each phase: CPU time (user + system, getrusage) the whole process used
  per operation. On a machine shared with other work this is steadier than ops/s, and it is
  fair to OpenDHT, whose thread per node gets it a larger share of a contended CPU.
* `mem_per_node_kb`: growth of the process's resident memory from before the first node
  was created to after the workload, divided by the number of nodes (`rss_*_mb` are the
  raw VmRSS readings; `peak_rss_mb` is getrusage's maximum, as in dht_bench.py).

Prints one JSON object, a superset of dht_bench.py's.
"""
import argparse
import asyncio
import hashlib
import os
import random
import resource
import statistics
import sys
import time

SHARED = os.environ.get("KADMIUM_BENCH", os.path.join(os.path.dirname(__file__), "..", "..",
                                                      "shared", "bench", "dht_bench.py"))
sys.path.insert(0, os.path.dirname(os.path.abspath(SHARED)))
import dht_bench  # noqa: E402  (the shared script: load_server_class, run_concurrently, percentile)


def vm_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def holds_copy(impl, node, key):
    """Whether `node` would answer a get of `key` from its own storage."""
    dkey = hashlib.sha1(str(key).encode("utf8")).digest()
    if impl.startswith("kadmium"):
        return node._node().local_value(dkey) is not None
    if impl == "kademlia":
        return node.storage.get(dkey) is not None
    return False  # OpenDHT: every get searches the network


def cpu_s():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def summary(keys, values, puts, gets, concurrency, put_wall, get_wall, put_cpu=0.0, get_cpu=0.0):
    put_lat = [t for _, t in puts]
    get_lat = [t for _, t in gets]
    out = {"concurrency": concurrency}
    if puts:
        out.update({
            "put_ok": sum(1 for ok, _ in puts if ok),
            "put_ops_s": round(len(keys) / put_wall, 1),
            "put_p50_ms": round(statistics.median(put_lat) * 1e3, 3),
            "put_p99_ms": round(dht_bench.percentile(put_lat, 0.99) * 1e3, 3),
            "put_cpu_ms_per_op": round(put_cpu * 1e3 / len(keys), 3),
        })
    out.update({
        "get_found": sum(1 for k, (v, _) in zip(keys, gets) if v == values[k]),
        "get_ops_s": round(len(keys) / get_wall, 1),
        "get_p50_ms": round(statistics.median(get_lat) * 1e3, 3),
        "get_p99_ms": round(dht_bench.percentile(get_lat, 0.99) * 1e3, 3),
        "get_cpu_ms_per_op": round(get_cpu * 1e3 / len(keys), 3),
    })
    return out


async def main(args):
    impl = args.impl
    rss_start = vm_rss_mb()
    Server = dht_bench.load_server_class(impl)
    rng = random.Random(args.seed)
    nodes = [Server(ksize=args.ksize, alpha=args.alpha) for _ in range(args.nodes)]
    report = {"impl": impl, "nodes": args.nodes, "ops": args.ops, "ksize": args.ksize,
              "concurrency": args.concurrency, "value_size": args.value_size}

    start = time.perf_counter()
    for i, node in enumerate(nodes):
        await node.listen(args.base_port + i, interface="127.0.0.1")
    report["listen_s"] = round(time.perf_counter() - start, 4)
    start = time.perf_counter()
    for i in range(1, args.nodes):
        seeds = {0, rng.randrange(i)}
        await nodes[i].bootstrap([("127.0.0.1", args.base_port + j) for j in sorted(seeds)])
    report["bootstrap_s"] = round(time.perf_counter() - start, 4)
    rss_joined = vm_rss_mb()

    keys = [f"bench-{args.seed}-{i}" for i in range(args.ops)]
    values = {k: os.urandom(args.value_size) for k in keys}
    putters = {k: rng.randrange(args.nodes) for k in keys}
    getters = {k: (putters[k] + 1 + rng.randrange(args.nodes - 1)) % args.nodes for k in keys}
    for phase, concurrency in (("seq", 1), ("par", args.concurrency)):
        if phase == "par":
            keys = [k + "-par" for k in keys]
            values = {k: os.urandom(args.value_size) for k in keys}
            putters = {k: rng.randrange(args.nodes) for k in keys}
            getters = {k: (putters[k] + 1 + rng.randrange(args.nodes - 1)) % args.nodes
                       for k in keys}
        start, cpu = time.perf_counter(), cpu_s()
        puts = await dht_bench.run_concurrently(
            [lambda k=k: nodes[putters[k]].set(k, values[k]) for k in keys], concurrency)
        put_wall, put_cpu = time.perf_counter() - start, cpu_s() - cpu
        if phase == "par":
            local = sum(1 for k in keys if holds_copy(impl, nodes[getters[k]], k))
            report["local_share"] = round(local / len(keys), 3)
        start, cpu = time.perf_counter(), cpu_s()
        gets = await dht_bench.run_concurrently(
            [lambda k=k: nodes[getters[k]].get(k) for k in keys], concurrency)
        get_wall, get_cpu = time.perf_counter() - start, cpu_s() - cpu
        report[phase] = summary(keys, values, puts, gets, concurrency, put_wall, get_wall,
                                put_cpu, get_cpu)

    # Network-only gets: the par keys again, each from a node without a copy (the
    # first such node after the original getter, so the choice is seeded too).
    net_getters = {}
    for k in keys:
        for step in range(args.nodes):
            candidate = (getters[k] + step) % args.nodes
            if candidate != putters[k] and not holds_copy(impl, nodes[candidate], k):
                net_getters[k] = candidate
                break
    keys = [k for k in keys if k in net_getters]
    if not keys:  # a network no larger than k: every node holds every value
        report["netget"] = {"keys": 0}
        keys = []
    start, cpu = time.perf_counter(), cpu_s()
    gets = await dht_bench.run_concurrently(
        [lambda k=k: nodes[net_getters[k]].get(k) for k in keys], args.concurrency)
    if keys:
        report["netget"] = summary(keys, values, [], gets, args.concurrency, 0,
                                   time.perf_counter() - start, 0.0, cpu_s() - cpu)
        report["netget"]["keys"] = len(keys)

    rss_end = vm_rss_mb()
    for node in nodes:
        node.stop()
    await asyncio.sleep(0.05)
    report["rss_start_mb"] = round(rss_start, 1)
    report["rss_joined_mb"] = round(rss_joined, 1)
    report["rss_end_mb"] = round(rss_end, 1)
    report["mem_per_node_kb"] = round((rss_end - rss_start) * 1024 / args.nodes, 1)
    report["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", default="kadmium")
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--ops", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--value-size", type=int, default=100)
    parser.add_argument("--ksize", type=int, default=20)
    parser.add_argument("--alpha", type=int, default=3)
    parser.add_argument("--base-port", type=int, default=21000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.nodes < 2:
        sys.exit("--nodes must be at least 2")
    print(dht_bench.json.dumps(asyncio.run(main(args))))
