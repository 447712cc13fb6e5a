"""Callback requests as staff see them: the typed row, the queue listing, notes,
the staff who can take a claim, and who may work a request.

The changes of state live in :mod:`controlplane.requests.queue`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import DeskConfig
from controlplane.base.errors import NotFound
from controlplane.requests.callbacks import OPEN_STATES, State
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests, request_notes, users

_req = callback_requests
#: The states in which a staff member holds a request.
CLAIMED_OR_CALLING = (State.CLAIMED, State.CALLING)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acts on the queue: a signed-in staff member, or the system itself."""

    id: int | None
    username: str
    role: str

    @property
    def is_supervisor(self) -> bool:
        return self.role in ("supervisor", "admin")


SYSTEM = Actor(id=None, username="system", role="admin")


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """Narrows the queue; ``None`` means any. ``claimed_by`` keeps one person's
    claims (the console's "mine")."""

    channel: str | None = None
    topic: str | None = None
    state: str | None = None
    claimed_by: int | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """One callback request as staff see it, with the claimer's username."""

    id: int
    reference: str
    state: State
    channel: str
    topic: str
    language: str
    source: str
    name: str | None
    phone: str | None
    email: str | None
    accessibility: tuple[str, ...]
    accessibility_note: str | None
    preferred: str
    slot_start: datetime | None
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    claimed_by: int | None
    claimed_by_username: str | None
    claimed_at: datetime | None
    attempts: int
    first_attempt_at: datetime | None
    outcome: str | None
    closed_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def is_retry(self) -> bool:
        """Back in the queue after an unanswered call."""
        return self.state is State.NEW and self.attempts > 0

    def is_stale(self, desk: DeskConfig, now: datetime) -> bool:
        """Held by someone and untouched for ``desk.stale_claim_minutes``."""
        return self.state in CLAIMED_OR_CALLING and self.updated_at <= stale_cutoff(
            desk, now
        )

    @classmethod
    def from_row(cls, row: Any) -> Request:
        m = row._mapping
        values = {f.name: m[f.name] for f in fields(cls) if f.name in m}
        values.update(
            state=State(m["state"]),
            accessibility=tuple(m["accessibility"] or ()),
            claimed_by_username=m["claimer"],
        )
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Note:
    """A free-text note on a request, with its author's username."""

    author: str | None
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StaffMember:
    """An active staff account, as offered when a supervisor reassigns."""

    id: int
    username: str
    role: str


def stale_cutoff(desk: DeskConfig, now: datetime) -> datetime:
    """Claims untouched since this moment are stale."""
    return now - timedelta(minutes=desk.stale_claim_minutes)


def _select_requests() -> sa.Select[Any]:
    return sa.select(_req, users.c.username.label("claimer")).select_from(
        _req.outerjoin(users, users.c.id == _req.c.claimed_by)
    )


async def list_open(db: Database, where: QueueFilter | None = None) -> list[Request]:
    """Open requests (new, claimed, calling), the one due first on top."""
    where = where or QueueFilter()
    states = [s.value for s in OPEN_STATES]
    if where.state is not None:
        states = [where.state] if where.state in states else []
    query = _select_requests().where(_req.c.state.in_(states))
    if where.channel is not None:
        query = query.where(_req.c.channel == where.channel)
    if where.topic is not None:
        query = query.where(_req.c.topic == where.topic)
    if where.claimed_by is not None:
        query = query.where(_req.c.claimed_by == where.claimed_by)
    query = query.order_by(_req.c.due_at, _req.c.id)
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [Request.from_row(row) for row in rows]


async def get_request(db: Database, request_id: int) -> Request:
    """The request with ``request_id``; raises :class:`NotFound`."""
    async with db.read() as conn:
        return await load_request(conn, request_id)


async def load_request(conn: AsyncConnection, request_id: int) -> Request:
    """:func:`get_request` in the caller's transaction."""
    row = (
        await conn.execute(_select_requests().where(_req.c.id == request_id))
    ).first()
    if row is None:
        raise NotFound("console_error_not_found")
    return Request.from_row(row)


async def list_notes(db: Database, request_id: int) -> list[Note]:
    query = (
        sa.select(request_notes, users.c.username)
        .select_from(
            request_notes.outerjoin(users, users.c.id == request_notes.c.user_id)
        )
        .where(request_notes.c.request_id == request_id)
        .order_by(request_notes.c.created_at, request_notes.c.id)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [Note(row.username, row.body, row.created_at) for row in rows]


async def active_staff(db: Database) -> list[StaffMember]:
    """Staff accounts that can take over a claim, by username."""
    query = (
        sa.select(users.c.id, users.c.username, users.c.role)
        .where(users.c.active.is_(True))
        .order_by(users.c.username)
    )
    async with db.read() as conn:
        rows = (await conn.execute(query)).all()
    return [StaffMember(row.id, row.username, row.role) for row in rows]


def may_work(request: Request, actor: Actor) -> bool:
    """Only the claimer, supervisors and admins open and work a request."""
    return actor.is_supervisor or (
        request.claimed_by is not None and request.claimed_by == actor.id
    )
