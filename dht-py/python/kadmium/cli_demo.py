"""``kadmium demo``: a local network doing real puts and gets, then a summary."""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import random
import statistics
import sys
import time
from typing import Any, Awaitable, Callable, List, Sequence, TextIO, Tuple

from kadmium import __version__
from kadmium.network import Server


class Progress:
    """A one-line progress bar on a terminal (a final line otherwise)."""

    def __init__(self, label: str, total: int, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.label, self.total, self.out, self.width = label, max(total, 1), out, width
        self.done = 0
        self.live = out.isatty()
        self._drawn = -1.0
        self._draw()

    def advance(self, n: int = 1) -> None:
        self.done += n
        # Redraw at most ~100 times per bar; a terminal write per op would dominate.
        if self.live and (self.done == self.total or self.done / self.total - self._drawn >= 0.01):
            self._draw()

    def _draw(self) -> None:
        if not self.live:
            return
        frac = self.done / self.total
        self._drawn = frac
        bar = "#" * int(frac * self.width)
        self.out.write(f"\r{self.label:<14} [{bar:<{self.width}}] {self.done}/{self.total}")
        self.out.flush()

    def close(self) -> None:
        if self.live:
            self._draw()
            self.out.write("\n")
        else:
            self.out.write(f"{self.label:<14} {self.done}/{self.total} done\n")
        self.out.flush()


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def _run_ops(
    label: str, jobs: List[Callable[[], Awaitable[Any]]], concurrency: int
) -> Tuple[List[Any], List[float], float]:
    """Run the jobs, at most ``concurrency`` at once: results, latencies, wall time."""
    results: List[Any] = [None] * len(jobs)
    latencies: List[float] = [0.0] * len(jobs)
    gate = asyncio.Semaphore(concurrency)
    bar = Progress(label, len(jobs))

    async def one(i: int) -> None:
        async with gate:
            start = time.perf_counter()
            results[i] = await jobs[i]()
            latencies[i] = time.perf_counter() - start
            bar.advance()

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(jobs))))
    wall = time.perf_counter() - start
    bar.close()
    return results, latencies, wall


async def run_demo(args: argparse.Namespace) -> int:
    if args.nodes < 2:
        raise SystemExit("kadmium demo: --nodes must be at least 2")
    rng = random.Random(args.seed)
    servers = [Server() for _ in range(args.nodes)]
    print(f"kadmium {__version__} demo: {args.nodes} nodes on 127.0.0.1, {args.ops} puts "
          f"and gets of {args.value_size}-byte values, {args.concurrency} at a time",
          file=sys.stderr)
    try:
        bar = Progress("listening", len(servers))
        for s in servers:
            await s.listen(0, "127.0.0.1")
            bar.advance()
        bar.close()
        ports = [s.node.port for s in servers]
        start = time.perf_counter()
        bar = Progress("bootstrapping", len(servers) - 1)
        for i in range(1, len(servers)):
            seeds = sorted({0, rng.randrange(i)})
            await servers[i].bootstrap([("127.0.0.1", ports[j]) for j in seeds])
            bar.advance()
        bar.close()
        bootstrap_s = time.perf_counter() - start

        keys = [f"demo-{i}" for i in range(args.ops)]
        values = {k: os.urandom(args.value_size) for k in keys}
        putter = {k: rng.randrange(len(servers)) for k in keys}
        getter = {k: (putter[k] + 1 + rng.randrange(len(servers) - 1)) % len(servers) for k in keys}
        put_jobs: List[Callable[[], Awaitable[Any]]] = [
            functools.partial(servers[putter[k]].set, k, values[k]) for k in keys
        ]
        puts, put_lat, put_wall = await _run_ops("puts", put_jobs, args.concurrency)
        get_jobs: List[Callable[[], Awaitable[Any]]] = [
            functools.partial(servers[getter[k]].get, k) for k in keys
        ]
        gets, get_lat, get_wall = await _run_ops("gets", get_jobs, args.concurrency)
    finally:
        for s in servers:
            s.stop()

    put_ok = sum(1 for ok in puts if ok)
    get_ok = sum(1 for k, v in zip(keys, gets) if v == values[k])
    rows = [
        ("put", put_ok, put_lat, put_wall),
        ("get", get_ok, get_lat, get_wall),
    ]
    print(f"\nbootstrap of {args.nodes} nodes: {bootstrap_s:.2f} s\n")
    print(f"{'op':<4} {'ok':>11} {'success':>8} {'p50 ms':>8} {'p99 ms':>8} {'ops/s':>9}")
    for name, ok, lat, wall in rows:
        print(
            f"{name:<4} {f'{ok}/{len(keys)}':>11} {100.0 * ok / max(len(keys), 1):>7.1f}%"
            f" {statistics.median(lat) * 1e3 if lat else 0.0:>8.2f}"
            f" {_percentile(lat, 0.99) * 1e3:>8.2f} {len(keys) / wall if wall else 0.0:>9.1f}"
        )
    return 0 if put_ok == get_ok == len(keys) else 1
