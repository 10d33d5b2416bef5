#!/usr/bin/env python3
"""What one RPC at a time costs a node whose peer lives in another process.

    python bench/sequential_rpc.py [--rpcs 3000] [--port 24999] [--op ping|get]

A child process runs one kadmium node; this process runs another and makes `--rpcs` calls
on the child's node, one after the other: pings (`Server.bootstrap_node`: one PING and its
answer), or gets of 50 values only the child holds (`Server.get`: one FIND_VALUE and its
answer; the child stores them once this node has joined, so none is handed over to it).
Every datagram crosses between processes, as in a deployment of one node per
process, and the runtime's other worker thread sleeps between RPCs, so this measures what
waking threads costs. Prints one JSON object with, per RPC, this process's context
switches (all threads, voluntary and not), CPU microseconds and wall microseconds.
"""
import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time

import kadmium


def context_switches():
    """This process's context switches so far, all threads."""
    total = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/status") as status:
                total += sum(int(line.split()[1]) for line in status if "ctxt_switches" in line)
        except OSError:
            pass  # a thread that ended meanwhile
    return total


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


KEYS = [f"sequential-{i}" for i in range(50)]


async def serve(port):
    server = kadmium.Server()
    await server.listen(port, interface="127.0.0.1")
    while not server.routing_table():  # the measuring node has joined
        await asyncio.sleep(0.05)
    for key in KEYS:
        server._node().store_local(kadmium.utils.digest(key), b"v" * 100)
    await asyncio.sleep(3600)


async def call_loop(port, rpcs, op):
    server = kadmium.Server()
    await server.listen(0, interface="127.0.0.1")
    peer = ("127.0.0.1", port)
    for _ in range(50):  # until the child's node answers
        if await server.bootstrap_node(peer) is not None:
            break
        await asyncio.sleep(0.1)
    for _ in range(100):  # until the child holds the values
        if await server.get(KEYS[-1]) is not None:
            break
        await asyncio.sleep(0.05)
    if op == "get":
        async def call(i):
            return await server.get(KEYS[i % len(KEYS)])
    else:
        async def call(i):
            return await server.bootstrap_node(peer)
    switches, cpu, wall = context_switches(), cpu_seconds(), time.perf_counter()
    answered = 0
    for i in range(rpcs):
        answered += await call(i) is not None
    switches = context_switches() - switches
    cpu, wall = cpu_seconds() - cpu, time.perf_counter() - wall
    server.stop()
    return {
        "op": op,
        "rpcs": rpcs,
        "answered": answered,
        "context_switches_per_rpc": round(switches / rpcs, 2),
        "cpu_us_per_rpc": round(cpu / rpcs * 1e6, 1),
        "wall_us_per_rpc": round(wall / rpcs * 1e6, 1),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rpcs", type=int, default=3000)
    parser.add_argument("--port", type=int, default=24999)
    parser.add_argument("--op", choices=("ping", "get"), default="ping")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.port))
        return
    child = subprocess.Popen([sys.executable, __file__, "--serve", "--port", str(args.port)])
    try:
        print(json.dumps(asyncio.run(call_loop(args.port, args.rpcs, args.op))))
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()
