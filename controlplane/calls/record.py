"""The record of each call: its quality, its outcome and the answers of the
surveys after it. Most are video calls; a phone callback gets a record too
(:func:`phone_call_record`, channel ``phone``), made when its first survey answer
comes, so video and phone compare on the same questions.

One ``call_records`` row per room holds the technical summary (time from join to
first picture, direct or relayed connection, reconnects, RTT and loss, outcome)
and the answers of the citizen and the employee. It has no personal data and is
kept when the request's personal data is purged. The citizen's free-text comment
is capped at :data:`COMMENT_MAX` characters and the form asks not to put personal
data in it; it is kept with the answers (the survey's purpose is to learn from
them), so the privacy statement and the form both say so.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.errors import Conflict, NotFound
from controlplane.requests import Actor, get_request
from controlplane.security import audit
from controlplane.storage.database import Database
from controlplane.storage.schema import audit_log, call_records

log = structlog.get_logger()

CONNECTION_TYPES = ("direct", "relay", "unknown")
SCALE = (1, 2, 3, 4, 5)
WOULD_USE_AGAIN = ("yes", "no", "unsure")
CASE_HANDLED = ("yes", "no", "partly")
COMMENT_MAX = 1000


@dataclass(frozen=True, slots=True)
class Quality:
    """The technical summary of a call, as measured by the browsers and media."""

    join_to_first_picture_ms: int | None = None
    connection_type: str = "unknown"
    reconnects: int = 0
    rtt_ms_p50: int | None = None
    rtt_ms_p95: int | None = None
    loss_pct: float | None = None

    def __post_init__(self) -> None:
        if self.connection_type not in CONNECTION_TYPES:
            raise ValueError(
                f"connection_type {self.connection_type!r} not in {CONNECTION_TYPES}"
            )
        for name in ("join_to_first_picture_ms", "rtt_ms_p50", "rtt_ms_p95"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")
        if self.reconnects < 0:
            raise ValueError(f"reconnects must not be negative, not {self.reconnects}")
        if self.loss_pct is not None and not 0 <= self.loss_pct <= 100:
            raise ValueError(f"loss_pct {self.loss_pct} must be 0-100")


@dataclass(frozen=True, slots=True)
class CitizenSurvey:
    ease: int
    av_quality: int
    would_use_again: str
    comment: str = ""

    def __post_init__(self) -> None:
        if self.ease not in SCALE or self.av_quality not in SCALE:
            raise ValueError("ease and av_quality must be 1-5")
        if self.would_use_again not in WOULD_USE_AGAIN:
            raise ValueError(f"would_use_again must be one of {WOULD_USE_AGAIN}")
        if len(self.comment) > COMMENT_MAX:
            raise ValueError(f"comment must be at most {COMMENT_MAX} characters")


@dataclass(frozen=True, slots=True)
class EmployeeSurvey:
    quality: int
    case_handled: str
    would_use_again: str

    def __post_init__(self) -> None:
        if self.quality not in SCALE:
            raise ValueError("quality must be 1-5")
        if self.case_handled not in CASE_HANDLED:
            raise ValueError(f"case_handled must be one of {CASE_HANDLED}")
        if self.would_use_again not in WOULD_USE_AGAIN:
            raise ValueError(f"would_use_again must be one of {WOULD_USE_AGAIN}")


#: The outcome of a video call the employee turned into a phone call.
SWITCHED_TO_PHONE = "switched_to_phone"


@dataclass(frozen=True, slots=True)
class CallRecord:
    id: int
    request_id: int | None
    room_id: str
    started_at: datetime
    ended_at: datetime | None
    outcome: str | None
    quality: Quality
    citizen: CitizenSurvey | None
    employee: EmployeeSurvey | None
    #: The media node the room is on; None for calls from before there were several.
    media_node: str | None = None
    #: video, or phone for a phone callback (no room, no quality)
    channel: str = "video"


def _record(row: Any) -> CallRecord:
    citizen = None
    if row.citizen_answered_at is not None:
        citizen = CitizenSurvey(
            row.citizen_ease,
            row.citizen_av_quality,
            row.citizen_would_use_again,
            row.citizen_comment or "",
        )
    employee = None
    if row.employee_answered_at is not None:
        employee = EmployeeSurvey(
            row.employee_quality,
            row.employee_case_handled,
            row.employee_would_use_again,
        )
    return CallRecord(
        id=row.id,
        request_id=row.request_id,
        room_id=row.room_id,
        started_at=row.started_at,
        ended_at=row.ended_at,
        outcome=row.outcome,
        quality=Quality(
            row.join_to_first_picture_ms,
            row.connection_type,
            row.reconnects,
            row.rtt_ms_p50,
            row.rtt_ms_p95,
            row.loss_pct,
        ),
        citizen=citizen,
        employee=employee,
        media_node=row.media_node,
        channel=row.channel,
    )


# storage


#: Work done in the transaction that writes a record (its id given): the audit
#: entry and the webhook events, so they exist if and only if the change does.
InTransaction = Callable[[AsyncConnection, int], Awaitable[None]]


async def create_call_record(
    db: Database,
    *,
    room_id: str,
    request_id: int | None,
    started_at: datetime | None = None,
    media_node: str | None = None,
    then: InTransaction | None = None,
) -> int:
    """The id of ``room_id``'s record; made on the first call (idempotent), with
    ``then`` in the transaction that makes it."""
    existing = await find_by_room(db, room_id)
    if existing is not None:
        return existing.id
    try:
        async with db.write() as conn:
            record_id = (
                await conn.execute(
                    call_records.insert()
                    .values(
                        room_id=room_id,
                        request_id=request_id,
                        media_node=media_node,
                        started_at=started_at or datetime.now(UTC),
                        connection_type="unknown",
                        reconnects=0,
                    )
                    .returning(call_records.c.id)
                )
            ).scalar_one()
            record_id = int(record_id)
            if then is not None:
                await then(conn, record_id)
    except IntegrityError:
        # made at the same moment by another worker
        again = await find_by_room(db, room_id)
        if again is None:
            raise
        return again.id
    log.info("call_record_created", room_id=room_id, record_id=record_id)
    return record_id


def phone_room(request_id: int) -> str:
    """The room id of a phone callback's record: there is no room, and there is
    one such record per request (the unique room id keeps it to one)."""
    return f"phone:{request_id}"


async def phone_call_record(
    db: Database, request_id: int, *, started_at: datetime, ended_at: datetime
) -> CallRecord:
    """The record of request ``request_id``'s phone callback; made on the first
    call (idempotent, also when two answers come at once)."""
    room_id = phone_room(request_id)
    existing = await find_by_room(db, room_id)
    if existing is not None:
        return existing
    values = {
        "room_id": room_id,
        "request_id": request_id,
        "channel": "phone",
        "started_at": started_at,
        "ended_at": ended_at,
        "connection_type": "unknown",
        "reconnects": 0,
    }
    with contextlib.suppress(IntegrityError):  # made at this moment by another
        async with db.write() as conn:
            await conn.execute(call_records.insert().values(**values))
        log.info("call_record_created", request_id=request_id, channel="phone")
    made = await find_by_room(db, room_id)
    if made is None:
        raise NotFound("survey_no_call")
    return made


async def records_of_request(db: Database, request_id: int) -> list[CallRecord]:
    """Every call record of request ``request_id``, oldest first."""
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(call_records)
            .where(call_records.c.request_id == request_id)
            .order_by(call_records.c.id)
        )
        return [_record(row) for row in rows]


async def get_call_record(db: Database, record_id: int) -> CallRecord:
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(call_records).where(call_records.c.id == record_id)
            )
        ).first()
    if row is None:
        raise NotFound("survey_no_call")
    return _record(row)


async def find_by_room(db: Database, room_id: str) -> CallRecord | None:
    async with db.read() as conn:
        row = (
            await conn.execute(
                sa.select(call_records).where(call_records.c.room_id == room_id)
            )
        ).first()
    return None if row is None else _record(row)


async def _update(
    db: Database,
    record_id: int,
    values: Mapping[str, Any],
    *,
    once: str = "",
    audited: Mapping[str, Any] | None = None,
    then: InTransaction | None = None,
) -> None:
    """Update a record; with ``once``, only while that column is still empty; with
    ``audited`` (:func:`audit.record`'s arguments), audited in the same transaction.
    """
    statement = call_records.update().where(call_records.c.id == record_id)
    if once:
        statement = statement.where(call_records.c[once].is_(None))
    async with db.write() as conn:
        result = await conn.execute(statement.values(**values))
        if result.rowcount == 1 and audited is not None:
            await audit.record(conn, **audited)
        if result.rowcount == 1 and then is not None:
            await then(conn, record_id)
    if result.rowcount == 1:
        return
    await get_call_record(db, record_id)  # NotFound when there is no such record
    raise Conflict("survey_already_answered")


async def update_quality(db: Database, record_id: int, quality: Quality) -> None:
    """Store the latest quality summary of a call (replaces the previous one)."""
    await _update(
        db,
        record_id,
        {
            "join_to_first_picture_ms": quality.join_to_first_picture_ms,
            "connection_type": quality.connection_type,
            "reconnects": quality.reconnects,
            "rtt_ms_p50": quality.rtt_ms_p50,
            "rtt_ms_p95": quality.rtt_ms_p95,
            "loss_pct": quality.loss_pct,
        },
    )


async def finish_call(
    db: Database,
    record_id: int,
    *,
    outcome: str,
    ended_at: datetime | None = None,
    then: InTransaction | None = None,
) -> None:
    """Mark the call ended with ``outcome`` (a code such as ``completed``), with
    ``then`` in the same transaction."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,31}", outcome):
        raise ValueError(f"outcome {outcome!r} must be a short code")
    values = {"outcome": outcome, "ended_at": ended_at or datetime.now(UTC)}
    await _update(db, record_id, values, then=then)


async def save_citizen_survey(
    db: Database, record_id: int, survey: CitizenSurvey
) -> None:
    """Store the citizen's answers once; :class:`Conflict` if already answered."""
    await _update(
        db,
        record_id,
        {
            "citizen_ease": survey.ease,
            "citizen_av_quality": survey.av_quality,
            "citizen_would_use_again": survey.would_use_again,
            "citizen_comment": survey.comment or None,
            "citizen_answered_at": datetime.now(UTC),
        },
        once="citizen_answered_at",
    )
    log.info("citizen_survey_saved", record_id=record_id)


async def save_employee_survey(
    db: Database, record: CallRecord, survey: EmployeeSurvey, *, by: Actor
) -> None:
    """Store the answers of ``by``, the employee who handled the call, once and
    audited; :class:`Conflict` if already answered."""
    record_id = record.id
    await _update(
        db,
        record_id,
        {
            "employee_quality": survey.quality,
            "employee_case_handled": survey.case_handled,
            "employee_would_use_again": survey.would_use_again,
            "employee_answered_at": datetime.now(UTC),
        },
        once="employee_answered_at",
        audited={
            "action": "survey_answered",
            "user_id": by.id,
            "username": by.username,
            "request_id": record.request_id,
            "record_id": record_id,
        },
    )
    log.info("employee_survey_saved", record_id=record_id)


async def handled_by(db: Database, record: CallRecord) -> int | None:
    """The id of the employee who handled ``record``'s call: who started it (from
    the audit of the start), else who holds its request; None if neither is known.
    """
    if record.request_id is None:
        return None
    async with db.read() as conn:
        starts = await conn.execute(
            sa.select(audit_log.c.user_id, audit_log.c.details)
            .where(audit_log.c.action == "video_call_started")
            .where(audit_log.c.request_id == record.request_id)
        )
        for user_id, details in starts:
            if user_id is not None and details.get("record_id") == record.id:
                return int(user_id)
    try:
        return (await get_request(db, record.request_id)).claimed_by
    except NotFound:
        return None
