"""``kadmium.DHT``: little-bird's blocking, dict-like ``DHT``, on a kadmium node.

A little-bird script runs after one import change (``from dht.dht import DHT``
→ ``from kadmium import DHT``): same constructor order, ``dht[key]`` (KeyError
when missing), ``dht[key] = value`` (kept locally by a node with no peers),
``get(key, handler)`` calling ``handler(value_or_None)`` on another thread,
iteration and ``in`` over the keys this node holds, ``peers()``,
``identity()`` and ``bootstrap()``. Values are any msgpack data (what JSON
carries, plus bytes). The wire protocol is bmuller ``kademlia``'s, not
little-bird's JSON, so a ``DHT`` shares a network with ``kadmium.Server`` and
Python ``kademlia`` nodes, not with little-bird nodes.

Every call blocks the calling thread only: the GIL is released while the node
waits on the network, so other Python threads keep running.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Type, Union

from kadmium import _kadmium
from kadmium._kadmium import Keypair, NoPeersError, SignedValue
from kadmium.network import _address_pairs, _check_count, _check_port, _host, _seconds
from kadmium.node import Node
from kadmium.utils import digest

log = logging.getLogger("kademlia.kadmium.dht")

_MISSING = object()
ID_SPACE = 1 << 160

#: What a ``hash_function`` may return: a 20-byte digest or an int id.
Hashed = Union[bytes, int]


def _id_bytes(id: Union[bytes, int], what: str) -> bytes:
    """An id given as an int or 20 bytes (any bytes-like, as ``Server``'s
    ``node_id``): ``TypeError`` for another type, ``InvalidArgumentError`` for
    one out of range."""
    if isinstance(id, int) and not isinstance(id, bool):
        if not 0 <= id < ID_SPACE:
            raise _kadmium.InvalidArgumentError(f"an int {what} must be in [0, 2**160)")
        return id.to_bytes(20, "big")
    if not isinstance(id, (bytes, bytearray, memoryview)):
        raise TypeError(f"{what} must be 20 bytes or an int (got {type(id).__name__})")
    if len(id) != 20:
        raise _kadmium.InvalidArgumentError(f"{what} must be 20 bytes or an int (got {len(id)} bytes)")
    return bytes(id)


def _check_mapping(storage: Any) -> Any:
    """``storage`` if it is a mapping the node can keep values in, else a
    ``TypeError`` naming what it lacks (a list failed later, at a put, as a
    NetworkError)."""
    needed = ("get", "__getitem__", "__setitem__", "__delitem__", "__iter__")
    missing = [m for m in needed if not callable(getattr(storage, m, None))]
    if missing:
        cls = type(storage)
        raise TypeError(f"storage must be a mapping (a dict, a shelve); "
                        f"{cls.__module__}.{cls.__qualname__} lacks {', '.join(missing)}")
    return storage


class _KeyedByInt:
    """A little-bird storage mapping (a dict, a ``shelve``) as the node's storage:
    keys are ``str(int)`` of the 20-byte digest, as little-bird keys its storage."""

    def __init__(self, mapping: Any) -> None:
        self.mapping = mapping

    def __setitem__(self, key: bytes, value: Any) -> None:
        self.mapping[str(int.from_bytes(key, "big"))] = value

    def get(self, key: bytes, default: Any = None) -> Any:
        return self.mapping.get(str(int.from_bytes(key, "big")), default)

    def __delitem__(self, key: bytes) -> None:
        del self.mapping[str(int.from_bytes(key, "big"))]

    def __iter__(self) -> Iterator[Tuple[bytes, Any]]:
        items = []
        for k in list(self.mapping):
            try:
                items.append((int(k).to_bytes(20, "big"), self.mapping[k]))
            except (ValueError, OverflowError, KeyError):
                continue
        return iter(items)


class DHT:
    """A node bound to ``host:port``, joined through ``seeds`` before the constructor returns.

    ``id``: int or 20 bytes (random if None). ``storage``: a dict-like object the
    node keeps its values in (keys ``str(int(digest))``, as little-bird). ``info``:
    this node's info, reported by nothing on the wire (kept as an attribute).
    ``hash_function(key)``: the key hash, returning 20 bytes or an int below
    2**160 (default ``kadmium.utils.digest``, the hash ``kademlia`` nodes use).
    ``requesthandler``: little-bird's UDP handler class; kadmium's protocol runs
    in Rust, so only None is accepted. Keyword-only: ``ksize`` (20), ``alpha``
    (3), ``ttl``: lifetime of the values this node puts (default 24 hours, at
    most 7 days), ``client_only`` (kadmium peers do not add this node to their
    routing tables), ``strict_local_limits`` (per-IP limits also on loopback
    and private addresses), ``data_dir`` (keep values, contacts and, unless
    ``id`` is given, the node id there across restarts).

    >>> with DHT("127.0.0.1", 0, seeds=[("127.0.0.1", 4000)]) as dht:  # doctest: +SKIP
    ...     dht["color"] = ["blue", "green"]
    ...     dht["color"]
    ['blue', 'green']
    """

    def __init__(
        self,
        host: str,
        port: int,
        id: Union[bytes, int, None] = None,
        seeds: Optional[Iterable[Sequence[Any]]] = None,
        storage: Any = None,
        info: Any = None,
        hash_function: Callable[[Any], Hashed] = digest,
        requesthandler: Any = None,
        *,
        ksize: int = 20,
        alpha: int = 3,
        ttl: Optional[float] = None,
        client_only: bool = False,
        strict_local_limits: bool = False,
        data_dir: Optional[str] = None,
    ) -> None:
        if requesthandler is not None:
            raise TypeError("kadmium's protocol runs in Rust: requesthandler cannot be replaced")
        # No id asked for: a random one, or with a data directory the saved one.
        node_id = None if id is None else _id_bytes(id, "id")
        self.info = info
        self.hash_function = hash_function
        if not callable(hash_function):
            raise TypeError(f"hash_function must be callable (got {type(hash_function).__name__})")
        self.seeds: List[Tuple[str, int]] = _address_pairs("seeds", seeds or [])
        self._storage = None if storage is None else _KeyedByInt(_check_mapping(storage))
        # Checked here, as Server checks them, to name the argument (the native
        # call's own conversion raised OverflowError for a negative port).
        port, ksize = _check_port(port), _check_count("ksize", ksize, 1000)
        alpha = _check_count("alpha", alpha, 100)
        self._node = _kadmium.Node.bind(
            _host("host", host), port, k=ksize, alpha=alpha, node_id=node_id,
            default_ttl=_seconds("ttl", ttl),
            storage=self._storage,
            client_only=client_only,
            strict_local_limits=strict_local_limits,
            data_dir=data_dir,
        )
        try:
            if self._storage is not None:
                for key, value in self._storage:
                    self._node.store_local(key, value)
            if self.seeds:
                self.bootstrap(self.seeds)
        except BaseException:
            # A constructor that fails (a bad seed, Ctrl-C while joining) leaves
            # no node behind holding the port.
            self._node.shutdown()
            raise

    def __repr__(self) -> str:
        host, port = self.address
        return f"<kadmium.DHT {self.id.hex()} at {host}:{port}>"

    def _hash(self, key: object) -> bytes:
        return _id_bytes(self.hash_function(key), "hash_function's result")

    def _lookup_key(self, key: object) -> bytes:
        # little-bird: an int key given to [] or `in` is an already-hashed id.
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key < ID_SPACE:
            return key.to_bytes(20, "big")
        return self._hash(key)

    # --- identity --------------------------------------------------------------

    @property
    def id(self) -> bytes:
        """This node's 20-byte id."""
        return self._node.id

    def identity(self) -> int:
        """This node's id as an int."""
        return int.from_bytes(self._node.id, "big")

    @property
    def address(self) -> Tuple[str, int]:
        """The bound ``(host, port)`` (the real port when 0 was asked)."""
        return self._node.local_addr

    @property
    def public_address(self) -> Optional[Tuple[str, int]]:
        """This node's ``(host, port)`` as its peers see it (behind a NAT, the
        NAT's address), or None until at least two peer IPs agree on it (one
        lying peer cannot set it). Only kadmium peers report it; loopback and
        private addresses count like public ones."""
        return self._node.public_address

    def peers(self) -> List[Dict[str, Any]]:
        """The routing table as ``{"host", "port", "id", "info"}`` dicts (``id`` an int;
        ``info`` None: kadmium's wire protocol does not carry it)."""
        return [
            {"host": ip, "port": port, "id": int.from_bytes(node_id, "big"), "info": None}
            for node_id, ip, port in self._node.contacts()
        ]

    def bootstrap(self, bootstrap_nodes: Optional[Iterable[Sequence[Any]]] = None) -> List[Node]:
        """Join through ``[(host, port), ...]``; with no argument, re-join through
        the constructor's seeds and the contacts already known. The closest nodes
        found ([] if none answered)."""
        pairs = _address_pairs("bootstrap_nodes", bootstrap_nodes or [])
        if not pairs:
            known = [(ip, port) for _, ip, port in self._node.contacts()]
            pairs = list(dict.fromkeys(self.seeds + known))
        found = self._node.bootstrap(pairs)
        return [Node(node_id, ip, port) for node_id, ip, port in found]

    def tick(self) -> None:
        """Nothing to do (little-bird's is a no-op too): the node runs on its own."""

    # --- values ----------------------------------------------------------------

    def set(self, key: object, value: Any, ttl: Optional[float] = None) -> bool:
        """Store ``value`` under ``key``; True if another node stored it. A node with
        no peers keeps it itself (it reaches nodes that join later) and returns False."""
        return self._put(self._hash(key), value, ttl)

    def _put(self, dkey: bytes, value: Any, ttl: Optional[float]) -> bool:
        ttl = _seconds("ttl", ttl)
        try:
            stored_remote, _, _ = self._node.put(dkey, value, ttl=ttl)
        except NoPeersError:
            self._node.store_local(dkey, value, ttl=ttl)
            return False
        return stored_remote > 0

    def set_signed(
        self,
        keypair: Keypair,
        value: bytes,
        *,
        salt: bytes = b"",
        seq: Optional[int] = None,
        cas: Optional[int] = None,
        ttl: Optional[float] = None,
    ) -> int:
        """``Server.set_signed``, blocking: the sequence number used."""
        return _kadmium.put_signed(self._node, keypair, value, salt=salt, seq=seq, cas=cas,
                                   ttl=_seconds("ttl", ttl))

    def get_signed(self, public_key: bytes, *, salt: bytes = b"") -> Optional[SignedValue]:
        """``Server.get_signed``, blocking."""
        return _kadmium.get_signed(self._node, public_key, salt=salt)

    def delete_signed(self, keypair: Keypair, *, salt: bytes = b"") -> int:
        """``Server.delete_signed``, blocking: the tombstone's sequence number."""
        return _kadmium.delete_signed(self._node, keypair, salt=salt)

    def set_immutable(self, value: bytes) -> bytes:
        """``Server.set_immutable``, blocking: the 20-byte digest."""
        return _kadmium.put_immutable(self._node, value)

    def get_immutable(self, digest: bytes) -> Optional[bytes]:
        """``Server.get_immutable``, blocking."""
        return _kadmium.get_immutable(self._node, digest)

    def get(self, key: object, handler: Any = None, *, default: Any = None, timeout: Optional[float] = None) -> Any:
        """With a callable ``handler`` (little-bird): look ``key`` up on another
        thread, call ``handler(value)`` there (None when missing), return None at
        once. Otherwise: the value, or ``handler`` / ``default`` when missing."""
        if callable(handler):
            threading.Thread(
                target=self.get_sync, args=(key, handler), name="kadmium-dht-get", daemon=True
            ).start()
            return None
        if handler is not None:
            default = handler
        return self._get(self._lookup_key(key), default, timeout)

    def get_sync(self, key: object, handler: Callable[[Any], Any]) -> None:
        """Look ``key`` up and call ``handler(value)`` on this thread: None when
        missing, and, as little-bird's, when the lookup failed (a closed node, a
        network error; logged), so a caller waiting for the handler is never left
        waiting."""
        try:
            value = self[key]
        except KeyError:
            value = None
        except Exception as e:
            log.warning("get of %r failed: %s", key, e)
            value = None
        handler(value)

    def _check_open(self) -> None:
        """``ShutdownError`` after ``close()``: reads of the values stop with the
        node, so ``key in dht`` and iteration agree with ``dht[key]``."""
        if self._node.is_shut_down:
            raise _kadmium.ShutdownError("the node has been shut down")

    def _get(self, dkey: bytes, default: Any, timeout: Optional[float]) -> Any:
        self._check_open()
        timeout = _seconds("timeout", timeout)
        value = self._node.local_value(dkey, _MISSING)
        if value is _MISSING:
            value = self._node.get(dkey, timeout=timeout, default=default)
        return value

    def __setitem__(self, key: object, value: Any) -> None:
        """Store at the k closest nodes, or on this node if it has no peers."""
        self._put(self._hash(key), value, None)

    def __getitem__(self, key: object) -> Any:
        """This node's copy, else the network's; ``KeyError`` if nobody has it."""
        value = self._get(self._lookup_key(key), _MISSING, None)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        """Whether this node itself holds ``key`` (no network traffic);
        ``ShutdownError`` after ``close()``."""
        self._check_open()
        return self._node.local_value(self._lookup_key(key), _MISSING) is not _MISSING

    def __iter__(self) -> Iterator[int]:
        """The keys this node holds, as ints (little-bird's form);
        ``ShutdownError`` after ``close()``."""
        self._check_open()
        if self._storage is not None:
            keys = [k for k, _ in self._storage]
        else:
            keys = [k for k, _, _ in self._node.held() or []]
        return iter([int.from_bytes(k, "big") for k in keys])

    def stats(self) -> Dict[str, int]:
        return self._node.stats()

    def routing_table(self) -> List[Node]:
        return [Node(node_id, ip, port) for node_id, ip, port in self._node.contacts()]

    # --- closing ---------------------------------------------------------------

    def close(self) -> None:
        """Stop the node; returns once its socket is closed, so the port can be
        bound again at once (idempotent)."""
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
            node.shutdown(wait=False)
