"""One callback request in the staff console: its page, and the actions on it
(claim, release, start, complete, no answer, cancel, switch channel, notes,
reassign, release a stale claim), each a POST that redirects or re-renders the
page with the form's errors.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from controlplane.base.errors import Forbidden, NotFound, ValidationFailed
from controlplane.base.metrics import METRICS, Metrics
from controlplane.base.rendering import render
from controlplane.base.times import iso_utc
from controlplane.requests import (
    CANCEL_REASONS,
    CHANNELS,
    DESK,
    OUTCOMES,
    QUEUE_EVENTS,
    SWITCH_REASONS,
    Actor,
    Request,
    State,
    active_staff,
    add_note,
    cancel,
    claim,
    complete,
    get_request,
    list_notes,
    may_work,
    no_answer,
    reassign,
    release,
    release_stale,
    start_attempt,
    switch_channel,
)
from controlplane.staff import auth
from controlplane.staff.console import small_int
from controlplane.staff.labels import Labels
from controlplane.staff.survey_invites import send_survey_link
from controlplane.storage.database import DB, Database

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
    """Register the request page and its actions."""
    r = app.router
    r.add_get("/staff/requests/{id:[0-9]+}", request_page)
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
        r.add_post(
            f"/staff/requests/{{id:[0-9]+}}/{name}", _action_handler(action, role)
        )


def _request_id(request: web.Request) -> int:
    value = small_int(request.match_info["id"])
    if value is None:
        raise NotFound("console_error_not_found")
    return value


async def _form(request: web.Request) -> dict[str, str]:
    data = await request.post()
    return {k: v for k, v in data.items() if isinstance(v, str)}


async def _detail_context(
    request: web.Request, user: auth.StaffUser, request_id: int
) -> dict[str, Any]:
    db = request.app[DB]
    item = await get_request(db, request_id)
    actor = user.actor
    if item.state is not State.NEW and not may_work(item, actor):
        raise Forbidden("console_error_not_yours")
    desk = request.app[DESK].current
    now = datetime.now(UTC)
    return {
        "item": item,
        "notes": await list_notes(db, request_id),
        "labels": Labels(request),
        "now": now,
        "iso": iso_utc,
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
            location = await action(request, user.actor, request_id, form)
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
        request.app[QUEUE_EVENTS].publish()
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
    """Close with the outcome; a phone callback goes on to the employee's survey
    (the same questions as after a video call), first sending the citizen theirs
    when the employee ticked it."""
    app = request.app
    outcome = form.get("outcome", "")
    item = await complete(app[DB], app[METRICS], rid, actor, outcome)
    if item.channel != "phone":
        return f"/staff?closed={item.reference}"
    survey = f"/staff/requests/{rid}/enquete"
    if form.get("survey_link") != "yes":
        return survey
    return f"{survey}?link={await send_survey_link(app, item, actor)}"


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
    user_id = small_int(form.get("user_id", ""))
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
