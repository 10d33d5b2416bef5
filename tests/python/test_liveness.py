"""Lookups that never wait on the dead, measured on real UDP as a user would see
them: peers that stop without notice, short-lived CLI processes, a bootstrap
through a half-dead network. Each test prints its figures (wall-clock time,
which depends on the machine: printed, never asserted) and asserts only that
every value was stored and found."""

import asyncio
import re
import signal
import subprocess
import sys
import time
import unittest
from pathlib import Path
from typing import List, Tuple

import kadmium
from support import LOCAL, AsyncCase, start_kadmium

PY = sys.executable
UPSTREAM_NODE = Path(__file__).resolve().parent / "upstream_node.py"


def figure(text: str) -> None:
    """A measured figure, on its own line of the test output."""
    print(f"\n    [figure] {text}", flush=True)


def stop_process(proc: "subprocess.Popen[str]") -> None:
    if proc.poll() is None:
        proc.kill()
    proc.communicate()


class DeadUpstreamPeersTest(AsyncCase):
    async def test_sets_and_gets_right_after_three_upstream_nodes_stop(self) -> None:
        # 12 nodes: 6 kadmium (in this process) and 6 upstream kademlia 2.2.3
        # nodes, each in its own process; 3 of those are killed, then one
        # kadmium node does 5 sets and 5 gets at once.
        ours = await start_kadmium(5)
        self.track(*ours)
        theirs: List["subprocess.Popen[str]"] = []
        try:
            for _ in range(6):
                proc = subprocess.Popen(
                    [PY, str(UPSTREAM_NODE), LOCAL, str(ours[0].node.port)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                theirs.append(proc)
            ports = []
            for proc in theirs:
                assert proc.stdout is not None
                line = await self.bounded(asyncio.to_thread(proc.stdout.readline))
                self.assertRegex(line, r"^\d+$", proc.stderr.read() if proc.poll() is not None else "")
                ports.append(int(line))
            user = kadmium.Server()
            self.track(user)
            await user.listen(0, LOCAL)
            self.assertTrue(await self.bounded(user.bootstrap([(LOCAL, ports[0])])))
            # Contacts learnt from third parties enter the table once they
            # answer a ping: wait until the user knows all 11 peers.
            for _ in range(100):
                if len(user.routing_table()) >= 11:
                    break
                await asyncio.sleep(0.02)
            self.assertEqual(len(user.routing_table()), 11)

            for proc in theirs[:3]:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            keys = [f"after-stop-{i}" for i in range(5)]
            start = time.perf_counter()
            set_times, get_times, found = [], [], 0
            for i, key in enumerate(keys):
                t = time.perf_counter()
                self.assertTrue(await self.bounded(user.set(key, f"value-{i}")))
                set_times.append(time.perf_counter() - t)
            for i, key in enumerate(keys):
                t = time.perf_counter()
                found += await self.bounded(user.get(key)) == f"value-{i}"
                get_times.append(time.perf_counter() - t)
            total = time.perf_counter() - start
            figure(f"12 nodes (6 kademlia 2.2.3, 3 of them just killed): 5 sets + 5 gets from a "
                   f"kadmium node took {total:.3f} s (goal < 2 s); sets "
                   + " ".join(f"{t * 1e3:.0f}" for t in set_times) + " ms, gets "
                   + " ".join(f"{t * 1e3:.1f}" for t in get_times) + " ms")
            self.assertEqual(found, 5)
            # Stored on the network, not only at the user: another kadmium
            # node reads every value back (untimed).
            for i, key in enumerate(keys):
                self.assertEqual(await self.bounded(ours[1].get(key)), f"value-{i}")
        finally:
            for proc in theirs:
                stop_process(proc)


def kadmium_cli(*args: str) -> Tuple["subprocess.CompletedProcess[str]", float]:
    start = time.perf_counter()
    run = subprocess.run([PY, "-m", "kadmium", *args], capture_output=True, text=True, timeout=60)
    return run, time.perf_counter() - start


class ShortLivedCliTest(unittest.TestCase):
    def test_ten_put_and_get_processes_in_a_row(self) -> None:
        # A 2-node network of `kadmium node` processes; ten `kadmium put`
        # then `kadmium get` processes in a row, each timed from spawn to exit.
        node_args = ["-m", "kadmium", "node", "-a", LOCAL, "-p", "0", "--no-api",
                     "--status-interval", "3600"]
        nodes: List["subprocess.Popen[str]"] = []
        try:
            first = subprocess.Popen([PY, *node_args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
            nodes.append(first)
            assert first.stdout is not None
            m = re.search(r"listening on 127\.0\.0\.1:(\d+)", first.stdout.readline())
            assert m, first.stderr.read()
            addr = f"{LOCAL}:{m.group(1)}"
            second = subprocess.Popen([PY, *node_args, "--bootstrap", addr],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            nodes.append(second)
            assert second.stdout is not None
            second.stdout.readline()  # listening on ...
            self.assertIn("bootstrapped: 1 contacts", second.stdout.readline())

            rows = []
            for i in range(10):
                put, put_s = kadmium_cli("put", "--bootstrap", addr, f"cli-{i}", f"value-{i}")
                self.assertEqual((put.returncode, put.stdout), (0, "stored\n"), put.stderr)
                got, get_s = kadmium_cli("get", "--bootstrap", addr, f"cli-{i}")
                self.assertEqual((got.returncode, got.stdout), (0, f"value-{i}\n"), got.stderr)
                rows.append((put_s, get_s))
            figure("10 sequential CLI processes against a 2-node network, put / get seconds "
                   "(goal each < 1 s, the tenth as fast as the first): "
                   + ", ".join(f"{p:.2f}/{g:.2f}" for p, g in rows))
        finally:
            for node in nodes:
                if node.poll() is None:
                    node.send_signal(signal.SIGINT)
                    try:
                        node.communicate(timeout=10)
                    except subprocess.TimeoutExpired:
                        stop_process(node)


class BootstrapAfterMassDeathTest(AsyncCase):
    async def test_fresh_nodes_bootstrap_through_a_survivor(self) -> None:
        # 30 kadmium nodes; every other one stops without notice (its socket
        # closes: silence, as after a kill), then two fresh nodes in turn
        # bootstrap through the first node, which still lists the dead.
        servers = await start_kadmium(30)
        self.track(*servers)
        survivor = servers[0]
        # Each newcomer is listed once it has answered the survivor's ping,
        # which may come after its own bootstrap returned.
        await self.until(lambda: len(survivor.routing_table()) == 29,
                         "the survivor lists the 29 others")
        dead = servers[1::2]
        for s in dead:
            s.stop()
        live_ids = {s.node.id for s in servers[0::2]}
        times = []
        for _ in range(2):
            fresh = kadmium.Server()
            self.track(fresh)
            await fresh.listen(0, LOCAL)
            start = time.perf_counter()
            found = await self.bounded(fresh.bootstrap([(LOCAL, survivor.node.port)]))
            times.append(time.perf_counter() - start)
            self.assertTrue(found)
            found_ids = {n.id for n in found}
            self.assertLessEqual(found_ids, live_ids | {s.node.id for s in self._servers[30:]})
        figure("fresh node bootstrapping through a survivor right after 15 of 30 nodes died: "
               + " s, then ".join(f"{t:.3f}" for t in times) + " s for a second fresh node "
               "(goal < 1 s)")


if __name__ == "__main__":
    unittest.main()
