"""The record of each video call: its quality and the surveys after it.

One ``call_records`` row per room holds the technical summary (time from join to
first picture, direct or relayed connection, reconnects, RTT and loss, outcome)
and the answers of the citizen and the employee. It has no personal data and is
kept when the request's personal data is purged. The citizen's free-text comment
is capped at :data:`COMMENT_MAX` characters and the form asks not to put personal
data in it; it is kept with the answers (the survey's purpose is to learn from
them), so the privacy statement and the form both say so.

Pages: ``/gesprek/enquete`` for the citizen (bound to the browser session of the
call, also after the call ended) and ``/staff/gesprekken/{record_id}/enquete``
for the employee.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from controlplane import auth, join_links
from controlplane.errors import Conflict, NotFound, ValidationFailed
from controlplane.rendering import render
from controlplane.state import DB
from controlplane.storage.database import Database
from controlplane.storage.schema import call_records

log = structlog.get_logger()

CONNECTION_TYPES = ("direct", "relay", "unknown")
SCALE = (1, 2, 3, 4, 5)
WOULD_USE_AGAIN = ("yes", "no", "unsure")
CASE_HANDLED = ("yes", "no", "partly")
COMMENT_MAX = 1000
CITIZEN_FIELDS = ("ease", "av_quality", "would_use_again", "comment")
EMPLOYEE_FIELDS = ("quality", "case_handled", "would_use_again")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


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
    )


# storage


async def create_call_record(
    db: Database,
    *,
    room_id: str,
    request_id: int | None,
    started_at: datetime | None = None,
    media_node: str | None = None,
) -> int:
    """The id of ``room_id``'s record; made on the first call (idempotent)."""
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
    except IntegrityError:
        # made at the same moment by another worker
        again = await find_by_room(db, room_id)
        if again is None:
            raise
        return again.id
    log.info("call_record_created", room_id=room_id, record_id=record_id)
    return record_id


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
    db: Database, record_id: int, values: Mapping[str, Any], *, once: str = ""
) -> None:
    """Update a record; with ``once``, only while that column is still empty."""
    statement = call_records.update().where(call_records.c.id == record_id)
    if once:
        statement = statement.where(call_records.c[once].is_(None))
    async with db.write() as conn:
        result = await conn.execute(statement.values(**values))
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
    db: Database, record_id: int, *, outcome: str, ended_at: datetime | None = None
) -> None:
    """Mark the call ended with ``outcome`` (a code such as ``completed``)."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{1,31}", outcome):
        raise ValueError(f"outcome {outcome!r} must be a short code")
    await _update(
        db, record_id, {"outcome": outcome, "ended_at": ended_at or datetime.now(UTC)}
    )


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
    db: Database, record_id: int, survey: EmployeeSurvey
) -> None:
    """Store the employee's answers once; :class:`Conflict` if already answered."""
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
    )
    log.info("employee_survey_saved", record_id=record_id)


# forms


def _choice(
    form: Mapping[str, Any],
    name: str,
    allowed: tuple[Any, ...],
    errors: dict[str, str],
) -> Any:
    raw = form.get(name)
    by_text = {str(option): option for option in allowed}
    text = raw.strip() if isinstance(raw, str) else None
    if text not in by_text:
        errors[name] = f"survey_error_{name}"
        return None
    return by_text[text]


def parse_citizen_form(form: Mapping[str, Any]) -> CitizenSurvey:
    """The citizen's answers; :class:`ValidationFailed` maps fields to messages."""
    errors: dict[str, str] = {}
    ease = _choice(form, "ease", SCALE, errors)
    av_quality = _choice(form, "av_quality", SCALE, errors)
    again = _choice(form, "would_use_again", WOULD_USE_AGAIN, errors)
    raw = form.get("comment")
    comment = _CONTROL.sub("", raw).strip() if isinstance(raw, str) else ""
    comment = comment.replace("\r\n", "\n")
    if len(comment) > COMMENT_MAX:
        errors["comment"] = "survey_error_comment"
    if errors:
        raise ValidationFailed("survey_error_summary", details=errors)
    return CitizenSurvey(ease, av_quality, again, comment)


def parse_employee_form(form: Mapping[str, Any]) -> EmployeeSurvey:
    """The employee's answers; :class:`ValidationFailed` maps fields to messages."""
    errors: dict[str, str] = {}
    quality = _choice(form, "quality", SCALE, errors)
    handled = _choice(form, "case_handled", CASE_HANDLED, errors)
    again = _choice(form, "would_use_again", WOULD_USE_AGAIN, errors)
    if errors:
        raise ValidationFailed("survey_error_summary", details=errors)
    return EmployeeSurvey(quality, handled, again)


# pages


def setup(app: web.Application) -> None:
    """Register the citizen and employee survey pages."""
    app.router.add_get("/gesprek/enquete", citizen_page, name="citizen_survey")
    app.router.add_post("/gesprek/enquete", citizen_submit)
    app.router.add_get(
        "/staff/gesprekken/{record_id}/enquete", employee_page, name="employee_survey"
    )
    app.router.add_post("/staff/gesprekken/{record_id}/enquete", employee_submit)


def _page(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> web.Response:
    response = render(request, template, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def _form_context(
    fields: tuple[str, ...], values: Mapping[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    anchors = {f: f if f == "comment" else f"{f}-{_first(f)}" for f in fields}
    return {
        "values": {f: str(values.get(f, "")) for f in fields},
        "errors": errors,
        "error_links": [(anchors[f], errors[f]) for f in fields if f in errors],
        "scale": SCALE,
        "would_use_again": WOULD_USE_AGAIN,
        "case_handled": CASE_HANDLED,
        "comment_max": COMMENT_MAX,
    }


def _first(field: str) -> str:
    return {"would_use_again": "yes", "case_handled": "yes"}.get(field, "1")


async def _citizen_record(request: web.Request) -> CallRecord:
    info = await join_links.current_survey_session(request)
    if info is None or info.role != "citizen":
        raise NotFound("survey_no_session")
    record = await find_by_room(request.app[DB], info.room_id)
    if record is None:
        raise NotFound("survey_no_call")
    return record


async def citizen_page(request: web.Request) -> web.Response:
    record = await _citizen_record(request)
    if record.citizen is not None:
        return _page(request, "survey/thanks.html", {})
    return _page(request, "survey/citizen.html", _form_context(CITIZEN_FIELDS, {}, {}))


async def citizen_submit(request: web.Request) -> web.Response:
    record = await _citizen_record(request)
    form = await request.post()
    try:
        survey = parse_citizen_form(form)
    except ValidationFailed as exc:
        context = _form_context(CITIZEN_FIELDS, form, exc.details)
        return _page(request, "survey/citizen.html", context, status=422)
    # answered in another tab already: the thank-you page is right either way
    with contextlib.suppress(Conflict):
        await save_citizen_survey(request.app[DB], record.id, survey)
    raise web.HTTPSeeOther("/gesprek/enquete")


async def _employee_record(request: web.Request) -> CallRecord:
    await auth.require_staff(request, "agent")
    raw = request.match_info["record_id"]
    if not raw.isdigit() or len(raw) > 12:
        raise NotFound("survey_no_call")
    return await get_call_record(request.app[DB], int(raw))


async def employee_page(request: web.Request) -> web.Response:
    record = await _employee_record(request)
    if record.employee is not None:
        return _page(request, "survey/employee_thanks.html", {"record": record})
    context = _form_context(EMPLOYEE_FIELDS, {}, {})
    return _page(request, "survey/employee.html", {**context, "record": record})


async def employee_submit(request: web.Request) -> web.Response:
    record = await _employee_record(request)
    form = await request.post()
    try:
        survey = parse_employee_form(form)
    except ValidationFailed as exc:
        context = _form_context(EMPLOYEE_FIELDS, form, exc.details)
        return _page(
            request, "survey/employee.html", {**context, "record": record}, status=422
        )
    # answered in another tab already: the saved answers are shown
    with contextlib.suppress(Conflict):
        await save_employee_survey(request.app[DB], record.id, survey)
    raise web.HTTPSeeOther(f"/staff/gesprekken/{record.id}/enquete")
