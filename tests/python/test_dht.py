"""kadmium.DHT: the blocking, dict-like node."""

import threading
import time
import unittest

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

    def test_type_checks(self) -> None:
        with self.assertRaises(TypeError):
            self.nodes[0]["k"] = [1, 2]  # type: ignore[assignment]
        with self.assertRaises(TypeError):
            self.nodes[0].set("k", None)  # type: ignore[arg-type]
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
            self.assertFalse(alone.set("k", "v"))
            self.assertIsNone(alone.get("k"))
            with self.assertRaises(kadmium.NoPeersError):
                alone["k"] = "v"
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
        self.assertTrue(d.closed)
        with self.assertRaises(kadmium.ShutdownError):
            d.get("ctx")
        d.close()  # idempotent

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
