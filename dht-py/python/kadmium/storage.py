"""The storage interface of ``kademlia.storage``, and what kadmium does with it.

A kadmium node keeps the values it holds inside its Rust core, so it cannot
call back into an arbitrary Python ``IStorage``. ``Server(storage=...)``
therefore accepts only a ``ForgetfulStorage`` (this module's or upstream's),
and honours its one setting, ``ttl``, as the lifetime of stored values; any
other storage object is rejected with a ``TypeError`` rather than ignored.
The classes remain usable on their own, as upstream.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Iterator, List, Optional, Tuple


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
    """Values that expire ``ttl`` seconds (default one week) after they were last set."""

    def __init__(self, ttl: float = 604800) -> None:
        self.data: "OrderedDict[bytes, Tuple[float, Any]]" = OrderedDict()
        self.ttl = ttl

    def __setitem__(self, key: bytes, value: Any) -> None:
        # Re-inserting moves the key to the end, keeping the dict in age order.
        self.data.pop(key, None)
        self.data[key] = (time.monotonic(), value)
        self.cull()

    def cull(self) -> None:
        """Drop expired values (they are at the front: the dict is in age order)."""
        deadline = time.monotonic() - self.ttl
        while self.data:
            key, (born, _) = next(iter(self.data.items()))
            if born > deadline:
                break
            del self.data[key]

    def get(self, key: bytes, default: Any = None) -> Any:
        self.cull()
        entry = self.data.get(key)
        return default if entry is None else entry[1]

    def __getitem__(self, key: bytes) -> Any:
        self.cull()
        return self.data[key][1]

    def __repr__(self) -> str:
        self.cull()
        return repr(self.data)

    def iter_older_than(self, seconds_old: float) -> List[Tuple[bytes, Any]]:
        deadline = time.monotonic() - seconds_old
        out = []
        for key, (born, value) in self.data.items():
            if born > deadline:
                break
            out.append((key, value))
        return out

    def __iter__(self) -> Iterator[Tuple[bytes, Any]]:
        self.cull()
        return iter([(key, value) for key, (_, value) in self.data.items()])


def storage_ttl(storage: Optional[object]) -> Optional[float]:
    """The value lifetime a ``Server(storage=...)`` argument asks for.

    None for no storage argument (the node's default); raises ``TypeError`` for
    storage kadmium cannot honour.
    """
    if storage is None:
        return None
    cls = type(storage)
    forgetful = isinstance(storage, ForgetfulStorage) or (
        cls.__name__ == "ForgetfulStorage" and cls.__module__ == "kademlia.storage"
    )
    if not forgetful:
        raise TypeError(
            f"kadmium keeps stored values in its Rust core and cannot use a {cls.__module__}."
            f"{cls.__qualname__} as storage; pass storage=None or a ForgetfulStorage(ttl=...)"
        )
    if any(True for _ in storage):  # type: ignore[attr-defined]
        raise TypeError("kadmium cannot import the values of a non-empty storage object")
    return float(storage.ttl)  # type: ignore[attr-defined]
