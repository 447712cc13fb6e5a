"""Tells open staff consoles, in every control-plane process, that the queue changed.

Each console re-reads the queue itself on a notice (through the event bus,
:mod:`controlplane.base.bus`), so a slow console or a lost notice loses nothing.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager

from aiohttp import web

from controlplane.base.bus import LocalBus

CHANNEL = "queue"


class QueueEvents:
    def __init__(self, bus: LocalBus) -> None:
        self._bus = bus

    def publish(self, kind: str = "changed") -> None:
        """Tell every process's consoles."""
        self._bus.publish(CHANNEL, kind)

    def publish_here(self, kind: str) -> None:
        """Tell only this process's consoles (e.g. that this process stops)."""
        self._bus.deliver(CHANNEL, kind)

    def subscribe(self) -> AbstractAsyncContextManager[asyncio.Queue[str]]:
        return self._bus.subscribe(CHANNEL)


QUEUE_EVENTS = web.AppKey("queue_events", QueueEvents)
