"""Live news of each video call for its pages, shared by every control-plane process.

Per channel (a room, or its guests' channel), events (``link_sent``,
``link_opened``, ``progress``, ``ended``…) are rows of ``call_events`` numbered
1, 2, … without gaps, so a page that (re)connects to any process resumes after
the last one it saw (``Last-Event-ID``). A new event is announced on the event
bus (:mod:`controlplane.base.bus`); a stream then reads what it has not sent yet
from the database, and reads again at every heartbeat, so a lost notice delays
an event by one heartbeat at most. Events carry codes and times, never a
citizen's address, number or link.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.exc import IntegrityError

from controlplane.base.bus import BUS
from controlplane.base.times import iso_utc
from controlplane.storage.database import DB
from controlplane.storage.schema import call_events

log = structlog.get_logger()

#: Events a page that connects later is sent at most (the newest ones).
HISTORY = 50
#: Seconds between keep-alive comments (and re-reads) on an idle stream.
HEARTBEAT_SECONDS = 15.0
#: The notice :meth:`CallEvents.close_all` sends to end this process's streams.
SHUTDOWN = "shutdown"
#: Bus channels of call events start so.
_BUS_PREFIX = "call:"
#: Attempts at a channel's next number when other processes take it first.
_SEQ_ATTEMPTS = 20


@dataclass(frozen=True, slots=True)
class CallEvent:
    kind: str
    data: dict[str, Any]
    #: Position in the channel's stream (1, 2, …).
    seq: int = 0


class CallEvents:
    """The call events of every process, through the app's database and bus."""

    def __init__(self, app: web.Application) -> None:
        self._app = app

    async def publish(self, channel: str, kind: str, **data: Any) -> CallEvent:
        """Store an event of ``channel`` (stamped ``at``) and announce it."""
        data.setdefault("at", iso_utc(datetime.now(UTC)))
        body = json.dumps(data, separators=(",", ":"))
        column = call_events.c.seq
        for _ in range(_SEQ_ATTEMPTS):
            try:
                async with self._app[DB].write() as conn:
                    last = await conn.scalar(
                        sa.select(sa.func.coalesce(sa.func.max(column), 0)).where(
                            call_events.c.channel == channel
                        )
                    )
                    seq = int(last or 0) + 1
                    await conn.execute(
                        call_events.insert().values(
                            channel=channel,
                            seq=seq,
                            kind=kind,
                            data=body,
                            created_at=datetime.now(UTC),
                        )
                    )
                break
            except IntegrityError:
                continue  # another process took this number: take the next
        else:
            raise RuntimeError(f"no event number free on {channel!r}")
        self._app[BUS].publish(_BUS_PREFIX + channel, "new")
        return CallEvent(kind, data, seq)

    async def history(self, channel: str, after: int = 0) -> list[CallEvent]:
        """The newest :data:`HISTORY` events of ``channel`` after ``after``, oldest
        first."""
        async with self._app[DB].read() as conn:
            rows = (
                await conn.execute(
                    sa.select(call_events.c.seq, call_events.c.kind, call_events.c.data)
                    .where(call_events.c.channel == channel, call_events.c.seq > after)
                    .order_by(call_events.c.seq.desc())
                    .limit(HISTORY)
                )
            ).all()
        return [CallEvent(r.kind, json.loads(r.data), r.seq) for r in reversed(rows)]

    async def last_seq(self, channel: str) -> int:
        """The number of ``channel``'s newest event (0: none yet)."""
        async with self._app[DB].read() as conn:
            last = await conn.scalar(
                sa.select(sa.func.max(call_events.c.seq)).where(
                    call_events.c.channel == channel
                )
            )
        return int(last or 0)

    def subscribe(
        self, channel: str
    ) -> AbstractAsyncContextManager[asyncio.Queue[str]]:
        """Notices that ``channel`` has new events (or that streams must end)."""
        return self._app[BUS].subscribe(_BUS_PREFIX + channel)

    def close_all(self, notice: str) -> None:
        """Tell this process's streams to end (other processes go on)."""
        self._app[BUS].deliver_everywhere(notice, prefix=_BUS_PREFIX)


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
    request: web.Request,
    events: CallEvents,
    channel: str,
    first: list[CallEvent],
    after: int,
) -> web.StreamResponse:
    """``text/event-stream`` of ``channel``: ``first`` (not stored), the events
    after ``after``, then live events; a comment every :data:`HEARTBEAT_SECONDS`;
    ends after ``ended`` or at shutdown."""
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
            await _follow(events, channel, first, after, response)
    except Exception:
        log.exception("call_stream_failed")
    return response


async def _follow(
    events: CallEvents,
    channel: str,
    first: list[CallEvent],
    after: int,
    response: web.StreamResponse,
) -> None:
    async with events.subscribe(channel) as inbox:
        for event in first:
            await response.write(sse(event))
            if event.kind == "ended":
                return
        last = after
        # read after subscribing, so nothing published in between is missed
        pending = await events.history(channel, after=last)
        while True:
            for event in pending:
                await response.write(sse(event))
                last = event.seq
                if event.kind == "ended":
                    return
            try:
                notice = await asyncio.wait_for(inbox.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": heartbeat\n\n")
                notice = ""
            if notice == SHUTDOWN:
                return
            # also after a heartbeat: a notice may have been lost
            pending = await events.history(channel, after=last)
