"""The staff queue's changes of state: claiming, calling, closing, notes,
reassigning, releasing stale claims and expiring overdue requests.

Every change is one conditional ``UPDATE`` (the row must still be in an allowed
state, and held by the actor unless a supervisor acts), so two people racing for
the same request cannot both win, on SQLite and PostgreSQL alike. Each change is
audited in the same transaction. Citizens' personal data never reaches a log line
or an audit entry; free-text notes live in ``request_notes`` only. How requests
are read and shown lives in :mod:`controlplane.requests.queue_items`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import DeskConfig
from controlplane.base.errors import Conflict, Forbidden, ValidationFailed
from controlplane.base.metrics import Metrics
from controlplane.requests.callbacks import CHANNELS, State
from controlplane.requests.queue_items import (
    CLAIMED_OR_CALLING,
    SYSTEM,
    Actor,
    Request,
    load_request,
    may_work,
    stale_cutoff,
)
from controlplane.requests.validation import has_controls
from controlplane.security import audit
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests, request_notes, users

log = structlog.get_logger()

#: How a completed call ended.
OUTCOMES = ("resolved", "report_taken", "referred", "information_given", "other")
#: Why a request was cancelled.
CANCEL_REASONS = ("citizen_withdrew", "duplicate", "wrong_desk", "unreachable", "other")
#: Why a request moved between video and phone.
SWITCH_REASONS = ("citizen_asked", "technical_problem", "accessibility", "other")
NOTE_MAX_CHARS = 2000

_req = callback_requests
#: What a request looks like once nobody holds it any more.
_BACK_IN_QUEUE: dict[str, Any] = {
    "state": State.NEW.value,
    "claimed_by": None,
    "claimed_at": None,
}


def _form_error(**details: str) -> ValidationFailed:
    """A 422 for the request page's action forms, naming the wrong fields."""
    return ValidationFailed("console_error_form", details=details)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


async def _transition(
    conn: AsyncConnection,
    request_id: int,
    actor: Actor,
    from_states: Sequence[State],
    values: dict[str, Any],
) -> Request:
    """Apply ``values`` if the request is in ``from_states`` (and, unless a
    supervisor acts, held by ``actor``); otherwise say why not."""
    conditions = [_req.c.id == request_id, _req.c.state.in_(from_states)]
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


async def _audit(
    conn: AsyncConnection, action: str, actor: Actor, request_id: int, **details: Any
) -> None:
    await audit.record(
        conn,
        action,
        user_id=actor.id,
        username=actor.username,
        request_id=request_id,
        **details,
    )


def _logged(event: str, request: Request, actor: Actor, **fields: Any) -> None:
    state = request.state.value
    log.info(event, request_id=request.id, state=state, user_id=actor.id, **fields)


async def claim(
    db: Database, request_id: int, actor: Actor, *, now: datetime | None = None
) -> Request:
    """Take a new request; exactly one of many racing claims wins (:class:`Conflict`
    for the others)."""
    now = _now(now)
    async with db.write() as conn:
        result = await conn.execute(
            sa.update(_req)
            .where(_req.c.id == request_id, _req.c.state == State.NEW.value)
            .values(
                state=State.CLAIMED.value,
                claimed_by=actor.id,
                claimed_at=now,
                updated_at=now,
            )
        )
        if result.rowcount != 1:
            current = await load_request(conn, request_id)
            if not current.is_open:
                raise Conflict("console_conflict_closed")
            raise Conflict("console_conflict_taken")
        await _audit(conn, "request_claimed", actor, request_id)
        request = await load_request(conn, request_id)
    _logged("request_claimed", request, actor)
    return request


async def release(
    db: Database, request_id: int, actor: Actor, *, now: datetime | None = None
) -> Request:
    """Give a claimed request back to the queue (the holder or a supervisor)."""
    now = _now(now)
    async with db.write() as conn:
        before = await load_request(conn, request_id)
        request = await _transition(
            conn,
            request_id,
            actor,
            (State.CLAIMED,),
            {**_BACK_IN_QUEUE, "updated_at": now},
        )
        await _audit(
            conn, "claim_released", actor, request_id, from_user_id=before.claimed_by
        )
    _logged("claim_released", request, actor)
    return request


async def start_attempt(
    db: Database,
    metrics: Metrics,
    request_id: int,
    actor: Actor,
    *,
    now: datetime | None = None,
) -> Request:
    """Start calling the citizen: claimed → calling, one more attempt."""
    now = _now(now)
    async with db.write() as conn:
        request = await _transition(
            conn,
            request_id,
            actor,
            (State.CLAIMED,),
            {
                "state": State.CALLING.value,
                "attempts": _req.c.attempts + 1,
                "first_attempt_at": sa.func.coalesce(_req.c.first_attempt_at, now),
                "updated_at": now,
            },
        )
        await _audit(
            conn,
            "call_started",
            actor,
            request_id,
            attempt=request.attempts,
            channel=request.channel,
        )
    if request.attempts == 1:
        waited = max(0.0, (now - request.due_at).total_seconds())
        metrics.time_to_first_attempt.observe(waited)
    _logged("call_started", request, actor, attempt=request.attempts)
    return request


async def _close_in(
    conn: AsyncConnection,
    request_id: int,
    actor: Actor,
    state: State,
    outcome: str,
    from_states: Sequence[State],
    now: datetime,
) -> Request:
    """Close the request in the caller's transaction (see :func:`_counted`)."""
    request = await _transition(
        conn,
        request_id,
        actor,
        from_states,
        {"state": state.value, "outcome": outcome, "closed_at": now, "updated_at": now},
    )
    await _audit(
        conn,
        "request_closed",
        actor,
        request_id,
        state=state.value,
        outcome=outcome,
        attempts=request.attempts,
    )
    return request


def _counted(metrics: Metrics, request: Request, actor: Actor) -> Request:
    """Count and log a request that was closed and committed."""
    outcome = request.outcome or request.state.value
    metrics.outcomes.labels(request.state.value, outcome).inc()
    _logged("request_closed", request, actor, outcome=outcome)
    return request


async def complete(
    db: Database,
    metrics: Metrics,
    request_id: int,
    actor: Actor,
    outcome: str,
    *,
    now: datetime | None = None,
) -> Request:
    """The call took place: calling → completed, with one of :data:`OUTCOMES`."""
    if outcome not in OUTCOMES:
        raise _form_error(outcome="console_field_outcome_invalid")
    async with db.write() as conn:
        request = await _close_in(
            conn,
            request_id,
            actor,
            State.COMPLETED,
            outcome,
            (State.CALLING,),
            _now(now),
        )
    return _counted(metrics, request, actor)


async def cancel(
    db: Database,
    metrics: Metrics,
    request_id: int,
    actor: Actor,
    reason: str,
    *,
    now: datetime | None = None,
) -> Request:
    """Stop working a request for a reason from :data:`CANCEL_REASONS`."""
    if reason not in CANCEL_REASONS:
        raise _form_error(reason="console_field_reason_invalid")
    async with db.write() as conn:
        request = await _close_in(
            conn,
            request_id,
            actor,
            State.CANCELLED,
            reason,
            CLAIMED_OR_CALLING,
            _now(now),
        )
    return _counted(metrics, request, actor)


async def no_answer(
    db: Database,
    metrics: Metrics,
    desk: DeskConfig,
    request_id: int,
    actor: Actor,
    *,
    now: datetime | None = None,
) -> Request:
    """Nobody answered: back to the queue after ``retry_delay_minutes``, or closed as
    ``no_answer`` once ``max_attempts`` calls were made."""
    now = _now(now)
    async with db.write() as conn:
        current = await load_request(conn, request_id)
        if current.attempts >= desk.max_attempts:
            request = await _close_in(
                conn,
                request_id,
                actor,
                State.NO_ANSWER,
                State.NO_ANSWER.value,
                (State.CALLING,),
                now,
            )
        else:
            request = await _schedule_retry(conn, desk, request_id, actor, now)
    if not request.is_open:
        return _counted(metrics, request, actor)
    _logged("retry_scheduled", request, actor, attempts=request.attempts)
    return request


async def _schedule_retry(
    conn: AsyncConnection,
    desk: DeskConfig,
    request_id: int,
    actor: Actor,
    now: datetime,
) -> Request:
    """calling → new, due again after ``retry_delay_minutes``."""
    delay = desk.retry_delay_minutes
    request = await _transition(
        conn,
        request_id,
        actor,
        (State.CALLING,),
        {
            **_BACK_IN_QUEUE,
            "due_at": now + timedelta(minutes=delay),
            "updated_at": now,
        },
    )
    await _audit(
        conn,
        "retry_scheduled",
        actor,
        request_id,
        attempts=request.attempts,
        retry_in_minutes=delay,
    )
    return request


async def switch_channel(
    db: Database,
    request_id: int,
    actor: Actor,
    channel: str,
    reason: str,
    note: str | None = None,
    *,
    now: datetime | None = None,
) -> Request:
    """Move between video and phone. The audit keeps the reason code; the optional
    free-text note goes to the request's notes."""
    errors: dict[str, str] = {}
    if channel not in CHANNELS:
        errors["channel"] = "console_field_channel_invalid"
    if reason not in SWITCH_REASONS:
        errors["reason"] = "console_field_reason_invalid"
    note = _clean_note(note, errors, required=False)
    if errors:
        raise _form_error(**errors)
    now = _now(now)
    async with db.write() as conn:
        before = await load_request(conn, request_id)
        if before.channel == channel and before.is_open:
            raise _form_error(channel="console_field_channel_same")
        request = await _transition(
            conn,
            request_id,
            actor,
            CLAIMED_OR_CALLING,
            {"channel": channel, "updated_at": now},
        )
        await _audit(
            conn,
            "channel_switched",
            actor,
            request_id,
            from_channel=before.channel,
            to_channel=channel,
            reason=reason,
        )
        if note:
            await _insert_note(conn, request_id, actor, note, now)
    _logged("channel_switched", request, actor, channel=channel, reason=reason)
    return request


def _clean_note(
    body: str | None, errors: dict[str, str], *, required: bool
) -> str | None:
    text = (body or "").strip()
    if not text:
        if required:
            errors["note"] = "console_field_note_required"
        return None
    if len(text) > NOTE_MAX_CHARS:
        errors["note"] = "console_field_note_too_long"
    elif has_controls(text, allowed="\n\r\t"):
        errors["note"] = "console_field_note_invalid"
    return text


async def _insert_note(
    conn: AsyncConnection, request_id: int, actor: Actor, body: str, now: datetime
) -> None:
    await conn.execute(
        sa.insert(request_notes).values(
            request_id=request_id, user_id=actor.id, body=body, created_at=now
        )
    )


async def add_note(
    db: Database,
    request_id: int,
    actor: Actor,
    body: str,
    *,
    now: datetime | None = None,
) -> Request:
    """Keep a free-text note with the request (personal data: erased by retention,
    never copied to the audit log)."""
    errors: dict[str, str] = {}
    text = _clean_note(body, errors, required=True)
    if errors or text is None:
        raise _form_error(**errors)
    now = _now(now)
    async with db.write() as conn:
        request = await load_request(conn, request_id)
        if not may_work(request, actor):
            raise Forbidden("console_error_not_yours")
        if request.is_open:
            await conn.execute(
                sa.update(_req).where(_req.c.id == request_id).values(updated_at=now)
            )
        await _insert_note(conn, request_id, actor, text, now)
        await _audit(conn, "note_added", actor, request_id)
    _logged("note_added", request, actor)
    return request


async def reassign(
    db: Database,
    request_id: int,
    actor: Actor,
    to_user_id: int,
    *,
    now: datetime | None = None,
) -> Request:
    """A supervisor hands a held request to another active staff member."""
    if not actor.is_supervisor:
        raise Forbidden("console_error_supervisor_only")
    now = _now(now)
    async with db.write() as conn:
        target = (
            await conn.execute(
                sa.select(users.c.id).where(
                    users.c.id == to_user_id, users.c.active.is_(True)
                )
            )
        ).first()
        if target is None:
            raise _form_error(user_id="console_field_user_invalid")
        before = await load_request(conn, request_id)
        request = await _transition(
            conn,
            request_id,
            actor,
            CLAIMED_OR_CALLING,
            {"claimed_by": to_user_id, "claimed_at": now, "updated_at": now},
        )
        await _audit(
            conn,
            "request_reassigned",
            actor,
            request_id,
            from_user_id=before.claimed_by,
            to_user_id=to_user_id,
        )
    _logged("request_reassigned", request, actor, to_user_id=to_user_id)
    return request


async def release_stale(
    db: Database,
    desk: DeskConfig,
    actor: Actor,
    *,
    request_id: int | None = None,
    now: datetime | None = None,
) -> list[int]:
    """A supervisor releases claims untouched for ``stale_claim_minutes`` (one, or
    all of them); returns the released ids."""
    if not actor.is_supervisor:
        raise Forbidden("console_error_supervisor_only")
    now = _now(now)
    conditions = [
        _req.c.state.in_([s.value for s in CLAIMED_OR_CALLING]),
        _req.c.updated_at <= stale_cutoff(desk, now),
    ]
    if request_id is not None:
        conditions.append(_req.c.id == request_id)
    async with db.write() as conn:
        if request_id is not None:
            await load_request(conn, request_id)
        released = await _update_many(
            conn, conditions, **_BACK_IN_QUEUE, updated_at=now
        )
        for rid, holder in released:
            await _audit(
                conn,
                "stale_claim_released",
                actor,
                rid,
                from_user_id=holder,
                stale_after_minutes=desk.stale_claim_minutes,
            )
        if request_id is not None and not released:
            raise Conflict("console_conflict_not_stale")
    ids = [rid for rid, _ in released]
    log.info("stale_claims_released", count=len(ids), user_id=actor.id)
    return ids


async def _update_many(
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


async def expire_overdue(
    db: Database,
    metrics: Metrics,
    desk: DeskConfig,
    *,
    now: datetime | None = None,
) -> list[int]:
    """Close unclaimed requests nobody handled ``expire_after_hours`` after they
    were due, as a system action; returns their ids."""
    now = _now(now)
    conditions = [
        _req.c.state == State.NEW.value,
        _req.c.claimed_by.is_(None),
        _req.c.due_at <= now - timedelta(hours=desk.expire_after_hours),
    ]
    async with db.write() as conn:
        expired = await _update_many(
            conn,
            conditions,
            state=State.EXPIRED.value,
            outcome=State.EXPIRED.value,
            closed_at=now,
            updated_at=now,
        )
        for rid, _ in expired:
            await _audit(
                conn,
                "request_expired",
                SYSTEM,
                rid,
                expire_after_hours=desk.expire_after_hours,
            )
    if expired:
        metrics.outcomes.labels(State.EXPIRED.value, State.EXPIRED.value).inc(
            len(expired)
        )
        log.info("requests_expired", count=len(expired))
    return [rid for rid, _ in expired]
