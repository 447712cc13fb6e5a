"""Closing a request: the final state with its outcome or reason code, audited in
the change's transaction, then counted and logged once committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.metrics import Metrics
from controlplane.requests.callbacks import State
from controlplane.requests.queue_items import Actor, Request
from controlplane.requests.transitions import (
    audit_change,
    form_error,
    logged,
    now_or_utc,
    transition,
)
from controlplane.storage.database import Database
from controlplane.webhooks import request_closed


@dataclass(frozen=True, slots=True)
class Closing:
    """How staff close a request: the state it ends in, the form field that says
    why (with its allowed codes), the states it may be closed from, and whether
    it must have been called first."""

    state: State
    field: str
    allowed: tuple[str, ...]
    from_states: Sequence[State]
    attempted: bool = False


async def close(
    db: Database,
    metrics: Metrics,
    request_id: int,
    actor: Actor,
    closing: Closing,
    why: str,
    now: datetime | None,
) -> Request:
    """Close the request as ``closing`` says, for the code ``why``."""
    if why not in closing.allowed:
        raise form_error(**{closing.field: f"console_field_{closing.field}_invalid"})
    async with db.write() as conn:
        request = await close_in(
            conn,
            request_id,
            actor,
            closing.state,
            why,
            closing.from_states,
            now_or_utc(now),
            attempted=closing.attempted,
        )
    return counted(metrics, request, actor)


async def close_in(
    conn: AsyncConnection,
    request_id: int,
    actor: Actor,
    state: State,
    outcome: str,
    from_states: Sequence[State],
    now: datetime,
    *,
    attempted: bool = False,
) -> Request:
    """Close the request in the caller's transaction (see :func:`counted`)."""
    request = await transition(
        conn,
        request_id,
        actor,
        from_states,
        {"state": state.value, "outcome": outcome, "closed_at": now, "updated_at": now},
        attempted=attempted,
    )
    await audit_change(
        conn,
        "request_closed",
        actor,
        request_id,
        state=state.value,
        outcome=outcome,
        attempts=request.attempts,
    )
    await request_closed(conn, request_id, state.value)
    return request


def counted(metrics: Metrics, request: Request, actor: Actor) -> Request:
    """Count and log a request that was closed and committed."""
    outcome = request.outcome or request.state.value
    metrics.outcomes.labels(request.state.value, outcome, request.channel).inc()
    logged("request_closed", request, actor, outcome=outcome)
    return request
