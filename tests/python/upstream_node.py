"""One upstream `kademlia` 2.2.3 node in its own process (a helper of test_liveness,
not a test): listens on 127.0.0.1, bootstraps from the address given, prints
its port, then serves until it is killed.

    python upstream_node.py SEED_HOST SEED_PORT
"""

import asyncio
import logging
import sys

from kademlia.network import Server

logging.getLogger("kademlia").setLevel(logging.ERROR)
logging.getLogger("rpcudp").setLevel(logging.ERROR)


async def main(seed_host: str, seed_port: int) -> None:
    server = Server()
    await server.listen(0, "127.0.0.1")
    await server.bootstrap([(seed_host, seed_port)])
    print(server.transport.get_extra_info("sockname")[1], flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
