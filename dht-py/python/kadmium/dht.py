"""``kadmium.DHT``: a blocking, dict-like node for scripts (little-bird style).

Every call blocks the calling thread only: the GIL is released while the node
waits on the network, so other Python threads keep running. Keys are hashed
with ``kadmium.utils.digest``, like ``Server``'s, so a ``DHT`` and ``Server``
nodes (kadmium or ``kademlia``) can share one network and see each other's values.
"""

from __future__ import annotations

import random
from types import TracebackType
from typing import Any, Dict, Iterable, List, Optional, Sequence, Type, Union

from kadmium import _kadmium
from kadmium._kadmium import NoPeersError
from kadmium.network import ValueType, check_dht_value_type
from kadmium.node import Node
from kadmium.utils import digest

_MISSING = object()


def _node_id(id: Union[bytes, int, None]) -> bytes:
    if id is None:
        return digest(random.getrandbits(255))
    if isinstance(id, int):
        if not 0 <= id < 1 << 160:
            raise _kadmium.InvalidArgumentError("an int id must be in [0, 2**160)")
        return id.to_bytes(20, "big")
    return id


class DHT:
    """A node bound to ``host:port`` and bootstrapped from ``seeds`` when constructed.

    >>> with DHT("127.0.0.1", 0, seeds=[("127.0.0.1", 4000)]) as dht:  # doctest: +SKIP
    ...     dht["color"] = "blue"
    ...     dht["color"]
    'blue'
    """

    def __init__(
        self,
        host: str,
        port: int,
        seeds: Optional[Iterable[Sequence[Any]]] = None,
        id: Union[bytes, int, None] = None,
        *,
        ksize: int = 20,
        alpha: int = 3,
        ttl: Optional[float] = None,
    ) -> None:
        self._node = _kadmium.Node.bind(
            host, port, k=ksize, alpha=alpha, node_id=_node_id(id), default_ttl=ttl
        )
        if seeds:
            self.bootstrap(seeds)

    def __repr__(self) -> str:
        host, port = self.address
        return f"<kadmium.DHT {self.id.hex()} at {host}:{port}>"

    # --- identity --------------------------------------------------------------

    @property
    def id(self) -> bytes:
        """This node's 20-byte id."""
        return self._node.id

    def identity(self) -> int:
        """This node's id as an int."""
        return int.from_bytes(self._node.id, "big")

    @property
    def address(self) -> "tuple[str, int]":
        """The bound ``(host, port)`` (the real port when 0 was asked)."""
        return self._node.local_addr

    def peers(self) -> List[Dict[str, Any]]:
        """The routing table as ``{"host", "port", "id", "info"}`` dicts (``id`` an int)."""
        return [
            {"host": ip, "port": port, "id": int.from_bytes(node_id, "big"), "info": None}
            for node_id, ip, port in self._node.contacts()
        ]

    def bootstrap(self, seeds: Iterable[Sequence[Any]]) -> List[Node]:
        """Join through ``[(host, port), ...]``; the closest nodes found ([] if none answered)."""
        found = self._node.bootstrap([(str(s[0]), int(s[1])) for s in seeds])
        return [Node(node_id, ip, port) for node_id, ip, port in found]

    # --- values ----------------------------------------------------------------

    def set(self, key: object, value: ValueType, ttl: Optional[float] = None) -> bool:
        """Store ``value`` under ``key``; True if another node stored it, False with no peers."""
        _check(value)
        try:
            stored_remote, _, _ = self._node.put(digest(key), value, ttl=ttl)
        except NoPeersError:
            return False
        return stored_remote > 0

    def get(self, key: object, default: Any = None, *, timeout: Optional[float] = None) -> Any:
        """The value under ``key``, or ``default`` when the network does not have it."""
        value = self._node.get(digest(key), timeout=timeout)
        return default if value is None else value

    def __setitem__(self, key: object, value: ValueType) -> None:
        """Store at the k closest nodes; ``NoPeersError`` if the node knows no peer."""
        _check(value)
        self._node.put(digest(key), value)

    def __getitem__(self, key: object) -> ValueType:
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        result: ValueType = value
        return result

    def stats(self) -> Dict[str, int]:
        return self._node.stats()

    def routing_table(self) -> List[Node]:
        return [Node(node_id, ip, port) for node_id, ip, port in self._node.contacts()]

    # --- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Stop the node and close its socket (idempotent)."""
        self._node.shutdown()

    @property
    def closed(self) -> bool:
        return self._node.is_shut_down

    def __enter__(self) -> "DHT":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __del__(self) -> None:
        node = getattr(self, "_node", None)
        if node is not None:
            node.shutdown()


def _check(value: object) -> None:
    if not check_dht_value_type(value):
        raise TypeError("Value must be of type int, float, bool, str, or bytes")
