"""The pilot's exports: calls and requests as CSV or XLSX, with no personal data.

``GET /staff/export/{calls|requests}.{csv|xlsx}`` with the dashboard's period
(``?period=today|7d|pilot``, or ``range`` with ``from`` and ``to``), for
supervisors and admins. A row holds codes, times (UTC, to the minute: seconds
help no analysis but make a row easier to match with a phone log), durations,
quality and scores only: no name, number, e-mail, note, comment, token or
address, no staff identity, and no reference either: the citizen has their
reference in their e-mail and every employee can look it up, so it would tie a
row to a person. Rows carry a keyed pseudonym of their request instead (the same
in every export, so calls and requests can be joined; without the server's
secret key it leads nowhere). A row is one request or call, so the small-number
rule of the figures does not apply to it: an export is confidential.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import hmac
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
import xlsxwriter
from aiohttp import web

from controlplane.base.errors import BadRequest, NotFound
from controlplane.pilot.figures import pilot_start
from controlplane.pilot.periods import Period, PeriodError, choose_period
from controlplane.requests import DESK
from controlplane.security import audit
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.staff import StaffUser, require_staff
from controlplane.storage.database import DB
from controlplane.storage.schema import call_records, callback_requests

Cell = str | int | float | datetime | None

#: What a spreadsheet reads as the start of a formula (OWASP's CSV injection list).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@dataclass(frozen=True, slots=True)
class Table:
    """One export: its name, column names and rows."""

    name: str
    columns: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def setup(app: web.Application) -> None:
    """Register the export downloads."""
    app.router.add_get(
        "/staff/export/{table:calls|requests}.{format:csv|xlsx}", download
    )


def pseudonym(key: bytes, request_id: int | None) -> str:
    """A stable stand-in for a request id that only the server's key leads back
    from: ``R-`` and 10 hex digits (40 bits: no clash at a pilot's size)."""
    if request_id is None:
        return ""
    digest = hmac.new(key, f"pilot-export:{request_id}".encode(), hashlib.sha256)
    return "R-" + digest.hexdigest()[:10]


# the tables


def _seconds(start: datetime | None, end: datetime | None) -> int | None:
    if start is None or end is None:
        return None
    return round((end - start).total_seconds())


async def calls_table(request: web.Request, period: Period) -> Table:
    """Every call that started in ``period``: quality, outcome and survey scores
    (the citizen's free-text comment stays out)."""
    c = call_records.c
    query = (
        sa.select(call_records)
        .where(c.started_at >= period.start, c.started_at < period.end)
        .order_by(c.started_at, c.id)
    )
    async with request.app[DB].read() as conn:
        found = (await conn.execute(query)).all()
    key = request.app[SECRET_KEY]
    rows = [_call_row(key, row) for row in found]
    return Table("calls", CALL_COLUMNS, rows)


CALL_COLUMNS = (
    "request",
    "channel",
    "started_at_utc",
    "ended_at_utc",
    "duration_s",
    "outcome",
    "join_to_first_picture_ms",
    "connection_type",
    "reconnects",
    "rtt_ms_p50",
    "rtt_ms_p95",
    "loss_pct",
    "citizen_ease",
    "citizen_av_quality",
    "citizen_would_use_again",
    "employee_quality",
    "employee_case_handled",
    "employee_would_use_again",
)


def _call_row(key: bytes, row: Any) -> tuple[Cell, ...]:
    return (
        pseudonym(key, row.request_id),
        row.channel,
        row.started_at,
        row.ended_at,
        _seconds(row.started_at, row.ended_at),
        row.outcome,
        row.join_to_first_picture_ms,
        row.connection_type,
        row.reconnects,
        row.rtt_ms_p50,
        row.rtt_ms_p95,
        row.loss_pct,
        row.citizen_ease,
        row.citizen_av_quality,
        row.citizen_would_use_again,
        row.employee_quality,
        row.employee_case_handled,
        row.employee_would_use_again,
    )


REQUEST_COLUMNS = (
    "request",
    "created_at_utc",
    "source",
    "channel",
    "topic",
    "language",
    "preferred",
    "accessibility",
    "state",
    "outcome",
    "attempts",
    "first_attempt_at_utc",
    "to_first_attempt_s",
    "closed_at_utc",
)
#: Only these columns are read: the personal ones are never selected.
_REQUEST_SELECT = tuple(
    callback_requests.c[name]
    for name in (
        "id",
        "created_at",
        "source",
        "channel",
        "topic",
        "language",
        "preferred",
        "accessibility",
        "state",
        "outcome",
        "attempts",
        "first_attempt_at",
        "closed_at",
    )
)


async def requests_table(request: web.Request, period: Period) -> Table:
    """Every request made in ``period``: where it came from, what it asked for
    as codes (accessibility needs too: the pilot asks whom video helps), and how
    it went."""
    c = callback_requests.c
    query = (
        sa.select(*_REQUEST_SELECT)
        .where(c.created_at >= period.start, c.created_at < period.end)
        .order_by(c.created_at, c.id)
    )
    async with request.app[DB].read() as conn:
        found = (await conn.execute(query)).all()
    key = request.app[SECRET_KEY]
    rows = [_request_row(key, row) for row in found]
    return Table("requests", REQUEST_COLUMNS, rows)


def _request_row(key: bytes, row: Any) -> tuple[Cell, ...]:
    return (
        pseudonym(key, row.id),
        row.created_at,
        row.source,
        row.channel,
        row.topic,
        row.language,
        row.preferred,
        " ".join(row.accessibility or ()),
        row.state,
        row.outcome,
        row.attempts,
        row.first_attempt_at,
        _seconds(row.created_at, row.first_attempt_at),
        row.closed_at,
    )


# the formats


def _text(cell: Cell) -> str:
    if cell is None:
        return ""
    if isinstance(cell, datetime):
        return cell.strftime("%Y-%m-%d %H:%M")
    return str(cell)


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


def defuse(text: str) -> str:
    """A cell a spreadsheet would take for a formula, as text (a leading ``'``)."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def to_csv(table: Table) -> bytes:
    """RFC 4180 CSV in UTF-8, a header row first; text cells defused."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow(
            [c if isinstance(c, int | float) else defuse(_text(c)) for c in row]
        )
    return out.getvalue().encode("utf-8")


def to_xlsx(table: Table) -> bytes:
    """A workbook of one sheet; text is always written as text, never as a
    formula or link, and times as date cells."""
    out = io.BytesIO()
    options = {
        "in_memory": True,
        "strings_to_formulas": False,
        "strings_to_urls": False,
        "strings_to_numbers": False,
        "remove_timezone": True,
    }
    with xlsxwriter.Workbook(out, options) as book:
        sheet = book.add_worksheet(table.name)
        when = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        sheet.write_row(0, 0, table.columns)
        # wide enough for the longest header and a time (19 characters)
        sheet.set_column(0, len(table.columns) - 1, 24)
        for y, row in enumerate(table.rows, start=1):
            _xlsx_row(sheet, y, row, when)
        sheet.freeze_panes(1, 0)
    return out.getvalue()


def _xlsx_row(sheet: Any, y: int, row: Sequence[Cell], when: Any) -> None:
    for x, cell in enumerate(row):
        if isinstance(cell, datetime):
            sheet.write_datetime(y, x, _minute(cell), when)
        elif isinstance(cell, int | float):
            sheet.write_number(y, x, cell)
        elif cell:
            sheet.write_string(y, x, defuse(cell))


# the route


async def period_of(request: web.Request) -> Period:
    """The period the query string names, as on the dashboard (``period``, and
    ``from`` and ``to`` for a range); :class:`BadRequest` naming the field."""
    zone = request.app[DESK].current.timezone
    start = None
    if request.query.get("period") == "pilot":
        start = await pilot_start(request.app[DB], zone)
    try:
        return choose_period(request.query, zone, start)
    except PeriodError as exc:
        raise BadRequest(exc.key, details={exc.field: exc.key}) from None


async def audit_download(
    request: web.Request,
    user: StaffUser,
    action: str,
    period: Period,
    **details: Any,
) -> None:
    """Audit a download of ``period``'s rows or figures, with codes only."""
    async with request.app[DB].write() as conn:
        await audit.record(
            conn,
            action,
            user_id=user.id,
            username=user.username,
            period=period.kind,
            first=period.first.isoformat(),
            last=period.last.isoformat(),
            **details,
        )


async def download(request: web.Request) -> web.Response:
    """One export as a file to save, audited (what, which period, how many rows)."""
    user = await require_staff(request, "supervisor")
    period = await period_of(request)
    name, kind = request.match_info["table"], request.match_info["format"]
    build = calls_table if name == "calls" else requests_table
    table = await build(request, period)
    if kind == "csv":
        body, content_type = to_csv(table), "text/csv"
    elif kind == "xlsx":
        body, content_type = await asyncio.to_thread(to_xlsx, table), _XLSX
    else:  # the route allows no other
        raise NotFound("error_not_found")
    await audit_download(
        request,
        user,
        "pilot_exported",
        period,
        table=name,
        format=kind,
        rows=len(table.rows),
    )
    filename = f"beeldbel-{name}-{period.first}-{period.last}.{kind}"
    response = web.Response(body=body, content_type=content_type)
    if kind == "csv":
        response.charset = "utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
