"""The media nodes' health and load in the database, shared by every control-plane
process: heartbeats, marking a silent node down, and atomic room reservations.

A node's row (``media_nodes``) holds what its last heartbeat said. A node is
*placed on* when it is up and not draining; one that never sent a heartbeat is up
but not watched (heartbeats are optional, as in ``make run``). Its *placed* rooms
are its open call records plus the reservations whose record does not exist yet,
counted in one statement, so a room is counted exactly once at every moment. A
reservation is made while holding the node's row (``FOR UPDATE`` on PostgreSQL,
the single writer on SQLite), so concurrent starts in several processes never
place more than ``capacity`` rooms. Every function takes ``now``, so a simulation
can run on a virtual clock (``bench/national_sim.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from beeldbel.config import DEFAULT_MEDIA_CAPACITY
from controlplane.storage.database import Database
from controlplane.storage.schema import call_records, media_nodes, room_reservations

UP, DOWN = "up", "down"
#: A media worker is one process on one core; at this CPU share it is nearly full.
CPU_BUSY = 0.85


@dataclass(frozen=True, slots=True)
class Load:
    """What a node reports in a heartbeat."""

    capacity: int
    rooms: int
    participants: int
    packets_per_second: float
    cpu: float
    draining: bool

    def __post_init__(self) -> None:
        if not 1 <= self.capacity <= 100_000:
            raise ValueError(f"capacity {self.capacity} must be 1-100000")
        for name in ("rooms", "participants"):
            if not 0 <= getattr(self, name) < 2**31:
                raise ValueError(f"{name} {getattr(self, name)} must be 0-2147483647")
        for name in ("packets_per_second", "cpu"):
            if not 0 <= getattr(self, name) < 1e9:
                raise ValueError(f"{name} {getattr(self, name)} must be 0-1e9")


@dataclass(frozen=True, slots=True)
class NodeState:
    node_id: str
    capacity: int
    #: Open calls on it plus rooms being placed there.
    placed: int
    #: Process CPU per second at its last heartbeat (1.0 = one core).
    cpu: float
    draining: bool
    up: bool
    #: False until its first heartbeat: nobody watches it.
    watched: bool

    @property
    def open(self) -> bool:
        """New rooms may go here (if there is room)."""
        return self.up and not self.draining and self.placed < self.capacity

    @property
    def busy(self) -> bool:
        """Its process is near one full core: tried after every other node."""
        return self.cpu >= CPU_BUSY


@dataclass(frozen=True, slots=True)
class Nodes:
    """The placeable node ids in config order; calls stored without a node
    (``media_node`` NULL, from before nodes were stored) are on the first."""

    ids: tuple[str, ...]
    #: A reservation older than this no longer counts (its start failed or its
    #: process died before recording the call).
    reservation_seconds: float

    @property
    def first(self) -> str:
        return self.ids[0]


async def ensure_nodes(db: Database, node_ids: Sequence[str]) -> None:
    """A row for each configured node, so it is known before its first heartbeat."""
    async with db.read() as conn:
        known = set(
            (await conn.execute(sa.select(media_nodes.c.node_id))).scalars().all()
        )
    for node_id in node_ids:
        if node_id in known:
            continue
        try:
            async with db.write() as conn:
                await conn.execute(media_nodes.insert().values(node_id=node_id))
        except IntegrityError:
            pass  # another control-plane process added it at the same moment


async def record_heartbeat(
    db: Database, node_id: str, load: Load, now: datetime
) -> bool:
    """Store ``load`` as the node's latest; True when this brought it back up."""
    values = {
        "capacity": load.capacity,
        "rooms": load.rooms,
        "participants": load.participants,
        "packets_per_second": load.packets_per_second,
        "cpu": load.cpu,
        "draining": load.draining,
        "last_seen": now,
    }
    row = media_nodes.c.node_id == node_id
    async with db.write() as conn:
        back = await conn.execute(
            media_nodes.update()
            .where(row, media_nodes.c.state == DOWN)
            .values(state=UP, state_changed_at=now)
        )
        updated = await conn.execute(media_nodes.update().where(row).values(values))
        if updated.rowcount == 0:
            await conn.execute(media_nodes.insert().values(node_id=node_id, **values))
    return back.rowcount == 1


def _placed(node_id: str, nodes: Nodes, now: datetime) -> sa.ColumnElement[int]:
    """Open calls on ``node_id`` plus its live reservations without a record, as
    one expression (one snapshot: a room is either reserved or recorded)."""
    on_node = call_records.c.media_node == node_id
    if node_id == nodes.first:
        on_node = sa.or_(on_node, call_records.c.media_node.is_(None))
    calls = (
        sa.select(sa.func.count())
        .select_from(call_records)
        .where(on_node, call_records.c.ended_at.is_(None))
    )
    recorded = sa.exists().where(call_records.c.room_id == room_reservations.c.room_id)
    cutoff = now - timedelta(seconds=nodes.reservation_seconds)
    pending = (
        sa.select(sa.func.count())
        .select_from(room_reservations)
        .where(
            room_reservations.c.node_id == node_id,
            room_reservations.c.reserved_at >= cutoff,
            ~recorded,
        )
    )
    return calls.scalar_subquery() + pending.scalar_subquery()


async def node_states(db: Database, nodes: Nodes, now: datetime) -> list[NodeState]:
    """The state of each of ``nodes`` in config order (one without a row yet: up,
    unwatched, default capacity). The counts are for ordering and gauges; a
    reservation counts again under the node's lock (:func:`reserve`)."""
    cutoff = now - timedelta(seconds=nodes.reservation_seconds)
    recorded = sa.exists().where(call_records.c.room_id == room_reservations.c.room_id)
    node = call_records.c.media_node
    calls = (
        sa.select(node, sa.func.count())
        .where(call_records.c.ended_at.is_(None))
        .group_by(node)
    )
    pending = (
        sa.select(room_reservations.c.node_id, sa.func.count())
        .where(room_reservations.c.reserved_at >= cutoff, ~recorded)
        .group_by(room_reservations.c.node_id)
    )
    placed: dict[str, int] = dict.fromkeys(nodes.ids, 0)
    async with db.read() as conn:
        rows = {
            row.node_id: row
            for row in await conn.execute(
                sa.select(media_nodes).where(media_nodes.c.node_id.in_(nodes.ids))
            )
        }
        for statement in (calls, pending):
            for node_id, count in await conn.execute(statement):
                key = nodes.first if node_id is None else str(node_id)
                if key in placed:
                    placed[key] += int(count)
    states = []
    for node_id in nodes.ids:
        row = rows.get(node_id)
        states.append(
            NodeState(
                node_id,
                row.capacity if row is not None else DEFAULT_MEDIA_CAPACITY,
                placed[node_id],
                row.cpu if row is not None else 0.0,
                bool(row.draining) if row is not None else False,
                row is None or row.state == UP,
                row is not None and row.last_seen is not None,
            )
        )
    return states


def placement_order(states: Sequence[NodeState]) -> list[NodeState]:
    """The nodes a new room may go on: those with a busy CPU last, then the
    fewest placed rooms as a share of capacity first, ties in config order. (CPU
    only as a guard: small differences between idle nodes are noise.)"""
    order = {state.node_id: index for index, state in enumerate(states)}
    return sorted(
        (state for state in states if state.open),
        key=lambda s: (s.busy, s.placed / s.capacity, order[s.node_id]),
    )


async def reserve(
    db: Database, nodes: Nodes, node_id: str, room_id: str, now: datetime
) -> bool:
    """Reserve a place for ``room_id`` on ``node_id`` if it is up, not draining and
    below capacity; False otherwise. Atomic across processes: the node's row is
    held while counting and reserving."""
    async with db.write() as conn:
        row = (
            await conn.execute(
                sa.select(
                    media_nodes.c.capacity, media_nodes.c.state, media_nodes.c.draining
                )
                .where(media_nodes.c.node_id == node_id)
                .with_for_update()
            )
        ).first()
        if row is None or row.state != UP or row.draining:
            return False
        placed = await conn.scalar(sa.select(_placed(node_id, nodes, now)))
        if int(placed or 0) >= row.capacity:
            return False
        await conn.execute(
            room_reservations.insert().values(
                room_id=room_id, node_id=node_id, reserved_at=now
            )
        )
    return True


async def cancel(db: Database, room_id: str) -> None:
    """Give a reservation back (the node refused or failed to make the room)."""
    async with db.write() as conn:
        await conn.execute(
            room_reservations.delete().where(room_reservations.c.room_id == room_id)
        )


async def forget_reservations(db: Database, nodes: Nodes, now: datetime) -> int:
    """Delete reservations that no longer count: recorded or expired."""
    cutoff = now - timedelta(seconds=nodes.reservation_seconds)
    recorded = sa.exists().where(call_records.c.room_id == room_reservations.c.room_id)
    async with db.write() as conn:
        result = await conn.execute(
            room_reservations.delete().where(
                sa.or_(room_reservations.c.reserved_at < cutoff, recorded)
            )
        )
    return int(result.rowcount)


async def mark_lost(db: Database, down_after: float, now: datetime) -> list[str]:
    """Mark down the watched nodes silent for ``down_after`` seconds; the ids this
    call marked (another process marking one first gets it, not this one)."""
    cutoff = now - timedelta(seconds=down_after)
    silent = sa.and_(
        media_nodes.c.state == UP,
        media_nodes.c.last_seen.is_not(None),
        media_nodes.c.last_seen < cutoff,
    )
    async with db.read() as conn:
        candidates = (
            (await conn.execute(sa.select(media_nodes.c.node_id).where(silent)))
            .scalars()
            .all()
        )
    lost = []
    for node_id in candidates:
        # one conditional UPDATE: only the process whose update changed the row
        # ends the node's calls
        async with db.write() as conn:
            result = await conn.execute(
                media_nodes.update()
                .where(media_nodes.c.node_id == node_id, silent)
                .values(state=DOWN, state_changed_at=now)
            )
        if result.rowcount == 1:
            lost.append(node_id)
    return lost


async def down_since(db: Database, before: datetime) -> list[str]:
    """The nodes marked down before ``before``: their calls should have ended."""
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(media_nodes.c.node_id).where(
                media_nodes.c.state == DOWN, media_nodes.c.state_changed_at < before
            )
        )
        return [str(node_id) for node_id in rows.scalars()]


async def open_rooms_on(db: Database, nodes: Nodes, node_id: str) -> list[str]:
    """The rooms of the calls still open on ``node_id``."""
    on_node = call_records.c.media_node == node_id
    if node_id == nodes.first:
        on_node = sa.or_(on_node, call_records.c.media_node.is_(None))
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(call_records.c.room_id).where(
                on_node, call_records.c.ended_at.is_(None)
            )
        )
        return [str(room_id) for room_id in rows.scalars()]
