"""The employee's side of a video call: starting it from a claimed video request
and the call page with its endpoints (media token, quality, hanging up, switching
to the phone, an interpreter link, a message for the waiting room).

HTTP contract (JSON bodies; errors are ``{"error": {"code", "message"}}`` when the
request says ``Accept: application/json``; every POST carries ``X-CSRF-Token``):

- ``POST /staff/requests/{id}/video`` (form: ``send_email``, ``send_sms``) → 303
  to ``/staff/gesprekken/{room_id}``
- ``GET /staff/gesprekken/{room_id}`` (page), ``GET …/events`` (SSE: ``progress``,
  ``link_sent``, ``link_failed``, ``link_opened``, ``ended``), ``POST …/token``,
  ``…/kwaliteit``, ``…/einde``, ``…/naar-telefoon`` ``{"reason"}``, ``…/tolk``,
  ``…/bericht`` ``{"text"}``; once the call is over ``…/afsluiten``
  ``{"result"}`` closes its request in one step (:mod:`controlplane.requests`)
- citizen and interpreter: :mod:`controlplane.calls.guests` (``/gesprek/…``)
"""

from __future__ import annotations

import contextlib
import re
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from controlplane.base.errors import (
    Conflict,
    Forbidden,
    LinkExpired,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from controlplane.base.i18n import CATALOG, request_language
from controlplane.base.json_body import json_body
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.base.times import iso_utc
from controlplane.calls import invitations
from controlplane.calls.events import CallEvent, resume_after, stream
from controlplane.calls.heartbeats import MEDIA_LOST
from controlplane.calls.json_bodies import no_store, no_store_json
from controlplane.calls.live_state import CALLS, guest_channel
from controlplane.calls.quality import store_quality
from controlplane.calls.record import SWITCHED_TO_PHONE, get_call_record
from controlplane.calls.rooms import (
    Call,
    active_call,
    audit_call,
    check_video,
    end_call,
    find_call,
    media_grant,
    new_link,
    open_room,
)
from controlplane.requests import (
    AFTER_CALL,
    DESK,
    QUEUE_EVENTS,
    SWITCH_REASONS,
    Actor,
    Request,
    State,
    close_after_call,
    get_request,
    may_work,
    start_attempt,
    switch_channel,
)
from controlplane.security.csrf import csrf_token
from controlplane.staff import Labels, require_staff
from controlplane.storage.database import DB

MESSAGE_MAX = 500
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def setup(app: web.Application) -> None:
    """Register the employee's call routes."""
    r = app.router
    r.add_post("/staff/requests/{id:[0-9]+}/video", start_video)
    staff = "/staff/gesprekken/{room_id}"
    r.add_get(staff, staff_page)
    r.add_get(staff + "/events", staff_events)
    r.add_post(staff + "/token", staff_token)
    r.add_post(staff + "/kwaliteit", staff_quality)
    r.add_post(staff + "/einde", staff_end)
    r.add_post(staff + "/afsluiten", staff_close)
    r.add_post(staff + "/naar-telefoon", staff_switch)
    r.add_post(staff + "/tolk", staff_interpreter)
    r.add_post(staff + "/link", staff_new_link)
    r.add_post(staff + "/bericht", staff_message)


def _switch_reasons(request: web.Request) -> list[tuple[str, str]]:
    catalog, lang = request.app[CATALOG], request_language(request)
    return [(c, catalog.get(f"console_switch_{c}", lang)) for c in SWITCH_REASONS]


# staff: start


async def start_video(request: web.Request) -> web.Response:
    """From a claimed (or calling) video request: room, citizen link, delivery."""
    user = await require_staff(request)
    raw = request.match_info["id"]
    if not raw.isascii() or len(raw) > 10 or int(raw) > 2**31 - 1:
        raise NotFound("console_error_not_found")
    raw_id = int(raw)
    form = await request.post()
    app, actor = request.app, user.actor
    item = await get_request(app[DB], raw_id)
    if not may_work(item, actor):
        raise Forbidden("console_error_not_yours")
    check_video(item)
    call = await active_call(app, item.id)
    if call is not None:
        raise web.HTTPSeeOther(f"/staff/gesprekken/{call.room_id}")
    if item.state not in (State.CLAIMED, State.CALLING):
        raise Conflict("console_conflict_state")

    async def attempt() -> None:
        if item.state is State.CLAIMED:
            await start_attempt(app[DB], app[METRICS], item.id, actor)

    call = await open_room(
        app,
        item.id,
        user_id=user.id,
        username=user.username,
        before_record=attempt,
    )
    link, _expires = await new_link(app, call, "citizen")
    calls = app[CALLS]
    await calls.update_live(call.room_id, join_link=link)
    to = invitations.citizen(
        item, email=bool(form.get("send_email")), sms_too=bool(form.get("send_sms"))
    )
    with contextlib.suppress(RateLimited):  # a new call's first: counted, not held
        await invitations.count_messages(app, call, to)
    await invitations.deliver(app, call, link, to)
    app[QUEUE_EVENTS].publish()
    raise web.HTTPSeeOther(f"/staff/gesprekken/{call.room_id}")


# staff: the call page and its endpoints


async def _staff_call(request: web.Request) -> tuple[Call, Request, Actor]:
    """The call in the URL, if this staff member may work its request."""
    user = await require_staff(request)
    call = await find_call(request.app, request.match_info["room_id"])
    if call.request_id is None:
        raise NotFound("calls_not_found")
    item = await get_request(request.app[DB], call.request_id)
    actor = user.actor
    if not may_work(item, actor):
        raise Forbidden("console_error_not_yours")
    return call, item, actor


def _progress(events: list[CallEvent], time_zone: str) -> list[dict[str, Any]]:
    """The citizen's steps so far, each with its time on the desk's clock."""
    shown = ("progress", "link_sent", "link_failed", "link_opened")
    zone = ZoneInfo(time_zone)

    def local(at: str) -> str:
        moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
        return moment.astimezone(zone).strftime("%H:%M")

    return [
        {
            "step": event.data.get("step", event.kind),
            "failed": list(event.data.get("failed", [])),
            "at": event.data["at"],
            "local": local(event.data["at"]),
            "via": event.data.get("via"),
            "role": event.data.get("role"),
        }
        for event in events
        if event.kind in shown
    ]


async def staff_page(request: web.Request) -> web.Response:
    call, item, _ = await _staff_call(request)
    survey_url = f"/staff/gesprekken/{call.record_id}/enquete"
    if call.ended:
        raise web.HTTPSeeOther(survey_url)
    base = f"/staff/gesprekken/{call.room_id}"
    live = await request.app[CALLS].live(call.room_id)
    history = await request.app[CALLS].events.history(call.room_id)
    seen = history[-1].seq if history else 0
    urls = {
        "token-url": base + "/token",
        "events-url": f"{base}/events?after={seen}",
        "quality-url": base + "/kwaliteit",
        "end-url": base + "/einde",
        "switch-url": base + "/naar-telefoon",
        "interpreter-url": base + "/tolk",
        "message-url": base + "/bericht",
        "link-url": base + "/link",
        "close-url": base + "/afsluiten",
        "survey-url": survey_url,
        "request-url": f"/staff/requests/{item.id}",
    }
    time_zone = request.app[DESK].current.timezone
    context = staff_call_context(
        request,
        urls,
        item,
        join_link=None if live.opened else live.join_link,
        interpreter_link=live.interpreter_link,
        progress=_progress(history, time_zone),
    )
    return no_store(render(request, "call/staff_call.html", context))


def staff_call_context(
    request: web.Request,
    urls: dict[str, str],
    item: Any,
    *,
    join_link: str | None,
    interpreter_link: str | None,
    progress: list[dict[str, Any]],
) -> dict[str, Any]:
    """The staff call page's template context; the browser tests' harness
    (tests/e2e/media_fixtures.py) renders the page with it too, with its own
    ``urls`` and a stand-in ``item`` (reference, channel, language, accessibility,
    accessibility_note, email, phone)."""
    call_app = {
        "role": "agent",
        "csrf": csrf_token(request),
        **urls,
        "lang": request_language(request),
        # the page shows times on the desk's clock, as the queue does
        "time-zone": request.app[DESK].current.timezone,
    }
    return {
        "call_app": call_app,
        "join_link": join_link,
        "interpreter_link": interpreter_link,
        "progress": progress,
        "labels": Labels(request),
        "call_request": item,
        "switch_reasons": _switch_reasons(request),
        "close_results": tuple(AFTER_CALL),
        "link_ways": [
            w for w, to in (("email", item.email), ("sms", item.phone)) if to
        ],
    }


async def staff_events(request: web.Request) -> web.StreamResponse:
    """The call's events for the employee: the history first, then live."""
    call, _, _ = await _staff_call(request)
    first = [CallEvent("ended", {})] if call.ended else []
    events = request.app[CALLS].events
    return await stream(request, events, call.room_id, first, resume_after(request))


async def staff_token(request: web.Request) -> web.Response:
    call, _item, actor = await _staff_call(request)
    grant = await media_grant(request.app, call, "agent", f"agent-{actor.id}")
    return no_store_json(grant)


async def staff_quality(request: web.Request) -> web.Response:
    call, _, _ = await _staff_call(request)
    return await store_quality(request, call)


async def staff_end(request: web.Request) -> web.Response:
    """Hang up for everyone; the employee's survey comes next."""
    call, _item, actor = await _staff_call(request)
    await end_call(request.app, call, actor, "completed")
    return no_store_json({"next": f"/staff/gesprekken/{call.record_id}/enquete"})


async def staff_close(request: web.Request) -> web.Response:
    """Once the call is over, close its request in one step ``{"result":
    "handled" | "follow_up" | "not_reached"}``; ``{"next"}`` is the survey, or
    the queue when nobody was reached or the media server was lost."""
    call, item, actor = await _staff_call(request)
    if not call.ended:
        raise Conflict("calls_close_running")
    result = (await json_body(request)).get("result")
    app = request.app
    survey = f"/staff/gesprekken/{call.record_id}/enquete"
    if not item.is_open:
        # closed already (the request page, another tab): on to the survey
        return no_store_json({"next": survey})
    closed = await close_after_call(
        app[DB],
        app[METRICS],
        app[DESK].current,
        item.id,
        actor,
        result if isinstance(result, str) else "",
    )
    app[QUEUE_EVENTS].publish()
    record = await get_call_record(app[DB], call.record_id)
    if closed.is_open:
        return no_store_json({"next": f"/staff?retry={closed.reference}"})
    if result == "not_reached" or record.outcome == MEDIA_LOST:
        return no_store_json({"next": f"/staff?closed={closed.reference}"})
    return no_store_json({"next": survey})


async def staff_switch(request: web.Request) -> web.Response:
    """End the video call and turn the request into a phone callback."""
    call, item, actor = await _staff_call(request)
    body = await json_body(request)
    reason = body.get("reason")
    if reason not in SWITCH_REASONS:
        raise ValidationFailed(
            "console_field_reason_invalid",
            details={"reason": "console_field_reason_invalid"},
        )
    if item.channel != "video" or not item.is_open:
        raise Conflict("calls_not_video")
    if item.state not in (State.CLAIMED, State.CALLING):
        raise Conflict("console_conflict_state")
    # first the channel: the request stays calling, by phone now (end_call
    # gives only a request called by video back to its holder)
    await switch_channel(request.app[DB], item.id, actor, "phone", str(reason))
    await end_call(request.app, call, actor, SWITCHED_TO_PHONE)
    request.app[METRICS].switches_to_phone.labels(str(reason)).inc()
    request.app[QUEUE_EVENTS].publish()
    return no_store_json({"next": f"/staff/requests/{item.id}"})


async def staff_new_link(request: web.Request) -> web.Response:
    """A new citizen link ``{"email": bool, "sms": bool}`` to send or copy; the
    earlier links (and a browser that opened one) stop working."""
    call, item, actor = await _staff_call(request)
    body = await json_body(request)
    app = request.app
    to = invitations.citizen(
        item, email=body.get("email") is True, sms_too=body.get("sms") is True
    )
    await invitations.count_messages(app, call, to)
    link, expires = await new_link(app, call, "citizen", replace=True)
    # the page shows the new link to copy, also after the old one was opened
    await app[CALLS].update_live(call.room_id, join_link=link, opened=False)
    done = await invitations.deliver(app, call, link, to)
    await audit_call(app, "join_link_replaced", actor, call, via=done.sent)
    return no_store_json({"link": link, "expires_at": iso_utc(expires), **done.reply()})


async def staff_interpreter(request: web.Request) -> web.Response:
    """A single-use interpreter link (a new one each time) to copy, or sent to the
    ``{"email"}`` or ``{"phone"}`` the employee typed (used once, not stored)."""
    call, _item, actor = await _staff_call(request)
    body = await json_body(request)
    to = invitations.interpreter(body, request_language(request))
    await invitations.count_messages(request.app, call, to)
    link, expires = await new_link(request.app, call, "interpreter")
    await request.app[CALLS].update_live(call.room_id, interpreter_link=link)
    done = await invitations.deliver(request.app, call, link, to)
    details = {"via": done.sent} if to.email or to.phone else {}
    await audit_call(request.app, "interpreter_invited", actor, call, **details)
    reply = {"link": link, "expires_at": iso_utc(expires), **done.reply()}
    return no_store_json(reply)


async def staff_message(request: web.Request) -> web.Response:
    """A short message shown in the citizen's waiting room."""
    call, _item, actor = await _staff_call(request)
    body = await json_body(request)
    text = body.get("text")
    clean = _CONTROL.sub("", text).strip() if isinstance(text, str) else ""
    if not clean or len(clean) > MESSAGE_MAX:
        raise ValidationFailed(
            "calls_message_invalid", details={"text": "calls_message_invalid"}
        )
    if call.ended:
        raise LinkExpired("calls_ended")
    calls = request.app[CALLS]
    await calls.update_live(call.room_id, message=clean)
    await calls.events.publish(guest_channel(call.room_id), "lobby_message", text=clean)
    await audit_call(request.app, "waiting_message_set", actor, call)
    return web.Response(status=204, headers={"Cache-Control": "no-store"})
