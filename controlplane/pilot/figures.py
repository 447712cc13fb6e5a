"""The pilot's figures over a period (:class:`~controlplane.pilot.periods.Period`):
pure queries over the database that return dataclasses of
:class:`~controlplane.pilot.cells.Cell` (small numbers suppressed in the cell).

Requests count by the day they came in, outcomes by the day they closed, video
calls by the day they started; days are the desk's. What each figure means and
what it cannot tell is ``docs/pilot.md``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from controlplane.pilot import call_figures
from controlplane.pilot.call_figures import DeviceChecks, Surveys, VideoCalls
from controlplane.pilot.cells import Cell, Percentiles, percentiles
from controlplane.pilot.periods import Period
from controlplane.requests import CHANNELS, OUTCOMES
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests

SOURCES = ("web", "phone", "api")
#: Rows of :class:`Outcomes`: the outcomes of a completed request, then the
#: other ways a request closes.
OUTCOME_ROWS = (*OUTCOMES, "no_answer", "cancelled", "expired")
_req = callback_requests


@dataclass(frozen=True, slots=True)
class DayCounts:
    """Requests per day in each series (a source, or a choice of channel)."""

    days: tuple[date, ...]
    series: dict[str, tuple[Cell, ...]]
    totals: dict[str, Cell]


@dataclass(frozen=True, slots=True)
class RequestFigures:
    total: Cell
    by_source: DayCounts
    #: By the channel the citizen chose (before any switch).
    by_choice: DayCounts
    #: Seconds from when a request was due to its first callback attempt, for
    #: "all" and by choice.
    to_first_attempt: dict[str, Percentiles]
    #: Requests whose citizen asked for text chat or a sign-language interpreter.
    asked_text_chat: Cell
    asked_sign_language: Cell


@dataclass(frozen=True, slots=True)
class Outcomes:
    """Requests closed in the period, by how they closed and on which channel."""

    rows: tuple[str, ...]
    by_channel: dict[str, dict[str, Cell]]
    totals: dict[str, Cell]


@dataclass(frozen=True, slots=True)
class PilotFigures:
    period: Period
    requests: RequestFigures
    outcomes: Outcomes
    video: VideoCalls
    device_checks: DeviceChecks
    surveys: Surveys


async def period_figures(db: Database, period: Period) -> PilotFigures:
    """Every figure of ``period``."""
    async with db.read() as conn:
        requests = await _request_figures(conn, period)
        outcomes = await _outcomes(conn, period)
        rows = await call_figures.load_calls(conn, period)
        video = await call_figures.video_calls(conn, period, rows)
        checks = await call_figures.device_checks(conn, period)
    return PilotFigures(
        period, requests, outcomes, video, checks, call_figures.surveys(rows)
    )


async def pilot_start(db: Database, zone: str) -> date | None:
    """The desk's day of the first request (None: none yet)."""
    async with db.read() as conn:
        first = await conn.scalar(sa.select(sa.func.min(_req.c.created_at)))
    return None if first is None else first.astimezone(ZoneInfo(zone)).date()


# requests


async def _request_figures(conn: Any, period: Period) -> RequestFigures:
    in_period = sa.and_(
        _req.c.created_at >= period.start, _req.c.created_at < period.end
    )
    rows = (
        await conn.execute(
            sa.select(
                _req.c.id,
                _req.c.source,
                _req.c.channel,
                _req.c.created_at,
                _req.c.due_at,
                _req.c.first_attempt_at,
                _req.c.accessibility,
            ).where(in_period)
        )
    ).all()
    chosen = await _choices(conn, in_period)
    choice = {r.id: chosen.get(r.id, r.channel) for r in rows}
    sources = [(period.day_of(r.created_at), r.source) for r in rows]
    choices = [(period.day_of(r.created_at), choice[r.id]) for r in rows]
    waits: dict[str, list[float]] = {"all": [], **{c: [] for c in CHANNELS}}
    for r in rows:
        if r.first_attempt_at is not None:
            waited = max(0.0, (r.first_attempt_at - r.due_at).total_seconds())
            waits["all"].append(waited)
            waits.setdefault(choice[r.id], []).append(waited)
    needs = Counter(code for r in rows for code in set(r.accessibility or ()))
    return RequestFigures(
        total=Cell.count(len(rows)),
        by_source=_per_day(period, SOURCES, sources),
        by_choice=_per_day(period, CHANNELS, choices),
        to_first_attempt={key: percentiles(v) for key, v in waits.items()},
        asked_text_chat=Cell.count(needs["text_chat"]),
        asked_sign_language=Cell.count(needs["sign_language"]),
    )


async def _choices(conn: Any, in_period: sa.ColumnElement[bool]) -> dict[int, str]:
    """The channel each switched request was made with: the first switch's
    ``from_channel`` (kept as long as the audit log)."""
    ids = sa.select(_req.c.id).where(in_period)
    first: dict[int, str] = {}
    for request_id, details in await call_figures.channel_switches(conn, ids):
        was = details.get("from_channel")
        if was in CHANNELS:
            first.setdefault(request_id, str(was))
    return first


def _per_day(
    period: Period, keys: Sequence[str], pairs: Iterable[tuple[date, str]]
) -> DayCounts:
    counted = Counter(pairs)
    series = {
        key: tuple(Cell.count(counted[(day, key)]) for day in period.days)
        for key in keys
    }
    totals = {
        key: Cell.count(sum(n for (_, k), n in counted.items() if k == key))
        for key in keys
    }
    return DayCounts(period.days, series, totals)


# outcomes


def outcome_row(state: str, outcome: str | None) -> str:
    """The :data:`OUTCOME_ROWS` entry of a closed request."""
    return (outcome or "other") if state == "completed" else state


async def _outcomes(conn: Any, period: Period) -> Outcomes:
    rows = await conn.execute(
        sa.select(_req.c.state, _req.c.outcome, _req.c.channel, sa.func.count())
        .where(_req.c.closed_at >= period.start, _req.c.closed_at < period.end)
        .group_by(_req.c.state, _req.c.outcome, _req.c.channel)
    )
    counted: Counter[tuple[str, str]] = Counter()
    for state, outcome, channel, n in rows:
        counted[(outcome_row(state, outcome), channel)] += int(n)
    by_channel = {
        channel: {row: Cell.count(counted[(row, channel)]) for row in OUTCOME_ROWS}
        for channel in CHANNELS
    }
    totals = {
        channel: Cell.count(sum(counted[(row, channel)] for row in OUTCOME_ROWS))
        for channel in CHANNELS
    }
    return Outcomes(OUTCOME_ROWS, by_channel, totals)
