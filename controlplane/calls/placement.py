"""Placement: which media node a new room goes on, and which node a call's room is on.

A new room goes to the configured node (:func:`beeldbel.config.media_nodes`) that is
up, not draining and below its capacity, least loaded first (placed rooms as a
share of capacity; a node near a full core last; ties in config order). The place is
reserved atomically in the database first (:mod:`~controlplane.calls.node_registry`),
so concurrent starts in any number of control-plane processes never overfill a
node; a node whose API fails or refuses gives its place back and the next is
tried. Calls recorded before the node was stored (``media_node`` NULL) are on the
first node. When no node can take the room: :class:`MediaUnavailable`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime

import structlog
from aiohttp import web

from beeldbel.config import Config, media_nodes
from controlplane.base.errors import MediaUnavailable
from controlplane.calls import node_registry as registry
from controlplane.calls.media_node import MediaNode
from controlplane.storage.database import Database

log = structlog.get_logger()


class MediaNodes:
    """The configured media nodes, in config order."""

    def __init__(
        self, nodes: Sequence[MediaNode], reservation_seconds: float = 60.0
    ) -> None:
        if not nodes:
            raise ValueError("at least one media node is needed")
        self._first = nodes[0]
        self._nodes = {node.node_id: node for node in nodes}
        self.registry = registry.Nodes(tuple(self._nodes), reservation_seconds)
        #: The time placement reads (bench/national_sim.py runs a virtual one).
        self.clock: Callable[[], datetime] = _now

    @classmethod
    def from_config(cls, config: Config) -> MediaNodes:
        calls, secret = config.calls, config.mediaserver.api_secret
        nodes = [MediaNode(node, calls, secret) for node in media_nodes(config)]
        # a start takes at most the node's API timeout plus a few writes
        return cls(nodes, reservation_seconds=2 * calls.api_timeout_seconds + 30)

    def __contains__(self, node_id: str) -> bool:
        return node_id in self._nodes

    def mark(self, states: Sequence[registry.NodeState]) -> None:
        """Let each node's client know whether the node is down (a down node's
        rooms are not asked to end: its calls end at once, not after a timeout)."""
        for state in states:
            self._nodes[state.node_id].down = not state.up

    def node_of(self, node_id: str | None) -> MediaNode:
        """The node a call's room is on (``None``: the first); a node that is no
        longer configured is :class:`MediaUnavailable`."""
        if node_id is None:
            return self._first
        node = self._nodes.get(node_id)
        if node is None:
            log.warning("media_node_not_configured", node=node_id)
            raise MediaUnavailable("calls_media_unavailable")
        return node

    async def create_room(
        self, db: Database, room_id: str, video_codec: str
    ) -> MediaNode:
        """Make the room on the least-loaded node that has a place and accepts it;
        the node it is on. :class:`MediaUnavailable` when none does."""
        states = await registry.node_states(db, self.registry, self.clock())
        self.mark(states)
        for state in registry.placement_order(states):
            if not await registry.reserve(
                db, self.registry, state.node_id, room_id, self.clock()
            ):
                continue  # filled up (or went down) since it was read
            node = self._nodes[state.node_id]
            try:
                await node.create_room(room_id, video_codec)
            except MediaUnavailable:
                await registry.cancel(db, room_id)
                continue  # media_node logged why
            return node
        log.warning("media_nodes_full_or_down", nodes=len(states))
        raise MediaUnavailable("calls_media_unavailable")

    async def release(self, db: Database, room_id: str) -> None:
        """Give back the place of a room that was made but is not kept."""
        await registry.cancel(db, room_id)

    async def close(self) -> None:
        for node in self._nodes.values():
            await node.close()


def _now() -> datetime:
    return datetime.now(UTC)


MEDIA_NODES = web.AppKey("media_nodes", MediaNodes)
