"""Helpers shared with the pure-Python ``kademlia`` package (``kademlia.utils``).

``digest`` must hash exactly as upstream does, since keys hashed here are looked
up by Python nodes and the other way round.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, Awaitable, Dict, Mapping, Sequence, TypeVar

# ``digest(string)``: SHA-1 of ``string``, bytes as they are, anything else as
# ``str(string)`` in UTF-8. So ``digest(1) == digest("1") == digest(b"1")``, as
# in ``kademlia.utils.digest``. Native for exact ``str`` and ``bytes``: every get
# and set hashes its key, and ``hashlib.sha1`` costs more than the rest of a get
# answered from a local copy. Anything else goes through ``_digest_by_hashlib``.
from kadmium._kadmium import digest as digest

K = TypeVar("K")
V = TypeVar("V")


def _digest_by_hashlib(string: object) -> bytes:
    """``kademlia.utils.digest``'s code: what ``digest`` does for anything but an
    exact ``str`` or ``bytes`` (whose subclasses may override how they encode)."""
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
