"""The VoidPhone DHT API (the TUM P2PSEC course interface) for kadmium nodes.

- ``ApiServer.start(node, host, port)``: serve the TCP API from a running
  ``kadmium._kadmium.Node`` (``Server._node()``); implemented in Rust
  (crate ``dht-voidphone``).
- ``read_config(path)``: the ``[dht]`` section of a course INI file
  (``p2p_address``/``listen_address``, ``api_address``,
  ``bootstrapper``/``bootstrap_node``); errors are ``ConfigError`` with a
  one-line message naming the file, line and key. A file may leave the P2P
  address to ``-a``/``-p``.
- The ``kadmium node`` options ``-c/--config FILE`` and ``--api HOST:PORT``:
  ``add_node_options``, ``apply_config`` and the ``serve_api`` node service,
  wired into ``kadmium.cli``.

``kadmium node`` serves the API by default, as DHT-8's ``main.py`` does: on the
P2P host and port + 1000 (``-a 127.0.0.1 -p 6501`` answers on 127.0.0.1:7501),
or where ``--api`` / the config file's ``api_address`` say; ``--no-api`` turns
it off. The API accepts unauthenticated PUTs from anyone who can reach it, so
the node prints a warning when it listens on a non-loopback address.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable, List, Optional, Tuple

from kadmium._kadmium import ApiServer, ConfigError, parse_voidphone_config

if TYPE_CHECKING:  # cli imports this module; the import is for types only
    from kadmium.cli import NodeSettings
    from kadmium.network import Server

__all__ = [
    "ApiServer",
    "ConfigError",
    "VoidPhoneConfig",
    "add_node_options",
    "apply_config",
    "configured_bootstrap",
    "default_api_address",
    "read_config",
    "serve_api",
]

Address = Tuple[str, int]


@dataclass
class VoidPhoneConfig:
    """The ``[dht]`` section: ``p2p`` and ``api`` are None when the file does not set them."""

    p2p: Optional[Address]
    api: Optional[Address] = None
    bootstrap: List[Address] = field(default_factory=list)
    data_dir: Optional[str] = None


def read_config(path: str) -> VoidPhoneConfig:
    """Parse a course INI file (host names are resolved here). Raises ``ConfigError``."""
    p2p, api, bootstrap, data_dir = parse_voidphone_config(path)
    return VoidPhoneConfig(p2p, api, list(bootstrap), None if data_dir is None else str(data_dir))


def default_api_address(p2p: Address) -> Address:
    """The P2P host with port + 1000 (port 0, "any free port", stays 0)."""
    host, port = p2p
    if port == 0:
        return host, 0
    if port + 1000 > 65535:
        raise ConfigError(
            f"no default API address for P2P port {port} (port + 1000 exceeds 65535); "
            "set --api or api_address")
    return host, port + 1000


def _api_address(text: str) -> Address:
    """``HOST:PORT`` or ``[v6]:PORT``; port 0 means any free port."""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return resolvable_host(host), int(port)


def resolvable_host(text: str) -> str:
    """An argparse type: a host name or address that resolves (checked now, so a
    typo is one line naming its flag, not an error once the node has started)."""
    try:
        socket.getaddrinfo(text, None)
    except (socket.gaierror, UnicodeError):
        raise argparse.ArgumentTypeError(f"cannot resolve host {text!r}") from None
    return text


def add_node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-c", "--config", metavar="FILE",
                   help="course-style INI file: [dht] p2p_address (or listen_address), "
                        "api_address, bootstrapper (or bootstrap_node), data_dir; flags override it")
    api = p.add_mutually_exclusive_group()
    api.add_argument("--api", metavar="HOST:PORT", type=_api_address,
                     help="serve the VoidPhone DHT API over TCP here "
                          "(default: the config file's api_address, else the P2P host and port + 1000)")
    api.add_argument("--no-api", action="store_true", help="do not serve the VoidPhone DHT API")


def apply_config(args: argparse.Namespace, settings: "NodeSettings") -> None:
    """Fill what the command line left unset from ``-c FILE``, and settle the
    API address in ``args.api`` (None: no API server)."""
    config: Optional[str] = getattr(args, "config", None)
    if config is not None and not os.path.isfile(config):
        # A file that is not there is a usage error; what a file holds is not.
        what = "is not a file" if os.path.exists(config) else "does not exist"
        raise argparse.ArgumentTypeError(f"argument -c/--config: {config} {what}")
    conf = read_config(config) if config is not None else None
    args.configured_bootstrap = list(conf.bootstrap) if conf is not None else []
    if conf is not None:
        if conf.p2p is None:
            # The host has its default; a port, the file or the flag must give.
            if args.port is None:
                raise ConfigError(f"{config}: [dht]: p2p_address (or listen_address) is missing; "
                                  "set it or give -p/--port")
        else:
            if args.host is None:
                settings.host = conf.p2p[0]
            if args.port is None:
                settings.port = conf.p2p[1]
        if not args.bootstrap:
            settings.bootstrap = list(conf.bootstrap)
        if getattr(args, "data_dir", None) is None and conf.data_dir is not None:
            settings.data_dir = conf.data_dir
    if getattr(args, "no_api", False):
        args.api = None
    elif getattr(args, "api", None) is None:
        if conf is not None and conf.api is not None:
            args.api = conf.api
        else:
            try:
                args.api = default_api_address((settings.host, settings.port))
            except ConfigError as e:
                if conf is None or args.port is not None:
                    # The port came from -p: name it, as a usage error.
                    raise argparse.ArgumentTypeError(f"argument -p/--port: {e}") from None
                # The port came from the file: say which.
                raise ConfigError(f"{config}: {e}") from None


def configured_bootstrap(args: argparse.Namespace) -> List[Address]:
    """The config file's bootstrapper(s) (after ``apply_config``); [] without ``-c``."""
    found: List[Address] = getattr(args, "configured_bootstrap", [])
    return found


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` counts)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def show_address(addr: Address) -> str:
    """``host:port``, with the host in brackets when it is IPv6."""
    host, port = addr
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def serve_api(
    server: "Server", args: argparse.Namespace
) -> Optional[Callable[[], Awaitable[None]]]:
    """A ``kadmium node`` service: start the API server if ``args.api`` is set."""
    addr: Optional[Address] = getattr(args, "api", None)
    if addr is None:
        return None
    api = await ApiServer.start_async(server._node(), addr[0], addr[1])
    shown = show_address(api.local_addr)
    args.api_listening = shown
    print(f"VoidPhone DHT API listening on {shown}", flush=True)
    if not is_loopback(api.local_addr[0]):
        print(f"warning: the VoidPhone DHT API on {shown} accepts unauthenticated PUTs and GETs "
              "from anyone who can reach it; use -a 127.0.0.1, --api 127.0.0.1:PORT or --no-api "
              "unless that is what you want", file=sys.stderr, flush=True)

    async def stop() -> None:
        api.shutdown()

    return stop

