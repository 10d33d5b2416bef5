"""kadmium.storage: the IStorage interface, ForgetfulStorage, user storage honoured by
Server, and the read-only views of server.storage and server.protocol.router."""

import pickle
import subprocess
import sys
import threading
import unittest
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Tuple

from kademlia import storage as upstream
from kademlia.node import Node as PyNode

import kadmium
from kadmium.storage import ForgetfulStorage, IStorage
from kadmium.utils import digest
from support import LOCAL, AsyncCase, start_kadmium


class ForgetfulStorageTest(unittest.TestCase):
    def test_same_behaviour_as_upstream(self) -> None:
        ours, theirs = ForgetfulStorage(ttl=60), upstream.ForgetfulStorage(ttl=60)
        for s in (ours, theirs):
            s[b"a"] = 1
            s[b"b"] = "two"
            s[b"a"] = b"one"  # re-set moves it to the end
        self.assertEqual(list(ours), list(theirs))
        self.assertEqual(ours[b"a"], theirs[b"a"])
        self.assertEqual(ours.get(b"missing", 5), theirs.get(b"missing", 5))
        self.assertRaises(KeyError, ours.__getitem__, b"missing")
        self.assertEqual(ours.iter_older_than(0), theirs.iter_older_than(0))
        self.assertEqual(ours.iter_older_than(3600), [])

    def test_get_goes_through_a_subclass_getitem_as_upstream(self) -> None:
        # Upstream's get is `if key in self.data: return self[key]`: a subclass
        # overriding __getitem__ (decrypting, counting reads) sees get's reads too.
        def shouting(base: Any) -> Any:
            class Shouting(base):  # type: ignore[misc, valid-type]
                def __getitem__(self, key: bytes) -> Any:
                    return super().__getitem__(key).upper()
            return Shouting(ttl=60)

        ours, theirs = shouting(ForgetfulStorage), shouting(upstream.ForgetfulStorage)
        for s in (ours, theirs):
            s[b"k"] = "quiet"
        self.assertEqual(theirs.get(b"k"), "QUIET")
        self.assertEqual(ours.get(b"k"), "QUIET")
        self.assertEqual(ours.get(b"missing", "default"), theirs.get(b"missing", "default"))

    def test_a_subclass_keyerror_for_a_held_key_is_raised_as_upstream(self) -> None:
        # get returns the default only for a key that is gone; a KeyError the
        # subclass raises for its own reasons (a key it refuses) goes on.
        def refusing(base: Any) -> Any:
            class Refusing(base):  # type: ignore[misc, valid-type]
                def __getitem__(self, key: bytes) -> Any:
                    raise KeyError(f"refused: {key!r}")
            return Refusing(ttl=60)

        for s in (refusing(upstream.ForgetfulStorage), refusing(ForgetfulStorage)):
            s[b"k"] = "v"
            with self.assertRaisesRegex(KeyError, "refused"):
                s.get(b"k")
            self.assertEqual(s.get(b"missing", "default"), "default")

    def test_safe_to_read_while_another_thread_stores(self) -> None:
        # A node stores into its storage from kadmium's threads while the program may
        # iterate it on its own; thread switches are forced as often as Python allows.
        s = ForgetfulStorage(ttl=3600)
        for i in range(2000):
            s[str(i).encode()] = i
        stop, errors = threading.Event(), []

        def store() -> None:
            i = 0
            while not stop.is_set():
                s[str(i % 4000).encode()] = i
                i += 1

        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)
        writer = threading.Thread(target=store)
        writer.start()
        try:
            for _ in range(100):
                try:
                    list(s), s.iter_older_than(0), repr(s)
                except RuntimeError as e:  # "OrderedDict mutated during iteration"
                    errors.append(e)
        finally:
            stop.set()
            writer.join()
            sys.setswitchinterval(interval)
        self.assertEqual(errors, [])

    def test_pickles(self) -> None:
        s = ForgetfulStorage(ttl=60)
        s[b"k"] = [1, "two"]
        copy = pickle.loads(pickle.dumps(s))
        self.assertEqual(list(copy), [(b"k", [1, "two"])])
        copy[b"k2"] = 2  # with a lock of its own
        self.assertEqual(len(list(copy)), 2)

    def test_values_expire(self) -> None:
        s = ForgetfulStorage(ttl=60)
        s[b"k"] = 1
        age(s, b"k", 61)  # as if 61 s had passed since it was set
        self.assertIsNone(s.get(b"k"))
        self.assertEqual(list(s), [])


def age(storage: Any, key: bytes, seconds: float) -> None:
    """Make ``storage``'s entry for ``key`` look ``seconds`` older (no sleeping)."""
    born, value = storage.data[key]
    storage.data[key] = (born - seconds, value)


class Custom(IStorage):
    def __setitem__(self, key: bytes, value: Any) -> None: ...
    def __getitem__(self, key: bytes) -> Any: raise KeyError(key)
    def get(self, key: bytes, default: Any = None) -> Any: return default
    def iter_older_than(self, seconds_old: float) -> Any: return []
    def __iter__(self) -> Iterator[Tuple[bytes, Any]]: return iter([])


class Recording(IStorage):
    """A user storage that records every call the node makes."""

    def __init__(self) -> None:
        self.data: Dict[bytes, Any] = {}
        self.sets: List[bytes] = []
        self.gets = 0

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.sets.append(key)
        self.data[key] = value

    def __getitem__(self, key: bytes) -> Any:
        return self.data[key]

    def get(self, key: bytes, default: Any = None) -> Any:
        self.gets += 1
        return self.data.get(key, default)

    def iter_older_than(self, seconds_old: float) -> Any:
        return []

    def __iter__(self) -> Iterator[Tuple[bytes, Any]]:
        return iter(list(self.data.items()))


class MyForgetful(ForgetfulStorage):
    def __init__(self) -> None:
        super().__init__(ttl=3600)
        self.overridden_calls = 0

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.overridden_calls += 1
        super().__setitem__(key, value)


# A storage whose methods call its own server: once from the node's driver (a STORE
# arriving), once from the event loop (server.get reading the local copy).
REENTRANT_STORAGE_SCRIPT = """
import asyncio
import kadmium
from kadmium.storage import ForgetfulStorage
from kadmium.utils import digest

class Looking(ForgetfulStorage):
    server = None

    def look(self, method, call):
        try:
            call()
        except RuntimeError as e:
            print("refused:", method, call.__name__, flush=True)
            print("message:", e, flush=True)

    def __setitem__(self, key, value):
        self.look("__setitem__", self.server.bootstrappable_neighbors)
        super().__setitem__(key, value)

    def get(self, key, default=None):
        self.look("get", self.server.stats)
        return super().get(key, default)

async def main():
    seed = kadmium.Server()
    await seed.listen(0, "127.0.0.1")
    storage = Looking()
    holder = kadmium.Server(storage=storage)
    storage.server = holder
    await holder.listen(0, "127.0.0.1")
    await holder.bootstrap([("127.0.0.1", seed.node.port)])
    print("set:", await seed.set("k", "v"), flush=True)
    print("held:", ForgetfulStorage.get(storage, digest("k")), flush=True)
    print("got:", await holder.get("k"), flush=True)
    seed.stop()
    holder.stop()

asyncio.run(main())
"""


class UserStorageTest(AsyncCase):
    async def test_every_stored_value_goes_through_the_user_storage(self) -> None:
        for storage in (Recording(), MyForgetful(), upstream.ForgetfulStorage()):
            with self.subTest(storage=type(storage).__name__):
                seed = await start_kadmium(1)
                holder = kadmium.Server(storage=storage)
                self.track(*seed, holder)
                self.assertIs(holder.storage, storage)
                await holder.listen(0, LOCAL)
                await holder.bootstrap([(LOCAL, seed[0].node.port)])
                self.assertTrue(await self.bounded(seed[0].set_digest(digest("k"), [1, {"a": None}])))
                # The holder's copy is in the user's object, under the digest.
                self.assertEqual(storage.get(digest("k")), [1, {"a": None}])
                # And it is served from there: a fresh reader finds it through the holder
                # even once the seed forgot its own copy.
                seed[0].stop()
                reader = kadmium.Server()
                self.track(reader)
                await reader.listen(0, LOCAL)
                await reader.bootstrap([(LOCAL, holder.node.port)])
                self.assertEqual(await self.bounded(reader.get("k")), [1, {"a": None}])
                if isinstance(storage, MyForgetful):
                    self.assertGreaterEqual(storage.overridden_calls, 1)
                if isinstance(storage, Recording):
                    self.assertIn(digest("k"), storage.sets)
                    self.assertGreater(storage.gets, 0)

    async def test_forgetful_ttl_is_how_long_the_node_keeps_what_it_holds(self) -> None:
        storage = ForgetfulStorage(ttl=600)
        seed = await start_kadmium(1)
        holder = kadmium.Server(storage=storage)
        self.track(*seed, holder)
        await holder.listen(0, LOCAL)
        await holder.bootstrap([(LOCAL, seed[0].node.port)])
        self.assertTrue(await self.bounded(seed[0].set("short", "v")))
        self.assertEqual(await self.bounded(holder.get("short")), "v")
        seed[0].stop()
        age(storage, digest("short"), 601)  # past the storage's ttl
        # The holder no longer has it, and nobody else does.
        self.assertIsNone(await self.bounded(holder.get("short")))
        self.assertEqual(holder.stats()["values_stored"], 1)  # expiry metadata until the timer runs

    def test_a_storage_calling_its_server_gets_an_error_not_a_hang(self) -> None:
        # The node holds its lock while it calls the storage, so a storage method that
        # calls back into the node would wait for that lock on the thread holding it.
        # It runs in a child process: a hang there fails the test instead of wedging it.
        script = REENTRANT_STORAGE_SCRIPT
        run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(run.returncode, 0, run.stderr[-3000:])
        lines = run.stdout.splitlines()
        self.assertIn("set: True", lines)
        self.assertIn("held: v", lines)
        self.assertIn("got: v", lines)
        errors = [line for line in lines if line.startswith("refused:")]
        # Both ways into the storage were refused: the driver's store, the loop's read.
        self.assertIn("refused: __setitem__ bootstrappable_neighbors", errors)
        self.assertIn("refused: get stats", errors)
        self.assertTrue(all("cannot call a kadmium node" in e for e in
                            run.stdout.split("message: ")[1:]), run.stdout)

    async def test_a_storage_refusing_a_store_is_logged_as_a_warning(self) -> None:
        class DiskFull(ForgetfulStorage):
            def __setitem__(self, key: bytes, value: Any) -> None:
                raise RuntimeError("disk full")

        seed = await start_kadmium(1)
        holder = kadmium.Server(storage=DiskFull())
        self.track(*seed, holder)
        await holder.listen(0, LOCAL)
        await holder.bootstrap([(LOCAL, seed[0].node.port)])
        with self.assertLogs("kademlia.kadmium", "WARNING") as logs:
            self.assertFalse(await self.bounded(seed[0].set("k", "v")))
            await self.until(lambda: any("disk full" in line for line in logs.output),
                             "the holder's warning")
        self.assertTrue(any("__setitem__" in line for line in logs.output), logs.output)

    async def test_values_already_in_the_storage_are_held(self) -> None:
        storage = Recording()
        storage[digest("old")] = "from before"
        first = kadmium.Server(storage=storage)
        self.track(first)
        await first.listen(0, LOCAL)
        joiner = kadmium.Server()
        self.track(joiner)
        await joiner.listen(0, LOCAL)
        await joiner.bootstrap([(LOCAL, first.node.port)])
        self.assertEqual(await self.bounded(joiner.get("old")), "from before")

    def test_storage_that_cannot_hold_values_is_rejected(self) -> None:
        for bad in (object(), [], "storage"):
            with self.subTest(bad=repr(bad)):
                with self.assertRaisesRegex(TypeError, "IStorage"):
                    kadmium.Server(storage=bad)
        kadmium.Server(storage={})  # a dict has __setitem__ and get


class ViewsTest(AsyncCase):
    async def test_storage_view_is_live_and_read_only(self) -> None:
        a, b = await start_kadmium(2)
        self.track(a, b)
        self.assertEqual(list(b.storage), [])
        self.assertTrue(await self.bounded(a.set("v", b"x")))
        self.assertEqual(b.storage[digest("v")], b"x")
        self.assertEqual(b.storage.get(digest("v")), b"x")
        self.assertIn(digest("v"), b.storage)
        self.assertEqual(list(b.storage), [(digest("v"), b"x")])
        self.assertEqual(b.storage.iter_older_than(0), [(digest("v"), b"x")])
        self.assertEqual(b.storage.iter_older_than(3600), [])
        self.assertIsNone(b.storage.get(digest("nope")))
        with self.assertRaises(KeyError):
            b.storage[digest("nope")]
        with self.assertRaisesRegex(TypeError, "read-only"):
            b.storage[digest("v")] = 1

    async def test_router_view(self) -> None:
        servers = await start_kadmium(6)
        self.track(*servers)
        s = servers[0]
        assert s.protocol is not None
        router = s.protocol.router
        self.assertIs(router.node, s.node)
        contacts = {n.id for n in s.routing_table()}
        self.assertEqual(len(contacts), 5)
        buckets = router.buckets
        # The buckets partition the id space, and each contact is in its range.
        self.assertEqual(buckets[0].range[0], 0)
        self.assertEqual(buckets[-1].range[1], 2**160 - 1)
        for left, right in zip(buckets, buckets[1:]):
            self.assertEqual(left.range[1] + 1, right.range[0])
        # As upstream's KBucket: nodes is an OrderedDict of the contacts by id.
        self.assertEqual({i for b in buckets for i in b.nodes}, contacts)
        for index, b in enumerate(buckets):
            self.assertIsInstance(b.nodes, OrderedDict)
            self.assertEqual(b.get_nodes(), list(b.nodes.values()))
            for i, n in b.nodes.items():
                self.assertEqual(n.id, i)
                self.assertIs(b[i], n)
                self.assertTrue(b.has_in_range(n))
                self.assertFalse(b.is_new_node(n))
                self.assertFalse(router.is_new_node(n))
                self.assertEqual(router.get_bucket_for(n), index)
            if len(b):
                self.assertIs(b.head(), b.get_nodes()[0])
                # Every contact shares the bucket's prefix of our id, and no longer one.
                self.assertGreaterEqual(b.depth(), 160 - (b.range[1] - b.range[0]).bit_length())
        self.assertIsNone(buckets[0][b"\xff" * 20])
        self.assertTrue(router.is_new_node(PyNode(b"\x01" * 20)))
        self.assertTrue(any(b.has_in_range(s.node) for b in buckets))
        # find_neighbors: nearest first, k, exclude, never the node asked about.
        target = servers[3].node
        near = router.find_neighbors(target)
        self.assertNotIn(target.id, {n.id for n in near})
        self.assertEqual(len(near), 4)
        dists = [n.distance_to(target) for n in near]
        self.assertEqual(dists, sorted(dists))
        self.assertEqual([n.id for n in router.find_neighbors(target, k=2)], [n.id for n in near[:2]])
        excluded = router.find_neighbors(target, exclude=near[0])
        self.assertNotIn(near[0].id, {n.id for n in excluded})
        # The same arguments an upstream script passes (kademlia's own Node).
        upstream_near = router.find_neighbors(PyNode(target.id))
        self.assertEqual([n.id for n in upstream_near], [n.id for n in near])
        # Live: a new contact shows up without re-reading server.protocol.
        late = kadmium.Server()
        self.track(late)
        await late.listen(0, LOCAL)
        await late.bootstrap([(LOCAL, s.node.port)])
        self.assertIn(late.node.id, {i for b in router.buckets for i in b.nodes})


if __name__ == "__main__":
    unittest.main()
