"""Two kadmium.Server nodes in one asyncio program: the kademlia.network.Server API.

    python examples/python/server_example.py

Scripts written for the pure-Python package only change their import line:
`from kademlia.network import Server` -> `from kadmium import Server`.
"""

from __future__ import annotations

import asyncio
from typing import Optional

from kadmium import Server


async def main() -> None:
    first = Server()
    await first.listen(0, "127.0.0.1")  # port 0: any free port
    port: int = first.transport.get_extra_info("sockname")[1] if first.transport else 0

    second = Server()
    await second.listen(0, "127.0.0.1")
    found = await second.bootstrap([("127.0.0.1", port)])
    print("bootstrapped through", [str(node) for node in found])

    stored: bool = await second.set("greeting", "hello, kadmium")
    print("stored:", stored)
    value: Optional[object] = await first.get("greeting")
    print("first node reads:", value)
    print("missing key:", await first.get("nobody-set-this"))
    # kadmium extras (keyword-only): a lifetime for the value, a bound on the wait
    await second.set("short-lived", b"\x00\x01", ttl=60)
    print("with timeout:", await first.get("short-lived", timeout=5.0))
    print("contacts of the first node:", first.stats()["contacts"])

    first.stop()
    second.stop()


if __name__ == "__main__":
    asyncio.run(main())
