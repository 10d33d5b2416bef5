"""What one put costs in the shared benchmark's setting, in figures a loaded
machine barely changes: datagrams and RPCs sent per put (all nodes together)
and CPU time of the whole process per put. A measuring script, not a test.

64 nodes in this process on 127.0.0.1, bootstrapped as dht_bench.py does;
300 puts at concurrency 1 (the benchmark's sequential phase, which fills the
routing tables), then 300 puts at concurrency 32, which are measured. Prints
one JSON object.

    python tests/python/put_cost.py [--nodes 64] [--base-port 23600]
"""

import argparse
import asyncio
import json
import os
import random
import time

import kadmium


async def main(nodes: int, base_port: int) -> None:
    rng = random.Random(1)
    servers = [kadmium.Server() for _ in range(nodes)]
    for i, s in enumerate(servers):
        await s.listen(base_port + i, interface="127.0.0.1")
    for i in range(1, nodes):
        seeds = {0, rng.randrange(i)}
        await servers[i].bootstrap([("127.0.0.1", base_port + j) for j in sorted(seeds)])
    for i in range(300):
        await servers[rng.randrange(nodes)].set(f"seq-{i}", os.urandom(100))

    def total(name: str) -> int:
        return sum(s.stats()[name] for s in servers)

    datagrams, rpcs = total("datagrams_sent"), total("rpcs_sent")
    gate = asyncio.Semaphore(32)

    async def one(key: str) -> bool:
        async with gate:
            return await servers[rng.randrange(nodes)].set(key, os.urandom(100))

    cpu, wall = time.process_time(), time.perf_counter()
    stored = await asyncio.gather(*(one(f"par-{i}") for i in range(300)))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(json.dumps({
        "nodes": nodes,
        "put_ok": sum(stored),
        "put_ops_s": round(300 / wall),
        "cpu_ms_per_put": round(cpu * 1e3 / 300, 3),
        "datagrams_per_put": round((total("datagrams_sent") - datagrams) / 300, 1),
        "rpcs_per_put": round((total("rpcs_sent") - rpcs) / 300, 1),
    }))
    for s in servers:
        s.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--base-port", type=int, default=23600)
    args = parser.parse_args()
    asyncio.run(main(args.nodes, args.base_port))
