"""The staff console: the live queue, working a callback request, phone-line entry.

Pages are rendered on the server and work without JavaScript; ``queue.js`` swaps
in fresh table rows that ``/staff/queue/events`` (Server-Sent Events) pushes on
every change. The rules live in :mod:`controlplane.requests.queue`; this module
maps HTTP to them and tells open consoles that something changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
import sqlalchemy as sa
import structlog
from aiohttp import web
from yarl import URL

from controlplane.base.errors import Forbidden, NotFound, ValidationFailed
from controlplane.base.i18n import CATALOG, request_language
from controlplane.base.metrics import METRICS, Metrics
from controlplane.base.rendering import page_context, render
from controlplane.base.settings import CONFIG
from controlplane.requests import (
    ACCESSIBILITY_NEEDS,
    CANCEL_REASONS,
    CHANNELS,
    DESK,
    OPEN_STATES,
    OUTCOMES,
    QUEUE_EVENTS,
    SWITCH_REASONS,
    Actor,
    NewRequest,
    QueueFilter,
    Request,
    State,
    active_staff,
    add_note,
    announce_new_request,
    available_slots,
    cancel,
    claim,
    complete,
    create_request,
    expire_overdue,
    get_request,
    list_notes,
    list_open,
    may_work,
    no_answer,
    parse_reference,
    parse_request,
    reassign,
    release,
    release_stale,
    start_attempt,
    switch_channel,
)
from controlplane.staff import auth
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import sessions, users

log = structlog.get_logger()

#: Seconds between keep-alive comments on an idle event stream.
HEARTBEAT_SECONDS = 15.0
#: Seconds between runs of the expiry of overdue requests.
EXPIRY_INTERVAL_SECONDS = 60.0
_MAX_ID = 2**31 - 1
_SHUTDOWN = "shutdown"
_EXPIRY_TASK = web.AppKey("console_expiry_task", asyncio.Task[None])

#: Which element shows a field's error, per action form on the request page.
_ERROR_IDS = {
    "_complete": {"outcome": "outcome"},
    "_cancel": {"reason": "cancel-reason"},
    "_switch_channel": {
        "channel": "switch-channel",
        "reason": "switch-reason",
        "note": "switch-note",
    },
    "_add_note": {"note": "note"},
    "_reassign": {"user_id": "reassign-user"},
}

Action = Callable[[web.Request, Actor, int, Mapping[str, str]], Awaitable[str | None]]


def setup(app: web.Application) -> None:
    """Register the console's routes and the background expiry of old requests."""
    r = app.router
    r.add_get("/staff", queue_page)
    r.add_get("/staff/queue/events", queue_events)
    r.add_post("/staff/queue/release-stale", release_all_stale)
    r.add_get("/staff/requests/new", new_request_page)
    r.add_post("/staff/requests/new", new_request)
    r.add_get(r"/staff/requests/{id:\d+}", request_page)
    for name, action, role in (
        ("claim", _claim, "agent"),
        ("release", _release, "agent"),
        ("start", _start, "agent"),
        ("complete", _complete, "agent"),
        ("no-answer", _no_answer, "agent"),
        ("cancel", _cancel, "agent"),
        ("switch-channel", _switch_channel, "agent"),
        ("notes", _add_note, "agent"),
        ("reassign", _reassign, "supervisor"),
        ("release-stale", _release_stale, "supervisor"),
    ):
        r.add_post(rf"/staff/requests/{{id:\d+}}/{name}", _action_handler(action, role))
    app.cleanup_ctx.append(_expiry_task)
    app.on_shutdown.append(_end_streams)


# shared helpers


def _actor(user: auth.StaffUser) -> Actor:
    return Actor(user.id, user.username, user.role)


def _small_int(text: str) -> int | None:
    """``text`` as a database id or count; None unless plain ASCII digits in range."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(_MAX_ID))):
        return None
    value = int(text)
    return value if value <= _MAX_ID else None


def _request_id(request: web.Request) -> int:
    value = _small_int(request.match_info["id"])
    if value is None:
        raise NotFound("console_error_not_found")
    return value


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


def _changed(request: web.Request) -> None:
    request.app[QUEUE_EVENTS].publish()


class Labels:
    """Readable text for codes and times in the staff's language."""

    def __init__(self, request: web.Request) -> None:
        self.lang = request_language(request)
        self._catalog = request.app[CATALOG]
        self._desk = request.app[DESK]
        self._tz = ZoneInfo(self._desk.current.timezone)

    def t(self, key: str, **params: Any) -> str:
        return self._catalog.get(key, self.lang, **params)

    def topic(self, code: str) -> str:
        topic = self._desk.topic(code)
        return topic.label(self.lang) if topic is not None else code

    def needs(self, codes: tuple[str, ...]) -> list[str]:
        return [self.t(f"console_need_{code}") for code in codes]

    def local(self, moment: datetime) -> str:
        return moment.astimezone(self._tz).strftime("%d-%m-%Y %H:%M")

    def moment(self, item: Request) -> str:
        """When the citizen wants to be called."""
        if item.preferred == "slot" and item.slot_start is not None:
            return self.local(item.slot_start)
        return self.t("console_preferred_asap")

    def duration(self, seconds: float) -> str:
        minutes = int(seconds // 60)
        if minutes < 1:
            return self.t("console_duration_under_minute")
        if minutes < 60:
            return self.t("console_duration_minutes", m=minutes)
        if minutes < 24 * 60:
            return self.t("console_duration_hours", h=minutes // 60, m=minutes % 60)
        return self.t(
            "console_duration_days", d=minutes // 1440, h=minutes % 1440 // 60
        )

    def waiting(self, item: Request, now: datetime) -> str:
        """How long the request has been due, or how soon it will be."""
        seconds = (now - item.due_at).total_seconds()
        if seconds < 0:
            return self.t("console_due_in", time=self.duration(-seconds))
        return self.duration(seconds)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# the queue


def _queue_filter(request: web.Request, user: auth.StaffUser) -> QueueFilter:
    """The filters in the query string; unknown values are a 422 naming the field."""
    query = request.query
    allowed = {
        "channel": CHANNELS,
        "topic": tuple(t.code for t in request.app[DESK].current.topics),
        "state": tuple(s.value for s in OPEN_STATES),
    }
    chosen: dict[str, str | None] = {}
    errors: dict[str, str] = {}
    for name, options in allowed.items():
        value = query.get(name) or None
        if value is not None and value not in options:
            errors[name] = "console_error_filter"
        chosen[name] = value
    if errors:
        raise ValidationFailed("console_error_filter", details=errors)
    return QueueFilter(
        channel=chosen["channel"],
        topic=chosen["topic"],
        state=chosen["state"],
        claimed_by=user.id if query.get("mine") == "1" else None,
    )


async def _rows_context(
    request: web.Request, user: auth.StaffUser, where: QueueFilter
) -> dict[str, Any]:
    items = await list_open(request.app[DB], where)
    desk = request.app[DESK].current
    now = datetime.now(UTC)
    return {
        "items": items,
        "now": now,
        "labels": Labels(request),
        "iso": _iso,
        "actor": _actor(user),
        "may_work": may_work,
        "is_stale": lambda item: item.is_stale(desk, now),
        "staff_user": user,
    }


async def queue_page(request: web.Request) -> web.Response:
    user = await auth.require_staff(request)
    where = _queue_filter(request, user)
    context = await _rows_context(request, user, where)
    notice = None
    for kind in ("closed", "retry", "released"):
        reference = parse_reference(request.query.get(kind, ""))
        if reference is not None:
            notice = (kind, reference)
    return render(
        request,
        "staff/console/queue.html",
        {
            **context,
            "where": where,
            "mine": request.query.get("mine") == "1",
            "channels": CHANNELS,
            "states": [s.value for s in OPEN_STATES],
            "notice": notice,
            "released_count": _small_int(request.query.get("released_count", "")),
            "events_url": URL("/staff/queue/events").with_query(request.query),
        },
    )


async def _rows_html(
    request: web.Request, user: auth.StaffUser, where: QueueFilter
) -> tuple[str, list[str]]:
    context = await _rows_context(request, user, where)
    html = aiohttp_jinja2.render_string(
        "staff/console/_rows.html", request, {**page_context(request), **context}
    )
    return html, [item.reference for item in context["items"]]


async def _session_alive(request: web.Request, id_hash: str) -> bool:
    """Whether the stream's session still counts, without extending it."""
    async with request.app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(sessions.c.expires_at, sessions.c.last_seen_at)
                .join(users, users.c.id == sessions.c.user_id)
                .where(sessions.c.id_hash == id_hash, users.c.active.is_(True))
            )
        ).first()
    if row is None:
        return False
    config = request.app[CONFIG]
    return auth.session_alive(
        config, row.expires_at, row.last_seen_at, datetime.now(UTC)
    )


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def queue_events(request: web.Request) -> web.StreamResponse:
    """``text/event-stream``: a ``rows`` event with the re-rendered table body after
    each change, a comment every :data:`HEARTBEAT_SECONDS`, and ``signed_out`` then
    the end when the session is over."""
    user = await auth.require_staff(request)
    session = await auth.current_session(request)
    if session is None:
        raise Forbidden("error_forbidden")
    where = _queue_filter(request, user)
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "X-Accel-Buffering": "no"}
    )
    try:
        await response.prepare(request)
        await _follow_queue(request, response, user, where, session.id_hash)
    except ConnectionResetError:
        log.debug("queue_stream_closed_by_client")
    except Exception:
        log.exception("queue_stream_failed")
    return response


async def _follow_queue(
    request: web.Request,
    response: web.StreamResponse,
    user: auth.StaffUser,
    where: QueueFilter,
    session_id_hash: str,
) -> None:
    async with request.app[QUEUE_EVENTS].subscribe() as inbox:
        changed = True
        while True:
            if not await _session_alive(request, session_id_hash):
                await response.write(_event("signed_out", {}))
                return
            if changed:
                html, references = await _rows_html(request, user, where)
                await response.write(
                    _event("rows", {"html": html, "references": references})
                )
            else:
                await response.write(b": heartbeat\n\n")
            try:
                notices = [await asyncio.wait_for(inbox.get(), HEARTBEAT_SECONDS)]
            except TimeoutError:
                notices = []
            while not inbox.empty():
                notices.append(inbox.get_nowait())
            if _SHUTDOWN in notices:
                return
            changed = bool(notices)


async def _end_streams(app: web.Application) -> None:
    app[QUEUE_EVENTS].publish(_SHUTDOWN)


async def release_all_stale(request: web.Request) -> web.Response:
    user = await auth.require_staff(request, "supervisor")
    released = await release_stale(
        request.app[DB], request.app[DESK].current, _actor(user)
    )
    if released:
        _changed(request)
    raise web.HTTPSeeOther(f"/staff?released_count={len(released)}")


# one request


async def _detail_context(
    request: web.Request, user: auth.StaffUser, request_id: int
) -> dict[str, Any]:
    db = request.app[DB]
    item = await get_request(db, request_id)
    actor = _actor(user)
    if item.state is not State.NEW and not may_work(item, actor):
        raise Forbidden("console_error_not_yours")
    desk = request.app[DESK].current
    now = datetime.now(UTC)
    return {
        "item": item,
        "notes": await list_notes(db, request_id),
        "labels": Labels(request),
        "now": now,
        "iso": _iso,
        "may_work": may_work(item, actor),
        "stale": item.is_stale(desk, now),
        "staff_members": await active_staff(db) if actor.is_supervisor else [],
        "outcomes": OUTCOMES,
        "cancel_reasons": CANCEL_REASONS,
        "switch_reasons": SWITCH_REASONS,
        "channels": CHANNELS,
        "errors": {},
        "error_ids": {},
        "form": {},
        "action": None,
    }


async def request_page(request: web.Request) -> web.Response:
    """The request's details and what can be done with it now.

    Anyone on staff may look at a request nobody holds (to claim it); once held,
    only the holder, supervisors and admins."""
    user = await auth.require_staff(request)
    context = await _detail_context(request, user, _request_id(request))
    return render(request, "staff/console/request.html", context)


def _action_handler(
    action: Action, role: str
) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A POST handler: check the role, run ``action``, tell the consoles, redirect
    (to the request unless ``action`` names another page). Wrong form values
    re-render the request page with the errors (422)."""

    async def handler(request: web.Request) -> web.Response:
        user = await auth.require_staff(request, role)
        request_id = _request_id(request)
        form = await _form(request)
        try:
            location = await action(request, _actor(user), request_id, form)
        except ValidationFailed as exc:
            context = await _detail_context(request, user, request_id)
            context.update(
                errors=exc.details,
                error_ids=_ERROR_IDS.get(action.__name__, {}),
                form=form,
                action=action.__name__,
            )
            return render(
                request, "staff/console/request.html", context, status=exc.status
            )
        _changed(request)
        raise web.HTTPSeeOther(location or f"/staff/requests/{request_id}")

    return handler


async def _claim(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    await claim(request.app[DB], rid, actor)
    return None


async def _release(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    item = await release(request.app[DB], rid, actor)
    return f"/staff?released={item.reference}"


async def _start(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    await start_attempt(request.app[DB], request.app[METRICS], rid, actor)
    return None


async def _complete(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    return await _close(request, complete, rid, actor, form.get("outcome", ""))


async def _no_answer(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    item = await no_answer(
        request.app[DB], request.app[METRICS], request.app[DESK].current, rid, actor
    )
    kind = "retry" if item.is_open else "closed"
    return f"/staff?{kind}={item.reference}"


async def _cancel(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    return await _close(request, cancel, rid, actor, form.get("reason", ""))


#: :func:`complete` or :func:`cancel`: closes with an outcome or reason.
Closer = Callable[[Database, Metrics, int, Actor, str], Awaitable[Request]]


async def _close(
    request: web.Request, close: Closer, rid: int, actor: Actor, why: str
) -> str:
    item = await close(request.app[DB], request.app[METRICS], rid, actor, why)
    return f"/staff?closed={item.reference}"


async def _switch_channel(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    await switch_channel(
        request.app[DB],
        rid,
        actor,
        form.get("channel", ""),
        form.get("reason", ""),
        form.get("note"),
    )
    return None


async def _add_note(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    await add_note(request.app[DB], rid, actor, form.get("note", ""))
    return f"/staff/requests/{rid}#notes"


async def _reassign(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    user_id = _small_int(form.get("user_id", ""))
    if user_id is None:
        raise ValidationFailed(
            "console_error_form", details={"user_id": "console_field_user_invalid"}
        )
    await reassign(request.app[DB], rid, actor, user_id)
    return None


async def _release_stale(
    request: web.Request, actor: Actor, rid: int, form: Mapping[str, str]
) -> str | None:
    await release_stale(
        request.app[DB], request.app[DESK].current, actor, request_id=rid
    )
    return "/staff?released_count=1"


# phone-line entry


def _new_request_context(
    request: web.Request, errors: Mapping[str, str], form: Mapping[str, Any]
) -> dict[str, Any]:
    desk = request.app[DESK].current
    return {
        "errors": errors,
        "form": form,
        "submission_id": form.get("submission_id") or secrets.token_urlsafe(24),
        "slots": available_slots(desk, datetime.now(UTC)),
        "labels": Labels(request),
        "iso": _iso,
        "channels": CHANNELS,
        "needs": ACCESSIBILITY_NEEDS,
    }


async def new_request_page(request: web.Request) -> web.Response:
    await auth.require_staff(request)
    return render(
        request, "staff/console/new.html", _new_request_context(request, {}, {})
    )


async def new_request(request: web.Request) -> web.Response:
    """Store a request taken on the phone line, once per form (``submission_id``)."""
    await auth.require_staff(request)
    data = await request.post()
    fields: dict[str, str | list[str]] = {
        k: v for k, v in data.items() if isinstance(v, str) and k != "accessibility"
    }
    fields["accessibility"] = [
        v for v in data.getall("accessibility", []) if isinstance(v, str)
    ]
    submission = str(fields.get("submission_id", ""))
    try:
        new = _phone_request(request, fields, submission)
    except ValidationFailed as exc:
        return render(
            request,
            "staff/console/new.html",
            _new_request_context(request, exc.details, fields),
            status=422,
        )
    created = await create_request(request.app[DB], new, f"phone:{submission}")
    announce_new_request(request.app[METRICS], request.app[QUEUE_EVENTS], new, created)
    raise web.HTTPSeeOther(f"/staff/requests/{created.id}")


def _phone_request(
    request: web.Request, fields: Mapping[str, str | list[str]], submission: str
) -> NewRequest:
    """The request the phone-line form describes; every wrong field at once."""
    errors: dict[str, str] = {}
    if not 16 <= len(submission) <= 64:
        errors["submission_id"] = "console_field_submission_invalid"
    if fields.get("consent_phone") != "yes":
        errors["consent_phone"] = "console_field_consent_phone_missing"
    try:
        new = parse_request(
            fields,
            request.app[DESK].current,
            source="phone",
            now=datetime.now(UTC),
            require_consent=False,
        )
    except ValidationFailed as exc:
        errors = {**exc.details, **errors}
    if errors:
        raise ValidationFailed("console_error_form", details=errors)
    return new


# expiry


async def expire_now(app: web.Application) -> list[int]:
    """Expire overdue requests once and tell the consoles; returns their ids."""
    expired = await expire_overdue(app[DB], app[METRICS], app[DESK].current)
    if expired:
        app[QUEUE_EVENTS].publish()
    return expired


async def _expire_forever(app: web.Application) -> None:
    while True:
        await asyncio.sleep(EXPIRY_INTERVAL_SECONDS)
        try:
            await expire_now(app)
        except Exception:
            log.exception("expiry_failed")


async def _expiry_task(app: web.Application) -> AsyncIterator[None]:
    app[_EXPIRY_TASK] = asyncio.create_task(_expire_forever(app))
    yield
    app[_EXPIRY_TASK].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await app[_EXPIRY_TASK]
