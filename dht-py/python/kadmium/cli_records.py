"""``kadmium put``, ``kadmium get`` and ``kadmium keygen``: one-shot commands on a
network (plain and signed values) and the key files they sign with."""

from __future__ import annotations

import argparse
import asyncio
import os
import stat
import sys
from typing import Callable, Dict, Optional, Sequence, Tuple

from kadmium._kadmium import KadmiumError, Keypair
from kadmium.network import Server, ValueType

Address = Tuple[str, int]


def _interface_for(peers: Sequence[Address]) -> str:
    """Listen on IPv6 only if the peers to reach are IPv6."""
    return "::" if peers and all(":" in host for host, _ in peers) else "0.0.0.0"


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


CONVERTERS: Dict[str, Callable[[str], ValueType]] = {
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


def convert_value(type_name: str, text: str) -> ValueType:
    try:
        return CONVERTERS[type_name](text)
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
    replacing = os.path.lexists(path)
    if replacing:
        if not args.force:
            raise argparse.ArgumentTypeError(
                f"argument FILE: {path} exists (use --force to overwrite it)")
        # --force replaces a key file (or a link, not what it points to); a device,
        # FIFO or directory at FILE is a mistake, and deleting it would be a disaster
        # (as root, `keygen --force /dev/null` used to replace the device).
        mode = os.lstat(path).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            raise argparse.ArgumentTypeError(
                f"argument FILE: {path} is not a regular file; --force replaces only a file")
    keypair = Keypair.generate()
    text = keypair.secret.hex() + "\n"
    if not replacing:
        # O_EXCL: never write into a file someone else created between the check and here.
        _write_new(path, text)
    else:
        # Written beside it and renamed over it: the old key stays whole until the new
        # one is on disk.
        tmp = os.path.join(os.path.dirname(path) or ".",
                           f".{os.path.basename(path)}.{os.getpid()}.tmp")
        _write_new(tmp, text)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    print(keypair.public_key.hex())
    return 0


def _write_new(path: str, text: str) -> None:
    """Create ``path`` (it must not exist), owner-only, holding ``text``, synced."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def load_keypair(path: str) -> Keypair:
    """The key pair whose secret ``kadmium keygen`` wrote to ``path``."""
    try:
        with open(path, encoding="ascii") as f:
            text = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {e}") from None
    secret = _hex_32(text)
    if secret is None:
        raise argparse.ArgumentTypeError(f"{path} does not hold a secret key (64 hex digits)")
    return Keypair.from_secret(secret)


def public_key_hex(text: str) -> bytes:
    key = _hex_32(text)
    if key is None:
        raise argparse.ArgumentTypeError(f"expected 64 hex digits, got {text!r}")
    return key


def _hex_32(text: str) -> Optional[bytes]:
    """The 32 bytes that ``text`` spells in hex, or None."""
    try:
        value = bytes.fromhex(text)
    except ValueError:
        return None
    return value if len(value) == 32 else None


#: Longest salt of a signed record, in bytes (UTF-8 here).
MAX_SALT_LEN = 64


def salt_text(text: str) -> str:
    """``--salt``: valid UTF-8 of at most MAX_SALT_LEN bytes."""
    size = len(_utf8(text))
    if size > MAX_SALT_LEN:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_SALT_LEN} bytes in UTF-8, got {size}")
    return text


def _utf8(text: str) -> bytes:
    # Arguments that are not valid UTF-8 reach Python as lone surrogates.
    try:
        return text.encode("utf8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"not valid UTF-8: {text!r}") from None


def check_record_args(args: argparse.Namespace) -> None:
    """``put``/``get``: KEY [VALUE] for plain values, or --key/--public-key
    with no KEY; one line naming the argument otherwise."""
    sub: argparse.ArgumentParser = args.subparser
    args.keypair = None
    signed = args.key_file if args.command == "put" else args.public_key
    for name, text in (("KEY", args.key), ("VALUE", getattr(args, "value", None))):
        if text is not None:
            try:
                _utf8(text)
            except argparse.ArgumentTypeError as e:
                sub.error(f"argument {name}: {e}")
    if args.command == "put":
        given = [a for a in (args.key, args.value) if a is not None]
        if signed is not None:
            if len(given) != 1:
                sub.error("argument VALUE: with --key, give exactly one VALUE (no KEY)")
            if args.type is not None:
                sub.error("argument --type: signed values are stored as UTF-8 bytes")
            if args.ttl is not None and args.ttl < 1:
                sub.error(f"argument --ttl: a signed value lives at least 1 s, got {args.ttl:g}")
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
