"""One change of a request's state: a conditional ``UPDATE`` that only a row in an
allowed state (held by the actor, unless a supervisor acts) passes, with its
audit entry and log line. :mod:`controlplane.requests.queue` builds on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.errors import Conflict, Forbidden, ValidationFailed
from controlplane.requests.callbacks import State
from controlplane.requests.queue_items import Actor, Request, load_request, may_work
from controlplane.security import audit
from controlplane.storage.schema import callback_requests

log = structlog.get_logger()

_req = callback_requests
#: What a request looks like once nobody holds it any more.
BACK_IN_QUEUE: dict[str, Any] = {
    "state": State.NEW.value,
    "claimed_by": None,
    "claimed_at": None,
}


def form_error(**details: str) -> ValidationFailed:
    """A 422 for the request page's action forms, naming the wrong fields."""
    return ValidationFailed("console_error_form", details=details)


def now_or_utc(now: datetime | None) -> datetime:
    """``now`` if given (tests), otherwise the current time."""
    return now if now is not None else datetime.now(UTC)


async def transition(
    conn: AsyncConnection,
    request_id: int,
    actor: Actor,
    from_states: Sequence[State],
    values: dict[str, Any],
    *,
    attempted: bool = False,
) -> Request:
    """Apply ``values`` if the request is in ``from_states`` (and, unless a
    supervisor acts, held by ``actor``; with ``attempted``, called at least
    once); otherwise say why not."""
    conditions = [_req.c.id == request_id, _req.c.state.in_(from_states)]
    if attempted:
        conditions.append(_req.c.attempts > 0)
    if not actor.is_supervisor:
        conditions.append(_req.c.claimed_by == actor.id)
    result = await conn.execute(
        sa.update(_req).where(*conditions).values(**values).returning(_req.c.id)
    )
    if result.first() is None:
        await _refuse(conn, request_id, actor)
    return await load_request(conn, request_id)


async def _refuse(conn: AsyncConnection, request_id: int, actor: Actor) -> None:
    current = await load_request(conn, request_id)
    if not current.is_open:
        raise Conflict("console_conflict_closed")
    if not may_work(current, actor) and current.claimed_by is not None:
        raise Forbidden("console_error_not_yours")
    raise Conflict("console_conflict_state")


async def audit_change(
    conn: AsyncConnection, action: str, actor: Actor, request_id: int, **details: Any
) -> None:
    """The audit entry of a change, in the change's transaction."""
    await audit.record(
        conn,
        action,
        user_id=actor.id,
        username=actor.username,
        request_id=request_id,
        **details,
    )


def logged(event: str, request: Request, actor: Actor, **fields: Any) -> None:
    """The log line of a committed change (ids and codes, no personal data)."""
    state = request.state.value
    log.info(event, request_id=request.id, state=state, user_id=actor.id, **fields)


async def update_many(
    conn: AsyncConnection, conditions: list[Any], **values: Any
) -> list[tuple[int, int | None]]:
    """Update every row that still matches; returns (id, previous holder) pairs."""
    candidates = (
        await conn.execute(sa.select(_req.c.id, _req.c.claimed_by).where(*conditions))
    ).all()
    changed: list[tuple[int, int | None]] = []
    for rid, holder in candidates:
        result = await conn.execute(
            sa.update(_req).where(_req.c.id == rid, *conditions).values(**values)
        )
        if result.rowcount == 1:
            changed.append((rid, holder))
    return changed


async def channels_of(conn: AsyncConnection, ids: list[int]) -> dict[str, int]:
    """How many of the requests ``ids`` are on each channel."""
    if not ids:
        return {}
    rows = await conn.execute(
        sa.select(_req.c.channel, sa.func.count())
        .where(_req.c.id.in_(ids))
        .group_by(_req.c.channel)
    )
    return {str(channel): int(count) for channel, count in rows}
