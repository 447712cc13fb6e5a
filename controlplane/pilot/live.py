"""What the desk is doing now, for the dashboard's live part: who waits for a
callback, who sits in a waiting room, the calls under way, the staff signed in
and the media nodes' load. One read of the database, whichever process asks.

These counts are not suppressed: supervisors see every waiting request on the
queue anyway, and nothing of them is kept or exported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.requests import CHANNELS
from controlplane.storage.database import Database
from controlplane.storage.schema import (
    call_events,
    call_records,
    callback_requests,
    media_nodes,
    sessions,
    users,
)

#: When a waiting citizen wants their call: as soon as possible, or at a time.
PREFERRED = ("asap", "slot")
#: A request waits while nobody is calling it yet.
WAITING_STATES = ("new", "claimed")
_req = callback_requests


@dataclass(frozen=True, slots=True)
class NodeLoad:
    """A media node as its last heartbeat reported it."""

    node_id: str
    up: bool
    draining: bool
    rooms: int
    capacity: int
    participants: int
    cpu: float
    last_seen: datetime | None


@dataclass(frozen=True, slots=True)
class LiveCounts:
    #: Waiting requests by channel, then by :data:`PREFERRED`.
    waiting: dict[str, dict[str, int]]
    #: Seconds the request that has been due longest has waited (None: none due).
    oldest_wait_seconds: float | None
    #: Open video calls whose citizen is in the waiting room now.
    in_lobby: int
    video_calls: int
    #: Phone callbacks being made (requests being called by phone).
    phone_calls: int
    #: Staff signed in (a live session with the second factor), by role.
    staff_online: dict[str, int]
    nodes: tuple[NodeLoad, ...] = field(default=())

    @property
    def waiting_total(self) -> int:
        return sum(sum(by_time.values()) for by_time in self.waiting.values())


async def live_counts(db: Database, now: datetime, idle: timedelta) -> LiveCounts:
    """The counts at ``now``; a session unused for ``idle`` no longer counts."""
    async with db.read() as conn:
        waiting, oldest = await _waiting(conn, now)
        open_rooms = list(
            (
                await conn.execute(
                    sa.select(call_records.c.room_id).where(
                        call_records.c.ended_at.is_(None),
                        call_records.c.channel == "video",
                    )
                )
            ).scalars()
        )
        phone = await conn.scalar(
            sa.select(sa.func.count()).where(
                _req.c.state == "calling", _req.c.channel == "phone"
            )
        )
        return LiveCounts(
            waiting=waiting,
            oldest_wait_seconds=oldest,
            in_lobby=await _in_lobby(conn, open_rooms),
            video_calls=len(open_rooms),
            phone_calls=int(phone or 0),
            staff_online=await _staff_online(conn, now, idle),
            nodes=await _nodes(conn),
        )


async def _waiting(
    conn: AsyncConnection, now: datetime
) -> tuple[dict[str, dict[str, int]], float | None]:
    rows = await conn.execute(
        sa.select(_req.c.channel, _req.c.preferred, sa.func.count())
        .where(_req.c.state.in_(WAITING_STATES))
        .group_by(_req.c.channel, _req.c.preferred)
    )
    waiting = {channel: dict.fromkeys(PREFERRED, 0) for channel in CHANNELS}
    for channel, preferred, n in rows:
        waiting.setdefault(channel, dict.fromkeys(PREFERRED, 0))[preferred] = int(n)
    oldest_due = await conn.scalar(
        sa.select(sa.func.min(_req.c.due_at)).where(
            _req.c.state.in_(WAITING_STATES), _req.c.due_at <= now
        )
    )
    # in whole minutes, as shown: a stream sends only counts that changed
    oldest = (
        None if oldest_due is None else (now - oldest_due).total_seconds() // 60 * 60
    )
    return waiting, oldest


async def _in_lobby(conn: AsyncConnection, rooms: list[str]) -> int:
    """How many of ``rooms`` have a citizen whose last step is the waiting room."""
    if not rooms:
        return 0
    rows = await conn.execute(
        sa.select(call_events.c.channel, call_events.c.data)
        .where(call_events.c.channel.in_(rooms), call_events.c.kind == "progress")
        .order_by(call_events.c.channel, call_events.c.seq)
    )
    last: dict[str, Any] = {}
    for room, data in rows:
        progress = json.loads(data)
        if progress.get("role") == "citizen":
            last[room] = progress.get("step")
    return sum(step == "waiting" for step in last.values())


async def _staff_online(
    conn: AsyncConnection, now: datetime, idle: timedelta
) -> dict[str, int]:
    rows = await conn.execute(
        sa.select(users.c.role, sa.func.count(sa.distinct(users.c.id)))
        .select_from(sessions.join(users, users.c.id == sessions.c.user_id))
        .where(
            sessions.c.mfa_done.is_(True),
            sessions.c.expires_at > now,
            sessions.c.last_seen_at > now - idle,
            users.c.active.is_(True),
        )
        .group_by(users.c.role)
    )
    return {str(role): int(n) for role, n in rows}


async def _nodes(conn: AsyncConnection) -> tuple[NodeLoad, ...]:
    rows = await conn.execute(sa.select(media_nodes).order_by(media_nodes.c.node_id))
    return tuple(
        NodeLoad(
            node_id=row.node_id,
            up=row.state == "up",
            draining=bool(row.draining),
            rooms=int(row.rooms),
            capacity=int(row.capacity),
            participants=int(row.participants),
            cpu=float(row.cpu),
            last_seen=row.last_seen,
        )
        for row in rows
    )
