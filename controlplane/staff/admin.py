"""Admin pages: users and roles, topics, opening hours, the audit log.

Everything under ``/staff/admin`` needs the admin role, except the audit log,
which supervisors may read too. Every change is audited in its own transaction.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import WEEKDAYS, Topic, parse_hours
from controlplane.base.errors import NotFound
from controlplane.base.rendering import render
from controlplane.requests import DESK, has_controls, topics_to_json
from controlplane.security import audit
from controlplane.staff import users
from controlplane.staff.auth import ROLES, StaffUser, require_staff
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import audit_log, callback_requests

log = structlog.get_logger()

AUDIT_PAGE_SIZE = 50
LABEL_MAX = 100
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")
_TOPIC_CODE = re.compile(r"[a-z][a-z0-9_]{1,31}")


def setup(app: web.Application) -> None:
    """Register this module's routes and background tasks on ``app``."""
    user_path = "/staff/admin/users/{username:[a-z0-9._-]{3,64}}"
    app.router.add_get("/staff/admin", users_page)
    app.router.add_post("/staff/admin/users", create_user)
    app.router.add_get(user_path, user_page)
    app.router.add_post(user_path + "/role", change_role)
    app.router.add_post(user_path + "/active", change_active)
    app.router.add_post(user_path + "/reset", reset_user)
    app.router.add_post(user_path + "/unlock", unlock_user)
    app.router.add_get("/staff/admin/topics", topics_page)
    app.router.add_post("/staff/admin/topics", save_topics)
    app.router.add_get("/staff/admin/hours", hours_page)
    app.router.add_post("/staff/admin/hours", save_hours)
    app.router.add_get("/staff/admin/audit", audit_page)


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v.strip() for k, v in data.items() if isinstance(v, str)}


def _see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


# users


async def users_page(request: web.Request) -> web.Response:
    await require_staff(request, "admin")
    return await _users_form(request)


async def _users_form(
    request: web.Request,
    *,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return render(
        request,
        "admin/users.html",
        {
            "users": await users.list_users(request.app[DB]),
            "roles": ROLES,
            "errors": errors or {},
            "values": values or {"role": "agent"},
            "done": request.query.get("done", ""),
        },
        status=status,
    )


async def create_user(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    form = await _form(request)
    username = form.get("username", "").lower()
    role = form.get("role", "")
    try:
        password = await users.create_user(request.app[DB], username, role, actor=actor)
    except users.UserError as exc:
        return await _users_form(
            request,
            errors={exc.field: exc.key},
            values={"username": username, "role": role},
            status=422,
        )
    log.info("staff_user_created", user_id=actor.id, role=role)
    return _one_time_password(request, username, password, created=True)


def _one_time_password(
    request: web.Request, username: str, password: str, *, created: bool
) -> web.Response:
    return render(
        request,
        "admin/one_time_password.html",
        {"account": username, "password": password, "created": created},
    )


async def _find_user(request: web.Request) -> dict[str, Any]:
    username = request.match_info["username"]
    for user in await users.list_users(request.app[DB]):
        if user["username"] == username:
            return user
    raise NotFound("admin_error_no_user")


async def user_page(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    return await _user_form(request, actor)


async def _user_form(
    request: web.Request,
    actor: StaffUser,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    user = await _find_user(request)
    return render(
        request,
        "admin/user.html",
        {
            "user": user,
            "roles": ROLES,
            "is_self": user["id"] == actor.id,
            "errors": errors or {},
            "done": request.query.get("done", ""),
        },
        status=status,
    )


async def change_role(request: web.Request) -> web.Response:
    return await _change_user(request, _set_role)


async def change_active(request: web.Request) -> web.Response:
    return await _change_user(request, _set_active)


#: Changes one thing about a user from the form; returns the ``done`` notice.
UserChange = Callable[[Database, str, dict[str, str], StaffUser], Awaitable[str]]


async def _change_user(request: web.Request, change: UserChange) -> web.Response:
    """Apply ``change`` to the user in the path: the form again with 422 if
    refused, otherwise back to the user's page with what was done."""
    actor = await require_staff(request, "admin")
    user = await _find_user(request)
    form = await _form(request)
    try:
        done = await change(request.app[DB], user["username"], form, actor)
    except users.UserError as exc:
        return await _user_form(request, actor, {exc.field: exc.key}, 422)
    return _see_other(f"/staff/admin/users/{user['username']}?done={done}")


async def _set_role(
    db: Database, username: str, form: dict[str, str], actor: StaffUser
) -> str:
    await users.set_role(db, username, form.get("role", ""), actor=actor)
    return "role"


async def _set_active(
    db: Database, username: str, form: dict[str, str], actor: StaffUser
) -> str:
    if form.get("active") not in ("0", "1"):
        raise users.UserError(
            "active must be 0 or 1", field="active", key="admin_error_active"
        )
    active = form["active"] == "1"
    await users.set_active(db, username, active, actor=actor)
    return "reactivated" if active else "deactivated"


async def reset_user(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    user = await _find_user(request)
    password = await users.reset_user(request.app[DB], user["username"], actor=actor)
    log.info("staff_user_reset", user_id=actor.id, target_id=user["id"])
    return _one_time_password(request, user["username"], password, created=False)


async def unlock_user(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    user = await _find_user(request)
    await users.unlock_user(request.app[DB], user["username"], actor=actor)
    return _see_other(f"/staff/admin/users/{user['username']}?done=unlocked")


# topics


async def topics_page(request: web.Request) -> web.Response:
    await require_staff(request, "admin")
    return _topics_form(request, _topic_values(request))


def _topic_values(request: web.Request) -> dict[str, str]:
    values: dict[str, str] = {}
    for topic in request.app[DESK].current.topics:
        values[f"{topic.code}-nl"] = topic.nl
        values[f"{topic.code}-en"] = topic.en
        values[f"{topic.code}-active"] = "1"
    return values


def _topics_form(
    request: web.Request,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    topics = request.app[DESK].current.topics
    return _desk_form(request, "topics", values, errors, status, topics=topics)


def _desk_form(
    request: web.Request,
    page: str,
    values: dict[str, str],
    errors: dict[str, str] | None,
    status: int,
    **extra: Any,
) -> web.Response:
    """The topics or opening-hours form, with the values and errors to show."""
    context = {
        "values": values,
        "errors": errors or {},
        "done": request.query.get("done", ""),
        **extra,
    }
    return render(request, f"admin/{page}.html", context, status=status)


def _label_error(value: str) -> str | None:
    if not value:
        return "admin_error_label_missing"
    if len(value) > LABEL_MAX:
        return "admin_error_label_long"
    if has_controls(value, allowed=""):
        return "admin_error_label_invalid"
    return None


def _parse_topics(
    form: dict[str, str], current: tuple[Topic, ...]
) -> tuple[list[Topic], dict[str, str]]:
    """The new topic list from the form, or the errors by field name."""
    errors: dict[str, str] = {}
    topics: list[Topic] = []
    for topic in current:
        if form.get(f"{topic.code}-active") != "1":
            continue
        labels = {lang: form.get(f"{topic.code}-{lang}", "") for lang in ("nl", "en")}
        for lang, value in labels.items():
            if problem := _label_error(value):
                errors[f"{topic.code}-{lang}"] = problem
        topics.append(Topic(topic.code, labels["nl"], labels["en"]))
    code = form.get("new-code", "").lower()
    new_labels = {lang: form.get(f"new-{lang}", "") for lang in ("nl", "en")}
    if code or any(new_labels.values()):
        if not _TOPIC_CODE.fullmatch(code):
            errors["new-code"] = "admin_error_topic_code"
        elif code in {t.code for t in topics}:
            errors["new-code"] = "admin_error_topic_code_taken"
        for lang, value in new_labels.items():
            if problem := _label_error(value):
                errors[f"new-{lang}"] = problem
        if "new-code" not in errors:
            topics.append(Topic(code, new_labels["nl"], new_labels["en"]))
    if not topics and not errors:
        errors["topics"] = "admin_error_topics_empty"
    return topics, errors


async def save_topics(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    form = await _form(request)
    desk = request.app[DESK]
    before = {t.code for t in desk.current.topics}
    topics, errors = _parse_topics(form, desk.current.topics)
    if errors:
        return _topics_form(request, form, errors, status=422)
    after = [t.code for t in topics]

    async def record(conn: AsyncConnection) -> None:
        await _record(
            conn,
            actor,
            "desk_topics_changed",
            topics=after,
            added=sorted(set(after) - before),
            removed=sorted(before - set(after)),
        )

    await desk.update(
        request.app[DB], "topics", topics_to_json(tuple(topics)), also=record
    )
    log.info("desk_topics_changed", user_id=actor.id, count=len(topics))
    return _see_other("/staff/admin/topics?done=saved")


# opening hours


async def hours_page(request: web.Request) -> web.Response:
    await require_staff(request, "admin")
    values: dict[str, str] = {}
    hours = request.app[DESK].current.opening_hours
    for day in WEEKDAYS:
        opens, _, closes = hours.get(day, "").partition("-")
        values[f"{day}-opens"], values[f"{day}-closes"] = opens, closes
    return _hours_form(request, values)


def _hours_form(
    request: web.Request,
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> web.Response:
    return _desk_form(request, "hours", values, errors, status, weekdays=WEEKDAYS)


def _parse_hours(form: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Opening hours by weekday (``""`` = closed), or the errors by field name."""
    hours: dict[str, str] = {}
    errors: dict[str, str] = {}
    for day in WEEKDAYS:
        opens, closes = form.get(f"{day}-opens", ""), form.get(f"{day}-closes", "")
        for field, value in ((f"{day}-opens", opens), (f"{day}-closes", closes)):
            if value and not _TIME.fullmatch(value):
                errors[field] = "admin_error_time_format"
        if not opens and not closes:
            hours[day] = ""
            continue
        if not opens or not closes:
            errors[f"{day}-opens" if not opens else f"{day}-closes"] = (
                "admin_error_time_missing"
            )
            continue
        if errors.keys() & {f"{day}-opens", f"{day}-closes"}:
            continue
        spec = f"{opens}-{closes}"
        try:
            parse_hours(spec)
        except ValueError:
            errors[f"{day}-closes"] = "admin_error_time_order"
            continue
        hours[day] = spec
    return hours, errors


async def save_hours(request: web.Request) -> web.Response:
    actor = await require_staff(request, "admin")
    form = await _form(request)
    hours, errors = _parse_hours(form)
    if errors:
        return _hours_form(request, form, errors, status=422)

    async def record(conn: AsyncConnection) -> None:
        await _record(conn, actor, "desk_opening_hours_changed", opening_hours=hours)

    await request.app[DESK].update(request.app[DB], "opening_hours", hours, also=record)
    log.info("desk_opening_hours_changed", user_id=actor.id)
    return _see_other("/staff/admin/hours?done=saved")


# audit log


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


async def _record(
    conn: AsyncConnection, actor: StaffUser, action: str, **details: Any
) -> None:
    await audit.record(
        conn, action, user_id=actor.id, username=actor.username, **details
    )
