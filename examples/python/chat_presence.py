"""Chat presence on kadmium: a user publishes where they can be reached under
their own public key, moves, and withdraws the entry when they go offline.

This is the chat-seed use case of signed records: the DHT key is
SHA-1(public key ‖ salt), so only the key's owner can write it, a newer
sequence number replaces an older one everywhere, and a signed tombstone
deletes it. Friends need only the public key to find the user.

Run it on its own (it starts a local network of ``--nodes`` nodes on
127.0.0.1 and stops it at the end):

    python examples/python/chat_presence.py --nodes 8

It prints each step and exits 0 when every lookup saw what it should.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import List, Optional

from kadmium import Keypair, Server

#: One salt per kind of record a user publishes under the same key.
PRESENCE_SALT = b"chat-presence/v1"


class Presence:
    """A user's published address: ``publish`` on start and when it changes,
    ``withdraw`` on shutdown."""

    def __init__(self, server: Server, keypair: Keypair) -> None:
        self.server = server
        self.keypair = keypair

    async def publish(self, address: str) -> int:
        """Publish ``address``; the record's sequence number."""
        return await self.server.set_signed(self.keypair, address.encode(), salt=PRESENCE_SALT, ttl=3600)

    async def withdraw(self) -> None:
        await self.server.delete_signed(self.keypair, salt=PRESENCE_SALT)


async def lookup(server: Server, public_key: bytes) -> Optional[str]:
    """Where the owner of ``public_key`` can be reached now, or None (offline)."""
    found = await server.get_signed(public_key, salt=PRESENCE_SALT)
    return None if found is None else found.value.decode()


async def start_network(n: int) -> List[Server]:
    servers = [Server() for _ in range(n)]
    for s in servers:
        await s.listen(0, "127.0.0.1")
    for s in servers[1:]:
        await s.bootstrap([("127.0.0.1", servers[0].node.port)])
    return servers


async def main(nodes: int) -> int:
    servers = await start_network(nodes)
    # Alice and Bob are separate nodes; Bob's is client-only, as an app that
    # comes and goes should be.
    alice_node, bob_node = Server(), Server(client_only=True)
    try:
        for user_node in (alice_node, bob_node):
            await user_node.listen(0, "127.0.0.1")
            await user_node.bootstrap([("127.0.0.1", servers[0].node.port)])
        alice = Presence(alice_node, Keypair.generate())
        alice_key = alice.keypair.public_key  # what Bob has in his address book

        checks: List[bool] = []

        async def step(label: str, expected: Optional[str]) -> None:
            seen = await lookup(bob_node, alice_key)
            ok = seen == expected
            checks.append(ok)
            print(f"{label:<32} Bob sees {seen!r} {'ok' if ok else f'(expected {expected!r})'}")

        await step("before Alice is online", None)
        seq = await alice.publish("192.0.2.10:7000")
        await step(f"Alice online (seq {seq})", "192.0.2.10:7000")
        seq = await alice.publish("198.51.100.4:7000")
        await step(f"Alice changed network (seq {seq})", "198.51.100.4:7000")
        await alice.withdraw()
        await step("Alice went offline", None)
        return 0 if all(checks) else 1
    finally:
        for s in (alice_node, bob_node, *servers):
            s.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=8, help="nodes of the local network (default 8)")
    sys.exit(asyncio.run(main(parser.parse_args().nodes)))
