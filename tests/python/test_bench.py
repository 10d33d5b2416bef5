"""The shared benchmark script runs against kadmium with every get found (a small run:
the full-size comparison is a benchmark, not a test; no timing is asserted)."""

import json
import os
import subprocess
import sys
import unittest
from pathlib import Path

from support import free_udp_ports

REPO = Path(__file__).resolve().parents[2]
BENCH = Path(os.environ.get("KADMIUM_BENCH", REPO.parent / "shared" / "bench" / "dht_bench.py"))


@unittest.skipUnless(BENCH.exists(), f"benchmark script not found at {BENCH} (set KADMIUM_BENCH)")
class BenchScriptTest(unittest.TestCase):
    def test_small_run_finds_every_value(self) -> None:
        nodes, ops = 12, 40
        base = free_udp_ports(nodes)
        run = subprocess.run(
            [sys.executable, str(BENCH), "--impl", "kadmium", "--nodes", str(nodes),
             "--ops", str(ops), "--concurrency", "8", "--base-port", str(base)],
            capture_output=True, text=True, timeout=300)
        self.assertEqual(run.returncode, 0, run.stderr)
        report = json.loads(run.stdout.strip().splitlines()[-1])
        self.assertEqual(report["impl"], "kadmium")
        for phase in ("seq", "par"):
            self.assertEqual(report[phase]["put_ok"], ops, report)
            self.assertEqual(report[phase]["get_found"], ops, report)

    def test_bridge_cost_splits_each_threads_time(self) -> None:
        """bench/bridge_cost.py runs its loops; the get loop's split of the Python
        thread's time (running, waiting for a CPU, asleep) adds up to the wall time per
        call, and the runtime's threads are found (no figure is asserted). 40 nodes: with
        k = 20, a network of fewer answers most gets from the getter's own copy."""
        run = subprocess.run(
            [sys.executable, str(REPO / "bench" / "bridge_cost.py"), "--nodes", "40",
             "--seconds", "0.2", "--sensitivity", "1", "--extra-digests", "40"],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "KADMIUM_BENCH": str(BENCH)})
        self.assertEqual(run.returncode, 0, run.stderr)
        report = json.loads(run.stdout.strip().splitlines()[-1])
        self.assertEqual(set(report),
                         {"harness", "asyncio_floor", "bridge", "get", "sensitivity"})
        for name in ("harness", "asyncio_floor", "bridge", "get"):
            self.assertGreater(report[name]["calls_per_s"], 0, report)
        pairs = report["sensitivity"]
        self.assertEqual(len(pairs["get_calls_per_s"]), 1, report)
        self.assertEqual(len(pairs["with_extra_work_calls_per_s"]), 1, report)
        self.assertGreater(min(pairs["get_calls_per_s"] + pairs["with_extra_work_calls_per_s"]),
                           0, report)
        # The extra work shows on the Python thread: 40 digests, some 20 us a call, more
        # than the whole of a get's own.
        self.assertGreater(pairs["with_extra_work_python_thread_us"][0],
                           pairs["get_python_thread_us"][0], report)
        get = report["get"]
        wall_us = 1e6 / get["calls_per_s"]
        # Asleep is what running and waiting leave of the wall time: those two,
        # read from the kernel, must fit in it (each part is rounded to 0.1 us,
        # calls_per_s to a whole call), and none may be negative.
        self.assertLessEqual(get["python_running_us"] + get["python_waiting_for_cpu_us"],
                             wall_us + 0.5, report)
        self.assertGreaterEqual(get["python_asleep_us"], -0.5, report)
        self.assertGreater(get["python_running_us"], 0, report)
        self.assertGreater(get["runtime_running_us"], 0, report)

    def test_get_phase_runs_and_its_clocks_fit(self) -> None:
        """bench/get_phase.py runs the shared benchmark with its helpers wrapped and
        reports the last phase. A smoke test: no figure is asserted, only that the
        readings are sane: every get found, the phase's parts present, the Python
        thread's CPU time (from its own clock) more than zero and within the phase's wall
        time, the runtime's more than zero. (Time waiting for a CPU is left out: schedstat
        books a wait when it ends, so one straddling the phase's start or end can land on
        either side.)"""
        nodes, ops = 40, 60  # as above: with fewer nodes most gets are answered locally
        run = subprocess.run(
            [sys.executable, str(REPO / "bench" / "get_phase.py"), "--impls", "kadmium",
             "--nodes", str(nodes), "--ops", str(ops), "--runs", "1",
             "--base-port", str(free_udp_ports(nodes))],
            capture_output=True, text=True, timeout=300,
            env={**os.environ, "KADMIUM_BENCH": str(BENCH)})
        self.assertEqual(run.returncode, 0, run.stderr)
        lines = [json.loads(line) for line in run.stdout.strip().splitlines()]
        self.assertEqual(len(lines), 2, run.stdout)
        one = lines[0]
        self.assertEqual((one["impl"], one["get_found"]), ("kadmium", ops), one)
        self.assertGreater(one["before_first_get_ms"], 0, one)
        self.assertGreater(one["span_ms"], 0, one)
        wall_us = one["phase_ms"] * 1e3 / ops
        self.assertLessEqual(one["python_running_us"], wall_us + 0.15, one)  # 0.1 us rounding
        self.assertGreater(one["python_running_us"], 0, one)
        self.assertGreater(one["runtime_running_us"], 0, one)
        self.assertEqual(lines[1]["medians"]["kadmium"]["span_ms"], one["span_ms"])

if __name__ == "__main__":
    unittest.main()
