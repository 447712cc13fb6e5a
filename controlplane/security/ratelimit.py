"""In-process sliding-window rate limits, keyed by a hash (never a raw IP address)."""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from controlplane.base.errors import RateLimited


class RateLimit:
    """At most ``limit`` events per ``window`` seconds for each key."""

    def __init__(
        self,
        name: str,
        limit: int,
        window: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.limit = limit
        self.window = window
        self._clock = clock
        self._events: dict[str, deque[float]] = {}

    def hit(self, key: str = "") -> None:
        """Count one event for ``key``; raise :class:`RateLimited` when over."""
        now = self._clock()
        events = self._events.setdefault(_hash(key), deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        if len(events) >= self.limit:
            retry = max(1, math.ceil(events[0] + self.window - now))
            raise RateLimited(f"rate limit {self.name} reached", retry_after=retry)
        events.append(now)
        if len(self._events) > 100_000:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for key in [
            k for k, v in self._events.items() if not v or v[-1] <= now - self.window
        ]:
            del self._events[key]


def _hash(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class Limits:
    """The control plane's rate limits, one per thing that is limited."""

    intake_per_ip: RateLimit
    intake_global: RateLimit
    login_per_ip: RateLimit
    api_per_key: RateLimit


LIMITS = web.AppKey("limits", Limits)
