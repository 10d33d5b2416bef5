"""kadmium.storage: the IStorage interface, ForgetfulStorage, and what Server accepts."""

import time
import unittest
from typing import Any, Iterator, Tuple

from kademlia import storage as upstream

import kadmium
from kadmium.storage import ForgetfulStorage, IStorage, storage_ttl


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

    def test_values_expire(self) -> None:
        s = ForgetfulStorage(ttl=0.05)
        s[b"k"] = 1
        time.sleep(0.1)
        self.assertIsNone(s.get(b"k"))
        self.assertEqual(list(s), [])


class Custom(IStorage):
    def __setitem__(self, key: bytes, value: Any) -> None: ...
    def __getitem__(self, key: bytes) -> Any: raise KeyError(key)
    def get(self, key: bytes, default: Any = None) -> Any: return default
    def iter_older_than(self, seconds_old: float) -> Any: return []
    def __iter__(self) -> Iterator[Tuple[bytes, Any]]: return iter([])


class ServerStorageArgumentTest(unittest.TestCase):
    def test_forgetful_ttl_is_honoured(self) -> None:
        self.assertIsNone(storage_ttl(None))
        self.assertEqual(storage_ttl(ForgetfulStorage(ttl=120)), 120.0)
        self.assertEqual(storage_ttl(upstream.ForgetfulStorage(ttl=90)), 90.0)
        kadmium.Server(storage=ForgetfulStorage(ttl=120))
        kadmium.Server(storage=upstream.ForgetfulStorage())

    def test_other_storage_is_rejected_not_ignored(self) -> None:
        with self.assertRaisesRegex(TypeError, "cannot use"):
            kadmium.Server(storage=Custom())
        with self.assertRaises(TypeError):
            kadmium.Server(storage={})
        full = ForgetfulStorage()
        full[b"k"] = 1
        with self.assertRaisesRegex(TypeError, "non-empty"):
            kadmium.Server(storage=full)


if __name__ == "__main__":
    unittest.main()
