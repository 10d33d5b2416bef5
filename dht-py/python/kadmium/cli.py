"""The ``kadmium`` command (also ``python -m kadmium``).

    kadmium node [-a HOST] [-p PORT] [--bootstrap HOST:PORT ...]   run a node in the foreground
    kadmium put --bootstrap HOST:PORT KEY VALUE                      store one value
    kadmium get --bootstrap HOST:PORT KEY                            fetch one value
    kadmium keygen FILE                                              new ed25519 key (hex secret, mode 0600)
    kadmium put --bootstrap HOST:PORT --key FILE [--salt S] VALUE    store a signed value (replaces the last)
    kadmium get --bootstrap HOST:PORT --public-key HEX [--salt S]    fetch a signed value
    kadmium demo [--nodes N]                                         a local network doing real puts and gets

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
import random
import signal
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from kadmium import __version__, _kadmium, voidphone
from kadmium._kadmium import KadmiumError, Keypair, NetworkError, ValueTooLargeError
from kadmium.network import Server, ValueType

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


def ttl_seconds(text: str) -> float:
    """A positive TTL; huge ones (1e20, inf) are allowed and capped at 7 days by the node."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _interface_for(peers: Sequence[Address]) -> str:
    """Listen on IPv6 only if the peers to reach are IPv6."""
    return "::" if peers and all(":" in host for host, _ in peers) else "0.0.0.0"


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
    p.add_argument("--data-dir", metavar="DIR",
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
    stoppers = []
    try:
        if settings.bootstrap:
            joined, found = await _unless_stopped(stop, server.bootstrap(settings.bootstrap))
            if joined:
                print(f"bootstrapped: {len(found)} contacts found", flush=True)
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


# --- kadmium put / get ----------------------------------------------------------

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _parse_bool(text: str) -> bool:
    """A yes/no word; anything else is refused rather than read as False."""
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(text)


def _int64(text: str) -> int:
    value = int(text)
    if not -(2**63) <= value < 2**64:
        raise ValueError("outside 64 bits")
    return value


_CONVERTERS: Dict[str, Callable[[str], ValueType]] = {
    "str": str,
    "int": _int64,
    "float": float,
    "bool": _parse_bool,
    "bytes": lambda s: s.encode("utf8"),
}


async def _client(args: argparse.Namespace) -> Server:
    # A one-shot command should not be added to other nodes' routing tables
    # (it is gone a second later): client-only unless --full-node.
    server = Server(client_only=not args.full_node)
    await server.listen(0, args.interface or _interface_for(args.bootstrap))
    if not await server.bootstrap(args.bootstrap):
        server.stop()
        raise KadmiumError("no bootstrap node answered")
    return server


def _convert_value(type_name: str, text: str) -> ValueType:
    try:
        return _CONVERTERS[type_name](text)
    except ValueError:
        hint = f" (one of {', '.join(_TRUE + _FALSE)})" if type_name == "bool" else ""
        raise argparse.ArgumentTypeError(f"not a valid {type_name}: {text!r}{hint}") from None


async def run_put(args: argparse.Namespace) -> int:
    if args.keypair is not None:
        return await run_put_signed(args)
    value = args.converted
    server = await _client(args)
    try:
        ok = await server.set(args.key, value, ttl=args.ttl)
    finally:
        server.stop()
    print("stored" if ok else "not stored: no node acknowledged the value")
    return 0 if ok else 1


async def run_put_signed(args: argparse.Namespace) -> int:
    server = await _client(args)
    try:
        seq = await server.set_signed(args.keypair, args.value.encode("utf8"),
                                      salt=args.salt.encode("utf8"), ttl=args.ttl)
    finally:
        server.stop()
    print(f"stored seq {seq} under public key {args.keypair.public_key.hex()}")
    return 0


async def run_get_signed(args: argparse.Namespace) -> int:
    server = await _client(args)
    try:
        get = server.get_signed(args.public_key, salt=args.salt.encode("utf8"))
        found = await (asyncio.wait_for(get, args.timeout) if args.timeout else get)
    except asyncio.TimeoutError:
        raise KadmiumError(f"no answer within --timeout {args.timeout} s") from None
    finally:
        server.stop()
    if found is None:
        print(f"{args.public_key.hex()}: not found", file=sys.stderr)
        return 1
    try:
        print(found.value.decode("utf8"))
    except UnicodeDecodeError:
        print(repr(found.value))
    return 0


async def run_get(args: argparse.Namespace) -> int:
    if args.public_key is not None:
        return await run_get_signed(args)
    server = await _client(args)
    try:
        value = await server.get(args.key, timeout=args.timeout)
    finally:
        server.stop()
    if value is None:
        print(f"{args.key}: not found", file=sys.stderr)
        return 1
    print(value if isinstance(value, str) else repr(value))
    return 0


# --- kadmium keygen / key files ------------------------------------------------------


def run_keygen(args: argparse.Namespace) -> int:
    """Write a new secret as 64 hex digits to FILE, readable by its owner only."""
    path: str = args.file
    if os.path.lexists(path):
        if not args.force:
            raise UsageError(f"argument FILE: {path} exists (use --force to overwrite it)")
        os.unlink(path)
    keypair = Keypair.generate()
    # O_EXCL: never write into a file someone else created between the check and here.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(keypair.secret.hex() + "\n")
    print(keypair.public_key.hex())
    return 0


def load_keypair(path: str) -> Keypair:
    """The key pair whose secret ``kadmium keygen`` wrote to ``path``."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {e}") from None
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise argparse.ArgumentTypeError(f"{path} does not hold a secret key (64 hex digits)")
    return Keypair.from_secret(secret)


def public_key_hex(text: str) -> bytes:
    try:
        key = bytes.fromhex(text)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise argparse.ArgumentTypeError(f"expected 64 hex digits, got {text!r}")
    return key


def _check_record_args(args: argparse.Namespace) -> None:
    """``put``/``get``: KEY [VALUE] for plain values, or --key/--public-key
    with no KEY; one line naming the argument otherwise."""
    sub: argparse.ArgumentParser = args.subparser
    args.keypair = None
    signed = args.key_file if args.command == "put" else args.public_key
    if args.command == "put":
        given = [a for a in (args.key, args.value) if a is not None]
        if signed is not None:
            if len(given) != 1:
                sub.error("argument VALUE: with --key, give exactly one VALUE (no KEY)")
            if args.type is not None:
                sub.error("argument --type: signed values are stored as UTF-8 bytes")
            args.value, args.key = given[0], None
            try:
                args.keypair = load_keypair(signed)
            except argparse.ArgumentTypeError as e:
                sub.error(f"argument --key: {e}")
            return
        if len(given) != 2:
            sub.error("the following arguments are required: KEY VALUE")
    else:
        if signed is not None and args.key is not None:
            sub.error("argument KEY: not allowed with --public-key")
        if signed is None and args.key is None:
            sub.error("the following arguments are required: KEY (or --public-key)")
    if args.salt and signed is None:
        sub.error("argument --salt: only with --key (put) or --public-key (get)")


# --- kadmium demo -----------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal (a final line otherwise)."""

    def __init__(self, label: str, total: int, out: TextIO = sys.stderr, width: int = 30) -> None:
        self.label, self.total, self.out, self.width = label, max(total, 1), out, width
        self.done = 0
        self.live = out.isatty()
        self._drawn = -1.0
        self._draw()

    def advance(self, n: int = 1) -> None:
        self.done += n
        # Redraw at most ~100 times per bar; a terminal write per op would dominate.
        if self.live and (self.done == self.total or self.done / self.total - self._drawn >= 0.01):
            self._draw()

    def _draw(self) -> None:
        if not self.live:
            return
        frac = self.done / self.total
        self._drawn = frac
        bar = "#" * int(frac * self.width)
        self.out.write(f"\r{self.label:<14} [{bar:<{self.width}}] {self.done}/{self.total}")
        self.out.flush()

    def close(self) -> None:
        if self.live:
            self._draw()
            self.out.write("\n")
        else:
            self.out.write(f"{self.label:<14} {self.done}/{self.total} done\n")
        self.out.flush()


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else 0.0


async def _run_ops(
    label: str, jobs: List[Callable[[], Awaitable[Any]]], concurrency: int
) -> Tuple[List[Any], List[float], float]:
    """Run the jobs, at most ``concurrency`` at once: results, latencies, wall time."""
    results: List[Any] = [None] * len(jobs)
    latencies: List[float] = [0.0] * len(jobs)
    gate = asyncio.Semaphore(concurrency)
    bar = Progress(label, len(jobs))

    async def one(i: int) -> None:
        async with gate:
            start = time.perf_counter()
            results[i] = await jobs[i]()
            latencies[i] = time.perf_counter() - start
            bar.advance()

    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(len(jobs))))
    wall = time.perf_counter() - start
    bar.close()
    return results, latencies, wall


async def run_demo(args: argparse.Namespace) -> int:
    if args.nodes < 2:
        raise SystemExit("kadmium demo: --nodes must be at least 2")
    rng = random.Random(args.seed)
    servers = [Server() for _ in range(args.nodes)]
    print(f"kadmium {__version__} demo: {args.nodes} nodes on 127.0.0.1, {args.ops} puts "
          f"and gets of {args.value_size}-byte values, {args.concurrency} at a time",
          file=sys.stderr)
    try:
        bar = Progress("listening", len(servers))
        for s in servers:
            await s.listen(0, "127.0.0.1")
            bar.advance()
        bar.close()
        ports = [s.node.port for s in servers]
        start = time.perf_counter()
        bar = Progress("bootstrapping", len(servers) - 1)
        for i in range(1, len(servers)):
            seeds = sorted({0, rng.randrange(i)})
            await servers[i].bootstrap([("127.0.0.1", ports[j]) for j in seeds])
            bar.advance()
        bar.close()
        bootstrap_s = time.perf_counter() - start

        keys = [f"demo-{i}" for i in range(args.ops)]
        values = {k: os.urandom(args.value_size) for k in keys}
        putter = {k: rng.randrange(len(servers)) for k in keys}
        getter = {k: (putter[k] + 1 + rng.randrange(len(servers) - 1)) % len(servers) for k in keys}
        put_jobs: List[Callable[[], Awaitable[Any]]] = [
            functools.partial(servers[putter[k]].set, k, values[k]) for k in keys
        ]
        puts, put_lat, put_wall = await _run_ops("puts", put_jobs, args.concurrency)
        get_jobs: List[Callable[[], Awaitable[Any]]] = [
            functools.partial(servers[getter[k]].get, k) for k in keys
        ]
        gets, get_lat, get_wall = await _run_ops("gets", get_jobs, args.concurrency)
    finally:
        for s in servers:
            s.stop()

    put_ok = sum(1 for ok in puts if ok)
    get_ok = sum(1 for k, v in zip(keys, gets) if v == values[k])
    rows = [
        ("put", put_ok, put_lat, put_wall),
        ("get", get_ok, get_lat, get_wall),
    ]
    print(f"\nbootstrap of {args.nodes} nodes: {bootstrap_s:.2f} s\n")
    print(f"{'op':<4} {'ok':>11} {'success':>8} {'p50 ms':>8} {'p99 ms':>8} {'ops/s':>9}")
    for name, ok, lat, wall in rows:
        print(
            f"{name:<4} {f'{ok}/{len(keys)}':>11} {100.0 * ok / max(len(keys), 1):>7.1f}%"
            f" {statistics.median(lat) * 1e3 if lat else 0.0:>8.2f}"
            f" {_percentile(lat, 0.99) * 1e3:>8.2f} {len(keys) / wall if wall else 0.0:>9.1f}"
        )
    return 0 if put_ok == get_ok == len(keys) else 1


# --- entry point ---------------------------------------------------------------------


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
        p.add_argument("--salt", default="", help="salt of the signed record (default empty)")
        p.add_argument("key", nargs="?", metavar="KEY")
        p.set_defaults(run=run, subparser=p)
    put = sub.choices["put"]
    put.add_argument("value", nargs="?", metavar="VALUE")
    put.add_argument("--type", choices=sorted(_CONVERTERS),
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
    args = parser.parse_args(argv)
    if args.command in ("put", "get"):
        _check_record_args(args)
    if args.command == "put" and args.keypair is None:
        try:
            args.converted = _convert_value(args.type or "str", args.value)
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
