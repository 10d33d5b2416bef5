"""Shared helpers of the Python test suite (not a test module)."""

from __future__ import annotations

import asyncio
import logging
import socket
import unittest
from typing import Any, Callable, List, Optional, Tuple

import kadmium
from kademlia.network import Server as PyServer

LOCAL = "127.0.0.1"

# Expected warnings (no neighbours, nothing to save) would clutter the test output.
logging.getLogger("kademlia").setLevel(logging.ERROR)
logging.getLogger("rpcudp").setLevel(logging.ERROR)

#: One value of every storable type, with edge cases (exact types matter).
VALUES: List[Any] = [
    0,
    -1,
    42,
    2**63 - 1,
    -(2**63),
    2**64 - 1,
    3.25,
    -0.5,
    float("inf"),
    True,
    False,
    "",
    "hello",
    "ünïcødé ✓",
    b"",
    b"\x00\x01\xffbinary",
    bytes(range(256)) * 4,
]


def upstream_port(server: PyServer) -> int:
    port: int = server.transport.get_extra_info("sockname")[1]
    return port


async def start_kadmium(n: int, node_ids: Optional[List[bytes]] = None,
                        **kwargs: Any) -> List[kadmium.Server]:
    """n kadmium servers on 127.0.0.1, each bootstrapped from the first; with
    `node_ids`, the i-th server gets the i-th id (else a random one)."""
    ids: List[Optional[bytes]] = list(node_ids) if node_ids is not None else [None] * n
    if len(ids) != n:
        raise ValueError(f"start_kadmium: {len(ids)} node ids for {n} servers")
    servers = [kadmium.Server(node_id=node_id, **kwargs) for node_id in ids]
    for s in servers:
        await s.listen(0, LOCAL)
    for s in servers[1:]:
        await s.bootstrap([(LOCAL, servers[0].node.port)])
    return servers


async def start_upstream(n: int, seed: Tuple[str, int]) -> List[PyServer]:
    """n upstream kademlia servers on 127.0.0.1, bootstrapped from `seed`."""
    servers = [PyServer() for _ in range(n)]
    for s in servers:
        await s.listen(0, LOCAL)
    for s in servers:
        await s.bootstrap([seed])
    return servers


def free_udp_ports(count: int) -> int:
    """A base port such that base..base+count-1 are all free for UDP right now."""
    for _ in range(50):
        probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        probe.bind((LOCAL, 0))
        base: int = probe.getsockname()[1]
        probe.close()
        if base + count >= 65535:
            continue
        held = []
        try:
            for p in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                held.append(s)
                s.bind((LOCAL, p))
            return base
        except OSError:
            continue
        finally:
            for s in held:
                s.close()
    raise RuntimeError("no free range of UDP ports")


class AsyncCase(unittest.IsolatedAsyncioTestCase):
    """Async tests with a time bound, stopping every server they start."""

    TIMEOUT = 60.0

    def setUp(self) -> None:
        self._servers: List[Any] = []

    def track(self, *servers: Any) -> None:
        self._servers.extend(servers)

    async def asyncTearDown(self) -> None:
        for s in self._servers:
            s.stop()
        await asyncio.sleep(0)

    async def bounded(self, aw: Any, timeout: float = 30.0) -> Any:
        return await asyncio.wait_for(aw, timeout)

    async def until(self, condition: Callable[[], bool], what: str) -> None:
        """Wait for `condition`, which other nodes' traffic makes true in its
        own time (a node adds a peer once the peer has answered its ping);
        fail naming `what` if it is still false after 30 s."""
        for _ in range(3000):
            if condition():
                return
            await asyncio.sleep(0.01)
        self.fail(f"never came true: {what}")
