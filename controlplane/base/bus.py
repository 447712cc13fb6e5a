"""The event bus: tells every control-plane process that something changed.

A notice is a channel name and a short word ("changed", "new"), never the change
itself: whoever listens re-reads the state from the database, so a notice that
is lost, doubled or late costs a re-read, never data. One process (the embedded
default) fans notices out in memory; with ``[redis] url`` set, notices also go
through Redis pub/sub to the other processes, and when the connection to Redis
comes back every listener is woken, since notices may have been missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from aiohttp import web

log = structlog.get_logger()

#: Notices queued per listener before more are dropped (a listener re-reads
#: everything on its next notice, so dropping repeats loses nothing).
BACKLOG = 100
#: The notice every listener gets when notices may have been missed.
RESYNC = "resync"


class LocalBus:
    """Fan-out to the listeners of this process."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[str]]] = {}

    def publish(self, channel: str, notice: str = "changed") -> None:
        self.deliver(channel, notice)

    def deliver(self, channel: str, notice: str) -> None:
        for queue in self._listeners.get(channel, ()):
            if queue.qsize() < BACKLOG:
                queue.put_nowait(notice)

    def deliver_everywhere(self, notice: str, prefix: str = "") -> None:
        """``notice`` to this process's listeners of every channel (that starts
        with ``prefix``)."""
        for channel in list(self._listeners):
            if channel.startswith(prefix):
                self.deliver(channel, notice)

    @asynccontextmanager
    async def subscribe(self, channel: str) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._listeners.setdefault(channel, set()).add(queue)
        try:
            yield queue
        finally:
            listeners = self._listeners.get(channel, set())
            listeners.discard(queue)
            if not listeners:
                self._listeners.pop(channel, None)

    def is_connected(self) -> bool:
        """Whether notices reach every process (in memory: always)."""
        return True

    async def start(self) -> None:
        """Nothing to connect to."""

    async def close(self) -> None:
        """Nothing to disconnect."""


class RedisBus(LocalBus):
    """Local fan-out, plus Redis pub/sub to and from the other processes.

    A process delivers its own notices at once and skips their echo from Redis
    (each message carries this process's id)."""

    #: Seconds between attempts to reach Redis again.
    RETRY_SECONDS = 1.0

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__()
        import redis.asyncio as redis  # only deployments with Redis need it

        self._redis = redis.Redis.from_url(url, health_check_interval=10)
        self._pattern = f"{prefix}:bus:*"
        self._head = f"{prefix}:bus:"
        self._origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        #: Set while the subscription to Redis is live (tests wait on it).
        self.connected = asyncio.Event()

    def is_connected(self) -> bool:
        return self.connected.is_set()

    def publish(self, channel: str, notice: str = "changed") -> None:
        self.deliver(channel, notice)
        # sent in order by one task, so a caller never waits on Redis
        self._outbox.put_nowait((channel, notice))

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._listen_forever()),
            asyncio.create_task(self._send_forever()),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._redis.aclose()

    async def _send_forever(self) -> None:
        while True:
            channel, notice = await self._outbox.get()
            message = f"{self._origin} {notice}"
            while True:
                try:
                    await self._redis.publish(self._head + channel, message)
                    break
                except Exception as exc:
                    log.warning("bus_publish_failed", error=type(exc).__name__)
                    await asyncio.sleep(self.RETRY_SECONDS)

    async def _listen_forever(self) -> None:
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("bus_disconnected", error=type(exc).__name__)
            self.connected.clear()
            await asyncio.sleep(self.RETRY_SECONDS)

    async def _listen(self) -> None:
        async with self._redis.pubsub() as pubsub:
            await pubsub.psubscribe(self._pattern)
            self.connected.set()
            # notices sent while this process was not subscribed are lost
            self.deliver_everywhere(RESYNC)
            log.info("bus_connected")
            async for message in pubsub.listen():
                if message.get("type") != "pmessage":
                    continue
                self._receive(message["channel"], message["data"])

    def _receive(self, raw_channel: bytes, raw: bytes) -> None:
        channel = raw_channel.decode(errors="replace").removeprefix(self._head)
        origin, _, notice = raw.decode(errors="replace").partition(" ")
        if origin != self._origin:
            self.deliver(channel, notice or "changed")


def make_bus(redis_url: str, prefix: str) -> LocalBus:
    """The bus of this deployment: Redis when configured, else in memory."""
    return RedisBus(redis_url, prefix) if redis_url else LocalBus()


BUS = web.AppKey("bus", LocalBus)
