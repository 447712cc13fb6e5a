"""Video calls from the control plane's side: rooms on the media node, their
running state, and the links and media tokens that let people in.

A call is one room on a media node plus its ``call_records`` row (which maps
the room to the callback request and its media node, and says whether the call
ended; :mod:`controlplane.calls.placement` picks the node). The employee
starts it from a claimed video request (:mod:`controlplane.calls.agents`); the
citizen (and an interpreter) come in through single-use join links
(:mod:`controlplane.calls.join_links`, :mod:`controlplane.calls.guests`). Every
(re)connect fetches a fresh media token that lives ``calls.token_ttl_seconds``.
What the citizen does (device check, waiting, in call) reaches the employee's page
live through :class:`~controlplane.calls.events.CallEvents`; the link to copy and
the message for the waiting room are :mod:`controlplane.calls.live_state`.

A media node's API client is :mod:`controlplane.calls.media_node`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.turn import ice_servers_for
from controlplane.base.errors import Conflict, LinkExpired, MediaUnavailable, NotFound
from controlplane.base.metrics import METRICS
from controlplane.base.settings import CONFIG
from controlplane.calls import join_links
from controlplane.calls import record as records
from controlplane.calls.events import SHUTDOWN
from controlplane.calls.live_state import CALLS, Calls, guest_channel
from controlplane.calls.placement import MEDIA_NODES, MediaNodes
from controlplane.requests import (
    LINK_HELP_LISTENERS,
    QUEUE_EVENTS,
    Actor,
    Request,
    call_ended,
)
from controlplane.security import audit, signing_keys
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB
from controlplane.storage.schema import call_records
from controlplane.webhooks import callback_event

log = structlog.get_logger()

_ROOM_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


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
            # its place on the node goes back now, not when it would expire
            await app[MEDIA_NODES].release(db, room_id)
            raise

    async def told(conn: AsyncConnection, record_id: int) -> None:
        # with the record: the start is audited and told iff it is recorded
        await audit.record(
            conn,
            "video_call_started",
            user_id=user_id,
            username=username,
            request_id=request_id,
            record_id=record_id,
        )
        await callback_event(conn, request_id, "call.started", call={"id": record_id})

    record_id = await records.create_call_record(
        db, room_id=room_id, request_id=request_id, media_node=node.node_id, then=told
    )
    app[METRICS].calls_started.inc()
    log.info(
        "video_call_started",
        room_id=room_id,
        callback_id=request_id,
        node=node.node_id,
    )
    return Call(room_id, record_id, request_id, False, node.node_id)


async def new_link(
    app: web.Application, call: Call, role: str, *, replace: bool = False
) -> tuple[str, datetime]:
    """A single-use join link for ``role`` (citizen or interpreter) and its expiry;
    with ``replace``, the role's earlier links (and their sessions) stop working."""
    if call.ended:
        raise LinkExpired("calls_ended")
    ttl = timedelta(minutes=app[CONFIG].calls.link_ttl_minutes)
    token = await join_links.create_link(
        app[DB],
        request_id=call.request_id,
        room_id=call.room_id,
        role=role,
        ttl=ttl,
        replace=replace,
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


async def audit_call(
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
    when the media node cannot be reached), and give a request that was being
    called by video back to its holder (never left "being called")."""
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
    ended_at = datetime.now(UTC)
    told = await _end_told(app, call, actor, outcome, ended_at)
    await records.finish_call(
        db, call.record_id, outcome=outcome, ended_at=ended_at, then=told
    )
    await _count_end(app, call.record_id, outcome)
    if call.request_id is not None and await call_ended(db, call.request_id, actor):
        app[QUEUE_EVENTS].publish()
    calls = app[CALLS]
    await calls.events.publish(call.room_id, "ended", outcome=outcome)
    # the citizen's page says what comes next (a phone call, a survey)
    await calls.events.publish(guest_channel(call.room_id), "ended", outcome=outcome)
    await calls.forget(call.room_id)
    log.info("video_call_ended", room_id=call.room_id, outcome=outcome)


async def _end_told(
    app: web.Application, call: Call, actor: Actor, outcome: str, ended_at: datetime
) -> records.InTransaction:
    """What the transaction that closes the record also writes: the audit entry
    and the webhook events for the request's integrator (outcome and quality, no
    personal data), so they exist iff the call is recorded as ended."""
    record = await records.get_call_record(app[DB], call.record_id)

    async def told(conn: AsyncConnection, _record_id: int) -> None:
        quality = _quality(record, ended_at)
        summary = {"id": call.record_id, "outcome": outcome, "quality": quality}
        await audit.record(
            conn,
            "video_call_ended",
            user_id=actor.id,
            username=actor.username,
            request_id=call.request_id,
            record_id=call.record_id,
            outcome=outcome,
        )
        if call.request_id is None:
            return
        await callback_event(conn, call.request_id, "call.ended", call=summary)
        if outcome == records.SWITCHED_TO_PHONE:
            brief = {"id": call.record_id}
            await callback_event(
                conn, call.request_id, "call.switched_to_phone", call=brief
            )

    return told


def _quality(record: records.CallRecord, ended_at: datetime) -> dict[str, Any]:
    """The call's technical summary as a webhook tells it."""
    lasted = max(0, round((ended_at - record.started_at).total_seconds()))
    return {"duration_seconds": lasted, **dataclasses.asdict(record.quality)}


async def _count_end(app: web.Application, record_id: int, outcome: str) -> None:
    record = await records.get_call_record(app[DB], record_id)
    metrics = app[METRICS]
    metrics.calls_ended.labels(outcome).inc()
    if record.ended_at is not None:
        lasted = (record.ended_at - record.started_at).total_seconds()
        metrics.call_duration.observe(max(0.0, lasted))


async def tell_link_help(app: web.Application, request_id: int) -> None:
    """The citizen asked for a new link on their status page: a step of their
    progress on the employee's call page, who can send one at once."""
    call = await active_call(app, request_id)
    if call is not None:
        events = app[CALLS].events
        await events.publish(call.room_id, "progress", step="link_help", role="citizen")


def setup(app: web.Application) -> None:
    """The running calls, the media nodes' clients and their shutdown."""
    app[CALLS] = Calls(app)
    app[LINK_HELP_LISTENERS].append(tell_link_help)
    app[MEDIA_NODES] = MediaNodes.from_config(app[CONFIG])
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_close_media_nodes)


async def _close_media_nodes(app: web.Application) -> None:
    await app[MEDIA_NODES].close()


async def _end_streams(app: web.Application) -> None:
    app[CALLS].events.close_all(SHUTDOWN)
