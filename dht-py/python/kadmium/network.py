"""``kadmium.Server``: the asyncio API of ``kademlia.network.Server`` 2.2.3 over a Rust node.

Change ``from kademlia.network import Server`` to ``from kadmium import Server``
and a script keeps working: same methods, arguments, return values and wire
protocol (kadmium and ``kademlia`` nodes can share one network). Network work
runs on kadmium's tokio runtime and resolves asyncio futures, so awaiting never
blocks the event loop, and cancelling the awaiting task cancels the Rust work.
"""

from __future__ import annotations

import asyncio
import logging
import math
import operator
import pickle
import random
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Type, TypeVar, Union

from kadmium import _kadmium
from kadmium._kadmium import (BadAddressError, Keypair, KadmiumError, NoPeersError,
                               OperationTimeoutError, SignedValue)
from kadmium.node import Node
from kadmium.routing import ProtocolView
# ForgetfulStorage: upstream's network module has it in its namespace too.
from kadmium.storage import ForgetfulStorage as ForgetfulStorage  # noqa: F401
from kadmium.storage import StorageView, check_storage
from kadmium.utils import digest

#: Every kadmium logger is under "kademlia.kadmium" (see ``kadmium.LOGGER``), so
#: configuring the "kademlia" logger, as upstream scripts do, covers kadmium too.
log = logging.getLogger("kademlia.kadmium.network")

#: Python types ``Server.set`` accepts (exact types: subclasses are rejected, as upstream).
ValueType = Union[int, float, bool, str, bytes]
#: What ``set_digest`` accepts and ``get`` may return: msgpack data, i.e. the
#: ``ValueType``s plus None, lists/tuples and dicts of them (nested at most 32
#: deep), as upstream's umsgpack packs them. Lists come back as lists.
Value = Any
Address = Tuple[str, int]

S = TypeVar("S", bound="Server")
_T = TypeVar("_T")

#: Shortest period ``refresh_table`` and ``save_state_regularly`` run at (seconds).
MIN_REFRESH_INTERVAL = 1.0

_VALUE_TYPES = (int, float, bool, str, bytes)


def _integer(name: str, value: object) -> int:
    """``value`` as an int: any integer type (numpy's too), not a bool or a float."""
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int (got bool)")
    try:
        return operator.index(value)  # type: ignore[arg-type]
    except TypeError:
        raise TypeError(f"{name} must be an int (got {type(value).__name__})") from None


def _seconds(name: str, value: Optional[float]) -> Optional[float]:
    """``value`` (None, or a real number: anything with ``__float__`` or
    ``__index__`` but text and bools) as seconds, or a ``TypeError`` naming
    it: the native conversion said only "must be real number, not str", and
    took True as one second."""
    if value is None or type(value) is float or type(value) is int:
        return value
    kind = type(value)
    if not issubclass(kind, (str, bytes, bool)) and (
            hasattr(kind, "__float__") or hasattr(kind, "__index__")):
        return float(value)
    raise TypeError(f"{name} must be a number of seconds (got {kind.__name__})")


def _host(name: str, value: object) -> str:
    """A host name or address given as text, or a ``TypeError`` naming the argument."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str host name or address (got {type(value).__name__})")
    return value


def _check_count(name: str, value: object, most: int) -> int:
    """``value`` as an int from 1 to ``most`` (the node's own limits), or an error naming it."""
    number = _integer(name, value)
    if not 1 <= number <= most:
        raise _kadmium.InvalidArgumentError(f"{name} must be from 1 to {most} (got {number})")
    return number


def _check_port(port: object) -> int:
    """A port as upstream's ``listen`` takes it (asyncio accepts a digit string, and None
    for any free port): an int from 0 to 65535, or an error naming it."""
    if port is None:
        return 0
    number = int(port) if isinstance(port, str) and port.isdigit() else _integer("port", port)
    if not 0 <= number <= 65535:
        raise _kadmium.InvalidArgumentError(f"port must be from 0 to 65535 (got {number})")
    return number


def _address_pairs(name: str, addrs: Iterable[Any]) -> List[Tuple[str, int]]:
    """A list of ``(host, port)`` pairs; a lone string or pair (whose
    characters or items were taken as addresses: "got '1'") is a
    ``TypeError`` naming the argument."""
    if isinstance(addrs, (str, bytes)) or (
            isinstance(addrs, tuple) and len(addrs) == 2 and isinstance(addrs[1], int)):
        raise TypeError(f"{name} must be a list of (host, port) pairs "
                        f"(got one {type(addrs).__name__}: wrap it in a list)")
    return [_address_pair(a) for a in addrs]


def _check_digest(dkey: object) -> bytes:
    """A 20-byte key digest (bytes-like), or an error naming what came instead."""
    if not isinstance(dkey, (bytes, bytearray, memoryview)):
        raise TypeError(f"dkey must be a 20-byte digest, bytes (got {type(dkey).__name__}); "
                        f"get/set hash other keys")
    return bytes(dkey)


def _gave_up(operation: str, dkey: bytes, answer: _T) -> _T:
    """What upstream's ``get``/``set`` return when their lookups give up, for
    kadmium's overall deadline (``operation_timeout``) passing on a call that
    did not ask for ``timeout=``: a script written for upstream expects None
    or False there, not an exception (a burst of thousands of calls on a node
    with dead contacts can queue some of them past the deadline)."""
    log.warning("%s of key %s gave up at the node's deadline (operation_timeout)",
                operation, dkey.hex())
    return answer


def _address_pair(addr: object) -> Tuple[str, int]:
    """One ``(host, port)`` of ``bootstrap`` (further items, as in an IPv6 socket
    address ``(host, port, flowinfo, scope_id)``, are ignored), or an error naming it."""
    if isinstance(addr, (str, bytes)) or not isinstance(addr, Sequence) or len(addr) < 2:
        raise TypeError(f"bootstrap addresses are (host, port) pairs (got {addr!r})")
    return str(addr[0]), _check_port(addr[1])


def check_dht_value_type(value: object) -> bool:
    """Whether ``value`` may be stored: its type is exactly int, float, bool, str or bytes."""
    return type(value) in _VALUE_TYPES


class _Transport:
    """Stands in for the asyncio transport upstream's ``Server.transport`` holds,
    for the two things scripts do with it: read the bound address and close."""

    def __init__(self, server: "Server") -> None:
        self._server = server

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        native = self._server._native
        if name == "sockname" and native is not None:
            return native.local_addr
        return default

    def close(self) -> None:
        self._server.stop()

    def is_closing(self) -> bool:
        native = self._server._native
        return native is None or native.is_shut_down


class Server:
    """A node of the network (same API as ``kademlia.network.Server``)."""

    #: Upstream lets subclasses swap the Python protocol class; kadmium's protocol
    #: runs in Rust, so a subclass that sets this is rejected in ``__init__``
    #: rather than silently running the default protocol.
    protocol_class: Optional[type] = None

    def __init__(
        self,
        ksize: int = 20,
        alpha: int = 3,
        node_id: Optional[bytes] = None,
        storage: Optional[object] = None,
        *,
        client_only: bool = False,
        strict_local_limits: bool = False,
        data_dir: Optional[str] = None,
        max_value_size: Optional[int] = None,
    ) -> None:
        """``storage``: None (values stay in Rust; ``self.storage`` is a read-only
        view of them), or an ``IStorage`` that every value the node holds goes
        through (see ``kadmium.storage``). ``node_id`` must be 20 bytes.

        kadmium only: ``client_only`` makes a node that queries the network but
        that kadmium peers do not add to their routing tables (short-lived
        scripts); ``strict_local_limits`` applies the per-IP limits to loopback
        and private addresses too; ``data_dir`` keeps the node's values and
        contacts in that directory across restarts, and its id unless
        ``node_id`` is given (``PersistenceError`` if it is in use by another
        process or damaged); ``max_value_size`` is the largest value the node
        stores, in bytes (default 8,137, what Python peers can carry; raise it
        only on networks of kadmium nodes, up to about 65,400)."""
        if self.protocol_class is not None:
            raise TypeError("kadmium.Server runs its protocol in Rust: protocol_class cannot be overridden")
        self.ksize = _check_count("ksize", ksize, 1000)
        self.alpha = _check_count("alpha", alpha, 100)
        self.client_only = client_only
        self.strict_local_limits = strict_local_limits
        self.data_dir = data_dir
        self.max_value_size = (None if max_value_size is None
                               else _check_count("max_value_size", max_value_size, 65_400))
        if storage is not None:
            check_storage(storage)
        self._user_storage: Any = storage
        #: The values this node holds: the ``storage`` given, else a live view.
        self.storage: Any = storage if storage is not None else StorageView(self._held)
        # With a data directory and no id asked for, the node keeps the id it
        # saved (a new one on its first start); the random id below stands in
        # until ``listen`` reads the real one.
        self._id_asked = node_id is not None
        #: Testing only: the unix time the node assumes at ``listen`` instead of
        #: the system clock's (saved expiries are read against it); set by
        #: ``kadmium node --testing-clock-offset``.
        self._unix_time_at_start: Optional[float] = None
        node_id = node_id or digest(random.getrandbits(255))
        if not isinstance(node_id, (bytes, bytearray, memoryview)):
            raise TypeError(f"node_id must be 20 bytes (got {type(node_id).__name__})")
        node_id = bytes(node_id)
        if len(node_id) != 20:
            # Upstream takes ids of any length; the wire format carries 160-bit ones.
            raise _kadmium.InvalidArgumentError(
                f"node_id must be 20 bytes, a 160-bit id (got {len(node_id)} bytes)")
        self.node = Node(node_id)
        self.transport: Optional[_Transport] = None
        #: A read-only view shaped like upstream's KademliaProtocol (``.router``),
        #: set by ``listen`` as upstream sets its protocol object.
        self.protocol: Optional[ProtocolView] = None
        self.refresh_loop: Optional[asyncio.TimerHandle] = None
        self.save_state_loop: Optional[asyncio.TimerHandle] = None
        self._native: Optional[_kadmium.Node] = None
        #: Set while ``listen`` binds, so a second concurrent ``listen`` is refused.
        self._binding = False
        self._refresh_task: Optional["asyncio.Future[None]"] = None

    def __repr__(self) -> str:
        return f"<kadmium.Server {self.node.id.hex()} at {self.node.ip}:{self.node.port}>"

    def _held(self) -> Optional[List[Tuple[bytes, Any, float]]]:
        return None if self._native is None else self._native.held()

    def _node(self) -> _kadmium.Node:
        if self._native is None:
            raise KadmiumError("the server is not listening: await server.listen(port) first")
        return self._native

    # --- lifecycle -------------------------------------------------------------

    async def listen(self, port: int, interface: Union[str, bytes, None] = "0.0.0.0") -> None:
        """Bind ``interface:port`` (UDP; port 0 picks a free one, see
        ``transport.get_extra_info("sockname")``) and start refreshing the table.
        As with upstream's asyncio endpoint, ``interface`` may be bytes, and None
        means every interface."""
        if self._binding or (self._native is not None and not self._native.is_shut_down):
            raise KadmiumError("the server is already listening")
        port = _check_port(port)
        if interface is None:
            interface = "0.0.0.0"
        elif isinstance(interface, bytes):
            try:
                interface = interface.decode("ascii")
            except UnicodeDecodeError:
                raise BadAddressError(f"not a host name or address: {interface!r}") from None
        interface = _host("interface", interface)
        self._binding = True
        try:
            await self._bind(port, interface)
        finally:
            self._binding = False
        log.info("Node %s listening on %s:%i", self.node.id.hex(), interface, self.node.port)
        self.refresh_table()

    async def _bind(self, port: int, interface: str) -> None:
        # Listening again after stop(): as upstream, whose storage belongs to the
        # Server, the values held so far stay held (each with its own expiry).
        previous = self._native if self._user_storage is None and self.data_dir is None else None
        self._native = await _kadmium.Node.bind_async(
            interface,
            port,
            k=self.ksize,
            alpha=self.alpha,
            node_id=self.node.id if self._id_asked or self.data_dir is None else None,
            storage=self._user_storage,
            client_only=self.client_only,
            strict_local_limits=self.strict_local_limits,
            data_dir=self.data_dir,
            unix_time_at_start=self._unix_time_at_start,
            max_value_size=self.max_value_size,
            values_of=previous,
        )
        if self._native.id != self.node.id:
            self.node = Node(self._native.id)
        self.node.ip, self.node.port = self._native.local_addr
        self.transport = _Transport(self)
        self.protocol = ProtocolView(self)
        self._adopt_stored_values()

    def _adopt_stored_values(self) -> None:
        """Values already in a user's storage object are held by the node (with
        the default TTL) and so reach the nodes that join, as upstream would
        republish them."""
        storage, native = self._user_storage, self._native
        if storage is None or native is None:
            return
        try:
            items = list(storage)
        except TypeError:
            return
        for item in items:
            try:
                key, value = item
            except (TypeError, ValueError):
                continue
            if isinstance(key, bytes) and len(key) == 20:
                try:
                    native.store_local(key, value)
                except (KadmiumError, TypeError) as e:
                    log.warning("cannot hold stored value %s: %s", key.hex(), e)

    def stop(self) -> None:
        """Cancel the periodic tasks and close the socket; returns once the port
        is released (it can be listened on again at once). Nothing of this
        server keeps running afterwards."""
        for handle in (self.refresh_loop, self.save_state_loop, self._refresh_task):
            if handle is not None:
                handle.cancel()
        self.refresh_loop = self.save_state_loop = self._refresh_task = None
        if self._native is not None:
            self._native.shutdown()

    def _running(self) -> bool:
        return self._native is not None and not self._native.is_shut_down

    def refresh_table(self, interval: float = 3600) -> None:
        """Refresh the routing table now and then every ``interval`` seconds.

        ``interval`` must be a positive number (``InvalidArgumentError``
        otherwise); intervals under ``MIN_REFRESH_INTERVAL`` (1 s) are raised to
        it, so no interval can make the node spin. Unlike upstream, later periods
        keep ``interval`` (upstream falls back to 3600 s), calling it again
        replaces the schedule instead of starting a second chain, and nothing is
        scheduled once the server is stopped. The node also refreshes stale
        buckets on its own.
        """
        if not isinstance(interval, (int, float)) or not math.isfinite(interval) or interval <= 0:
            raise _kadmium.InvalidArgumentError(
                f"refresh_table interval must be a positive number of seconds (got {interval!r})"
            )
        interval = max(float(interval), MIN_REFRESH_INTERVAL)
        if self.refresh_loop is not None:
            self.refresh_loop.cancel()
            self.refresh_loop = None
        if not self._running():
            return
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.ensure_future(self._refresh_table())
        loop = asyncio.get_event_loop()
        self.refresh_loop = loop.call_later(interval, self.refresh_table, interval)

    async def _refresh_table(self) -> None:
        native = self._native
        if native is None or native.is_shut_down or not native.contacts():
            return
        try:
            # With no new addresses, bootstrap is a lookup of our own id seeded
            # from the table: it refreshes the buckets nearest to us.
            await native.bootstrap_async([])
        except KadmiumError as e:
            log.debug("table refresh failed: %s", e)

    # --- joining ---------------------------------------------------------------

    def bootstrappable_neighbors(self) -> List[Address]:
        """``(ip, port)`` of the k contacts nearest to our id (to pass to ``bootstrap`` later)."""
        if self._native is None:
            return []
        return [(ip, port) for _, ip, port in self._native.closest_contacts(self.ksize)]

    async def bootstrap(self, addrs: Iterable[Sequence[Any]]) -> List[Node]:
        """Join through the given ``(host, port)`` pairs; the k closest nodes found,
        or ``[]`` if nobody answered. An address that cannot be resolved or used is
        skipped with a warning (as one that does not answer); ``BadAddressError``
        only when that leaves none."""
        pairs = _address_pairs("addrs", addrs)
        log.debug("Attempting to bootstrap node with %i initial contacts", len(pairs))
        found = await self._node().bootstrap_async(pairs)
        return [Node(node_id, ip, port) for node_id, ip, port in found]

    async def bootstrap_node(self, addr: Sequence[Any]) -> Optional[Node]:
        """Ping one ``(host, port)``: its ``Node``, or None if it does not answer
        (also, with a warning, when the address cannot be resolved or used)."""
        host, port = _address_pair(addr)
        try:
            node_id = await self._node().ping_async(host, port)
        except OperationTimeoutError:
            return None
        except BadAddressError as e:
            log.warning("bootstrap_node: %s", e)
            return None
        return Node(node_id, host, port)

    # --- values ----------------------------------------------------------------

    async def get(self, key: object, *, timeout: Optional[float] = None) -> Value:
        """The value stored under ``key``, or None (also with no neighbours, and,
        as upstream's lookups give up, when the node's overall deadline passes:
        ``operation_timeout``, 10 s, logged as a warning).

        ``timeout`` (seconds, kadmium only): raise ``OperationTimeoutError`` after it."""
        log.info("Looking up key %s", key)
        if timeout is not None:
            timeout = _seconds("timeout", timeout)
        # get_digest's body, inlined: one coroutine less per call (~1 us).
        node, dkey = self._node(), digest(key)
        value: Value = node.local_value(dkey)
        if value is None:
            try:
                value = await node.get_async(dkey, timeout)
            except OperationTimeoutError:
                if timeout is not None:
                    raise
                return _gave_up("get", dkey, None)
        return value

    async def get_digest(self, dkey: bytes, *, timeout: Optional[float] = None) -> Value:
        """``get`` for a key that is already a 20-byte digest."""
        dkey, node, timeout = _check_digest(dkey), self._node(), _seconds("timeout", timeout)
        # Like upstream: a value this node holds is returned without network traffic.
        value: Value = node.local_value(dkey)
        if value is None:
            try:
                value = await node.get_async(dkey, timeout)
            except OperationTimeoutError:
                if timeout is not None:
                    raise
                return _gave_up("get", dkey, None)
        return value

    async def set(self, key: object, value: ValueType, *, ttl: Optional[float] = None) -> bool:
        """Store ``value`` under ``key``; True if at least one other node stored it,
        False with no neighbours. ``TypeError`` unless ``type(value)`` is exactly
        int, float, bool, str or bytes. ``ttl`` (seconds, kadmium only): lifetime
        of the value (default 24 hours, kadmium's default TTL)."""
        if not check_dht_value_type(value):
            raise TypeError("Value must be of type int, float, bool, str, or bytes")
        log.info("setting '%s' = '%s' on network", key, value)
        return await self.set_digest(digest(key), value, ttl=ttl)

    async def set_digest(self, dkey: bytes, value: Value, *, ttl: Optional[float] = None) -> bool:
        """``set`` for a key that is already a 20-byte digest. As upstream, the
        value is not type-checked here: anything msgpack can carry is stored
        (None, lists, tuples, dicts; tuples come back as lists); other types
        raise ``TypeError``."""
        dkey, ttl = _check_digest(dkey), _seconds("ttl", ttl)
        try:
            stored_remote, _, _ = await self._node().put_async(dkey, value, ttl)
        except NoPeersError:
            log.warning("There are no known neighbors to set key %s", dkey.hex())
            return False
        except OperationTimeoutError:
            # Upstream's set never raises for slow peers: False, as for no
            # peers (the value stays here and is republished).
            return _gave_up("set", dkey, False)
        return stored_remote > 0

    # --- signed and immutable records (kadmium only) ---------------------------

    async def set_signed(
        self,
        keypair: Keypair,
        value: bytes,
        *,
        salt: bytes = b"",
        seq: Optional[int] = None,
        cas: Optional[int] = None,
        ttl: Optional[float] = None,
    ) -> int:
        """Sign ``value`` with ``keypair`` and store it under SHA-1(public key ‖
        ``salt``); the sequence number used (``seq=None``: one more than the
        newest found). ``cas``: fail with ``CasMismatchError`` unless the newest
        record has that sequence number. A ``seq`` not above the newest raises
        ``InvalidSignatureError``; ``ttl`` (seconds) is signed into the record."""
        return await _kadmium.put_signed_async(
            self._node(), keypair, value, salt=salt, seq=seq, cas=cas, ttl=_seconds("ttl", ttl)
        )

    async def get_signed(self, public_key: bytes, *, salt: bytes = b"") -> Optional[SignedValue]:
        """The newest valid record under SHA-1(``public_key`` ‖ ``salt``), or None
        (never stored, deleted, or expired)."""
        return await _kadmium.get_signed_async(self._node(), public_key, salt=salt)

    async def delete_signed(self, keypair: Keypair, *, salt: bytes = b"") -> int:
        """Replace the record with a signed tombstone; the tombstone's sequence number."""
        return await _kadmium.delete_signed_async(self._node(), keypair, salt=salt)

    async def set_immutable(self, value: bytes) -> bytes:
        """Store ``value`` under the digest of its content; that 20-byte digest."""
        return await _kadmium.put_immutable_async(self._node(), value)

    async def get_immutable(self, digest: bytes) -> Optional[bytes]:
        """The value stored by ``set_immutable`` under ``digest`` (checked by
        hashing), or None."""
        return await _kadmium.get_immutable_async(self._node(), digest)

    # --- state -----------------------------------------------------------------

    def save_state(self, fname: str) -> None:
        """Pickle ``{"ksize", "alpha", "id", "neighbors"}`` to ``fname`` (nothing
        is written without neighbours), in the same shape as upstream."""
        log.info("Saving state to %s", fname)
        data = {
            "ksize": self.ksize,
            "alpha": self.alpha,
            "id": self.node.id,
            "neighbors": self.bootstrappable_neighbors(),
        }
        if not data["neighbors"]:
            log.warning("No known neighbors, so not writing to cache.")
            return
        with open(fname, "wb") as file:
            pickle.dump(data, file)

    @classmethod
    async def load_state(cls: Type[S], fname: str, port: int, interface: str = "0.0.0.0") -> S:
        """A server with the saved ksize/alpha/id, listening on ``interface:port``
        and bootstrapped from the saved neighbours."""
        log.info("Loading state from %s", fname)
        with open(fname, "rb") as file:
            data: Dict[str, Any] = pickle.load(file)
        svr = cls(data["ksize"], data["alpha"], data["id"])
        await svr.listen(port, interface)
        if data["neighbors"]:
            try:
                await svr.bootstrap(data["neighbors"])
            except BadAddressError as e:
                # Saved neighbours gone stale: a server that knows nobody, as
                # upstream's would be (raising would leave it listening unseen).
                log.warning("load_state: no saved neighbour is usable: %s", e)
        return svr

    def save_state_regularly(self, fname: str, frequency: float = 600) -> None:
        """``save_state`` now and then every ``frequency`` seconds (at least 1 s;
        nothing is scheduled once the server is stopped)."""
        if not isinstance(frequency, (int, float)) or not math.isfinite(frequency) or frequency <= 0:
            raise _kadmium.InvalidArgumentError(
                f"save_state_regularly frequency must be a positive number of seconds (got {frequency!r})"
            )
        frequency = max(float(frequency), MIN_REFRESH_INTERVAL)
        if self.save_state_loop is not None:
            self.save_state_loop.cancel()
            self.save_state_loop = None
        self.save_state(fname)
        if not self._running():
            return
        loop = asyncio.get_event_loop()
        self.save_state_loop = loop.call_later(
            frequency, self.save_state_regularly, fname, frequency
        )

    # --- kadmium extras --------------------------------------------------------

    def stats(self) -> Dict[str, int]:
        """The node's counters (datagrams, RPCs, lookups) and gauges (contacts,
        values_stored, stored_bytes, pending_rpcs)."""
        return self._node().stats()

    def public_address(self) -> Optional[Tuple[str, int]]:
        """This node's ``(host, port)`` as its peers see it (behind a NAT, the
        NAT's address), or None until at least two peer IPs agree on it (one
        lying peer cannot set it), and before ``listen``. Only kadmium peers
        report it (``kademlia`` peers do not); loopback and private addresses
        count like public ones."""
        if self._native is None:
            return None
        return self._native.public_address

    def routing_table(self) -> List[Node]:
        """Every contact in the routing table."""
        if self._native is None:
            return []
        return [Node(node_id, ip, port) for node_id, ip, port in self._native.contacts()]
