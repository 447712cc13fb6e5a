"""The video calls' figures over a period: how far calls got, their quality, the
device checks and the surveys (from ``call_records``, the citizen's join links,
the call news in ``call_events`` and the audit log).

Part of :mod:`controlplane.pilot.figures`, which offers them all at once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from controlplane.calls import (
    CASE_HANDLED,
    SCALE,
    SWITCHED_TO_PHONE,
    WOULD_USE_AGAIN,
)
from controlplane.pilot.cells import Cell, Percentiles, mean, percentiles
from controlplane.pilot.periods import Period
from controlplane.requests import SWITCH_REASONS
from controlplane.storage.schema import audit_log, call_events, call_records, join_links

#: How a call can end (``call_records.outcome``); None: it has not ended.
COMPLETED, MEDIA_LOST = "completed", "media_lost"
CONNECTIONS = ("direct", "relay", "unknown")
#: The parts a device check can fail on (the call page's progress reports).
DEVICE_PARTS = ("camera", "microphone", "speaker", "connection")
#: A survey's questions and their answers, per respondent.
QUESTIONS: dict[str, tuple[tuple[str, tuple[Any, ...]], ...]] = {
    "citizen": (
        ("ease", SCALE),
        ("av_quality", SCALE),
        ("would_use_again", WOULD_USE_AGAIN),
    ),
    "employee": (
        ("quality", SCALE),
        ("case_handled", CASE_HANDLED),
        ("would_use_again", WOULD_USE_AGAIN),
    ),
}
RESPONDENTS = tuple(QUESTIONS)
#: The call a survey is about: video, or a video call the employee continued by
#: phone (its survey asks the same questions about the phone call).
SURVEY_CHANNELS = ("video", "phone")


@dataclass(frozen=True, slots=True)
class VideoCalls:
    started: Cell
    #: Calls whose citizen opened their join link.
    link_opened: Cell
    #: Calls whose citizen was let in from the waiting room, of those whose call
    #: news is still kept (``admitted_known``).
    admitted: Cell
    admitted_known: Cell
    first_picture: Cell
    ended_normally: Cell
    switched_to_phone: Cell
    switch_reasons: dict[str, Cell]
    #: The media node was lost during the call.
    failed: Cell
    not_ended: Cell
    #: Milliseconds from joining (or being let in) to the first picture.
    join_to_first_picture: Percentiles
    connections: dict[str, Cell]
    #: Each call's median round-trip time (ms) and its packet loss (%).
    rtt_ms: Percentiles
    loss_pct: Percentiles
    with_reconnects: Cell
    with_interpreter: Cell


@dataclass(frozen=True, slots=True)
class DeviceChecks:
    """Calls whose citizen's device check failed, in total and by part."""

    failed: Cell
    by_part: dict[str, Cell]
    #: The oldest call news still kept (None: none): older checks are not known.
    kept_since: datetime | None


@dataclass(frozen=True, slots=True)
class Question:
    question: str
    answers: tuple[str, ...]
    counts: dict[str, Cell]
    #: The mean on a 1-5 scale (None for a question of words).
    mean: Cell | None


@dataclass(frozen=True, slots=True)
class SurveyGroup:
    """The answers of one kind of respondent about one kind of call."""

    respondent: str
    channel: str
    calls: Cell
    answered: Cell
    questions: tuple[Question, ...]


@dataclass(frozen=True, slots=True)
class Surveys:
    groups: tuple[SurveyGroup, ...]

    def group(self, respondent: str, channel: str) -> SurveyGroup:
        return next(
            g
            for g in self.groups
            if g.respondent == respondent and g.channel == channel
        )


def _in_period(period: Period) -> sa.ColumnElement[bool]:
    started = call_records.c.started_at
    return sa.and_(started >= period.start, started < period.end)


async def load_calls(conn: Any, period: Period) -> list[Any]:
    """The records of the calls (video, and phone callbacks recorded for their
    surveys) started in ``period``."""
    query = sa.select(call_records).where(_in_period(period))
    return list((await conn.execute(query)).all())


async def video_calls(conn: Any, period: Period, calls: Sequence[Any]) -> VideoCalls:
    """The figures of the video calls among ``calls`` (started in ``period``)."""
    rows = [r for r in calls if r.channel == "video"]
    rooms = sa.select(call_records.c.room_id).where(
        _in_period(period), call_records.c.channel == "video"
    )
    opened = await conn.scalar(
        sa.select(sa.func.count(sa.distinct(join_links.c.room_id))).where(
            join_links.c.room_id.in_(rooms),
            join_links.c.role == "citizen",
            join_links.c.used_at.is_not(None),
        )
    )
    known, admitted = await _admissions(conn, rooms)
    outcomes = Counter(r.outcome for r in rows)
    pictures = [r.join_to_first_picture_ms for r in rows]
    switched = [r.request_id for r in rows if r.outcome == SWITCHED_TO_PHONE]
    return VideoCalls(
        started=Cell.count(len(rows)),
        link_opened=Cell.count(int(opened or 0)),
        admitted=Cell.count(admitted),
        admitted_known=Cell.count(known),
        first_picture=Cell.count(sum(p is not None for p in pictures)),
        ended_normally=Cell.count(outcomes[COMPLETED]),
        switched_to_phone=Cell.count(len(switched)),
        switch_reasons=await _switch_reasons(conn, switched),
        failed=Cell.count(outcomes[MEDIA_LOST]),
        not_ended=Cell.count(outcomes[None]),
        join_to_first_picture=percentiles([p for p in pictures if p is not None]),
        connections=_counts(CONNECTIONS, (r.connection_type for r in rows)),
        rtt_ms=percentiles([r.rtt_ms_p50 for r in rows if r.rtt_ms_p50 is not None]),
        loss_pct=percentiles([r.loss_pct for r in rows if r.loss_pct is not None]),
        with_reconnects=Cell.count(sum(r.reconnects > 0 for r in rows)),
        with_interpreter=Cell.count(await _interpreted(conn, rows)),
    )


def _counts(keys: Sequence[Any], values: Any) -> dict[str, Cell]:
    counted = Counter(values)
    return {str(key): Cell.count(counted[key]) for key in keys}


async def _progress(conn: Any, where: Any) -> list[tuple[str, dict[str, Any]]]:
    """(room, data) of the progress reports ``where`` selects."""
    rows = await conn.execute(
        sa.select(call_events.c.channel, call_events.c.data).where(
            call_events.c.kind == "progress", where
        )
    )
    return [(str(channel), json.loads(data)) for channel, data in rows]


async def _admissions(conn: Any, rooms: Any) -> tuple[int, int]:
    """How many of ``rooms`` still have call news, and in how many of those the
    citizen reached the call (their page reported ``in_call``)."""
    known = await conn.scalar(
        sa.select(sa.func.count(sa.distinct(call_events.c.channel))).where(
            call_events.c.channel.in_(rooms)
        )
    )
    reports = await _progress(conn, call_events.c.channel.in_(rooms))
    admitted = {
        room
        for room, data in reports
        if data.get("step") == "in_call" and data.get("role") == "citizen"
    }
    return int(known or 0), len(admitted)


async def _switch_reasons(conn: Any, request_ids: list[int | None]) -> dict[str, Cell]:
    """Why the employee went from video to phone: the reason of each switched
    request's last switch from video (from the audit log)."""
    ids = [i for i in request_ids if i is not None]
    last: dict[int, str] = {}
    for request_id, details in await channel_switches(conn, ids):
        if details.get("from_channel") == "video":
            last[request_id] = str(details.get("reason"))
    return _counts(SWITCH_REASONS, last.values())


async def channel_switches(conn: Any, ids: Any) -> list[tuple[int, dict[str, Any]]]:
    """(request id, details) of the audited switches between video and phone of
    the requests ``ids`` (a list or a select), oldest first."""
    entries = await conn.execute(
        sa.select(audit_log.c.request_id, audit_log.c.details)
        .where(audit_log.c.action == "channel_switched")
        .where(audit_log.c.request_id.in_(ids))
        .order_by(audit_log.c.at, audit_log.c.id)
    )
    return [(int(request_id), details or {}) for request_id, details in entries]


async def _interpreted(conn: Any, rows: Sequence[Any]) -> int:
    """How many of the calls an interpreter was invited to (audit log)."""
    records = {r.id for r in rows}
    ids = {r.request_id for r in rows if r.request_id is not None}
    entries = await conn.execute(
        sa.select(audit_log.c.details).where(
            audit_log.c.action == "interpreter_invited",
            audit_log.c.request_id.in_(ids),
        )
    )
    return len({d.get("record_id") for (d,) in entries if d} & records)


async def device_checks(conn: Any, period: Period) -> DeviceChecks:
    made = call_events.c.created_at
    reports = await _progress(conn, sa.and_(made >= period.start, made < period.end))
    failed: dict[str, set[str]] = {part: set() for part in DEVICE_PARTS}
    rooms: set[str] = set()
    for room, data in reports:
        if data.get("step") != "device_check_failed":
            continue
        rooms.add(room)
        for part in data.get("failed", []):
            failed.setdefault(part, set()).add(room)
    kept_since = await conn.scalar(sa.select(sa.func.min(made)))
    return DeviceChecks(
        Cell.count(len(rooms)),
        {part: Cell.count(len(failed[part])) for part in DEVICE_PARTS},
        kept_since,
    )


def survey_channel(row: Any) -> str:
    """What a call's surveys are about: a phone callback, or a video call the
    employee continued by phone, is "phone"."""
    phone = row.channel == "phone" or row.outcome == SWITCHED_TO_PHONE
    return "phone" if phone else "video"


def surveys(rows: Sequence[Any]) -> Surveys:
    """The survey answers of the calls in ``rows``, by respondent and channel."""
    groups = []
    for respondent in RESPONDENTS:
        for channel in SURVEY_CHANNELS:
            calls = [r for r in rows if survey_channel(r) == channel]
            answered = [
                r for r in calls if getattr(r, f"{respondent}_answered_at") is not None
            ]
            groups.append(
                SurveyGroup(
                    respondent,
                    channel,
                    Cell.count(len(calls)),
                    Cell.count(len(answered)),
                    _questions(respondent, answered),
                )
            )
    return Surveys(tuple(groups))


def _questions(respondent: str, answered: Sequence[Any]) -> tuple[Question, ...]:
    questions = []
    for name, answers in QUESTIONS[respondent]:
        given = [getattr(r, f"{respondent}_{name}") for r in answered]
        scale = answers == SCALE
        questions.append(
            Question(
                name,
                tuple(str(a) for a in answers),
                _counts(answers, given),
                mean([float(g) for g in given if g is not None]) if scale else None,
            )
        )
    return tuple(questions)
