"""Admin pages for the desk's settings: its topics and opening hours, plus what
all admin pages share (the trimmed form, the redirect after a change).

Everything under ``/staff/admin`` needs the admin role, except the audit log
(:mod:`~controlplane.staff.audit_page`), which supervisors may read too; users
and roles are :mod:`~controlplane.staff.accounts`. Every change is audited in its
own transaction.
"""

from __future__ import annotations

import re
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import WEEKDAYS, Topic, parse_hours
from controlplane.base.rendering import render
from controlplane.requests import DESK, has_controls, topics_to_json
from controlplane.security import audit
from controlplane.staff.auth import StaffUser, require_staff
from controlplane.storage.database import DB

log = structlog.get_logger()

LABEL_MAX = 100
_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)|24:00")
_TOPIC_CODE = re.compile(r"[a-z][a-z0-9_]{1,31}")


def setup(app: web.Application) -> None:
    """Register the topics and opening-hours pages."""
    app.router.add_get("/staff/admin/topics", topics_page)
    app.router.add_post("/staff/admin/topics", save_topics)
    app.router.add_get("/staff/admin/hours", hours_page)
    app.router.add_post("/staff/admin/hours", save_hours)


async def admin_form(request: web.Request) -> dict[str, str]:
    """The form's text fields, trimmed."""
    data = await request.post()
    return {k: v.strip() for k, v in data.items() if isinstance(v, str)}


def see_other(location: str) -> web.Response:
    """A 303 to ``location``."""
    return web.Response(status=303, headers={"Location": location})


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
    form = await admin_form(request)
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
    return see_other("/staff/admin/topics?done=saved")


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
    form = await admin_form(request)
    hours, errors = _parse_hours(form)
    if errors:
        return _hours_form(request, form, errors, status=422)

    async def record(conn: AsyncConnection) -> None:
        await _record(conn, actor, "desk_opening_hours_changed", opening_hours=hours)

    await request.app[DESK].update(request.app[DB], "opening_hours", hours, also=record)
    log.info("desk_opening_hours_changed", user_id=actor.id)
    return see_other("/staff/admin/hours?done=saved")


async def _record(
    conn: AsyncConnection, actor: StaffUser, action: str, **details: Any
) -> None:
    await audit.record(
        conn, action, user_id=actor.id, username=actor.username, **details
    )
