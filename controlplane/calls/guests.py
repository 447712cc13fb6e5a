"""The citizen's and the interpreter's side of a video call: the device check and
call pages, the media token, progress for the employee, quality, the waiting
room's message (polled at ``/gesprek/status`` or pushed at ``/gesprek/events``).

Everything hangs on the browser session a join link was exchanged for
(:mod:`controlplane.calls.join_links`): none is 401, an ended call 410.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from controlplane.base.errors import LinkExpired, Unauthorized, ValidationFailed
from controlplane.base.i18n import request_language
from controlplane.base.json_body import json_body
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.calls import join_links
from controlplane.calls import record as records
from controlplane.calls.events import CallEvent, resume_after, stream
from controlplane.calls.json_bodies import no_store, no_store_json
from controlplane.calls.live_state import CALLS, LiveCall, guest_channel
from controlplane.calls.quality import store_quality
from controlplane.calls.rooms import (
    Call,
    find_call,
    media_grant,
)
from controlplane.requests import get_request, mask_phone
from controlplane.security.csrf import csrf_token
from controlplane.storage.database import DB
from controlplane.webhooks import callback_event

PROGRESS_STEPS = (
    "device_check_passed",
    "device_check_failed",
    "waiting",
    "in_call",
    "left",
)
FAILED_PARTS = ("camera", "microphone", "speaker", "connection")


def setup(app: web.Application) -> None:
    """Register the citizen's and interpreter's call routes."""
    r = app.router
    r.add_get("/gesprek/apparaat", device_check_page)
    r.add_get("/gesprek/bellen", call_page)
    r.add_get("/gesprek/status", guest_status)
    r.add_get("/gesprek/events", guest_events)
    r.add_post("/gesprek/token", guest_token)
    r.add_post("/gesprek/voortgang", guest_progress)
    r.add_post("/gesprek/kwaliteit", guest_quality)


async def _guest(
    request: web.Request, *, after_end: bool = False
) -> tuple[join_links.LinkInfo, Call]:
    """The call of this browser's join session: 401 without one, 410 once ended
    (unless ``after_end``: the last quality report arrives as the call ends)."""
    info = await join_links.current_survey_session(request)
    if info is None:
        raise Unauthorized("calls_no_session")
    if info.ended and not after_end:
        raise LinkExpired("calls_ended")
    call = await find_call(request.app, info.room_id)
    if call.ended and not after_end:
        raise LinkExpired("calls_ended")
    await _mark_opened(request.app, info)
    return info, call


async def _mark_opened(app: web.Application, info: join_links.LinkInfo) -> None:
    """Tell the employee, once, that the citizen's browser came in with the link
    (once over every process: only the first to mark it opened tells)."""
    if info.role == "citizen" and await app[CALLS].mark_opened(info.room_id):
        await app[CALLS].events.publish(info.room_id, "link_opened", role="citizen")


def _guest_app(
    request: web.Request, info: join_links.LinkInfo, phone_hint: str
) -> dict[str, str]:
    return {
        "role": info.role,
        "csrf": csrf_token(request),
        "token-url": "/gesprek/token",
        "progress-url": "/gesprek/voortgang",
        "quality-url": "/gesprek/kwaliteit",
        "status-url": "/gesprek/status",
        "events-url": "/gesprek/events",
        "survey-url": "/gesprek/enquete" if info.role == "citizen" else "",
        "call-url": "/gesprek/bellen",
        "lang": request_language(request),
        # what the end screen says when the employee switches to a phone call
        "phone-hint": phone_hint,
    }


async def _phone_hint(
    app: web.Application, info: join_links.LinkInfo, call: Call
) -> str:
    """The citizen's number, masked (``06-…78``); '' for others or no request."""
    if info.role != "citizen" or call.request_id is None:
        return ""
    phone = (await get_request(app[DB], call.request_id)).phone
    return mask_phone(phone) if phone else ""


async def _guest_page(request: web.Request, template: str) -> web.Response:
    try:
        info, call = await _guest(request)
    except LinkExpired:
        ended = await join_links.current_survey_session(request)
        if ended is not None and ended.role == "citizen":
            raise web.HTTPSeeOther("/gesprek/enquete") from None
        raise
    hint = await _phone_hint(request.app, info, call)
    context = {"call_app": _guest_app(request, info, hint)}
    return no_store(render(request, template, context))


async def device_check_page(request: web.Request) -> web.Response:
    return await _guest_page(request, "call/device_check.html")


async def call_page(request: web.Request) -> web.Response:
    return await _guest_page(request, "call/call.html")


async def guest_status(request: web.Request) -> web.Response:
    """``{"ended": bool, "outcome": str | null, "message": str | null}`` for the
    waiting room to poll (``outcome``: how it ended, e.g. ``switched_to_phone``)."""
    info = await join_links.current_survey_session(request)
    if info is None:
        raise Unauthorized("calls_no_session")
    record = await records.find_by_room(request.app[DB], info.room_id)
    ended = info.ended or record is None or record.ended_at is not None
    live = LiveCall()
    if not ended:
        await _mark_opened(request.app, info)
        live = await request.app[CALLS].live(info.room_id)
    outcome = record.outcome if record is not None else None
    return no_store_json({"ended": ended, "outcome": outcome, "message": live.message})


async def guest_events(request: web.Request) -> web.StreamResponse:
    """For the waiting room: ``lobby_message`` ``{"text"}`` (the current one first)
    and ``ended``."""
    _info, call = await _guest(request)
    message = (await request.app[CALLS].live(call.room_id)).message
    first = [CallEvent("lobby_message", {"text": message})] if message else []
    events, channel = request.app[CALLS].events, guest_channel(call.room_id)
    # a page that connects anew starts with the current message, not the old ones
    after = resume_after(request) or await events.last_seq(channel)
    return await stream(request, events, channel, first, after)


async def guest_token(request: web.Request) -> web.Response:
    info, call = await _guest(request)
    return no_store_json(
        await media_grant(request.app, call, info.role, _participant(info))
    )


def _participant(info: join_links.LinkInfo) -> str:
    return f"{info.role}-{info.link_id}"


async def guest_progress(request: web.Request) -> web.Response:
    info, call = await _guest(request)
    body = await json_body(request)
    step = body.get("step")
    failed = body.get("failed", [])
    errors: dict[str, str] = {}
    if step not in PROGRESS_STEPS:
        errors["step"] = "calls_progress_step"
    if not isinstance(failed, list) or not all(p in FAILED_PARTS for p in failed):
        errors["failed"] = "calls_progress_failed"
    if errors:
        raise ValidationFailed("calls_progress_invalid", details=errors)
    await _count_progress(request.app, call, info.role, str(step), sorted(set(failed)))
    if step == "in_call" and info.role == "citizen":
        await _tell_joined(request.app, call)
    await request.app[CALLS].events.publish(
        call.room_id,
        "progress",
        step=step,
        failed=sorted(set(failed)),
        role=info.role,
    )
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def _tell_joined(app: web.Application, call: Call) -> None:
    """The request's integrator hears that the citizen is in the call."""
    if call.request_id is not None:
        async with app[DB].write() as conn:
            brief = {"id": call.record_id}
            await callback_event(
                conn, call.request_id, "call.citizen_joined", call=brief
            )


async def _count_progress(
    app: web.Application, call: Call, role: str, step: str, failed: list[str]
) -> None:
    """Count the failed parts of a device check, and a citizen's wait in the
    waiting room once they are let in (before this step is published)."""
    metrics = app[METRICS]
    for kind in failed if step == "device_check_failed" else ():
        metrics.device_check_failures.labels(kind).inc()
    if step == "in_call" and role == "citizen":
        waiting_since = await _waiting_since(app, call.room_id)
        if waiting_since is not None:
            waited = (datetime.now(UTC) - waiting_since).total_seconds()
            metrics.lobby_wait.observe(max(0.0, waited))


async def _waiting_since(app: web.Application, room_id: str) -> datetime | None:
    """When the citizen's latest step was "waiting", since when; else None."""
    for event in reversed(await app[CALLS].events.history(room_id)):
        data = event.data
        if event.kind == "progress" and data.get("role") == "citizen":
            at = data.get("at")
            if data.get("step") != "waiting" or not isinstance(at, str):
                return None
            return datetime.fromisoformat(at)
    return None


async def guest_quality(request: web.Request) -> web.Response:
    _info, call = await _guest(request, after_end=True)
    return await store_quality(request, call)
