"""Helpers shared with the pure-Python ``kademlia`` package (``kademlia.utils``).

``digest`` must hash exactly as upstream does, since keys hashed here are looked
up by Python nodes and the other way round.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Awaitable, Dict, Mapping, Sequence, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def digest(string: object) -> bytes:
    """SHA-1 of ``string``: bytes as they are, anything else as ``str(x)`` in UTF-8.

    So ``digest(1) == digest("1") == digest(b"1")``, as in ``kademlia.utils.digest``.
    """
    data = string if isinstance(string, bytes) else str(string).encode("utf8")
    return hashlib.sha1(data).digest()


async def gather_dict(dic: Mapping[K, Awaitable[V]]) -> Dict[K, V]:
    """Await every value of ``dic`` concurrently; the results under the same keys."""
    keys = list(dic)
    values = await asyncio.gather(*(dic[k] for k in keys))
    return dict(zip(keys, values))


def shared_prefix(args: Sequence[Sequence[Any]]) -> Sequence[Any]:
    """The longest common prefix of the given strings (``shared_prefix(["blahblah", "blahwhat"]) == "blah"``)."""
    first = args[0]
    length = min(len(a) for a in args)
    end = 0
    while end < length and all(a[end] == first[end] for a in args):
        end += 1
    return first[:end]


def bytes_to_bit_string(bites: bytes) -> str:
    """``b"\\x05"`` -> ``"00000101"``."""
    return "".join(format(b, "08b") for b in bites)
