"""The staff queue's changes of state: claiming, calling, closing, notes,
reassigning, releasing stale claims and expiring overdue requests.

Every change is one conditional ``UPDATE`` (the row must still be in an allowed
state, and held by the actor unless a supervisor acts), so two people racing for
the same request cannot both win, on SQLite and PostgreSQL alike. Each change is
audited in the same transaction. Citizens' personal data never reaches a log line
or an audit entry; free-text notes live in ``request_notes`` only. The shared
parts live in :mod:`~controlplane.requests.transitions`,
:mod:`~controlplane.requests.closing` and :mod:`~controlplane.requests.notes`; how
requests are read and shown in :mod:`controlplane.requests.queue_items`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import DeskConfig
from controlplane.base.errors import Conflict, Forbidden
from controlplane.base.metrics import Metrics
from controlplane.requests.callbacks import CHANNELS, State
from controlplane.requests.closing import Closing, close, close_in, counted
from controlplane.requests.notes import clean_note, insert_note
from controlplane.requests.queue_items import (
    CLAIMED_OR_CALLING,
    SYSTEM,
    Actor,
    Request,
    load_request,
    may_work,
    stale_cutoff,
)
from controlplane.requests.transitions import (
    BACK_IN_QUEUE,
    audit_change,
    channels_of,
    form_error,
    logged,
    now_or_utc,
    transition,
    update_many,
)
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests, users
from controlplane.webhooks import callback_event, request_closed

log = structlog.get_logger()

#: How a completed call ended.
OUTCOMES = (
    "resolved",
    "report_taken",
    "referred",
    "information_given",
    "follow_up",
    "other",
)
#: Why a request was cancelled.
CANCEL_REASONS = ("citizen_withdrew", "duplicate", "wrong_desk", "unreachable", "other")
#: Why a request moved between video and phone.
SWITCH_REASONS = ("citizen_asked", "technical_problem", "accessibility", "other")

#: A request is closed with an outcome while it is called, or once its call is
#: over and it is back with its holder (claimed, called at least once).
AFTER_A_CALL = (State.CALLING, State.CLAIMED)
_COMPLETING = Closing(
    State.COMPLETED, "outcome", OUTCOMES, AFTER_A_CALL, attempted=True
)
_CANCELLING = Closing(State.CANCELLED, "reason", CANCEL_REASONS, CLAIMED_OR_CALLING)
_req = callback_requests


async def claim(
    db: Database, request_id: int, actor: Actor, *, now: datetime | None = None
) -> Request:
    """Take a new request; exactly one of many racing claims wins (:class:`Conflict`
    for the others)."""
    now = now_or_utc(now)
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
        await audit_change(conn, "request_claimed", actor, request_id)
        await callback_event(conn, request_id, "callback.claimed")
        request = await load_request(conn, request_id)
    logged("request_claimed", request, actor)
    return request


async def release(
    db: Database, request_id: int, actor: Actor, *, now: datetime | None = None
) -> Request:
    """Give a claimed request back to the queue (the holder or a supervisor)."""
    now = now_or_utc(now)
    async with db.write() as conn:
        before = await load_request(conn, request_id)
        request = await transition(
            conn,
            request_id,
            actor,
            (State.CLAIMED,),
            {**BACK_IN_QUEUE, "updated_at": now},
        )
        await audit_change(
            conn, "claim_released", actor, request_id, from_user_id=before.claimed_by
        )
    logged("claim_released", request, actor)
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
    now = now_or_utc(now)
    async with db.write() as conn:
        request = await transition(
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
        await audit_change(
            conn,
            "call_started",
            actor,
            request_id,
            attempt=request.attempts,
            channel=request.channel,
        )
        await callback_event(conn, request_id, "callback.attempted")
    if request.attempts == 1:
        waited = max(0.0, (now - request.due_at).total_seconds())
        metrics.time_to_first_attempt.observe(waited)
    logged("call_started", request, actor, attempt=request.attempts)
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
    """The call took place: calling (or claimed after a call) → completed, with
    one of :data:`OUTCOMES`."""
    return await close(db, metrics, request_id, actor, _COMPLETING, outcome, now)


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
    return await close(db, metrics, request_id, actor, _CANCELLING, reason, now)


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
    now = now_or_utc(now)
    async with db.write() as conn:
        current = await load_request(conn, request_id)
        if current.attempts >= desk.max_attempts:
            request = await close_in(
                conn,
                request_id,
                actor,
                State.NO_ANSWER,
                State.NO_ANSWER.value,
                AFTER_A_CALL,
                now,
                attempted=True,
            )
        else:
            request = await _schedule_retry(conn, desk, request_id, actor, now)
    if not request.is_open:
        return counted(metrics, request, actor)
    logged("retry_scheduled", request, actor, attempts=request.attempts)
    return request


async def _schedule_retry(
    conn: AsyncConnection,
    desk: DeskConfig,
    request_id: int,
    actor: Actor,
    now: datetime,
) -> Request:
    """calling (or claimed after a call) → new, due again after
    ``retry_delay_minutes``."""
    delay = desk.retry_delay_minutes
    request = await transition(
        conn,
        request_id,
        actor,
        AFTER_A_CALL,
        {
            **BACK_IN_QUEUE,
            "due_at": now + timedelta(minutes=delay),
            "updated_at": now,
        },
        attempted=True,
    )
    await audit_change(
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
    note = clean_note(note, errors, required=False)
    if errors:
        raise form_error(**errors)
    now = now_or_utc(now)
    async with db.write() as conn:
        before = await load_request(conn, request_id)
        if before.channel == channel and before.is_open:
            raise form_error(channel="console_field_channel_same")
        request = await transition(
            conn,
            request_id,
            actor,
            CLAIMED_OR_CALLING,
            {"channel": channel, "updated_at": now},
        )
        await audit_change(
            conn,
            "channel_switched",
            actor,
            request_id,
            from_channel=before.channel,
            to_channel=channel,
            reason=reason,
        )
        if note:
            await insert_note(conn, request_id, actor, note, now)
    logged("channel_switched", request, actor, channel=channel, reason=reason)
    return request


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
    text = clean_note(body, errors, required=True)
    if errors or text is None:
        raise form_error(**errors)
    now = now_or_utc(now)
    async with db.write() as conn:
        request = await load_request(conn, request_id)
        if not may_work(request, actor):
            raise Forbidden("console_error_not_yours")
        if request.is_open:
            await conn.execute(
                sa.update(_req).where(_req.c.id == request_id).values(updated_at=now)
            )
        await insert_note(conn, request_id, actor, text, now)
        await audit_change(conn, "note_added", actor, request_id)
    logged("note_added", request, actor)
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
    now = now_or_utc(now)
    async with db.write() as conn:
        target = (
            await conn.execute(
                sa.select(users.c.id).where(
                    users.c.id == to_user_id, users.c.active.is_(True)
                )
            )
        ).first()
        if target is None:
            raise form_error(user_id="console_field_user_invalid")
        before = await load_request(conn, request_id)
        request = await transition(
            conn,
            request_id,
            actor,
            CLAIMED_OR_CALLING,
            {"claimed_by": to_user_id, "claimed_at": now, "updated_at": now},
        )
        await audit_change(
            conn,
            "request_reassigned",
            actor,
            request_id,
            from_user_id=before.claimed_by,
            to_user_id=to_user_id,
        )
    logged("request_reassigned", request, actor, to_user_id=to_user_id)
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
    now = now_or_utc(now)
    conditions = [
        _req.c.state.in_([s.value for s in CLAIMED_OR_CALLING]),
        _req.c.updated_at <= stale_cutoff(desk, now),
    ]
    if request_id is not None:
        conditions.append(_req.c.id == request_id)
    async with db.write() as conn:
        if request_id is not None:
            await load_request(conn, request_id)
        released = await update_many(conn, conditions, **BACK_IN_QUEUE, updated_at=now)
        for rid, holder in released:
            await audit_change(
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


async def expire_overdue(
    db: Database,
    metrics: Metrics,
    desk: DeskConfig,
    *,
    now: datetime | None = None,
) -> list[int]:
    """Close unclaimed requests nobody handled ``expire_after_hours`` after they
    were due, as a system action; returns their ids."""
    now = now_or_utc(now)
    conditions = [
        _req.c.state == State.NEW.value,
        _req.c.claimed_by.is_(None),
        _req.c.due_at <= now - timedelta(hours=desk.expire_after_hours),
    ]
    async with db.write() as conn:
        expired = await update_many(
            conn,
            conditions,
            state=State.EXPIRED.value,
            outcome=State.EXPIRED.value,
            closed_at=now,
            updated_at=now,
        )
        for rid, _ in expired:
            await audit_change(
                conn,
                "request_expired",
                SYSTEM,
                rid,
                expire_after_hours=desk.expire_after_hours,
            )
            await request_closed(conn, rid, State.EXPIRED.value)
        by_channel = await channels_of(conn, [rid for rid, _ in expired])
    for channel, count in by_channel.items():
        code = State.EXPIRED.value
        metrics.outcomes.labels(code, code, channel).inc(count)
    if expired:
        log.info("requests_expired", count=len(expired))
    return [rid for rid, _ in expired]
