"""kadmium: a Kademlia DHT in Rust, for Python.

- ``kadmium.Server``: drop-in for ``kademlia.network.Server`` (asyncio).
- ``kadmium.DHT``: a blocking, dict-like node for scripts.
- ``kadmium.Keypair``: signed records (``Server.set_signed``/``get_signed``,
  ``DHT.set_signed``/``get_signed``), and immutable ones (``set_immutable``).
- ``kadmium.utils.digest``: the key hash, identical to ``kademlia.utils.digest``.

Logging: every kadmium message (Python and Rust) goes to a logger under
``kadmium.LOGGER`` ("kademlia.kadmium"), so configuring the "kademlia" logger
as upstream scripts do controls them; Rust module ``dht_core::protocol`` logs
to "kademlia.kadmium.dht_core.protocol".

Every error kadmium raises derives from ``kadmium.KadmiumError`` (apart from
``TypeError`` for values of the wrong type, as upstream).
"""

from kadmium._kadmium import LOGGER_PREFIX as LOGGER
from kadmium._kadmium import (
    BadAddressError,
    BusyError,
    CasMismatchError,
    ConfigError,
    InvalidArgumentError,
    InvalidSignatureError,
    KadmiumError,
    Keypair,
    NetworkError,
    NoPeersError,
    OperationTimeoutError,
    PersistenceError,
    ShutdownError,
    SignedValue,
    StorageFullError,
    ValueTooLargeError,
    __version__,
)
from kadmium.dht import DHT
from kadmium.network import Server, check_dht_value_type
from kadmium.node import Node
from kadmium.storage import ForgetfulStorage, IStorage
from kadmium.utils import digest

__all__ = [
    "DHT",
    "BadAddressError",
    "BusyError",
    "CasMismatchError",
    "ConfigError",
    "ForgetfulStorage",
    "IStorage",
    "InvalidArgumentError",
    "InvalidSignatureError",
    "KadmiumError",
    "Keypair",
    "LOGGER",
    "NetworkError",
    "NoPeersError",
    "Node",
    "OperationTimeoutError",
    "PersistenceError",
    "Server",
    "ShutdownError",
    "SignedValue",
    "StorageFullError",
    "ValueTooLargeError",
    "__version__",
    "check_dht_value_type",
    "digest",
]
