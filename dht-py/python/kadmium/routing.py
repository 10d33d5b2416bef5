"""Read-only views shaped like ``kademlia.protocol.KademliaProtocol`` and
``kademlia.routing.RoutingTable``, for scripts that inspect ``server.protocol``.

kadmium's protocol runs in Rust; these views read its routing table each time
they are used, so they are always current. ``buckets`` are derived from the
contacts in the classic layout (one bucket per length of the id prefix shared
with this node, plus the bucket holding this node's own id): kadmium's table
may split a far bucket further (the relaxed rule of the Kademlia paper), so
``len(router.buckets)`` can differ from the real table's bucket count.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, List, Optional, Tuple

from kadmium.node import Node

if TYPE_CHECKING:
    from kadmium.network import Server

ID_BITS = 160


class BucketView:
    """One k-bucket, as upstream's ``KBucket`` reads: ``range`` is ``(lowest id, highest
    id)`` as ints, ``nodes`` an ``OrderedDict`` of its contacts by id (bytes)."""

    def __init__(self, rng: Tuple[int, int], nodes: List[Node], ksize: int) -> None:
        self.range = rng
        self.nodes: "OrderedDict[bytes, Node]" = OrderedDict((n.id, n) for n in nodes)
        self.ksize = ksize

    def get_nodes(self) -> List[Node]:
        return list(self.nodes.values())

    def has_in_range(self, node: Node) -> bool:
        return self.range[0] <= node.long_id <= self.range[1]

    def is_new_node(self, node: Node) -> bool:
        return node.id not in self.nodes

    def head(self) -> Node:
        """The first contact (``IndexError`` when the bucket is empty, as upstream)."""
        return self.get_nodes()[0]

    def depth(self) -> int:
        """Length of the id prefix all its contacts share (upstream's ``depth``)."""
        ids = [n.long_id for n in self.nodes.values()]
        if not ids:
            return 0
        differing = 0
        for long_id in ids:
            differing |= long_id ^ ids[0]
        return ID_BITS - differing.bit_length()

    def __getitem__(self, node_id: bytes) -> Optional[Node]:
        return self.nodes.get(node_id)

    def __len__(self) -> int:
        return len(self.nodes)

    def __repr__(self) -> str:
        return f"<BucketView {self.range[0]:040x}..{self.range[1]:040x} {len(self.nodes)} nodes>"


def _shared_prefix_len(a: int, b: int) -> int:
    return ID_BITS - (a ^ b).bit_length()


class RoutingView:
    """``server.protocol.router``: the routing table, read-only."""

    def __init__(self, server: "Server") -> None:
        self._server = server

    @property
    def node(self) -> Node:
        """This node (``server.node``)."""
        return self._server.node

    @property
    def ksize(self) -> int:
        return self._server.ksize

    def _contacts(self) -> List[Node]:
        return self._server.routing_table()

    @property
    def buckets(self) -> List[BucketView]:
        """The buckets, ordered by range, covering the whole id space."""
        own = self.node.long_id
        contacts = self._contacts()
        depth = 1 + max((_shared_prefix_len(own, c.long_id) for c in contacts), default=-1)
        buckets: List[BucketView] = []
        for p in range(depth):
            # Ids sharing exactly p leading bits with ours.
            width = ID_BITS - p - 1
            lo = ((own >> (width + 1)) << (width + 1)) | ((~own >> width & 1) << width)
            nodes = [c for c in contacts if _shared_prefix_len(own, c.long_id) == p]
            buckets.append(BucketView((lo, lo + (1 << width) - 1), nodes, self.ksize))
        # Ids sharing at least `depth` bits with ours (our own bucket; the whole
        # space when the table is empty).
        width = ID_BITS - depth
        lo = (own >> width) << width
        buckets.append(BucketView((lo, lo + (1 << width) - 1), [], self.ksize))
        return sorted(buckets, key=lambda b: b.range[0])

    def get_bucket_for(self, node: Node) -> Optional[int]:
        """Index in ``buckets`` of the bucket whose range holds ``node`` (ranges are
        inclusive here); None for an id outside the 160-bit space, as upstream."""
        for index, bucket in enumerate(self.buckets):
            if node.long_id <= bucket.range[1]:
                return index
        return None

    def is_new_node(self, node: Node) -> bool:
        """Whether ``node`` is not among the contacts."""
        return all(c.id != node.id for c in self._contacts())

    def find_neighbors(
        self, node: Node, k: Optional[int] = None, exclude: Optional[Node] = None
    ) -> List[Node]:
        """Up to ``k`` (default ksize) contacts nearest to ``node``, closest first,
        leaving out ``node`` itself and any contact at ``exclude``'s address."""
        k = self.ksize if k is None else k
        found = [
            c
            for c in self._contacts()
            if c.id != node.id and (exclude is None or not c.same_home_as(exclude))
        ]
        found.sort(key=lambda c: c.distance_to(node))
        return found[:k]

    def __repr__(self) -> str:
        return f"<kadmium RoutingView of {self.node.id.hex()}: {len(self._contacts())} contacts>"


class ProtocolView:
    """``server.protocol``: what scripts read from upstream's ``KademliaProtocol``."""

    def __init__(self, server: "Server") -> None:
        self.router = RoutingView(server)
        self._server = server

    @property
    def source_node(self) -> Node:
        return self._server.node

    @property
    def storage(self) -> Any:
        return self._server.storage

    @property
    def ksize(self) -> int:
        return self._server.ksize
