"""Tells open staff consoles that the queue changed (in-process fan-out).

One control-plane process serves the console; each subscriber gets a queue of
change notices and re-reads the queue itself, so a slow console loses nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


class QueueEvents:
    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[str]] = set()

    def publish(self, kind: str = "changed") -> None:
        for queue in self._subscribers:
            if queue.qsize() < 100:
                queue.put_nowait(kind)

    @asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[str]]:
        queue: asyncio.Queue[str] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)


QUEUE_EVENTS = web.AppKey("queue_events", QueueEvents)
