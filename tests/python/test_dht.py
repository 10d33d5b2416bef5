"""kadmium.DHT: the blocking, dict-like node."""

import queue
import subprocess
import sys
import textwrap
import threading
import time
import unittest
from fractions import Fraction
from typing import Any, Dict, List, Tuple

import kadmium
from kadmium import DHT, digest
from support import LOCAL, VALUES


class DHTTest(unittest.TestCase):
    def setUp(self) -> None:
        self.seed = DHT(LOCAL, 0)
        self.nodes = [DHT(LOCAL, 0, seeds=[self.seed.address]) for _ in range(4)]

    def tearDown(self) -> None:
        for d in [self.seed, *self.nodes]:
            d.close()

    def test_set_and_get_every_type(self) -> None:
        for i, value in enumerate(VALUES):
            with self.subTest(value=repr(value)[:40]):
                self.nodes[i % 4][f"k{i}"] = value
                got = self.nodes[(i + 1) % 4][f"k{i}"]
                self.assertEqual(type(got), type(value))
                self.assertEqual(got, value)
                self.assertEqual(self.seed.get(f"k{i}"), value)

    def test_missing_keys(self) -> None:
        with self.assertRaises(KeyError):
            self.nodes[0]["missing"]
        self.assertIsNone(self.nodes[0].get("missing"))
        self.assertEqual(self.nodes[0].get("missing", "default"), "default")

    def test_set_with_ttl_returns_bool(self) -> None:
        self.assertTrue(self.nodes[1].set("t", 1.5, ttl=30))
        self.assertEqual(self.nodes[2].get("t"), 1.5)
        with self.assertRaises(kadmium.InvalidArgumentError):
            self.nodes[1].set("t", 1, ttl=-1)

    def test_json_like_values(self) -> None:
        sample = {"name": "bird", "tags": ["little", "blue"], "n": 3, "ok": True, "none": None}
        for i, value in enumerate([[1, 2], sample, None, [], {}]):
            with self.subTest(value=value):
                self.nodes[0][f"j{i}"] = value
                self.assertEqual(self.nodes[2][f"j{i}"], value)  # a stored None is found
        with self.assertRaises(TypeError):
            self.nodes[0]["k"] = {1, 2}
        with self.assertRaises(kadmium.ValueTooLargeError):
            self.nodes[0]["k"] = b"x" * 100_000

    def test_identity_and_peers(self) -> None:
        d = self.nodes[0]
        self.assertEqual(d.identity(), int.from_bytes(d.id, "big"))
        peers = d.peers()
        self.assertEqual(len(peers), 4)
        for p in peers:
            self.assertEqual(set(p), {"host", "port", "id", "info"})
            self.assertEqual(p["host"], LOCAL)
        self.assertIn(self.seed.identity(), {p["id"] for p in peers})
        self.assertEqual(d.stats()["contacts"], 4)
        self.assertEqual(len(d.routing_table()), 4)

    def test_explicit_id(self) -> None:
        with DHT(LOCAL, 0, id=12345) as d:
            self.assertEqual(d.identity(), 12345)
        with DHT(LOCAL, 0, id=digest("me")) as d:
            self.assertEqual(d.id, digest("me"))
        with self.assertRaises(kadmium.InvalidArgumentError):
            DHT(LOCAL, 0, id=b"short")

    def test_alone(self) -> None:
        with DHT(LOCAL, 0) as alone:
            self.assertFalse(alone.set("k", "v"))  # no other node stored it...
            self.assertEqual(alone.get("k"), "v")  # ...but this one keeps it
            self.assertEqual(alone.peers(), [])

    def test_unreachable_seed(self) -> None:
        dead = DHT(LOCAL, 0)
        addr = dead.address
        dead.close()
        with DHT(LOCAL, 0, seeds=[addr]) as d:
            self.assertEqual(d.peers(), [])
        with self.assertRaises(kadmium.BadAddressError):
            DHT("no such host.invalid", 0)

    def test_close_and_context_manager(self) -> None:
        with DHT(LOCAL, 0, seeds=[self.seed.address]) as d:
            d["ctx"] = "v"
            self.assertFalse(d.closed)
            self.assertIn("ctx", d)
            self.assertEqual(len(list(d)), 1)
        self.assertTrue(d.closed)
        with self.assertRaises(kadmium.ShutdownError):
            d.get("ctx")
        # The closed node's copy is not read either: `in` and iteration agree with get.
        with self.assertRaises(kadmium.ShutdownError):
            _ = "ctx" in d
        with self.assertRaises(kadmium.ShutdownError):
            list(d)
        d.close()  # idempotent
        # As little-bird's: a handler is called (with None) when the lookup fails too,
        # so a caller waiting for it is not left waiting.
        answered: "queue.Queue[Any]" = queue.Queue()
        with self.assertLogs("kademlia.kadmium.dht", "WARNING"):
            d.get("ctx", answered.put)
            self.assertIsNone(answered.get(timeout=30))

    def test_a_failed_constructor_leaves_the_port_free(self) -> None:
        probe = DHT(LOCAL, 0)
        port = probe.address[1]
        probe.close()
        with self.assertRaises(kadmium.BadAddressError):
            DHT(LOCAL, port, seeds=[("no such host.invalid", 1)])
        # Bound again at once: the failed one closed its socket before raising.
        DHT(LOCAL, port).close()
        # A seed that is not a (host, port) pair is named, as Server.bootstrap does.
        with self.assertRaisesRegex(TypeError, "pairs"):
            DHT(LOCAL, 0, seeds=[(LOCAL,)])

    def test_gil_is_released_while_waiting(self) -> None:
        # A contact that never answers makes the lookup wait for its RPC
        # timeout; a Python thread must keep running meanwhile.
        dead = DHT(LOCAL, 0)
        dead_id, (host, port) = dead.id, dead.address
        dead.close()
        with DHT(LOCAL, 0) as d:
            d._node.import_contacts([(dead_id, host, port)])
            ticks = 0
            stop = threading.Event()

            def spin() -> None:
                nonlocal ticks
                while not stop.is_set():
                    ticks += 1
                    time.sleep(0.001)

            t = threading.Thread(target=spin)
            t.start()
            try:
                start = time.monotonic()
                self.assertIsNone(d.get("x"))
                waited = time.monotonic() - start
            finally:
                stop.set()
                t.join()
            self.assertGreater(waited, 0.3)  # it did wait on the network
            self.assertGreater(ticks, 50)  # and the other thread ran meanwhile


class ArgumentsTest(unittest.TestCase):
    def test_bad_arguments_name_themselves_as_servers_do(self) -> None:
        for args, kwargs, error, message in (
            ((LOCAL, -1), {}, kadmium.InvalidArgumentError, "port must be from 0 to 65535"),
            ((LOCAL, 70000), {}, kadmium.InvalidArgumentError, "port must be from 0 to 65535"),
            ((LOCAL, True), {}, TypeError, "port must be an int .got bool"),
            ((LOCAL, 0), {"ksize": 0}, kadmium.InvalidArgumentError, "ksize must be from 1"),
            ((LOCAL, 0), {"alpha": -1}, kadmium.InvalidArgumentError, "alpha must be from 1"),
            # A list failed only at the first put, as a NetworkError.
            ((LOCAL, 0), {"storage": []}, TypeError, "storage must be a mapping .*list lacks get"),
            # pyo3's own messages named no argument ("'int' object is not an
            # instance of 'str'", "must be real number, not str").
            ((127, 0), {}, TypeError, "host must be a str host name or address .got int"),
            ((LOCAL, 0), {"ttl": "60"}, TypeError, "ttl must be a number of seconds .got str"),
            ((LOCAL, 0), {"id": "abc"}, TypeError, "id must be 20 bytes or an int .got str"),
            ((LOCAL, 0), {"id": b"abc"}, kadmium.InvalidArgumentError, "id must be 20 bytes or an int .got 3 bytes"),
            # Failed only at the first key ("'NoneType' object is not callable").
            ((LOCAL, 0), {"hash_function": None}, TypeError, "hash_function must be callable"),
            # One pair, not a list of them: its items were taken as addresses.
            ((LOCAL, 0), {"seeds": (LOCAL, 4000)}, TypeError, "seeds must be a list of .host, port. pairs"),
        ):
            with self.subTest(args=args, kwargs=kwargs), self.assertRaisesRegex(error, message):
                DHT(*args, **kwargs)
        # Any bytes-like id, as Server's node_id; seconds of any real number type.
        with DHT(LOCAL, 0, id=bytearray(b"i" * 20), ttl=Fraction(90)) as dht:
            self.assertEqual(dht.id, b"i" * 20)
            dht.set("k", 1, ttl=Fraction(30))
            for call in (lambda: dht.set("k", 1, ttl="30"), lambda: dht.get("k", timeout=True)):
                with self.assertRaisesRegex(TypeError, "(ttl|timeout) must be a number of seconds"):
                    call()


class ForkTest(unittest.TestCase):
    def test_a_forked_child_refuses_the_parents_node_and_runs_its_own(self) -> None:
        # multiprocessing's default start method on Linux forks. The child has
        # the parent's nodes and runtime in memory but none of their threads: a
        # call on either waited forever. Now the parent's node refuses at once
        # (ShutdownError), and the child starts a runtime of its own for the
        # nodes it binds, which reach the parent's over the network.
        script = textwrap.dedent(
            """
            import asyncio, os, sys, time
            from kadmium import DHT, Server, ShutdownError

            parent = DHT("127.0.0.1", 0)
            parent["from-parent"] = "hello"
            server = Server()
            asyncio.run(server.listen(0, "127.0.0.1"))
            pid = os.fork()
            if pid == 0:
                code = 3
                try:
                    try:
                        parent["from-parent"]
                        print("child: the parent's node answered")
                    except ShutdownError:
                        print("child: the parent's node refused")
                    # The parent's Server: stopped at once here, and it can listen anew.
                    server.stop()
                    asyncio.run(server.listen(0, "127.0.0.1"))
                    print("child: the parent's server listens anew:", server.node.port > 0)
                    server.stop()
                    child = DHT("127.0.0.1", 0, seeds=[parent.address])
                    print("child: got", child["from-parent"])
                    child["from-child"] = 42
                    child.close()
                    parent.close()  # nothing of it runs here: returns at once
                    code = 0
                finally:
                    sys.stdout.flush()
                    os._exit(code)
            deadline = time.monotonic() + 40
            while os.waitpid(pid, os.WNOHANG) == (0, 0):
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    sys.exit("the child hung")
                time.sleep(0.05)
            print("parent: got", parent["from-child"])
            parent.close()
            """
        )
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(run.returncode, 0, run.stdout + run.stderr)
        self.assertEqual(run.stdout.splitlines(), [
            "child: the parent's node refused", "child: the parent's server listens anew: True",
            "child: got hello", "parent: got 42"])


class LittleBirdTest(unittest.TestCase):
    """little-bird's DHT contract, as its own two tests exercise it (our own tests)."""

    def test_a_node_alone(self) -> None:
        with DHT(LOCAL, 0) as dht:
            dht["color"] = ["red", "green"]
            self.assertEqual(dht["color"], ["red", "green"])
            with self.assertRaises(KeyError):
                dht["nobody-set-this"]
            # Iteration and `in` are over the keys this node holds, as ints.
            self.assertEqual(list(dht), [int.from_bytes(digest("color"), "big")])
            self.assertIn("color", dht)
            self.assertIn(int.from_bytes(digest("color"), "big"), dht)  # an int key is a hashed key
            self.assertNotIn("other", dht)
            self.assertEqual(dht[int.from_bytes(digest("color"), "big")], ["red", "green"])
            # get(key, handler): the handler runs on another thread, with the value or None.
            results: List[Tuple[Any, int]] = []
            done = threading.Event()

            def handler(value: Any) -> None:
                results.append((value, threading.get_ident()))
                if len(results) == 2:
                    done.set()

            self.assertIsNone(dht.get("color", handler))
            self.assertIsNone(dht.get("nobody-set-this", handler))
            self.assertTrue(done.wait(30))
            self.assertEqual(sorted(str(v) for v, _ in results), ["None", "['red', 'green']"])
            self.assertTrue(all(ident != threading.get_ident() for _, ident in results))
            dht.tick()

    def test_a_seed_and_ten_joiners_read_one_key(self) -> None:
        with DHT(LOCAL, 0) as seed:
            seed["fizz"] = ["buzz", 15]  # stored locally: nobody else is there yet
            joiners = [DHT(LOCAL, 0, None, [seed.address]) for _ in range(10)]
            try:
                for d in joiners:
                    self.assertEqual(d["fizz"], ["buzz", 15])
                    self.assertGreaterEqual(len(d.peers()), 1)
                # Each joiner can read what another wrote.
                joiners[3]["written-late"] = {"by": 3}
                self.assertEqual(joiners[8]["written-late"], {"by": 3})
            finally:
                for d in joiners:
                    d.close()

    def test_constructor_like_little_bird(self) -> None:
        store: Dict[str, Any] = {}
        with DHT(LOCAL, 0, 42, None, store, {"name": "me"}) as d:
            self.assertEqual(d.identity(), 42)
            self.assertEqual(d.info, {"name": "me"})
            d["k"] = "v"
            # The storage mapping holds the value, keyed by str(int(digest)) as little-bird does.
            self.assertEqual(store, {str(int.from_bytes(digest("k"), "big")): "v"})
        with DHT(LOCAL, 0, hash_function=lambda k: int.from_bytes(digest(k), "big") >> 8) as d:
            d["k"] = "v"
            self.assertEqual(list(d), [int.from_bytes(digest("k"), "big") >> 8])
        with self.assertRaises(TypeError):
            DHT(LOCAL, 0, requesthandler=object)
        # A storage that already holds values: the node serves them.
        with DHT(LOCAL, 0, storage=dict(store)) as first, DHT(LOCAL, 0, seeds=[first.address]) as second:
            self.assertEqual(second["k"], "v")

    def test_bootstrap_without_argument_rejoins_the_seeds(self) -> None:
        with DHT(LOCAL, 0) as seed:
            d = DHT(LOCAL, 0, seeds=[seed.address])
            try:
                self.assertEqual(len(d.peers()), 1)
                later = DHT(LOCAL, 0, seeds=[seed.address])
                try:
                    found = d.bootstrap()
                    self.assertIn(later.id, {n.id for n in found})
                finally:
                    later.close()
            finally:
                d.close()


class DHTWithServerTest(unittest.IsolatedAsyncioTestCase):
    async def test_dht_and_server_share_a_network(self) -> None:
        server = kadmium.Server()
        await server.listen(0, LOCAL)
        try:
            with DHT(LOCAL, 0, seeds=[(LOCAL, server.node.port)]) as d:
                self.assertTrue(await server.set("shared", "from server"))
                # the blocking call runs its network work on kadmium's runtime,
                # not on this event loop, so calling it here cannot deadlock
                self.assertEqual(d["shared"], "from server")
                d["back"] = b"from dht"
                self.assertEqual(await server.get("back"), b"from dht")
        finally:
            server.stop()


if __name__ == "__main__":
    unittest.main()
