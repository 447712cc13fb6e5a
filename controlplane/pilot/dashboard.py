"""The pilot dashboard at ``/staff/dashboard`` for supervisors and admins: the
live counts (:mod:`controlplane.pilot.live`), kept current over the event stream
``/staff/dashboard/live``, and the figures of a period
(:mod:`controlplane.pilot.figures`) as tables and SVG charts.

The page works without JavaScript; ``dashboard.js`` swaps in the live part the
stream pushes. The stream re-reads at every queue notice (a request arrives, a
call starts or ends) and every :data:`LIVE_SECONDS` for what sends no notice (a
citizen entering a waiting room, a node's heartbeat), and sends only changes.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp_jinja2
import structlog
from aiohttp import web

from controlplane.base.rendering import page_context, render
from controlplane.base.settings import CONFIG
from controlplane.pilot.dashboard_view import FORM_FIELDS, figures_context
from controlplane.pilot.figures import period_figures, pilot_start
from controlplane.pilot.live import LiveCounts, live_counts
from controlplane.pilot.periods import PeriodError, choose_period
from controlplane.requests import DESK, QUEUE_EVENTS
from controlplane.staff import Labels, require_staff
from controlplane.storage.database import DB

log = structlog.get_logger()

#: Seconds between re-reads of the live counts when no notice comes.
LIVE_SECONDS = 5.0
#: A stream ends after this long; the browser reconnects, and the staff guard
#: checks the session again (a signed-out supervisor's stream stops).
STREAM_SECONDS = 600.0
_SHUTDOWN = "shutdown"


def setup(app: web.Application) -> None:
    app.router.add_get("/staff/dashboard", dashboard_page)
    app.router.add_get("/staff/dashboard/live", live_events)
    app.on_shutdown.append(_end_streams)


async def _live(request: web.Request) -> LiveCounts:
    idle = timedelta(minutes=request.app[CONFIG].security.session_idle_minutes)
    return await live_counts(request.app[DB], datetime.now(UTC), idle)


def _live_context(request: web.Request, live: LiveCounts) -> dict[str, Any]:
    return {"live": live, "labels": Labels(request), "now": datetime.now(UTC)}


def _form_values(request: web.Request) -> dict[str, str]:
    """The period form as asked (printable characters only, short)."""
    return {
        name: "".join(c for c in request.query.get(name, "") if c.isprintable())[:10]
        for name in FORM_FIELDS
    }


async def dashboard_page(request: web.Request) -> web.Response:
    await require_staff(request, "supervisor")
    db, zone = request.app[DB], request.app[DESK].current.timezone
    context: dict[str, Any] = {
        **_live_context(request, await _live(request)),
        "form": _form_values(request),
        "errors": {},
        "figures": None,
    }
    try:
        period = choose_period(request.query, zone, await pilot_start(db, zone))
    except PeriodError as error:
        context["errors"] = {error.field: error.key}
        return render(request, "pilot/dashboard.html", context, status=422)
    figures = await period_figures(db, period)
    context.update(figures_context(request, figures))
    context["form"]["period"] = period.kind
    return render(request, "pilot/dashboard.html", context)


def _live_html(request: web.Request, live: LiveCounts) -> str:
    return aiohttp_jinja2.render_string(
        "pilot/_live.html",
        request,
        {**page_context(request), **_live_context(request, live)},
    )


def _event(name: str, data: Any) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


async def live_events(request: web.Request) -> web.StreamResponse:
    """``text/event-stream``: a ``live`` event with the re-rendered live part
    whenever the counts change."""
    await require_staff(request, "supervisor")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        await asyncio.wait_for(_follow(request, response), STREAM_SECONDS)
    except (TimeoutError, ConnectionResetError):
        pass  # the browser reconnects (or has gone)
    except Exception:
        log.exception("dashboard_stream_failed")
    return response


async def _follow(request: web.Request, response: web.StreamResponse) -> None:
    last: LiveCounts | None = None
    async with request.app[QUEUE_EVENTS].subscribe() as inbox:
        while True:
            live = await _live(request)
            if live != last:
                html = _live_html(request, live)
                await response.write(_event("live", {"html": html}))
                last = live
            else:
                await response.write(b": heartbeat\n\n")
            try:
                notice = await asyncio.wait_for(inbox.get(), LIVE_SECONDS)
            except TimeoutError:
                notice = ""
            if notice == _SHUTDOWN:
                return


async def _end_streams(app: web.Application) -> None:
    app[QUEUE_EVENTS].publish_here(_SHUTDOWN)
