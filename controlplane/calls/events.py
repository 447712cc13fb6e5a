"""Live news of each video call for the employee's call page (in-process fan-out).

Per room, events (``link_sent``, ``link_opened``, ``progress``, ``ended``…) are
kept in a short history, so a page that (re)connects sees what happened, and
pushed to every open event stream of that room. Events carry codes and times,
never a citizen's address, number or link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from controlplane.base.times import iso_utc

log = structlog.get_logger()

#: Events kept per room for pages that connect later.
HISTORY = 50
#: Events queued per subscriber before the oldest are dropped.
BACKLOG = 100
#: Seconds between keep-alive comments on an idle stream.
HEARTBEAT_SECONDS = 15.0
#: The event :meth:`CallEvents.close_all` sends to end every stream.
SHUTDOWN = "shutdown"


@dataclass(frozen=True, slots=True)
class CallEvent:
    kind: str
    data: dict[str, Any]
    #: Position in the room's stream (1, 2, …); 0 for events that are not kept.
    seq: int = 0


@dataclass(slots=True)
class _Room:
    history: list[CallEvent] = field(default_factory=list)
    last_seq: int = 0
    subscribers: set[asyncio.Queue[CallEvent]] = field(default_factory=set)


class CallEvents:
    def __init__(self) -> None:
        self._rooms: dict[str, _Room] = {}

    def publish(self, room_id: str, kind: str, **data: Any) -> CallEvent:
        """Record an event of ``room_id`` (stamped ``at``) and push it to its pages."""
        data.setdefault("at", iso_utc(datetime.now(UTC)))
        room = self._rooms.setdefault(room_id, _Room())
        room.last_seq += 1
        event = CallEvent(kind, data, room.last_seq)
        room.history = [*room.history[-(HISTORY - 1) :], event]
        for queue in room.subscribers:
            if queue.qsize() < BACKLOG:
                queue.put_nowait(event)
        return event

    def history(self, room_id: str, after: int = 0) -> list[CallEvent]:
        """The kept events of ``room_id`` that came after ``after`` (a ``seq``)."""
        room = self._rooms.get(room_id)
        events = room.history if room is not None else []
        return [e for e in events if e.seq > after]

    @asynccontextmanager
    async def subscribe(self, room_id: str) -> AsyncIterator[asyncio.Queue[CallEvent]]:
        queue: asyncio.Queue[CallEvent] = asyncio.Queue()
        room = self._rooms.setdefault(room_id, _Room())
        room.subscribers.add(queue)
        try:
            yield queue
        finally:
            room.subscribers.discard(queue)

    def close_all(self, kind: str) -> None:
        """Tell every open stream to end (an event ``kind`` that is not kept)."""
        for room in self._rooms.values():
            for queue in room.subscribers:
                queue.put_nowait(CallEvent(kind, {}))

    def forget(self, room_id: str) -> None:
        """Drop a room's history once nobody needs it (its streams end themselves)."""
        room = self._rooms.get(room_id)
        if room is not None and not room.subscribers:
            del self._rooms[room_id]


# Server-Sent Events


def sse(event: CallEvent) -> bytes:
    data = json.dumps(event.data, separators=(",", ":"))
    seq = f"id: {event.seq}\n" if event.seq else ""
    return f"{seq}event: {event.kind}\ndata: {data}\n\n".encode()


def resume_after(request: web.Request) -> int:
    """Where a stream resumes: ``Last-Event-ID`` (a reconnect) or ``?after=``
    (the events the page was rendered with)."""
    raw = request.headers.get("Last-Event-ID") or request.query.get("after", "0")
    return int(raw) if raw.isdigit() and len(raw) < 10 else 0


async def stream(
    request: web.Request, events: CallEvents, channel: str, first: list[CallEvent]
) -> web.StreamResponse:
    """``text/event-stream`` of ``channel``: ``first``, then live events; a comment
    every :data:`HEARTBEAT_SECONDS`; ends after ``ended`` or at shutdown."""
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-store",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    try:
        with contextlib.suppress(ConnectionResetError):
            await _follow(events, channel, first, response)
    except Exception:
        log.exception("call_stream_failed")
    return response


async def _follow(
    events: CallEvents,
    channel: str,
    first: list[CallEvent],
    response: web.StreamResponse,
) -> None:
    async with events.subscribe(channel) as inbox:
        for event in first:
            await response.write(sse(event))
            if event.kind == "ended":
                return
        while True:
            try:
                event = await asyncio.wait_for(inbox.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                continue
            if event.kind == SHUTDOWN:
                return
            await response.write(sse(event))
            if event.kind == "ended":
                return
