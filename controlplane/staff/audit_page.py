"""The audit log page for supervisors and admins: newest first, a page at a time,
filtered by request reference or action.
"""

from __future__ import annotations

import json
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from aiohttp import web

from controlplane.base.rendering import render
from controlplane.requests import DESK
from controlplane.staff.auth import require_staff
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log, callback_requests

AUDIT_PAGE_SIZE = 50


def setup(app: web.Application) -> None:
    """Register the audit log page."""
    app.router.add_get("/staff/admin/audit", audit_page)


def _filter_text(request: web.Request, name: str, limit: int) -> str:
    """A query-string filter, trimmed; without NUL, which no stored value holds
    and PostgreSQL refuses in a query."""
    return request.query.get(name, "").replace("\x00", "").strip()[:limit]


async def audit_page(request: web.Request) -> web.Response:
    await require_staff(request, "supervisor")
    reference = _filter_text(request, "reference", 16).upper()
    action = _filter_text(request, "action", 64)
    try:
        page = max(1, min(int(request.query.get("page", "1")), 100_000))
    except ValueError:
        page = 1
    async with request.app[DB].read() as conn:
        rows = (await conn.execute(_audit_query(reference, action, page))).all()
        every_action = sa.select(audit_log.c.action).distinct()
        actions = list(
            (await conn.execute(every_action.order_by(audit_log.c.action))).scalars()
        )
    zone = ZoneInfo(request.app[DESK].current.timezone)
    return render(
        request,
        "admin/audit.html",
        {
            "entries": [_audit_entry(row, zone) for row in rows[:AUDIT_PAGE_SIZE]],
            "actions": actions,
            "reference": reference,
            "action": action,
            "page": page,
            "has_next": len(rows) > AUDIT_PAGE_SIZE,
        },
    )


def _audit_query(reference: str, action: str, page: int) -> sa.Select[Any]:
    """One page of the audit log, newest first, plus one row to tell if more follow."""
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
        .limit(AUDIT_PAGE_SIZE + 1)
        .offset((page - 1) * AUDIT_PAGE_SIZE)
    )
    if reference:
        query = query.where(callback_requests.c.reference == reference)
    if action:
        query = query.where(audit_log.c.action == action)
    return query


def _audit_entry(row: Any, zone: ZoneInfo) -> dict[str, Any]:
    details = row.details
    return {
        "at": row.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
        "username": row.username,
        "action": row.action,
        "reference": row.reference,
        "details": json.dumps(details, ensure_ascii=False, sort_keys=True)
        if details
        else "",
    }
