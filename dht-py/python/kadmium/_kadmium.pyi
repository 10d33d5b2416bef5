"""The native module (Rust, pyo3). Private: use ``kadmium.Server`` / ``kadmium.DHT``."""

from pathlib import Path
from typing import Any, Awaitable, Dict, List, Optional, Sequence, Tuple, final

__all__ = [
    "__version__",
    "LOGGER_PREFIX",
    "Node",
    "digest",
    "KadmiumError",
    "InvalidArgumentError",
    "ValueTooLargeError",
    "NoPeersError",
    "OperationTimeoutError",
    "BadAddressError",
    "NetworkError",
    "StorageFullError",
    "BusyError",
    "ShutdownError",
    "CasMismatchError",
    "InvalidSignatureError",
    "Keypair",
    "SignedValue",
    "put_signed",
    "put_signed_async",
    "get_signed",
    "get_signed_async",
    "delete_signed",
    "delete_signed_async",
    "put_immutable",
    "put_immutable_async",
    "get_immutable",
    "get_immutable_async",
    "ApiServer",
    "parse_voidphone_config",
    "ConfigError",
    "PersistenceError",
]

__version__: str
#: Parent of the Python loggers Rust events go to ("kademlia.kadmium").
LOGGER_PREFIX: str

# ``host: str = ...``: Node.bind's default is "0.0.0.0", ApiServer.start's
# "127.0.0.1" (pyo3 does not expose string defaults, so stubtest cannot check them);
# ``salt: bytes = ...`` in the record functions is b"" for the same reason.

#: msgpack data: None, bool, int, float, str, bytes, and lists/tuples/dicts of them.
_Value = Any
#: ``(id, ip, port)``
_Contact = Tuple[bytes, str, int]
#: ``(stored_remote, stored_locally, contacted)``
_PutReport = Tuple[int, bool, int]

class KadmiumError(Exception): ...
class InvalidArgumentError(KadmiumError): ...
class ValueTooLargeError(KadmiumError): ...
class NoPeersError(KadmiumError): ...
class OperationTimeoutError(KadmiumError): ...
class BadAddressError(KadmiumError, OSError): ...
class NetworkError(KadmiumError, OSError): ...
class StorageFullError(KadmiumError): ...
class BusyError(KadmiumError): ...
class ShutdownError(KadmiumError): ...
class CasMismatchError(KadmiumError): ...
class InvalidSignatureError(KadmiumError): ...
class ConfigError(KadmiumError): ...
class PersistenceError(KadmiumError): ...

@final
class Node:
    """A running node. Blocking methods release the GIL; ``*_async`` return awaitables."""

    @staticmethod
    def bind(
        host: str = ...,
        port: int = 0,
        *,
        k: int = 20,
        alpha: int = 3,
        node_id: Optional[bytes] = None,
        rpc_timeout: Optional[float] = None,
        max_value_size: Optional[int] = None,
        default_ttl: Optional[float] = None,
        storage: Optional[Any] = None,
        client_only: bool = False,
        strict_local_limits: bool = False,
        data_dir: Optional[str] = None,
        unix_time_at_start: Optional[float] = None,
        values_of: Optional[Node] = None,
    ) -> Node: ...
    @staticmethod
    def bind_async(
        host: str = ...,
        port: int = 0,
        *,
        k: int = 20,
        alpha: int = 3,
        node_id: Optional[bytes] = None,
        rpc_timeout: Optional[float] = None,
        max_value_size: Optional[int] = None,
        default_ttl: Optional[float] = None,
        storage: Optional[Any] = None,
        client_only: bool = False,
        strict_local_limits: bool = False,
        data_dir: Optional[str] = None,
        unix_time_at_start: Optional[float] = None,
        values_of: Optional[Node] = None,
    ) -> Awaitable[Node]: ...
    @property
    def id(self) -> bytes: ...
    @property
    def local_addr(self) -> Tuple[str, int]: ...
    @property
    def public_address(self) -> Optional[Tuple[str, int]]: ...
    @property
    def k(self) -> int: ...
    @property
    def alpha(self) -> int: ...
    @property
    def max_value_size(self) -> int: ...
    @property
    def is_shut_down(self) -> bool: ...
    def bootstrap(self, addrs: Sequence[Tuple[str, int]]) -> List[_Contact]: ...
    def bootstrap_async(self, addrs: Sequence[Tuple[str, int]]) -> Awaitable[List[_Contact]]: ...
    def put(self, key: bytes, value: _Value, *, ttl: Optional[float] = None) -> _PutReport: ...
    def put_async(
        self, key: bytes, value: _Value, ttl: Optional[float] = None
    ) -> Awaitable[_PutReport]: ...
    def get(
        self, key: bytes, *, timeout: Optional[float] = None, default: Any = None
    ) -> _Value: ...
    def get_async(
        self, key: bytes, timeout: Optional[float] = None, *, default: Any = None
    ) -> Awaitable[_Value]: ...
    def local_value(self, key: bytes, default: Any = None) -> _Value: ...
    def store_local(self, key: bytes, value: _Value, *, ttl: Optional[float] = None) -> None: ...
    def ping(self, host: str, port: int) -> bytes: ...
    def ping_async(self, host: str, port: int) -> Awaitable[bytes]: ...
    def held(self) -> Optional[List[Tuple[bytes, _Value, float]]]: ...
    def contacts(self) -> List[_Contact]: ...
    def closest_contacts(self, n: int) -> List[_Contact]: ...
    def import_contacts(self, contacts: Sequence[_Contact]) -> int: ...
    def stats(self) -> Dict[str, int]: ...
    def shutdown(self, wait: bool = True) -> None: ...
    def shutdown_async(self) -> Awaitable[None]: ...
    @property
    def is_closed(self) -> bool: ...

# --- the VoidPhone DHT API (src/voidphone.rs) ---
#: ``(host, port)``
_Address = Tuple[str, int]

@final
class ApiServer:
    """A running VoidPhone DHT API server (TCP) serving one node."""

    @staticmethod
    def start(
        node: Node,
        host: str = ...,
        port: int = 0,
        *,
        max_connections: int = 1024,
        max_in_flight: int = 64,
        max_ttl: Optional[float] = None,
        request_timeout: Optional[float] = None,
    ) -> ApiServer: ...
    @staticmethod
    def start_async(
        node: Node,
        host: str = ...,
        port: int = 0,
        *,
        max_connections: int = 1024,
        max_in_flight: int = 64,
        max_ttl: Optional[float] = None,
        request_timeout: Optional[float] = None,
    ) -> Awaitable[ApiServer]: ...
    @property
    def local_addr(self) -> _Address: ...
    @property
    def active_connections(self) -> int: ...
    @property
    def is_shut_down(self) -> bool: ...
    def shutdown(self) -> None: ...

def digest(string: object) -> bytes:
    """SHA-1 of ``string``: bytes as they are, anything else as ``str(string)`` in UTF-8."""

def parse_voidphone_config(
    path: str,
) -> Tuple[Optional[_Address], Optional[_Address], List[_Address], Optional[Path]]: ...

@final
class Keypair:
    """An ed25519 key pair: the right to publish under SHA-1(public key ‖ salt)."""

    @staticmethod
    def generate() -> Keypair: ...
    @staticmethod
    def from_secret(secret: bytes) -> Keypair: ...
    @property
    def secret(self) -> bytes: ...
    @property
    def public_key(self) -> bytes: ...

@final
class SignedValue:
    """The current value of a signed record."""

    @property
    def value(self) -> bytes: ...
    @property
    def seq(self) -> int: ...
    @property
    def public_key(self) -> bytes: ...
    @property
    def salt(self) -> bytes: ...

def put_signed(
    node: Node,
    keypair: Keypair,
    value: bytes,
    *,
    salt: bytes = ...,
    seq: Optional[int] = None,
    cas: Optional[int] = None,
    ttl: Optional[float] = None,
) -> int: ...
def put_signed_async(
    node: Node,
    keypair: Keypair,
    value: bytes,
    *,
    salt: bytes = ...,
    seq: Optional[int] = None,
    cas: Optional[int] = None,
    ttl: Optional[float] = None,
) -> Awaitable[int]: ...
def get_signed(node: Node, public_key: bytes, *, salt: bytes = ...) -> Optional[SignedValue]: ...
def get_signed_async(node: Node, public_key: bytes, *, salt: bytes = ...) -> Awaitable[Optional[SignedValue]]: ...
def delete_signed(node: Node, keypair: Keypair, *, salt: bytes = ...) -> int: ...
def delete_signed_async(node: Node, keypair: Keypair, *, salt: bytes = ...) -> Awaitable[int]: ...
def put_immutable(node: Node, value: bytes) -> bytes: ...
def put_immutable_async(node: Node, value: bytes) -> Awaitable[bytes]: ...
def get_immutable(node: Node, digest: bytes) -> Optional[bytes]: ...
def get_immutable_async(node: Node, digest: bytes) -> Awaitable[Optional[bytes]]: ...
