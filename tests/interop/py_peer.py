#!/usr/bin/env python3
"""Host upstream `kademlia` (2.2.3) nodes for kadmium's interop tests.

Every node lives in this one process, on one asyncio loop. The program is
driven by JSON lines on stdin; it answers each command with exactly one JSON
line on stdout, in order:

    {"ok": true, "result": ...}      or      {"ok": false, "error": "..."}

(an "id" field of the command, if any, is echoed back). Logs go to stderr only.

Commands ("cmd" field):
    start     {count, host="127.0.0.1", ksize=20, alpha=3}
              -> [{"id": hex, "port": int}, ...]  (new nodes; listen on port 0,
                 the real port comes from the transport's sockname)
    bootstrap {node, addrs: [[host, port], ...]} -> [[id_hex, ip, port], ...]
    set       {node, key: str, value: typed}     -> bool
    get       {node, key: str}                   -> typed value or null
    local     {node, key: str}                   -> typed value or null (own storage only)
    routing   {node}                             -> [[id_hex, ip, port], ...]
    stop      {}                                 -> null, then the program exits

`node` is an index into the list of started nodes (in start order).
Typed values keep their Python type across JSON:
    {"t": "int" | "float" | "bool" | "str" | "bytes" | "none", "v": ...}
with bytes as hex. Keys are strings (hashed by kademlia.utils.digest).
"""

import asyncio
import json
import logging
import os
import sys

try:
    from kademlia.crawling import ValueSpiderCrawl
    from kademlia.network import Server
    from kademlia.node import Node
    from kademlia.utils import digest
except ImportError as exc:  # the Rust side turns this into a clear failure
    sys.stderr.write(f"py_peer: cannot import kademlia ({exc}); run `make setup`\n")
    sys.exit(3)

log = logging.getLogger("py_peer")


def encode_value(value):
    """Python value -> {"t", "v"} (None -> JSON null, as `get` reports a miss)."""
    if value is None:
        return None
    # bool before int: bool is a subclass of int.
    if type(value) is bool:
        return {"t": "bool", "v": value}
    if type(value) is int:
        return {"t": "int", "v": value}
    if type(value) is float:
        return {"t": "float", "v": value}
    if type(value) is str:
        return {"t": "str", "v": value}
    if type(value) is bytes:
        return {"t": "bytes", "v": value.hex()}
    raise TypeError(f"unexpected value type {type(value).__name__}")


def decode_value(obj):
    if obj is None:
        return None
    kind, raw = obj.get("t"), obj.get("v")
    if kind == "none":
        return None
    if kind == "bool" and type(raw) is bool:
        return raw
    if kind == "int" and type(raw) is int:
        return raw
    if kind == "float" and type(raw) in (int, float):
        return float(raw)
    if kind == "str" and type(raw) is str:
        return raw
    if kind == "bytes" and type(raw) is str:
        return bytes.fromhex(raw)
    raise ValueError(f"bad typed value {obj!r}")


def node_triple(node):
    return [node.id.hex(), node.ip, node.port]


class Peer:
    def __init__(self):
        self.servers = []

    def server(self, cmd):
        index = cmd.get("node")
        if type(index) is not int or not 0 <= index < len(self.servers):
            raise ValueError(f"no node {index!r} (have {len(self.servers)})")
        return self.servers[index]

    async def cmd_start(self, cmd):
        count = int(cmd.get("count", 1))
        host = cmd.get("host", "127.0.0.1")
        ksize = int(cmd.get("ksize", 20))
        alpha = int(cmd.get("alpha", 3))
        started = []
        for _ in range(count):
            server = Server(ksize=ksize, alpha=alpha)
            await server.listen(0, interface=host)
            port = server.transport.get_extra_info("sockname")[1]
            self.servers.append(server)
            started.append({"id": server.node.id.hex(), "port": port})
        return started

    async def cmd_bootstrap(self, cmd):
        server = self.server(cmd)
        addrs = [(str(host), int(port)) for host, port in cmd["addrs"]]
        found = await server.bootstrap(addrs)
        return [node_triple(n) for n in found]

    async def cmd_set(self, cmd):
        server = self.server(cmd)
        return bool(await server.set(str(cmd["key"]), decode_value(cmd["value"])))

    async def cmd_get(self, cmd):
        server = self.server(cmd)
        return encode_value(await server.get(str(cmd["key"])))

    async def cmd_local(self, cmd):
        server = self.server(cmd)
        return encode_value(server.storage.get(digest(str(cmd["key"]))))

    # Keys given as 40 hex digits (a raw 20-byte key, e.g. a signed record's
    # SHA-1(public key + salt)) instead of a string to digest.

    async def cmd_set_hex(self, cmd):
        server = self.server(cmd)
        value = bytes.fromhex(cmd["value"])
        return bool(await server.set_digest(bytes.fromhex(cmd["key"]), value))

    async def cmd_get_hex(self, cmd):
        server = self.server(cmd)
        dkey = bytes.fromhex(cmd["key"])
        if server.storage.get(dkey) is not None:
            return encode_value(server.storage.get(dkey))
        node = Node(dkey)
        nearest = server.protocol.router.find_neighbors(node)
        if not nearest:
            return None
        spider = ValueSpiderCrawl(server.protocol, node, nearest, server.ksize, server.alpha)
        return encode_value(await spider.find())

    async def cmd_local_hex(self, cmd):
        server = self.server(cmd)
        return encode_value(server.storage.get(bytes.fromhex(cmd["key"])))

    async def cmd_plant_hex(self, cmd):
        """Put bytes straight into one node's storage: a holder that lies."""
        server = self.server(cmd)
        server.storage[bytes.fromhex(cmd["key"])] = bytes.fromhex(cmd["value"])
        return True

    async def cmd_routing(self, cmd):
        server = self.server(cmd)
        return [
            node_triple(n)
            for bucket in server.protocol.router.buckets
            for n in bucket.get_nodes()
        ]

    async def cmd_stop(self, _cmd):
        for server in self.servers:
            server.stop()
        return None


async def main():
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    peer = Peer()
    while True:
        line = await reader.readline()
        if not line:  # stdin closed: the test is gone, stop too
            await peer.cmd_stop({})
            return
        if not line.strip():
            continue
        reply = {}
        try:
            cmd = json.loads(line)
            if "id" in cmd:
                reply["id"] = cmd["id"]
            name = cmd.get("cmd")
            handler = getattr(peer, f"cmd_{name}", None)
            if handler is None:
                raise ValueError(f"unknown command {name!r}")
            reply.update(ok=True, result=await handler(cmd))
        except Exception as exc:  # report, keep serving
            log.exception("command failed: %s", line.decode(errors="replace").strip()[:200])
            reply.update(ok=False, error=f"{type(exc).__name__}: {exc}")
            name = None
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if name == "stop":
            await asyncio.sleep(0.05)  # let transports close
            return


if __name__ == "__main__":
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("PY_PEER_LOG", "ERROR").upper(),
        format="py_peer %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(main())
