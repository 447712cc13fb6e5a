"""The audit log for supervisors and admins: newest first, a page at a time,
filtered by period, employee, action or request reference, with readable action
names and details (:mod:`~controlplane.staff.audit_text`), and a CSV export of the
filtered rows.

The log holds no personal data of citizens (codes, states, staff account names),
so neither does the export. Looking at the log and exporting it are audited too,
with the filters used.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from aiohttp import web

from controlplane.base.errors import BadRequest
from controlplane.base.i18n import CATALOG, request_language
from controlplane.base.rendering import render
from controlplane.requests import DESK
from controlplane.security import audit
from controlplane.staff.audit_text import AuditText, spreadsheet_safe
from controlplane.staff.auth import StaffUser, require_staff
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log, callback_requests

AUDIT_PAGE_SIZE = 50
#: Rows in one export at most; a longer period is exported in parts.
CSV_MAX_ROWS = 50_000
_CSV_COLUMNS = ("at", "who", "action", "label", "reference", "details")


def setup(app: web.Application) -> None:
    """Register the audit log page and its export."""
    app.router.add_get("/staff/admin/audit", audit_page)
    app.router.add_get("/staff/admin/audit.csv", audit_csv)


@dataclass(frozen=True, slots=True)
class Filters:
    """What the log is narrowed to; empty strings filter nothing."""

    reference: str = ""
    action: str = ""
    employee: str = ""
    start: str = ""
    end: str = ""

    def query_string(self) -> dict[str, str]:
        """The filters as the page's query string (only those set)."""
        named = {"from": self.start, "to": self.end}
        fields = {**asdict(self), **named}
        del fields["start"], fields["end"]
        return {k: v for k, v in fields.items() if v}

    def audited(self) -> dict[str, str]:
        """The filters as audit details (``action`` names the entry itself)."""
        fields = self.query_string()
        if "action" in fields:
            fields["filter_action"] = fields.pop("action")
        return fields


def _filter_text(request: web.Request, name: str, limit: int) -> str:
    """A query-string filter, trimmed; without NUL, which no stored value holds
    and PostgreSQL refuses in a query."""
    return request.query.get(name, "").replace("\x00", "").strip()[:limit]


def _filters(request: web.Request) -> tuple[Filters, dict[str, str]]:
    """The filters asked for, and the errors of the dates by field."""
    filters = Filters(
        reference=_filter_text(request, "reference", 16).upper(),
        action=_filter_text(request, "action", 64),
        employee=_filter_text(request, "employee", 64),
        start=_filter_text(request, "from", 10),
        end=_filter_text(request, "to", 10),
    )
    errors: dict[str, str] = {}
    days = {}
    for field, text in (("from", filters.start), ("to", filters.end)):
        try:
            days[field] = date.fromisoformat(text) if text else None
        except ValueError:
            errors[field] = "admin_audit_error_date"
    if not errors and days["from"] and days["to"] and days["from"] > days["to"]:
        errors["to"] = "admin_audit_error_order"
    return filters, errors


def _page_number(request: web.Request) -> int:
    try:
        return max(1, min(int(request.query.get("page", "1")), 100_000))
    except ValueError:
        return 1


async def audit_page(request: web.Request) -> web.Response:
    user = await require_staff(request, "supervisor")
    filters, errors = _filters(request)
    page = _page_number(request)
    zone = ZoneInfo(request.app[DESK].current.timezone)
    rows: list[Any] = []
    if not errors:
        query = _audit_query(filters, zone).limit(AUDIT_PAGE_SIZE + 1)
        query = query.offset((page - 1) * AUDIT_PAGE_SIZE)
        async with request.app[DB].read() as conn:
            rows = list((await conn.execute(query)).all())
        await _record(request, user, "audit_viewed", filters.audited())
    text = AuditText(request.app[CATALOG], request_language(request))
    context = {
        "entries": [_entry(row, zone, text) for row in rows[:AUDIT_PAGE_SIZE]],
        **await _choices(request),
        "filters": filters,
        "query": filters.query_string(),
        "errors": errors,
        "page": page,
        "has_next": len(rows) > AUDIT_PAGE_SIZE,
    }
    status = 400 if errors else 200
    return render(request, "admin/audit.html", context, status=status)


async def _choices(request: web.Request) -> dict[str, Any]:
    """The actions and employees the log holds, for the filters' lists."""
    text = AuditText(request.app[CATALOG], request_language(request))
    async with request.app[DB].read() as conn:
        actions = (await conn.execute(sa.select(audit_log.c.action).distinct())).all()
        who = sa.select(audit_log.c.username).distinct()
        who = who.where(audit_log.c.username.is_not(None))
        employees = (await conn.execute(who.order_by(audit_log.c.username))).all()
    labelled = sorted(((text.action(a), a) for (a,) in actions), key=lambda x: x[0])
    return {"actions": labelled, "employees": [name for (name,) in employees]}


async def audit_csv(request: web.Request) -> web.Response:
    """The filtered rows as CSV (at most :data:`CSV_MAX_ROWS`, newest first)."""
    user = await require_staff(request, "supervisor")
    filters, errors = _filters(request)
    if errors:
        raise BadRequest(next(iter(errors.values())))
    zone = ZoneInfo(request.app[DESK].current.timezone)
    async with request.app[DB].read() as conn:
        query = _audit_query(filters, zone).limit(CSV_MAX_ROWS)
        rows = (await conn.execute(query)).all()
    details = {**filters.audited(), "rows": len(rows)}
    await _record(request, user, "audit_exported", details)
    text = AuditText(request.app[CATALOG], request_language(request))
    body = _csv(request, [_entry(row, zone, text) for row in rows])
    return web.Response(
        text=body,
        content_type="text/csv",
        charset="utf-8",
        headers={
            "Content-Disposition": 'attachment; filename="beeldbel-audit.csv"',
            "Cache-Control": "no-store",
        },
    )


def _csv(request: web.Request, entries: list[dict[str, Any]]) -> str:
    catalog, lang = request.app[CATALOG], request_language(request)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([catalog.get(f"admin_audit_csv_{c}", lang) for c in _CSV_COLUMNS])
    for entry in entries:
        cells = (entry[c] or "" for c in _CSV_COLUMNS)
        writer.writerow([spreadsheet_safe(str(cell)) for cell in cells])
    return out.getvalue()


def _day_start(text: str, zone: ZoneInfo) -> datetime:
    return datetime.combine(date.fromisoformat(text), time(), tzinfo=zone)


def _audit_query(filters: Filters, zone: ZoneInfo) -> sa.Select[Any]:
    """The log's rows that pass ``filters``, newest first (days in the desk's
    time zone, both ends included)."""
    query = (
        sa.select(
            audit_log.c.id,
            audit_log.c.at,
            audit_log.c.username,
            audit_log.c.action,
            audit_log.c.details,
            callback_requests.c.reference,
        )
        .select_from(
            audit_log.outerjoin(
                callback_requests, callback_requests.c.id == audit_log.c.request_id
            )
        )
        .order_by(audit_log.c.at.desc(), audit_log.c.id.desc())
    )
    if filters.reference:
        query = query.where(callback_requests.c.reference == filters.reference)
    if filters.action:
        query = query.where(audit_log.c.action == filters.action)
    if filters.employee:
        query = query.where(audit_log.c.username == filters.employee)
    if filters.start:
        query = query.where(audit_log.c.at >= _day_start(filters.start, zone))
    if filters.end:
        end = _day_start(filters.end, zone) + timedelta(days=1)
        query = query.where(audit_log.c.at < end)
    return query


def _entry(row: Any, zone: ZoneInfo, text: AuditText) -> dict[str, Any]:
    return {
        "at": row.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        "who": row.username,
        "action": row.action,
        "label": text.action(row.action),
        "reference": row.reference,
        "details": text.details(row.details),
    }


async def _record(
    request: web.Request, user: StaffUser, action: str, details: dict[str, Any]
) -> None:
    async with request.app[DB].write() as conn:
        await audit.record(
            conn, action, user_id=user.id, username=user.username, **details
        )
