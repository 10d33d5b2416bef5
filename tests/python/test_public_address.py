"""The public address as peers see it: Server.public_address(), DHT.public_address,
and the wire extension behind it (a trailer after the msgpack body of answers to
kadmium ids only), checked against what rpcudp peers receive and parse."""

import os
import socket
import unittest

import umsgpack
from kademlia.network import Server as PyServer

from kadmium import DHT, Server
from support import LOCAL, AsyncCase, upstream_port

# Peers on other loopback addresses (all of 127.0.0.0/8 is loopback on Linux):
# the address needs two distinct peer IPs to agree.
PEER_IPS = ["127.0.0.2", "127.0.0.3"]


class ServerPublicAddressTest(AsyncCase):
    async def test_known_once_two_peer_ips_agree(self) -> None:
        me = Server()
        self.track(me)
        self.assertIsNone(me.public_address())  # before listen
        await me.listen(0, LOCAL)
        peers = [Server() for _ in PEER_IPS]
        self.track(*peers)
        for peer, ip in zip(peers, PEER_IPS):
            await peer.listen(0, ip)
        self.assertIsNone(me.public_address())
        await self.bounded(me.bootstrap([(PEER_IPS[0], peers[0].node.port)]))
        self.assertIsNone(me.public_address())  # one peer IP is not enough
        await self.bounded(me.bootstrap([(PEER_IPS[1], peers[1].node.port)]))
        self.assertEqual(me.public_address(), (LOCAL, me.node.port))

    async def test_upstream_peers_report_nothing_and_keep_working(self) -> None:
        me = Server()
        self.track(me)
        await me.listen(0, LOCAL)
        upstream = [PyServer() for _ in PEER_IPS]
        for peer, ip in zip(upstream, PEER_IPS):
            await peer.listen(0, ip)
        try:
            for peer, ip in zip(upstream, PEER_IPS):
                await self.bounded(me.bootstrap([(ip, upstream_port(peer))]))
                # The upstream node asks kadmium (answers without trailer) and is answered.
                found = await self.bounded(peer.bootstrap([(LOCAL, me.node.port)]))
                self.assertTrue(found)
            self.assertTrue(await self.bounded(me.set("mixed", "value")))
            self.assertEqual(await self.bounded(upstream[0].get("mixed")), "value")
            self.assertTrue(await self.bounded(upstream[1].set("other", 7)))
            self.assertEqual(await self.bounded(me.get("other")), 7)
            self.assertIsNone(me.public_address())  # kademlia peers do not say
        finally:
            for peer in upstream:
                peer.stop()


class DHTPublicAddressTest(unittest.TestCase):
    def test_blocking_property(self) -> None:
        peers = [DHT(ip, 0) for ip in PEER_IPS]
        me = DHT(LOCAL, 0, seeds=[peers[0].address])
        try:
            self.assertIsNone(me.public_address)
            me.bootstrap([peers[1].address])
            self.assertEqual(me.public_address, me.address)
        finally:
            for d in [me, *peers]:
                d.close()


class WireTest(unittest.TestCase):
    """Raw datagrams to a kadmium node: a Python-style message id gets exactly
    rpcudp's reply; a kadmium id gets the same body plus the trailer, which
    umsgpack (what rpcudp decodes with) ignores."""

    def setUp(self) -> None:
        self.node = DHT(LOCAL, 0)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((LOCAL, 0))
        self.sock.settimeout(10)

    def tearDown(self) -> None:
        self.sock.close()
        self.node.close()

    def ping(self, msg_id: bytes) -> bytes:
        request = b"\x00" + msg_id + umsgpack.packb(["ping", [os.urandom(20)]])
        self.sock.sendto(request, self.node.address)
        reply, _ = self.sock.recvfrom(65536)
        self.assertEqual(reply[:21], b"\x01" + msg_id)
        return reply[21:]

    def test_python_ids_get_rpcudp_replies(self) -> None:
        for _ in range(20):
            body = self.ping(os.urandom(20))
            self.assertEqual(body, umsgpack.packb(self.node.id))

    def test_kadmium_ids_get_the_trailer_which_umsgpack_ignores(self) -> None:
        body = self.ping(b"KDM\x01" + bytes(4) + b"\x00" + os.urandom(11))
        plain = umsgpack.packb(self.node.id)
        port = self.sock.getsockname()[1]
        trailer = b"KDMa\x04" + socket.inet_aton(LOCAL) + port.to_bytes(2, "big")
        self.assertEqual(body, plain + trailer)
        self.assertEqual(umsgpack.unpackb(body), self.node.id)


if __name__ == "__main__":
    unittest.main()
