"""Moving-window rate limits, keyed by a hash (never a raw IP address).

The counting is the ``limits`` library's moving window: in memory for one
process, on Redis (``[redis] url``) when several control-plane processes must
share one count. Redis is checked atomically by ``limits`` (a Lua script), so
concurrent requests on several processes cannot all slip under the limit.

When Redis cannot be reached, a request is not failed for it: each process
counts in its own memory until Redis answers again (counted in
``beeldbel_rate_limit_store_failures_total``), so a limit stays a per-process
limit rather than no limit.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from aiohttp import web
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio import ConnectionPool

from beeldbel.config import Config
from controlplane.base.errors import RateLimited

log = structlog.get_logger()

#: Seconds a rate-limit check waits for Redis before counting locally.
REDIS_TIMEOUT = 2.0


class RateLimit:
    """At most ``limit`` events per ``window`` seconds for each key."""

    def __init__(
        self,
        name: str,
        limit: int,
        window: int,
        store: LimitStore,
    ) -> None:
        self.name = name
        self._item = RateLimitItemPerSecond(limit, window)
        self._store = store

    async def hit(self, key: str = "", cost: int = 1) -> None:
        """Count ``cost`` events for ``key`` at once; raise :class:`RateLimited`
        (and count none) when they would go over."""
        hashed = _hash(key)
        limiter = self._store.limiter()
        try:
            if await limiter.hit(self._item, self.name, hashed, cost=cost):
                return
            reset_at = (await limiter.get_window_stats(self._item, self.name, hashed))[
                0
            ]
        except Exception as exc:
            self._store.failed(exc)
            local = self._store.local
            if await local.hit(self._item, self.name, hashed, cost=cost):
                return
            reset_at = (await local.get_window_stats(self._item, self.name, hashed))[0]
        retry = max(1, math.ceil(reset_at - time.time()))
        raise RateLimited(f"rate limit {self.name} reached", retry_after=retry)


class LimitStore:
    """Where the counts live: Redis when configured, else this process's memory."""

    #: Seconds between two warnings that the shared store failed.
    WARN_EVERY = 60.0

    def __init__(
        self, storage: Storage | None = None, pool: ConnectionPool | None = None
    ) -> None:
        self.local = MovingWindowRateLimiter(MemoryStorage())
        self._pool = pool
        self._shared = MovingWindowRateLimiter(storage) if storage is not None else None
        self.failures = 0
        self._warned_at = -math.inf
        self.on_failure: Callable[[], None] = lambda: None

    @classmethod
    def from_config(cls, config: Config) -> LimitStore:
        url = config.redis.url
        if not url:
            return cls()
        # our own pool: its timeouts keep a request from hanging on a Redis that
        # does not answer, and it can be closed with the app
        pool = ConnectionPool.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT
        )
        storage = RedisStorage(
            "async+redis://",
            implementation="redispy",
            key_prefix=f"{config.redis.prefix}:limits",
            wrap_exceptions=True,
            connection_pool=pool,  # type: ignore[arg-type]  # passed to redis-py
        )
        return cls(storage, pool)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.aclose()

    def limiter(self) -> MovingWindowRateLimiter:
        return self._shared if self._shared is not None else self.local

    def failed(self, exc: Exception) -> None:
        self.failures += 1
        self.on_failure()
        now = time.monotonic()
        if now - self._warned_at >= self.WARN_EVERY:
            self._warned_at = now
            log.warning(
                "rate_limit_store_failed",
                error=type(exc).__name__,
                failures=self.failures,
            )


def _hash(key: str) -> str:
    return hashlib.blake2b(key.encode(), digest_size=12).hexdigest()


@dataclass(slots=True)
class Limits:
    """The control plane's rate limits, one per thing that is limited."""

    intake_per_ip: RateLimit
    intake_global: RateLimit
    login_per_ip: RateLimit
    api_per_key: RateLimit
    client_errors_per_ip: RateLimit
    status_per_ip: RateLimit
    status_changes_per_request: RateLimit
    messages_per_call: RateLimit

    @classmethod
    def from_config(cls, config: Config, store: LimitStore) -> Limits:
        sec = config.security
        return cls(
            intake_per_ip=RateLimit(
                "intake_per_ip", sec.intake_per_ip_per_hour, 3600, store
            ),
            intake_global=RateLimit(
                "intake_global", sec.intake_global_per_minute, 60, store
            ),
            login_per_ip=RateLimit(
                "login_per_ip", sec.login_per_ip_per_minute, 60, store
            ),
            api_per_key=RateLimit("api_per_key", sec.api_per_key_per_minute, 60, store),
            client_errors_per_ip=RateLimit(
                "client_errors_per_ip", sec.client_errors_per_ip_per_minute, 60, store
            ),
            status_per_ip=RateLimit(
                "status_per_ip", sec.status_per_ip_per_hour, 3600, store
            ),
            status_changes_per_request=RateLimit(
                "status_changes_per_request",
                sec.status_changes_per_request_per_hour,
                3600,
                store,
            ),
            messages_per_call=RateLimit(
                "messages_per_call", sec.messages_per_call_per_hour, 3600, store
            ),
        )


LIMITS = web.AppKey("limits", Limits)
