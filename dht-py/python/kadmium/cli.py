"""The ``kadmium`` command (also ``python -m kadmium``).

    kadmium node [-a HOST] [-p PORT] [--bootstrap HOST:PORT ...]   run a node in the foreground
    kadmium put --bootstrap HOST:PORT KEY VALUE                      store one value
    kadmium get --bootstrap HOST:PORT KEY                            fetch one value
    kadmium keygen FILE                                              new ed25519 key (hex secret, mode 0600)
    kadmium put --bootstrap HOST:PORT --key FILE [--salt S] VALUE    store a signed value (replaces the last)
    kadmium get --bootstrap HOST:PORT --public-key HEX [--salt S]    fetch a signed value
    kadmium demo [--nodes N]                                         a local network doing real puts and gets

This module holds the parser, the entry point and ``kadmium node``; ``cli_records``
holds ``put``, ``get`` and ``keygen``, ``cli_demo`` holds ``demo``.

Adding to ``kadmium node``: put new options in ``add_node_options``, let
``node_settings`` fill ``NodeSettings`` from them (a config file, for instance,
fills what the command line left unset), and start extra services from
``NODE_SERVICES`` (each gets the running server and returns its stop function).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import logging
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, Tuple

from kadmium import __version__, _kadmium, voidphone
from kadmium._kadmium import KadmiumError, NetworkError, ValueTooLargeError
from kadmium.cli_demo import run_demo
from kadmium.cli_records import (
    CONVERTERS,
    check_record_args,
    convert_value,
    public_key_hex,
    run_get,
    run_keygen,
    run_put,
    salt_text,
)
from kadmium.network import Server

Address = Tuple[str, int]


def parse_address(text: str) -> Address:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) -> ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def port_number(text: str) -> int:
    """A UDP/TCP port, 0 (any free port) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def _number(kind: Callable[[str], Any], minimum: float, what: str,
            maximum: float = float("inf")) -> Callable[[str], Any]:
    """An argparse type: ``kind(text)``, at least ``minimum``, at most ``maximum`` (finite)."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not minimum <= value <= maximum or value in (float("inf"),):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


positive_int = _number(int, 1, "a positive integer")
#: Largest value one UDP datagram carries with a STORE around it (65,422 bytes
#: between kadmium nodes), rounded down.
MAX_DATAGRAM_VALUE = 65_400
#: A node's largest value by default: what Python kademlia peers carry.
DEFAULT_MAX_VALUE = 8_137
positive_seconds = _number(float, 1e-3, "a positive number of seconds")


def directory(text: str) -> str:
    """A data directory: any path but the empty one (which names no directory)."""
    if not text:
        raise argparse.ArgumentTypeError("expected a directory, got an empty path")
    return text


def ttl_seconds(text: str) -> float:
    """A positive TTL; huge ones (1e20, inf) are allowed and capped at 7 days by the node."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not value >= 1e-9:  # the node's clock counts nanoseconds
        raise argparse.ArgumentTypeError(
            f"expected a positive number of seconds (at least 1e-9), got {text!r}")
    return value


# --- kadmium node -------------------------------------------------------------


@dataclass
class NodeSettings:
    """Everything ``kadmium node`` needs to start, whatever it was read from."""

    host: str = "0.0.0.0"
    port: int = 0
    strict_local_limits: bool = False
    data_dir: Optional[str] = None
    bootstrap: List[Address] = field(default_factory=list)
    ksize: int = 20
    alpha: int = 3
    status_interval: float = 10.0
    testing_clock_offset: Optional[float] = None
    max_value_size: Optional[int] = None


#: A service started beside the node: ``await service(server, args)`` starts it
#: and returns the function that stops it (or None if it has nothing to stop).
NodeService = Callable[
    [Server, argparse.Namespace], Awaitable[Optional[Callable[[], Awaitable[None]]]]
]
NODE_SERVICES: List[NodeService] = []
NODE_SERVICES.append(voidphone.serve_api)  # --api / -c: the VoidPhone DHT API


def add_node_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("-a", "--host", type=voidphone.resolvable_host,
                   help="address to bind (default 0.0.0.0)")
    p.add_argument("-p", "--port", type=port_number, help="UDP port (default 0: any free port)")
    p.add_argument("--bootstrap", metavar="HOST:PORT", type=parse_address, action="append",
                   nargs="?", const=CONFIGURED_BOOTSTRAPPER, default=[],
                   help="a node to join through (repeatable); without a value, the "
                        "bootstrapper of the config file (-c)")
    # The node's own limits (dht-core's Config::validate), checked here to name the flag.
    p.add_argument("--ksize", type=_number(int, 1, "an integer from 1 to 1000", 1000), default=20,
                   help="replication factor and bucket size k (default 20)")
    p.add_argument("--alpha", type=_number(int, 1, "an integer from 1 to 100", 100), default=3,
                   help="lookup parallelism (default 3)")
    p.add_argument("--max-value-size", metavar="BYTES",
                   type=_number(int, 1, "a byte count from 1 to 65400", MAX_DATAGRAM_VALUE),
                   help="largest value stored (default 8137, what Python kademlia peers carry; "
                        f"up to {MAX_DATAGRAM_VALUE} on networks of kadmium nodes only). "
                        "A VoidPhone API PUT over it closes its connection")
    p.add_argument("--data-dir", metavar="DIR", type=directory,
                   help="keep the node's values and contacts in DIR across restarts "
                        "(default: the config file's data_dir, else nothing is kept)")
    p.add_argument("--strict-local-limits", action="store_true",
                   help="apply the per-IP limits to loopback and private addresses too")
    p.add_argument("--status-interval", type=positive_seconds, default=10.0, metavar="SECONDS",
                   help="seconds between status lines (default 10)")
    p.add_argument("--testing-clock-offset", default=None, metavar="SECONDS",
                   type=_number(float, -1e12, "a number of seconds", 1e12),
                   help="for tests only: the node's wall clock runs SECONDS ahead of the "
                        "system's (values saved in --data-dir expire as if the node had "
                        "been down that much longer)")
    voidphone.add_node_options(p)  # -c/--config FILE, --api HOST:PORT


#: ``--bootstrap`` given without a value: join through the config file's bootstrapper.
CONFIGURED_BOOTSTRAPPER = ("<configured bootstrapper>", 0)


class UsageError(Exception):
    """A bad combination of arguments: reported as one line naming the argument."""


def node_settings(args: argparse.Namespace) -> NodeSettings:
    s = NodeSettings(ksize=args.ksize, alpha=args.alpha, status_interval=args.status_interval,
                     strict_local_limits=args.strict_local_limits, data_dir=args.data_dir,
                     testing_clock_offset=args.testing_clock_offset,
                     max_value_size=args.max_value_size)
    if args.host is not None:
        s.host = args.host
    if args.port is not None:
        s.port = args.port
    wants_configured = CONFIGURED_BOOTSTRAPPER in args.bootstrap
    args.bootstrap = [a for a in args.bootstrap if a != CONFIGURED_BOOTSTRAPPER]
    s.bootstrap.extend(args.bootstrap)
    voidphone.apply_config(args, s)  # -c FILE fills what the flags left unset
    if wants_configured:
        configured = voidphone.configured_bootstrap(args)
        if not configured:
            raise UsageError("--bootstrap without a value needs a bootstrapper: give -c FILE "
                             "whose [dht] section sets bootstrapper, or --bootstrap HOST:PORT")
        s.bootstrap.extend(a for a in configured if a not in s.bootstrap)
    return s


def _status_line(stats: Dict[str, int], last: Dict[str, int], elapsed: float, api: str = "off") -> str:
    def rate(name: str) -> float:
        return (stats[name] - last.get(name, 0)) / elapsed if elapsed > 0 else 0.0

    return (
        f"{time.strftime('%H:%M:%S')} contacts={stats['contacts']} values={stats['values_stored']}"
        f" bytes={stats['stored_bytes']} rx={rate('datagrams_received'):.1f}/s"
        f" tx={rate('datagrams_sent'):.1f}/s requests={rate('requests_received'):.1f}/s"
        f" rpc_timeouts={stats['rpc_timeouts']} api={api}"
    )


async def _cancelled(task: "asyncio.Future[Any]") -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _unless_stopped(stop: asyncio.Event, work: Awaitable[Any]) -> Tuple[bool, Any]:
    """``(True, await work)``, or ``(False, None)`` if ``stop`` is set first (``work``
    is then cancelled): a Ctrl-C must not wait for a join that may take seconds."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if stop.is_set():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return False, None
    return True, task.result()


#: Seconds between tries of the bootstrap seeds while the node knows nobody:
#: doubling from the first figure up to the second.
REJOIN_BACKOFF = (1.0, 60.0)


async def _rejoin_while_alone(server: Server, seeds: List[Address], stop: asyncio.Event) -> None:
    """Try the seeds again whenever the node has no contacts: they may not be up yet
    (a script starting a whole network at once), or every contact may have gone. A
    node that stayed alone used to stay alone for good."""
    delay = REJOIN_BACKOFF[0]
    while True:
        awake, _ = await _unless_stopped(stop, asyncio.sleep(delay))
        if not awake:
            return
        if server.stats()["contacts"] > 0:
            delay = REJOIN_BACKOFF[0]
            continue
        try:
            joined, found = await _unless_stopped(stop, server.bootstrap(seeds))
        except KadmiumError as e:  # e.g. no seed resolves just now: try again later
            logging.getLogger(__name__).debug("bootstrap retry failed: %s", e)
            joined, found = True, []
        if not joined:
            return
        if found:
            print(f"bootstrapped: {len(found)} contacts found", flush=True)
            delay = REJOIN_BACKOFF[0]
        else:
            delay = min(delay * 2, REJOIN_BACKOFF[1])


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows: KeyboardInterrupt instead
            pass


async def run_node(args: argparse.Namespace) -> int:
    settings = node_settings(args)
    server = Server(ksize=settings.ksize, alpha=settings.alpha,
                    strict_local_limits=settings.strict_local_limits, data_dir=settings.data_dir,
                    max_value_size=settings.max_value_size)
    if settings.testing_clock_offset is not None:
        server._unix_time_at_start = time.time() + settings.testing_clock_offset
    try:
        await server.listen(settings.port, settings.host)
    except NetworkError as e:
        # Name the address, as the API server's error does (a port in use).
        where = voidphone.show_address((settings.host, settings.port))
        raise NetworkError(f"cannot listen on {where}: {e}") from None
    # Signals are caught before the line saying the node is up: from then on
    # Ctrl-C stops it the orderly way, whatever it is doing.
    stop = asyncio.Event()
    _stop_on_signals(stop)
    shown = voidphone.show_address((str(server.node.ip), int(server.node.port or 0)))
    print(f"kadmium node {server.node.id.hex()} listening on {shown}", flush=True)
    stoppers: List[Callable[[], Awaitable[None]]] = []
    try:
        if settings.bootstrap:
            joined, found = await _unless_stopped(stop, server.bootstrap(settings.bootstrap))
            if joined:
                print(f"bootstrapped: {len(found)} contacts found", flush=True)
                if not found:
                    print("warning: no bootstrap seed answered; trying them again while "
                          "the node has no contacts", file=sys.stderr, flush=True)
            rejoining = asyncio.ensure_future(
                _rejoin_while_alone(server, settings.bootstrap, stop))
            stoppers.append(functools.partial(_cancelled, rejoining))
        for service in NODE_SERVICES:
            if stop.is_set():  # stopped while joining or starting: start nothing more
                break
            stopper = await service(server, args)
            if stopper is not None:
                stoppers.append(stopper)
        last: Dict[str, int] = {}
        last_time = time.monotonic()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), settings.status_interval)
            except asyncio.TimeoutError:
                pass
            stats, now = server.stats(), time.monotonic()
            api = getattr(args, "api_listening", None) or "off"
            print(_status_line(stats, last, now - last_time, api), flush=True)
            last, last_time = stats, now
    finally:
        for stopper in reversed(stoppers):
            await stopper()
        server.stop()
    print("stopped", flush=True)
    return 0


# --- entry point ---------------------------------------------------------------------


_NEGATIVE_NUMBER = re.compile(r"^-\.?\d")


def _take_late_positionals(args: argparse.Namespace, extras: List[str],
                           parser: argparse.ArgumentParser) -> None:
    """argparse fills optional positionals at their first chance: in
    ``put ... k --type int 5`` KEY takes ``k``, VALUE takes nothing there, and ``5``
    is left over. Give leftovers to the positionals still unset, in order; anything
    else left over is an error of the subcommand that names it."""
    sub: Optional[argparse.ArgumentParser] = getattr(args, "subparser", None)
    unset = [name for name in ("key", "value") if hasattr(args, name)
             and getattr(args, name) is None]
    if sub is not None and len(extras) <= len(unset) and not any(
            e.startswith("-") and not _NEGATIVE_NUMBER.match(e) for e in extras):
        for name, text in zip(unset, extras):
            setattr(args, name, text)
        return
    (sub or parser).error(f"unrecognized arguments: {' '.join(extras)}")


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument, without argparse's usage block
    (``--help`` still shows it). Subcommands' parsers are of this class too."""

    def error(self, message: str) -> Any:  # argparse's NoReturn, loosened for subclasses
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog="kadmium", description="kadmium: a Kademlia DHT in Rust")
    parser.add_argument("--version", action="version", version=f"kadmium {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    node = sub.add_parser("node", help="run a node in the foreground (Ctrl-C stops it)")
    add_node_options(node)
    node.set_defaults(run=run_node)

    for name, run, helptext in (("put", run_put, "store one value"),
                                ("get", run_get, "fetch one value")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--bootstrap", metavar="HOST:PORT", type=parse_address, action="append",
                       required=True, help="a node of the network (repeatable)")
        p.add_argument("--interface", type=voidphone.resolvable_host,
                       help="local address to bind (default: any)")
        p.add_argument("--full-node", action="store_true",
                       help="let other nodes add this one to their routing tables while it runs "
                            "(default: client-only, as a one-shot command should be)")
        p.add_argument("--salt", default="", type=salt_text,
                       help="salt of the signed record, at most 64 bytes (default empty)")
        p.add_argument("key", nargs="?", metavar="KEY")
        p.set_defaults(run=run, subparser=p)
    put = sub.choices["put"]
    put.add_argument("value", nargs="?", metavar="VALUE")
    put.add_argument("--type", choices=sorted(CONVERTERS),
                     help="type the value is stored as (default str)")
    put.add_argument("--key", dest="key_file", metavar="FILE",
                     help="store VALUE signed with the secret in FILE (from kadmium keygen), "
                          "under the key's public key and --salt")
    sub.choices["get"].add_argument("--public-key", type=public_key_hex, metavar="HEX",
                                    help="fetch the signed value of this public key and --salt")
    put.add_argument("--ttl", type=ttl_seconds,
                     help="lifetime in seconds (default 24 hours; longer asks are capped at 7 days)")
    sub.choices["get"].add_argument("--timeout", type=positive_seconds, help="give up after SECONDS")

    keygen = sub.add_parser("keygen", help="write a new ed25519 secret key to FILE (prints the public key)")
    keygen.add_argument("file", metavar="FILE")
    keygen.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    keygen.set_defaults(run=run_keygen)

    demo = sub.add_parser("demo", help="run a local network doing puts and gets, then a summary")
    demo.add_argument("--nodes", type=_number(int, 2, "an integer of at least 2"), default=32,
                      help="nodes (default 32)")
    demo.add_argument("--ops", type=positive_int, default=200, help="puts, then as many gets (default 200)")
    demo.add_argument("--concurrency", type=positive_int, default=16,
                      help="operations in flight (default 16)")
    demo.add_argument("--value-size", default=100,
                      type=_number(int, 0, f"a byte count from 0 to {DEFAULT_MAX_VALUE}",
                                   DEFAULT_MAX_VALUE),
                      help="bytes per value (default 100)")
    demo.add_argument("--seed", type=int, default=1)
    demo.set_defaults(run=run_demo)
    return parser


_LEVELS = {"error": logging.ERROR, "warn": logging.WARNING, "warning": logging.WARNING,
           "info": logging.INFO, "debug": logging.DEBUG, "trace": 5, "off": logging.CRITICAL + 10}


def configure_logging(spec: Optional[str]) -> None:
    """Log to stderr as ``KADMIUM_LOG``/``RUST_LOG`` ask: ``LEVEL`` for every kadmium
    and kademlia logger, or ``TARGET=LEVEL,...`` where TARGET is a Python logger name
    (``kademlia.kadmium.network``) or a Rust module path (``dht_core::protocol``).
    Unknown entries are ignored, as env_logger does."""
    if not spec:
        return
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.addLevelName(5, "TRACE")
    for entry in spec.split(","):
        target, _, level = entry.strip().rpartition("=")
        number = _LEVELS.get(level.strip().lower())
        if number is None:
            continue
        target = target.strip()
        if not target:
            name = "kademlia"
        elif target.startswith(("kademlia", "rpcudp")):
            name = target
        else:
            name = f"{_kadmium.LOGGER_PREFIX}.{target.replace('::', '.')}"
        logging.getLogger(name).setLevel(number)


def main(argv: Optional[Sequence[str]] = None) -> int:
    configure_logging(os.environ.get("KADMIUM_LOG") or os.environ.get("RUST_LOG"))
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        _take_late_positionals(args, extras, parser)
    if args.command in ("put", "get"):
        check_record_args(args)
    if args.command == "put" and args.keypair is None:
        try:
            args.converted = convert_value(args.type or "str", args.value)
        except argparse.ArgumentTypeError as e:
            args.subparser.error(f"argument value: {e}")
    try:
        if args.command == "keygen":
            return run_keygen(args)
        code: int = asyncio.run(args.run(args))
        return code
    except KeyboardInterrupt:
        return 130
    except (UsageError, argparse.ArgumentTypeError) as e:
        print(f"kadmium {args.command}: {e}", file=sys.stderr)
        return 2
    except ValueTooLargeError as e:
        if args.command != "put":
            print(f"kadmium {args.command}: {e}", file=sys.stderr)
            return 1
        # The value given is over the limit: name it.
        print(f"kadmium {args.command}: argument VALUE: {e}", file=sys.stderr)
        return 2
    except (KadmiumError, OSError, ValueError, OverflowError) as e:
        # Anything the user can cause (unreachable hosts, ports in use, bad
        # values) is one line naming the command, never a traceback.
        print(f"kadmium {args.command}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
