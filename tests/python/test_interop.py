"""Mixed networks: kadmium.Server and upstream kademlia.network.Server nodes in one event loop."""

import asyncio
import datetime
import os
import socket
import unittest
from typing import Any, List

import umsgpack

import kadmium
from kademlia.network import Server as PyServer
from kademlia.utils import digest
from support import LOCAL, VALUES, AsyncCase, start_kadmium, start_upstream, upstream_port


class MixedNetworkTest(AsyncCase):
    TIMEOUT = 120.0

    async def asyncSetUp(self) -> None:
        # Three kadmium nodes, then three upstream nodes joining through a kadmium one,
        # then one more kadmium node joining through an upstream one.
        self.ours = await start_kadmium(3)
        self.track(*self.ours)
        self.theirs = await start_upstream(3, (LOCAL, self.ours[0].node.port))
        self.track(*self.theirs)
        late = kadmium.Server()
        self.track(late)
        await late.listen(0, LOCAL)
        found = await self.bounded(late.bootstrap([(LOCAL, upstream_port(self.theirs[1]))]))
        self.assertGreaterEqual(len(found), 5)
        self.ours.append(late)

    async def test_upstream_puts_are_found_by_kadmium(self) -> None:
        for i, value in enumerate(VALUES):
            with self.subTest(value=repr(value)[:40]):
                key = f"from-upstream-{i}"
                self.assertTrue(await self.bounded(self.theirs[i % 3].set(key, value)))
                for reader in (self.ours[1], self.ours[3]):
                    got = await self.bounded(reader.get(key))
                    self.assertEqual(type(got), type(value))
                    self.assertEqual(got, value)

    async def test_kadmium_puts_are_found_by_upstream(self) -> None:
        for i, value in enumerate(VALUES):
            with self.subTest(value=repr(value)[:40]):
                key = f"from-kadmium-{i}"
                self.assertTrue(await self.bounded(self.ours[i % 4].set(key, value)))
                for reader in self.theirs:
                    got = await self.bounded(reader.get(key))
                    self.assertEqual(type(got), type(value))
                    self.assertEqual(got, value)

    async def test_upstream_sees_kadmium_contacts(self) -> None:
        ids = {n.id for n in self.theirs[2].protocol.router.find_neighbors(self.theirs[2].node)}
        self.assertTrue(ids & {s.node.id for s in self.ours})
        node = await self.bounded(self.ours[0].bootstrap_node((LOCAL, upstream_port(self.theirs[0]))))
        assert node is not None
        self.assertEqual(node.id, self.theirs[0].node.id)

    async def test_missing_key_is_none_on_both_sides(self) -> None:
        self.assertIsNone(await self.bounded(self.ours[2].get("nobody-stored-this")))
        self.assertIsNone(await self.bounded(self.theirs[0].get("nobody-stored-this")))

    async def test_upstream_bootstraps_from_a_lone_kadmium_node(self) -> None:
        alone = kadmium.Server()
        self.track(alone)
        await alone.listen(0, LOCAL)
        py = PyServer()
        self.track(py)
        await py.listen(0, LOCAL)
        found = await self.bounded(py.bootstrap([(LOCAL, alone.node.port)]))
        self.assertEqual([n.id for n in found], [alone.node.id])
        self.assertTrue(await self.bounded(alone.set("pair", b"v")))
        self.assertEqual(await self.bounded(py.get("pair")), b"v")

    async def test_upstream_store_of_a_value_kadmium_cannot_hold_is_answered(self) -> None:
        """A value that is msgpack but not a kadmium value (umsgpack packs a datetime
        as extension type -1) is refused with False, never silence: an unanswered
        STORE would make the upstream node evict the kadmium node."""
        alone = kadmium.Server()
        self.track(alone)
        await alone.listen(0, LOCAL)
        py = PyServer()
        self.track(py)
        await py.listen(0, LOCAL)
        await self.bounded(py.bootstrap([(LOCAL, alone.node.port)]))
        values = [
            datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc),
            umsgpack.Ext(5, b"abc"),
            [1, {"when": datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)}],
        ]
        address = (LOCAL, alone.node.port)
        for i, value in enumerate(values):
            with self.subTest(value=repr(value)[:40]):
                key = digest(f"undecodable-{i}")
                # rpcudp's result: (True, answer) if answered, (False, None) after 5 s.
                answer = await self.bounded(py.protocol.store(address, py.node.id, key, value))
                self.assertEqual(answer, (True, False))
                # Through set_digest too (it reports True whatever the answer, so what
                # counts is that the kadmium node is still in its routing table).
                await self.bounded(py.set_digest(key, value))
                self.assertEqual([n.id for n in py.protocol.router.find_neighbors(py.node)], [alone.node.id])
        stats = alone.stats()
        self.assertEqual(stats["stores_undecodable"], 2 * len(values))
        self.assertEqual(stats["values_stored"], 0, "nothing stored")
        # The node still takes values it can hold from the same peer.
        self.assertTrue(await self.bounded(py.set("after", b"ok")))
        self.assertEqual(await self.bounded(alone.get("after")), b"ok")


class MapAsMapKeyTest(AsyncCase):
    """msgpack lets a map be a map key, and a key repeat; Python cannot hash a
    dict, and umsgpack refuses a repeated key, failing the whole datagram, so an
    upstream node never stores either. A kadmium node refuses them too (answers
    False): held, a map key made every Python reader's get raise and the node's
    own storage view unreadable, and either would fail Python readers' replies."""

    async def test_a_store_of_it_is_refused_and_readers_get_the_real_value(self) -> None:
        nodes = await start_kadmium(4)
        self.track(*nodes)
        self.assertTrue(await self.bounded(nodes[1].set("k", "good")))
        key = digest("k")
        # {{"a": 1}: 2} and {1: 1, True: 2}: what a kademlia node makes of them.
        poisons = [b"\x81\x81\xa1a\x01\x02", b"\x82\x01\x01\xc3\x02"]
        with self.assertRaises(umsgpack.UnhashableKeyException):
            umsgpack.unpackb(poisons[0])
        with self.assertRaises(umsgpack.DuplicateKeyException):
            umsgpack.unpackb(poisons[1])
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind((LOCAL, 0))
        sock.setblocking(False)
        try:
            sender = os.urandom(20)
            for node, poison in ((n, p) for n in nodes for p in poisons):
                msg_id = os.urandom(20)
                store = b"\x92\xa5store\x93" + umsgpack.packb(sender) \
                    + umsgpack.packb(key) + poison
                address = (LOCAL, node.node.port)
                sock.sendto(b"\x00" + msg_id + store, address)
                while True:  # a new sender's address is pinged before it is answered
                    datagram = await self.bounded(loop.sock_recv(sock, 65536), 10)
                    if datagram[:1] == b"\x00":
                        sock.sendto(b"\x01" + datagram[1:21] + umsgpack.packb(sender), address)
                        continue
                    self.assertEqual(datagram[:21], b"\x01" + msg_id)
                    self.assertIs(umsgpack.unpackb(datagram[21:]), False)
                    break
        finally:
            sock.close()
        held = []
        for node in nodes:
            self.assertEqual(node.stats()["stores_undecodable"], len(poisons))
            # The storage view reads as before (it raised TypeError for every key).
            self.assertEqual(len(node.storage), len(list(node.storage)))
            held.append(node.storage.get(key))
        self.assertIn("good", held)
        self.assertEqual({v for v in held if v is not None}, {"good"})
        reader = (await start_kadmium(1))[0]
        self.track(reader)
        await self.bounded(reader.bootstrap([(LOCAL, nodes[0].node.port)]))
        self.assertEqual(await self.bounded(reader.get("k")), "good")


#: Values only ``set_digest`` stores (upstream's ``set`` refuses them), and
#: values at the default size limit: the largest a Python peer can carry.
CONTAINERS: List[Any] = [
    None,
    [],
    [1, "two", b"3", None, 2.5, True, [[-7]]],
    {"name": "alice", "tags": ["a", "b"], "n": None, "nested": {"x": {}}},
    {1: "int key", b"k": [1, 2]},
]
LIMIT = 8137
BIG: List[Any] = [b"\xab" * LIMIT, "s" * LIMIT, [b"x" * 8000]]


class MixedNetworkValuesTest(AsyncCase):
    """Lists, dicts, None and 8 KB values cross between kadmium and kademlia nodes
    both ways; each reader has no copy of its own, so every get is a network lookup
    (and upstream readers then cache the value at a node without it: a STORE that
    must fit rpcudp's 8,192-byte request limit)."""

    TIMEOUT = 120.0

    async def asyncSetUp(self) -> None:
        self.ours = await start_kadmium(3)
        self.track(*self.ours)
        self.theirs = await start_upstream(3, (LOCAL, self.ours[0].node.port))
        self.track(*self.theirs)

    async def check_both_ways(self, values: List[Any], tag: str) -> None:
        for i, value in enumerate(values):
            with self.subTest(direction="kadmium->kademlia", value=repr(value)[:40]):
                key = f"{tag}-k-{i}"
                self.assertTrue(await self.bounded(self.ours[i % 3].set_digest(digest(key), value)))
                for reader in self.theirs:
                    self.assertEqual(await self.bounded(reader.get(key)), value)
            with self.subTest(direction="kademlia->kadmium", value=repr(value)[:40]):
                key = f"{tag}-p-{i}"
                self.assertTrue(await self.bounded(self.theirs[i % 3].set_digest(digest(key), value)))
                for reader in self.ours:
                    got = await self.bounded(reader.get(key))
                    self.assertEqual(got, value)
                    self.assertEqual(type(got), type(value))

    async def test_lists_dicts_and_none(self) -> None:
        await self.check_both_ways(CONTAINERS, "containers")

    async def test_values_at_the_default_limit(self) -> None:
        await self.check_both_ways(BIG, "big")
        # One byte more is refused before anything is sent.
        with self.assertRaises(kadmium.ValueTooLargeError):
            await self.ours[0].set("too-big", b"x" * (LIMIT + 1))

    async def test_dict_key_order_is_kept(self) -> None:
        value = {k: i for i, k in enumerate("zyxwvu")}
        self.assertTrue(await self.bounded(self.theirs[0].set_digest(digest("ordered"), value)))
        got = await self.bounded(self.ours[2].get("ordered"))
        self.assertEqual(list(got), list("zyxwvu"))


if __name__ == "__main__":
    unittest.main()
