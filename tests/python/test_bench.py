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


if __name__ == "__main__":
    unittest.main()
