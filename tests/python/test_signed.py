"""Signed and immutable records, client-only nodes and strict_local_limits
through the Python API (Server and DHT), on small local networks."""

import array
import asyncio
import os
import tempfile
import unittest

import kadmium
from kadmium import DHT, Keypair, Server
from kadmium.voidphone import read_config
from support import LOCAL, AsyncCase, start_kadmium


class KeypairTest(unittest.TestCase):
    def test_secret_round_trips_and_keys_differ(self) -> None:
        kp = Keypair.generate()
        self.assertEqual((len(kp.secret), len(kp.public_key)), (32, 32))
        again = Keypair.from_secret(kp.secret)
        self.assertEqual(again.public_key, kp.public_key)
        self.assertNotEqual(Keypair.generate().public_key, kp.public_key)

    def test_bad_secret_length_is_invalid_argument(self) -> None:
        with self.assertRaises(kadmium.InvalidArgumentError):
            Keypair.from_secret(b"short")

    def test_secret_must_be_bytes_and_is_named(self) -> None:
        with self.assertRaises(TypeError) as caught:
            Keypair.from_secret("a" * 32)  # type: ignore[arg-type]
        self.assertEqual(str(caught.exception), "secret must be a bytes-like object, not str")
        secret = Keypair.generate().secret
        for like in (bytearray(secret), memoryview(secret)):
            self.assertEqual(Keypair.from_secret(like).secret, secret)

    def test_errors_are_kadmium_errors(self) -> None:
        self.assertTrue(issubclass(kadmium.CasMismatchError, kadmium.KadmiumError))
        self.assertTrue(issubclass(kadmium.InvalidSignatureError, kadmium.KadmiumError))


class SignedServerTest(AsyncCase):
    async def test_put_get_update_cas_delete_across_network(self) -> None:
        servers = await start_kadmium(5)
        self.track(*servers)
        writer, reader = servers[0], servers[4]
        kp = Keypair.generate()
        seq = await self.bounded(writer.set_signed(kp, b"10.0.0.1:5000", salt=b"presence"))
        self.assertEqual(seq, 1)
        found = await self.bounded(reader.get_signed(kp.public_key, salt=b"presence"))
        assert found is not None
        self.assertEqual((found.value, found.seq), (b"10.0.0.1:5000", 1))
        self.assertEqual((found.public_key, found.salt), (kp.public_key, b"presence"))
        # another salt is another record
        self.assertIsNone(await self.bounded(reader.get_signed(kp.public_key, salt=b"other")))
        # update: seq=None takes one more than the newest
        seq = await self.bounded(writer.set_signed(kp, b"10.0.0.2:5000", salt=b"presence"))
        self.assertEqual(seq, 2)
        found = await self.bounded(reader.get_signed(kp.public_key, salt=b"presence"))
        assert found is not None
        self.assertEqual((found.value, found.seq), (b"10.0.0.2:5000", 2))
        # compare-and-swap against a stale sequence number fails, typed
        with self.assertRaises(kadmium.CasMismatchError):
            await self.bounded(writer.set_signed(kp, b"stale", salt=b"presence", cas=1))
        # ... against the current one succeeds
        seq = await self.bounded(writer.set_signed(kp, b"10.0.0.3:5000", salt=b"presence", cas=2))
        self.assertEqual(seq, 3)
        # an explicit seq not above the newest is refused
        with self.assertRaises(kadmium.InvalidSignatureError):
            await self.bounded(writer.set_signed(kp, b"old", salt=b"presence", seq=2))
        # delete: readers find nothing afterwards
        tomb = await self.bounded(writer.delete_signed(kp, salt=b"presence"))
        self.assertGreater(tomb, 3)
        self.assertIsNone(await self.bounded(reader.get_signed(kp.public_key, salt=b"presence")))

    async def test_of_concurrent_cas_writers_at_most_one_succeeds(self) -> None:
        # Three writers read seq 1 and put with cas=1 at once: every one of them used
        # to be told it succeeded while readers saw one value (lost updates). A cas put
        # now reads its record back: at most one succeeds, and readers see its value.
        servers = await start_kadmium(8)
        self.track(*servers)
        kp = Keypair.generate()
        wins = []
        for round_ in range(5):
            salt = f"counter {round_}".encode()
            await self.bounded(servers[0].set_signed(kp, b"base", salt=salt))
            outcomes = await self.bounded(asyncio.gather(
                *(w.set_signed(kp, f"from {i}".encode(), salt=salt, cas=1)
                  for i, w in enumerate(servers[1:4])),
                return_exceptions=True))
            won = [i for i, o in enumerate(outcomes) if o == 2]
            for o in outcomes:
                if o != 2:
                    self.assertIsInstance(o, kadmium.CasMismatchError)
            self.assertLessEqual(len(won), 1, outcomes)
            found = await self.bounded(servers[7].get_signed(kp.public_key, salt=salt))
            assert found is not None
            self.assertEqual(found.seq, 2)
            if won:
                self.assertEqual(found.value, f"from {won[0]}".encode())
            wins.append(len(won))
        print(f"\n5 rounds of 3 concurrent cas=1 writers on 8 nodes: winners per round {wins}")

    async def test_immutable_round_trip(self) -> None:
        servers = await start_kadmium(4)
        self.track(*servers)
        value = os.urandom(300)
        key = await self.bounded(servers[0].set_immutable(value))
        self.assertEqual(len(key), 20)
        self.assertEqual(await self.bounded(servers[3].get_immutable(key)), value)
        self.assertIsNone(await self.bounded(servers[3].get_immutable(os.urandom(20))))
        with self.assertRaises(kadmium.InvalidArgumentError):
            await self.bounded(servers[3].get_immutable(b"short"))

    async def test_bad_public_key_is_invalid_argument(self) -> None:
        (a,) = await start_kadmium(1)
        self.track(a)
        with self.assertRaises(kadmium.InvalidArgumentError):
            await self.bounded(a.get_signed(b"\x00" * 31))
        # A salt over 64 bytes is the caller's mistake for a get too (it was an
        # InvalidSignatureError, "invalid record").
        kp = Keypair.generate()
        with self.assertRaises(kadmium.InvalidArgumentError) as caught:
            await self.bounded(a.get_signed(kp.public_key, salt=b"x" * 65))
        self.assertIn("salt too long", str(caught.exception))
        # Sequence numbers out of 0..2**64-1 name the argument (a bare OverflowError).
        for name, number in (("seq", -1), ("seq", 2**64), ("cas", -1)):
            with self.subTest(name=name, number=number):
                with self.assertRaises(kadmium.InvalidArgumentError) as caught:
                    await self.bounded(a.set_signed(kp, b"v", **{name: number}))
                self.assertIn(f"{name} must be a sequence number", str(caught.exception))
        # The last number is kept for a delete (a record there could never change).
        with self.assertRaises(kadmium.InvalidArgumentError) as caught:
            await self.bounded(a.set_signed(kp, b"v", seq=2**64 - 1))
        self.assertIn("seq must be below 2**64 - 1", str(caught.exception))

    async def test_bytes_arguments_given_text_name_themselves(self) -> None:
        # pyo3's own conversion said "Can't extract `str` to `Vec`", naming the
        # argument only in a note of the traceback.
        (a,) = await start_kadmium(1)
        self.track(a)
        kp = Keypair.generate()
        calls = {
            "value": lambda: a.set_signed(kp, "text"),
            "salt": lambda: a.get_signed(kp.public_key, salt="text"),
            "public_key": lambda: a.get_signed(kp.public_key.hex()),
            "digest": lambda: a.get_immutable("ab" * 10),
        }
        for name, call in calls.items():
            with self.subTest(argument=name):
                with self.assertRaises(TypeError) as caught:
                    await self.bounded(call())  # type: ignore[arg-type]
                self.assertEqual(str(caught.exception), f"{name} must be a bytes-like object, not str")
        with self.assertRaises(TypeError) as caught:
            await self.bounded(a.set_immutable([1, 2]))  # type: ignore[arg-type]
        self.assertEqual(str(caught.exception), "value must be a bytes-like object, not list")
        # Any bytes-like object is taken, read as bytes() reads it: a view of
        # 32-bit ints gives four bytes an item, a strided view its items in order.
        node = a._node()
        ints = array.array("I", range(5))  # 20 bytes, a key's length
        node.store_local(ints, b"by-array")
        self.assertEqual(node.local_value(ints.tobytes()), b"by-array")
        node.store_local(memoryview(bytes(range(40)))[::2], b"by-view")
        self.assertEqual(node.local_value(bytes(range(0, 40, 2))), b"by-view")
        with self.assertRaises(TypeError) as caught:
            node.local_value("text")  # type: ignore[arg-type]
        self.assertEqual(str(caught.exception), "key must be a bytes-like object, not str")
        self.assertIsNone(await self.bounded(a.get_signed(bytearray(kp.public_key))))
        self.assertIsNone(await self.bounded(a.get_signed(memoryview(kp.public_key), salt=bytearray(b"s"))))

    async def test_client_only_node_is_in_no_routing_table(self) -> None:
        servers = await start_kadmium(4)
        self.track(*servers)
        client = Server(client_only=True)
        self.track(client)
        await client.listen(0, LOCAL)
        found = await self.bounded(client.bootstrap([(LOCAL, servers[0].node.port)]))
        self.assertTrue(found)
        # it can write and read...
        self.assertTrue(await self.bounded(client.set("k", "v")))
        self.assertEqual(await self.bounded(servers[2].get("k")), "v")
        kp = Keypair.generate()
        await self.bounded(client.set_signed(kp, b"x"))
        got = await self.bounded(client.get_signed(kp.public_key))
        assert got is not None
        self.assertEqual(got.value, b"x")
        # ... but no other node keeps it as a contact
        for s in servers:
            self.assertNotIn(client.node.id, {n.id for n in s.routing_table()})
        # control: the same steps with an ordinary node do add it
        plain = Server()
        self.track(plain)
        await plain.listen(0, LOCAL)
        await self.bounded(plain.bootstrap([(LOCAL, servers[0].node.port)]))
        self.assertTrue(await self.bounded(plain.set("k2", "v")))
        self.assertTrue(any(plain.node.id in {n.id for n in s.routing_table()} for s in servers))

    async def test_strict_local_limits_network_still_works(self) -> None:
        servers = await start_kadmium(3, strict_local_limits=True)
        self.track(*servers)
        self.assertTrue(all(s.strict_local_limits for s in servers))
        self.assertTrue(await self.bounded(servers[0].set("k", "v")))
        self.assertEqual(await self.bounded(servers[2].get("k")), "v")


class DataDirTest(AsyncCase):
    async def test_data_dir_is_locked_while_in_use(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            a = Server(data_dir=os.path.join(d, "state"))
            self.track(a)
            await a.listen(0, LOCAL)
            self.assertTrue(os.listdir(os.path.join(d, "state")))
            b = Server(data_dir=os.path.join(d, "state"))
            with self.assertRaises(kadmium.PersistenceError) as caught:
                await b.listen(0, LOCAL)
            # The holder is a's node, in this process: the message must not
            # send anyone looking for another process.
            self.assertIn("already open in this process", str(caught.exception))
            self.assertNotIn("another process", str(caught.exception))
            a.stop()

    async def test_an_empty_data_dir_is_an_invalid_argument(self) -> None:
        # An empty path names no directory (it was an I/O error on "").
        s = Server(data_dir="")
        with self.assertRaises(kadmium.InvalidArgumentError) as caught:
            await s.listen(0, LOCAL)
        self.assertIn("data_dir", str(caught.exception))
        with self.assertRaises(kadmium.InvalidArgumentError):
            DHT(LOCAL, 0, data_dir="")

    async def test_a_server_keeps_its_saved_id_unless_given_one(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            state = os.path.join(d, "state")
            ids = []
            for node_id in (None, None, b"\x01" * 20):
                s = Server(node_id=node_id, data_dir=state)
                self.track(s)
                await s.listen(0, LOCAL)
                ids.append(s.node.id)
                self.assertEqual(s.node.long_id, int.from_bytes(s.node.id, "big"))
                s.stop()
            self.assertEqual(ids[1], ids[0], "a restart with the same data_dir changed the id")
            self.assertEqual(ids[2], b"\x01" * 20, "an id given explicitly is used")

    def test_a_dht_keeps_its_saved_id(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            state = os.path.join(d, "state")
            with kadmium.DHT(LOCAL, 0, data_dir=state) as first:
                saved = first.id
            with kadmium.DHT(LOCAL, 0, data_dir=state) as again:
                self.assertEqual(again.id, saved)

    def test_ini_data_dir_reaches_the_settings(self) -> None:
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "config.ini")
            with open(path, "w") as f:
                f.write("[dht]\np2p_address = 127.0.0.1:0\ndata_dir = state\n")
            self.assertEqual(read_config(path).data_dir, os.path.join(d, "state"))


class SignedDHTTest(unittest.TestCase):
    def test_blocking_twins(self) -> None:
        with DHT(LOCAL, 0) as seed, DHT(LOCAL, 0, seeds=[seed.address]) as a, DHT(
            LOCAL, 0, seeds=[seed.address], client_only=True, strict_local_limits=True
        ) as b:
            kp = Keypair.generate()
            self.assertEqual(a.set_signed(kp, b"one"), 1)
            got = b.get_signed(kp.public_key)
            assert got is not None
            self.assertEqual((got.value, got.seq), (b"one", 1))
            with self.assertRaises(kadmium.CasMismatchError):
                b.set_signed(kp, b"two", cas=5)
            self.assertEqual(b.set_signed(kp, b"two", cas=1), 2)
            a.delete_signed(kp)
            self.assertIsNone(b.get_signed(kp.public_key))
            key = a.set_immutable(b"blob")
            self.assertEqual(b.get_immutable(key), b"blob")
            self.assertNotIn(b.id, {n.id for n in seed.routing_table()})
            with self.assertRaises(TypeError) as caught:
                a.delete_signed(kp, salt="text")  # type: ignore[arg-type]
            self.assertEqual(str(caught.exception), "salt must be a bytes-like object, not str")
            with self.assertRaises(TypeError) as caught:
                a.set_immutable("text")  # type: ignore[arg-type]
            self.assertEqual(str(caught.exception), "value must be a bytes-like object, not str")


if __name__ == "__main__":
    unittest.main()
