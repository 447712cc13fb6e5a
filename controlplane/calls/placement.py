"""Placement: which media node a new room goes on, and which node a call's room is on.

A new room goes to the configured node (:func:`beeldbel.config.media_nodes`) with the
fewest calls open on it, counted from ``call_records`` (not ended), so the count
survives a restart and is shared by every control-plane process; ties go to the
first in config order. A node whose API fails or refuses is skipped for the next.
Calls recorded before the node was stored (``media_node`` NULL) are on the first
node. Rooms placed at the same instant may land on the same node: the spread is
even over time, not exact at every moment.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
import structlog
from aiohttp import web

from beeldbel.config import Config, media_nodes
from controlplane.base.errors import MediaUnavailable
from controlplane.calls.media_node import MediaNode
from controlplane.storage.database import Database
from controlplane.storage.schema import call_records

log = structlog.get_logger()


class MediaNodes:
    """The configured media nodes, in config order."""

    def __init__(self, nodes: Sequence[MediaNode]) -> None:
        if not nodes:
            raise ValueError("at least one media node is needed")
        self._first = nodes[0]
        self._nodes = {node.node_id: node for node in nodes}

    @classmethod
    def from_config(cls, config: Config) -> MediaNodes:
        calls, secret = config.calls, config.mediaserver.api_secret
        return cls([MediaNode(node, calls, secret) for node in media_nodes(config)])

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
        """Make the room on the least-loaded node that accepts it; the node it is on.

        :class:`MediaUnavailable` only when every node failed."""
        load = await open_calls(db)
        legacy = load.pop(None, 0)

        def calls_on(node: MediaNode) -> int:
            return load.get(node.node_id, 0) + (legacy if node is self._first else 0)

        # sorted() is stable: equal loads keep config order
        for node in sorted(self._nodes.values(), key=calls_on):
            try:
                await node.create_room(room_id, video_codec)
            except MediaUnavailable:
                continue  # media_node logged why
            return node
        raise MediaUnavailable("calls_media_unavailable")

    async def close(self) -> None:
        for node in self._nodes.values():
            await node.close()


async def open_calls(db: Database) -> dict[str | None, int]:
    """The number of calls not yet ended, by media node (``None``: not stored)."""
    column = call_records.c.media_node
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(column, sa.func.count())
            .where(call_records.c.ended_at.is_(None))
            .group_by(column)
        )
        return {row[0]: int(row[1]) for row in rows}


MEDIA_NODES = web.AppKey("media_nodes", MediaNodes)
