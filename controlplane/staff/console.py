"""The staff console's queue: the live queue page, its Server-Sent Events stream,
releasing all stale claims, and the background expiry of overdue requests.

Pages are rendered on the server and work without JavaScript; ``queue.js`` swaps
in fresh table rows that ``/staff/queue/events`` (Server-Sent Events) pushes on
every change. The rules live in :mod:`controlplane.requests`; one request's page
and its actions are :mod:`controlplane.staff.request_page`, phone-line entry
:mod:`controlplane.staff.phone_entry`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp_jinja2
import sqlalchemy as sa
import structlog
from aiohttp import web
from yarl import URL

from controlplane.base.errors import Forbidden, ValidationFailed
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import page_context, render
from controlplane.base.settings import CONFIG
from controlplane.base.times import iso_utc
from controlplane.requests import (
    CHANNELS,
    DESK,
    OPEN_STATES,
    QUEUE_EVENTS,
    QueueFilter,
    expire_overdue,
    list_open,
    may_work,
    parse_reference,
    release_stale,
)
from controlplane.staff import auth
from controlplane.staff.labels import Labels
from controlplane.storage.database import DB
from controlplane.storage.schema import sessions, users

log = structlog.get_logger()

#: Seconds between keep-alive comments on an idle event stream.
HEARTBEAT_SECONDS = 15.0
#: Seconds between runs of the expiry of overdue requests.
EXPIRY_INTERVAL_SECONDS = 60.0
_MAX_ID = 2**31 - 1
_SHUTDOWN = "shutdown"
_EXPIRY_TASK = web.AppKey("console_expiry_task", asyncio.Task[None])


def setup(app: web.Application) -> None:
    """Register the queue's routes and the background expiry of old requests."""
    r = app.router
    r.add_get("/staff", queue_page)
    r.add_get("/staff/queue/events", queue_events)
    r.add_post("/staff/queue/release-stale", release_all_stale)
    app.cleanup_ctx.append(_expiry_task)
    app.on_shutdown.append(_end_streams)


def small_int(text: str) -> int | None:
    """``text`` as a database id or count; None unless plain ASCII digits in range."""
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(_MAX_ID))):
        return None
    value = int(text)
    return value if value <= _MAX_ID else None


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
        "iso": iso_utc,
        "actor": user.actor,
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
            "released_count": small_int(request.query.get("released_count", "")),
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
    app[QUEUE_EVENTS].publish_here(_SHUTDOWN)


async def release_all_stale(request: web.Request) -> web.Response:
    user = await auth.require_staff(request, "supervisor")
    released = await release_stale(
        request.app[DB], request.app[DESK].current, user.actor
    )
    if released:
        request.app[QUEUE_EVENTS].publish()
    raise web.HTTPSeeOther(f"/staff?released_count={len(released)}")


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
