"""Video calls from the control plane's side: rooms on the media node, the links
and media tokens that let people in, and what the call pages talk to.

A call is one room on a media node plus its ``call_records`` row (which maps
the room to the callback request and its media node, and says whether the call
ended; :mod:`controlplane.calls.placement` picks the node). The employee
starts it from a claimed video request; the citizen (and an interpreter) come in
through single-use join links (:mod:`controlplane.calls.join_links`). Every (re)connect
fetches a fresh media token that lives ``calls.token_ttl_seconds``. What the
citizen does (device check, waiting, in call) reaches the employee's page live
through :class:`~controlplane.calls.events.CallEvents`. The link to copy and the
message for the waiting room are kept in memory only.

HTTP contract (JSON bodies; errors are ``{"error": {"code", "message"}}`` when the
request says ``Accept: application/json``; every POST carries ``X-CSRF-Token``):

- ``POST /staff/requests/{id}/video`` (form: ``send_email``, ``send_sms``) → 303
  to ``/staff/gesprekken/{room_id}``
- ``GET /staff/gesprekken/{room_id}`` (page), ``GET …/events`` (SSE: ``progress``,
  ``link_sent``, ``link_failed``, ``link_opened``, ``ended``), ``POST …/token``,
  ``…/kwaliteit``, ``…/einde``, ``…/naar-telefoon`` ``{"reason"}``, ``…/tolk``,
  ``…/bericht`` ``{"text"}``
- citizen and interpreter: :mod:`controlplane.calls.guests` (``/gesprek/…``)

A media node's API client is :mod:`controlplane.calls.media_node`.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web

from beeldbel.turn import ice_servers_for
from controlplane.base.errors import (
    BadRequest,
    Conflict,
    DeliveryFailed,
    Forbidden,
    LinkExpired,
    MediaUnavailable,
    NotFound,
    UnsupportedMediaType,
    ValidationFailed,
)
from controlplane.base.i18n import CATALOG, request_language
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.base.settings import CONFIG
from controlplane.calls import join_links
from controlplane.calls import record as records
from controlplane.calls.events import (
    SHUTDOWN,
    CallEvent,
    CallEvents,
    resume_after,
    stream,
)
from controlplane.calls.placement import MEDIA_NODES, MediaNodes
from controlplane.notify import mailer, sms
from controlplane.requests import (
    DESK,
    QUEUE_EVENTS,
    SWITCH_REASONS,
    Actor,
    Request,
    State,
    get_request,
    may_work,
    start_attempt,
    switch_channel,
)
from controlplane.security import audit, signing_keys
from controlplane.security.csrf import csrf_token
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.staff import StaffUser, require_staff
from controlplane.storage.database import DB
from controlplane.storage.schema import call_records

log = structlog.get_logger()

MESSAGE_MAX = 500
_ROOM_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(slots=True)
class LiveCall:
    """What only this process knows about a running call."""

    join_link: str | None = None
    interpreter_link: str | None = None
    message: str | None = None
    opened: bool = False


def guest_channel(room_id: str) -> str:
    """The events of a room that its citizen and interpreter pages may see."""
    return f"guest:{room_id}"


class Calls:
    """The running calls of this process: their live state and event streams."""

    def __init__(self) -> None:
        self.events = CallEvents()
        self._live: dict[str, LiveCall] = {}

    def live(self, room_id: str) -> LiveCall:
        return self._live.setdefault(room_id, LiveCall())

    def forget(self, room_id: str) -> None:
        self._live.pop(room_id, None)


CALLS = web.AppKey("calls", Calls)


@dataclass(frozen=True, slots=True)
class Call:
    room_id: str
    record_id: int
    request_id: int | None
    ended: bool
    #: The media node's id; None: from before it was stored (the first node).
    media_node: str | None


def _call(record: records.CallRecord) -> Call:
    ended = record.ended_at is not None
    return Call(record.room_id, record.id, record.request_id, ended, record.media_node)


# rooms and links


async def find_call(app: web.Application, room_id: str) -> Call:
    """The call of ``room_id``; :class:`NotFound` when there is none."""
    if not _ROOM_ID.fullmatch(room_id):
        raise NotFound("calls_not_found")
    record = await records.find_by_room(app[DB], room_id)
    if record is None:
        raise NotFound("calls_not_found")
    return _call(record)


async def active_call(app: web.Application, request_id: int) -> Call | None:
    """The call of ``request_id`` that has not ended, if any."""
    async with app[DB].read() as conn:
        row = (
            await conn.execute(
                sa.select(call_records.c.room_id)
                .where(
                    call_records.c.request_id == request_id,
                    call_records.c.ended_at.is_(None),
                )
                .order_by(call_records.c.id.desc())
                .limit(1)
            )
        ).first()
    return None if row is None else await find_call(app, str(row.room_id))


def check_video(item: Request) -> None:
    """Only an open video request gets a call."""
    if not item.is_open:
        raise Conflict("console_conflict_closed")
    if item.channel != "video":
        raise Conflict("calls_not_video")


async def open_room(
    app: web.Application,
    request_id: int,
    *,
    user_id: int | None,
    username: str,
    before_record: Callable[[], Awaitable[Any]] | None = None,
) -> Call:
    """A new room for ``request_id`` on a media node, with its call record.

    ``before_record`` runs once the room exists (e.g. the queue transition); if it
    fails, the room is ended again and nothing is recorded."""
    room_id = secrets.token_urlsafe(18)
    db = app[DB]
    node = await app[MEDIA_NODES].create_room(
        db, room_id, app[CONFIG].calls.video_codec
    )
    if before_record is not None:
        try:
            await before_record()
        except BaseException:
            with contextlib.suppress(MediaUnavailable):
                await node.end_room(room_id)
            raise
    record_id = await records.create_call_record(
        db, room_id=room_id, request_id=request_id, media_node=node.node_id
    )
    async with db.write() as conn:
        await audit.record(
            conn,
            "video_call_started",
            user_id=user_id,
            username=username,
            request_id=request_id,
            record_id=record_id,
        )
    log.info(
        "video_call_started",
        room_id=room_id,
        callback_id=request_id,
        node=node.node_id,
    )
    return Call(room_id, record_id, request_id, False, node.node_id)


async def new_link(app: web.Application, call: Call, role: str) -> tuple[str, datetime]:
    """A single-use join link for ``role`` (citizen or interpreter) and its expiry."""
    if call.ended:
        raise LinkExpired("calls_ended")
    ttl = timedelta(minutes=app[CONFIG].calls.link_ttl_minutes)
    token = await join_links.create_link(
        app[DB], request_id=call.request_id, room_id=call.room_id, role=role, ttl=ttl
    )
    url = join_links.link_url(app[CONFIG].server.public_url, token)
    return url, datetime.now(UTC) + ttl


async def media_grant(
    app: web.Application, call: Call, role: str, participant: str
) -> dict[str, Any]:
    """A fresh single-use media token and what the browser needs to connect."""
    if call.ended:
        raise LinkExpired("calls_ended")
    config = app[CONFIG]
    node = app[MEDIA_NODES].node_of(call.media_node)
    token = await signing_keys.issue_media_token(
        app[DB],
        app[SECRET_KEY],
        issuer=config.mediaserver.token_issuer,
        audience=node.node_id,
        room=call.room_id,
        role=role,
        sub=participant,
        ttl_seconds=config.calls.token_ttl_seconds,
    )
    return {
        "media_url": node.ws_url,
        "room_id": call.room_id,
        "token": token,
        "role": role,
        "expires_in": config.calls.token_ttl_seconds,
        "ice_servers": ice_servers_for(config.mediaserver, participant),
        "force_relay": False,
    }


async def _audit(
    app: web.Application, action: str, actor: Actor, call: Call, **details: Any
) -> None:
    async with app[DB].write() as conn:
        await audit.record(
            conn,
            action,
            user_id=actor.id,
            username=actor.username,
            request_id=call.request_id,
            record_id=call.record_id,
            **details,
        )


async def end_call(
    app: web.Application, call: Call, actor: Actor, outcome: str
) -> None:
    """End the room, void its links and sessions, close the call record (also
    when the media node cannot be reached)."""
    if call.ended:
        return
    try:
        await app[MEDIA_NODES].node_of(call.media_node).end_room(call.room_id)
    except MediaUnavailable:
        # the call still ends here: links stop working and the media node drops
        # the room's peers once their packets stop (peer_timeout_seconds)
        log.warning("media_room_not_ended", room_id=call.room_id)
    db = app[DB]
    await join_links.void_room(db, call.room_id)
    await records.finish_call(db, call.record_id, outcome=outcome)
    await _audit(app, "video_call_ended", actor, call, outcome=outcome)
    calls = app[CALLS]
    calls.events.publish(call.room_id, "ended", outcome=outcome)
    calls.events.publish(guest_channel(call.room_id), "ended")
    calls.events.forget(guest_channel(call.room_id))
    calls.forget(call.room_id)
    log.info("video_call_ended", room_id=call.room_id, outcome=outcome)


# HTTP: setup and shared helpers


def setup(app: web.Application) -> None:
    """Register the call routes, the media nodes' clients and stream shutdown."""
    app[CALLS] = Calls()
    app[MEDIA_NODES] = MediaNodes.from_config(app[CONFIG])
    r = app.router
    r.add_post(r"/staff/requests/{id:\d+}/video", start_video)
    staff = "/staff/gesprekken/{room_id}"
    r.add_get(staff, staff_page)
    r.add_get(staff + "/events", staff_events)
    r.add_post(staff + "/token", staff_token)
    r.add_post(staff + "/kwaliteit", staff_quality)
    r.add_post(staff + "/einde", staff_end)
    r.add_post(staff + "/naar-telefoon", staff_switch)
    r.add_post(staff + "/tolk", staff_interpreter)
    r.add_post(staff + "/bericht", staff_message)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_close_media_nodes)


async def _close_media_nodes(app: web.Application) -> None:
    await app[MEDIA_NODES].close()


async def _end_streams(app: web.Application) -> None:
    app[CALLS].events.close_all(SHUTDOWN)


async def json_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise UnsupportedMediaType("calls_body_not_json")
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("calls_body_not_json") from None
    if not isinstance(body, dict):
        raise BadRequest("calls_body_not_json")
    return body


def no_store(response: web.Response) -> web.Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def no_store_json(data: Any, status: int = 200) -> web.Response:
    return no_store(web.json_response(data, status=status))


def _actor(user: StaffUser) -> Actor:
    return Actor(user.id, user.username, user.role)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _switch_reasons(request: web.Request) -> list[tuple[str, str]]:
    catalog, lang = request.app[CATALOG], request_language(request)
    return [(c, catalog.get(f"console_switch_{c}", lang)) for c in SWITCH_REASONS]


# staff: start


async def start_video(request: web.Request) -> web.Response:
    """From a claimed (or calling) video request: room, citizen link, delivery."""
    user = await require_staff(request)
    raw = request.match_info["id"]
    if len(raw) > 10 or int(raw) > 2**31 - 1:
        raise NotFound("console_error_not_found")
    raw_id = int(raw)
    form = await request.post()
    app, actor = request.app, _actor(user)
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
    calls.live(call.room_id).join_link = link
    await _deliver(app, call, item, link, form)
    app[QUEUE_EVENTS].publish()
    raise web.HTTPSeeOther(f"/staff/gesprekken/{call.room_id}")


async def _deliver(
    app: web.Application,
    call: Call,
    item: Request,
    link: str,
    form: Any,
) -> None:
    """Send the link as asked; a failure is shown on the call page, not raised."""
    events = app[CALLS].events
    desk = app[DESK].current.name
    config = app[CONFIG]
    if form.get("send_email") and item.email:
        try:
            await mailer.send_join_link(
                config.mail, item.email, link, item.language, desk
            )
            events.publish(call.room_id, "link_sent", via="email")
        except DeliveryFailed as exc:
            events.publish(call.room_id, "link_failed", via="email", reason=exc.message)
    if form.get("send_sms") and item.phone:
        text = sms.join_link_text(link, item.language, desk, catalog=app[CATALOG])
        try:
            await sms.send_sms(config.sms, item.phone, text)
            events.publish(call.room_id, "link_sent", via="sms")
        except DeliveryFailed as exc:
            events.publish(call.room_id, "link_failed", via="sms", reason=exc.message)


# staff: the call page and its endpoints


async def _staff_call(request: web.Request) -> tuple[Call, Request, Actor]:
    """The call in the URL, if this staff member may work its request."""
    user = await require_staff(request)
    call = await find_call(request.app, request.match_info["room_id"])
    if call.request_id is None:
        raise NotFound("calls_not_found")
    item = await get_request(request.app[DB], call.request_id)
    actor = _actor(user)
    if not may_work(item, actor):
        raise Forbidden("console_error_not_yours")
    return call, item, actor


def _progress(events: list[CallEvent]) -> list[dict[str, Any]]:
    shown = ("progress", "link_sent", "link_failed", "link_opened")
    return [
        {
            "step": event.data.get("step", event.kind),
            "failed": list(event.data.get("failed", [])),
            "at": event.data["at"],
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
    live = request.app[CALLS].live(call.room_id)
    history = request.app[CALLS].events.history(call.room_id)
    seen = history[-1].seq if history else 0
    call_app = {
        "role": "agent",
        "csrf": csrf_token(request),
        "token-url": base + "/token",
        "events-url": f"{base}/events?after={seen}",
        "quality-url": base + "/kwaliteit",
        "end-url": base + "/einde",
        "switch-url": base + "/naar-telefoon",
        "interpreter-url": base + "/tolk",
        "message-url": base + "/bericht",
        "survey-url": survey_url,
        "lang": request_language(request),
    }
    context = {
        "call_app": call_app,
        "join_link": None if live.opened else live.join_link,
        "interpreter_link": live.interpreter_link,
        "progress": _progress(history),
        "call_request": item,
        "record_id": call.record_id,
        "room_id": call.room_id,
        "switch_reasons": _switch_reasons(request),
    }
    return no_store(render(request, "call/staff_call.html", context))


async def staff_events(request: web.Request) -> web.StreamResponse:
    """The call's events for the employee: the history first, then live."""
    call, _, _ = await _staff_call(request)
    events = request.app[CALLS].events
    if call.ended:
        first = [CallEvent("ended", {})]
    else:
        first = events.history(call.room_id, after=resume_after(request))
    return await stream(request, request.app[CALLS].events, call.room_id, first)


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
    await end_call(request.app, call, actor, "switched_to_phone")
    await switch_channel(request.app[DB], item.id, actor, "phone", str(reason))
    request.app[QUEUE_EVENTS].publish()
    return no_store_json({"next": f"/staff/requests/{item.id}"})


async def staff_interpreter(request: web.Request) -> web.Response:
    """A single-use interpreter link to copy (a new one each time)."""
    call, _item, actor = await _staff_call(request)
    link, expires = await new_link(request.app, call, "interpreter")
    request.app[CALLS].live(call.room_id).interpreter_link = link
    await _audit(request.app, "interpreter_invited", actor, call)
    return no_store_json({"link": link, "expires_at": _iso(expires)})


async def staff_message(request: web.Request) -> web.Response:
    """A short message shown in the citizen's waiting room (kept in memory only)."""
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
    calls.live(call.room_id).message = clean
    calls.events.publish(guest_channel(call.room_id), "lobby_message", text=clean)
    await _audit(request.app, "waiting_message_set", actor, call)
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def store_quality(request: web.Request, call: Call) -> web.Response:
    quality = parse_quality(await json_body(request))
    await records.update_quality(request.app[DB], call.record_id, quality)
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


def parse_quality(body: dict[str, Any]) -> records.Quality:
    """The quality summary a browser reports; :class:`ValidationFailed` by field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in ("join_to_first_picture_ms", "rtt_ms_p50", "rtt_ms_p95", "reconnects"):
        value = body.get(name)
        if value is None and name != "reconnects":
            values[name] = None
        elif value is None:
            values[name] = 0
        elif isinstance(value, bool) or not isinstance(value, int | float):
            errors[name] = "calls_quality_number"
        elif not 0 <= value < 2**31:
            errors[name] = "calls_quality_range"
        else:
            values[name] = round(value)
    loss = body.get("loss_pct")
    if loss is not None and (
        isinstance(loss, bool) or not isinstance(loss, int | float)
    ):
        errors["loss_pct"] = "calls_quality_number"
    elif loss is not None and not 0 <= loss <= 100:
        errors["loss_pct"] = "calls_quality_range"
    kind = body.get("connection_type", "unknown")
    if kind not in records.CONNECTION_TYPES:
        errors["connection_type"] = "calls_quality_connection"
    if errors:
        raise ValidationFailed("calls_quality_invalid", details=errors)
    return records.Quality(
        connection_type=str(kind),
        loss_pct=None if loss is None else float(loss),
        **values,
    )
