"""The citizen's status page, ``/verzoek/{token}`` (see
:mod:`~controlplane.requests.status_links`): where the request stands, and the
forms that cancel it (after a confirmation page), move it to another slot, or
tell the employee the video link failed (:mod:`~controlplane.requests.self_service`).

Every hit counts against ``status_per_ip`` (a forged link too), every change also
against ``status_changes_per_request``. Changes are told to open consoles.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from controlplane.base.client import client_ip
from controlplane.base.errors import ValidationFailed
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.base.settings import CONFIG
from controlplane.requests import self_service
from controlplane.requests.desk import DESK
from controlplane.requests.live import QUEUE_EVENTS
from controlplane.requests.status_links import PATH, live_request
from controlplane.requests.wording import next_steps, page_translator, slot_groups
from controlplane.security.ratelimit import LIMITS
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB

#: What a change's redirect tells the status page to confirm (``?klaar=``).
DONE = ("cancelled", "moved", "link")

LinkHelpListener = Callable[[web.Application, int], Awaitable[None]]
#: Told the request id when its citizen asks for a new video link: calls tells
#: the employee's call page (requests cannot import calls, which imports it).
LINK_HELP_LISTENERS = web.AppKey("link_help_listeners", list[LinkHelpListener])


def setup(app: web.Application) -> None:
    """Register the status page and its forms."""
    app[LINK_HELP_LISTENERS] = []
    base = PATH + "{token}"
    app.router.add_get(base, show_status, name="request_status")
    app.router.add_get(base + "/annuleren", show_cancel)
    app.router.add_post(base + "/annuleren", cancel)
    app.router.add_post(base + "/tijd", change_time)
    app.router.add_post(base + "/nieuwe-link", ask_new_link)


async def _opened(request: web.Request) -> dict[str, Any]:
    """The request this link opens, once the address is within its limit."""
    await request.app[LIMITS].status_per_ip.hit(client_ip(request))
    app = request.app
    return await live_request(
        app[DB],
        app[SECRET_KEY],
        request.match_info["token"],
        app[CONFIG].retention.personal_data_days,
        datetime.now(UTC),
    )


async def _changing(request: web.Request) -> dict[str, Any]:
    """Like :func:`_opened`, for a change: also within the request's limit."""
    row = await _opened(request)
    await request.app[LIMITS].status_changes_per_request.hit(row["reference"])
    return row


def _here(request: web.Request, done: str | None = None) -> str:
    path = PATH + request.match_info["token"]
    return f"{path}?klaar={done}" if done else path


async def show_status(request: web.Request) -> web.Response:
    row = await _opened(request)
    done = request.query.get("klaar")
    return _status_page(request, row, {}, done if done in DONE else None)


def _status_page(
    request: web.Request,
    row: dict[str, Any],
    errors: dict[str, str],
    done: str | None,
    *,
    status: int = 200,
) -> web.Response:
    desk = request.app[DESK].current
    t = page_translator(request)
    state = row["state"]
    steps = next_steps(row, desk, t)
    response = render(
        request,
        "citizen/status.html",
        {
            "row": row,
            "state": state,
            "retry": state == "new" and row["attempts"] > 0,
            "how": steps[0],
            "when": steps[1],
            "here": _here(request),
            "done": done,
            "errors": errors,
            "may_cancel": state in self_service.CANCELLABLE,
            "may_move": state in self_service.MOVABLE,
            "may_ask_link": row["channel"] == "video"
            and state in self_service.LINK_HELP_STATES,
            "slot_groups": slot_groups(desk, t) if state == "new" else [],
        },
        status=status,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def show_cancel(request: web.Request) -> web.Response:
    """Are you sure? The cancel form, on a page of its own."""
    row = await _opened(request)
    if row["state"] not in self_service.CANCELLABLE:
        raise web.HTTPSeeOther(_here(request))
    response = render(
        request,
        "citizen/status_cancel.html",
        {"reference": row["reference"], "here": _here(request)},
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def cancel(request: web.Request) -> web.Response:
    row = await _changing(request)
    app = request.app
    await self_service.cancel(app[DB], app[METRICS], row["id"], datetime.now(UTC))
    app[QUEUE_EVENTS].publish()
    raise web.HTTPSeeOther(_here(request, "cancelled"))


async def change_time(request: web.Request) -> web.Response:
    row = await _changing(request)
    form = await request.post()
    chosen = form.get("slot")
    now = datetime.now(UTC)
    desk = request.app[DESK].current
    try:
        if not isinstance(chosen, str) or not chosen:
            raise ValidationFailed(
                "citizen_status_error_form",
                details={"slot": "citizen_error_slot_missing"},
            )
        wanted = self_service.parse_new_time(chosen, row, desk, now)
    except ValidationFailed as exc:
        return _status_page(request, row, exc.details, None, status=422)
    await self_service.change_time(request.app[DB], row["id"], wanted, now)
    request.app[QUEUE_EVENTS].publish()
    raise web.HTTPSeeOther(_here(request, "moved"))


async def ask_new_link(request: web.Request) -> web.Response:
    row = await _changing(request)
    if await self_service.ask_new_link(request.app[DB], row["id"], datetime.now(UTC)):
        request.app[QUEUE_EVENTS].publish()
        for listener in request.app[LINK_HELP_LISTENERS]:
            await listener(request.app, row["id"])
    raise web.HTTPSeeOther(_here(request, "link"))
