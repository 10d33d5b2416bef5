"""The storage interface of ``kademlia.storage``, and the views of what a node holds.

``Server(storage=obj)`` honours any ``IStorage`` (this module's, upstream's, a
subclass, or any object with ``__setitem__`` and ``get(key, default)``): every
value the node stores for the network is written with ``obj[key] = value`` and
read back with ``obj.get(key, default)``; keys are the 20-byte digests. The
node keeps each value's expiry in Rust, so a value leaves when its TTL runs
out (default 24 hours; the STORE of a kadmium publisher can say otherwise), or
earlier if the object forgets it: ``ForgetfulStorage(ttl)`` drops what it holds
``ttl`` seconds (default one week, as upstream) after it was last set.

Without a storage argument the values stay in Rust and ``server.storage`` is a
read-only ``StorageView`` of them, with upstream's reading methods.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple


class IStorage(ABC):
    """Local storage of a node (``kademlia.storage.IStorage``)."""

    @abstractmethod
    def __setitem__(self, key: bytes, value: Any) -> None:
        """Set ``key`` to ``value``."""

    @abstractmethod
    def __getitem__(self, key: bytes) -> Any:
        """The value under ``key``; ``KeyError`` if there is none."""

    @abstractmethod
    def get(self, key: bytes, default: Any = None) -> Any:
        """The value under ``key``, or ``default``."""

    @abstractmethod
    def iter_older_than(self, seconds_old: float) -> Any:
        """``(key, value)`` pairs stored more than ``seconds_old`` seconds ago."""

    @abstractmethod
    def __iter__(self) -> Iterator[Tuple[bytes, Any]]:
        """Every ``(key, value)`` pair."""


class ForgetfulStorage(IStorage):
    """Values forgotten ``ttl`` seconds (default one week, as upstream) after they were
    last set. As a ``Server`` storage it bounds how long the node keeps what it holds;
    each value still expires at its own TTL (default 24 hours) if that comes first.

    Safe to use from several threads: a node calls its storage from kadmium's own
    threads while the program may be iterating it on the event loop's."""

    def __init__(self, ttl: float = 604800) -> None:
        self.data: "OrderedDict[bytes, Tuple[float, Any]]" = OrderedDict()
        self.ttl = ttl
        self._lock = threading.Lock()

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # a lock cannot be pickled; the copy gets its own
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    # Each method calls ``cull`` first, as upstream's do (a subclass may
    # override it), outside the lock, which ``cull`` takes itself.

    def __setitem__(self, key: bytes, value: Any) -> None:
        with self._lock:
            # Re-inserting moves the key to the end, keeping the dict in age order.
            self.data.pop(key, None)
            self.data[key] = (time.monotonic(), value)
        self.cull()

    def cull(self) -> None:
        """Drop expired values (they are at the front: the dict is in age order)."""
        with self._lock:
            deadline = time.monotonic() - self.ttl
            while self.data:
                key, (born, _) = next(iter(self.data.items()))
                if born > deadline:
                    break
                del self.data[key]

    def get(self, key: bytes, default: Any = None) -> Any:
        self.cull()
        with self._lock:
            present = key in self.data
        if not present:
            return default
        # Through self[key], as upstream: a subclass's __getitem__ is honoured.
        try:
            return self[key]
        except KeyError:
            # Culled by another thread since the check: the default. A
            # KeyError a subclass's __getitem__ raises for a key still held
            # is its own, and goes on, as upstream.
            with self._lock:
                if key in self.data:
                    raise
            return default

    def __getitem__(self, key: bytes) -> Any:
        self.cull()
        with self._lock:
            return self.data[key][1]

    def __repr__(self) -> str:
        self.cull()
        with self._lock:
            return repr(self.data)

    def iter_older_than(self, seconds_old: float) -> List[Tuple[bytes, Any]]:
        deadline = time.monotonic() - seconds_old
        out = []
        with self._lock:
            for key, (born, value) in self.data.items():
                if born > deadline:
                    break
                out.append((key, value))
        return out

    def __iter__(self) -> Iterator[Tuple[bytes, Any]]:
        self.cull()
        with self._lock:
            return iter([(key, value) for key, (_, value) in self.data.items()])


class StorageView:
    """A live, read-only view of the values a node holds in its default storage
    (``server.storage`` when no storage object was given). Reads as upstream's
    ``ForgetfulStorage``: ``view[key]``, ``get``, iteration over ``(key, value)``
    pairs, ``iter_older_than``; ages are seconds since the value was last stored."""

    def __init__(self, held: Callable[[], Optional[List[Tuple[bytes, Any, float]]]]) -> None:
        self._held = held

    def _items(self) -> List[Tuple[bytes, Any, float]]:
        return self._held() or []

    def __getitem__(self, key: bytes) -> Any:
        for k, value, _ in self._items():
            if k == key:
                return value
        raise KeyError(key)

    def get(self, key: bytes, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _, _ in self._items())

    def __len__(self) -> int:
        return len(self._items())

    def __iter__(self) -> Iterator[Tuple[bytes, Any]]:
        return iter([(k, value) for k, value, _ in self._items()])

    def iter_older_than(self, seconds_old: float) -> List[Tuple[bytes, Any]]:
        """``(key, value)`` pairs last stored more than ``seconds_old`` seconds ago."""
        return [(k, value) for k, value, age in self._items() if age >= seconds_old]

    def __setitem__(self, key: bytes, value: Any) -> None:
        raise TypeError(
            "server.storage is a read-only view of the node's values: use server.set/set_digest"
        )

    def __repr__(self) -> str:
        return f"StorageView({dict(self)!r})"


def check_storage(storage: object) -> None:
    """``TypeError`` unless ``storage`` can hold the node's values."""
    missing = [m for m in ("__setitem__", "get") if not callable(getattr(storage, m, None))]
    if missing:
        cls = type(storage)
        raise TypeError(
            f"storage must implement kademlia's IStorage (__setitem__ and get); "
            f"{cls.__module__}.{cls.__qualname__} lacks {', '.join(missing)}"
        )
