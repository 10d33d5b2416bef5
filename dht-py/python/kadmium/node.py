"""Contacts, shaped like ``kademlia.node.Node`` (what ``bootstrap`` returns)."""

from __future__ import annotations

from typing import Iterator, Optional, Union


class Node:
    """A node of the network: a 20-byte ``id``, and the ``ip``/``port`` it answers on."""

    __slots__ = ("id", "ip", "port", "long_id")

    def __init__(self, node_id: bytes, ip: Optional[str] = None, port: Optional[int] = None) -> None:
        self.id = node_id
        self.ip = ip
        self.port = port
        self.long_id = int.from_bytes(node_id, "big")

    def same_home_as(self, node: "Node") -> bool:
        return self.ip == node.ip and self.port == node.port

    def distance_to(self, node: "Node") -> int:
        """XOR distance between the two ids."""
        return self.long_id ^ node.long_id

    def __iter__(self) -> Iterator[Union[bytes, str, int, None]]:
        """``tuple(node) == (id, ip, port)``, as upstream (and as on the wire)."""
        return iter((self.id, self.ip, self.port))

    def __repr__(self) -> str:
        return repr([self.long_id, self.ip, self.port])

    def __str__(self) -> str:
        return f"{self.ip}:{self.port}"
