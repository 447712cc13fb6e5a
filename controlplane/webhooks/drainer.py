"""The background work that empties the outbox, in whichever control-plane
process holds the lease (:mod:`controlplane.webhooks.lease`).

Each round renews the lease, takes the due rows (each for one try, see
:mod:`controlplane.webhooks.outbox`), sends them side by side (at most one per
request and endpoint, so in order) and records each result. The try's window is
``lease_seconds``, longer than ``timeout_seconds``: a try always ends before the
row could be taken again, so nothing is sent twice at the same time. Every
process keeps the outbox gauges current.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from beeldbel.config import WebhooksConfig
from controlplane.base.metrics import Metrics
from controlplane.security.secret_box import SecretUnreadable
from controlplane.storage.database import Database
from controlplane.webhooks import outbox
from controlplane.webhooks.endpoints import signing_secrets
from controlplane.webhooks.lease import Lease
from controlplane.webhooks.sender import Message, Sender

log = structlog.get_logger()

#: Rows sent side by side in one round at most.
BATCH = 50
#: Seconds between deletions of long-delivered rows (by the lease holder).
PRUNE_EVERY = 3600.0


class Drainer:
    """Delivers the outbox's due rows while this process holds the lease."""

    def __init__(
        self,
        db: Database,
        config: WebhooksConfig,
        metrics: Metrics,
        secret_key: bytes,
        *,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._db, self._config, self._metrics = db, config, metrics
        self._secret_key = secret_key
        holder = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:12]}"
        self.lease = Lease(db, holder, config.lease_seconds)
        self._next_prune = time.monotonic()
        self._sender = Sender(
            timeout_seconds=config.timeout_seconds,
            allow_private=config.allow_private_addresses,
            ssl_context=ssl_context,
        )

    async def run(self) -> None:
        """Drain every ``poll_ms`` until cancelled; errors are logged, not fatal."""
        pause = self._config.poll_ms / 1000
        try:
            while True:
                try:
                    await self._round()
                except Exception:
                    log.exception("webhook_drain_failed")
                await asyncio.sleep(pause)
        finally:
            await self._sender.close()

    async def _round(self) -> None:
        """The gauges always; the lease and a drain only while something is
        pending (an idle desk writes nothing)."""
        if not await self.refresh_gauges():
            return
        if not await self.lease.hold():
            return
        await self.drain_once()
        if time.monotonic() >= self._next_prune:
            await outbox.prune(self._db)
            self._next_prune = time.monotonic() + PRUNE_EVERY

    async def drain_once(self) -> int:
        """One round: send what is due; returns how many were tried."""
        now = datetime.now(UTC)
        until = now + timedelta(seconds=self._config.lease_seconds)
        taken: list[Any] = []
        async with self._db.write() as conn:
            for row in await outbox.due(conn, now, BATCH):
                if await outbox.take(conn, row.id, row.next_attempt_at, until):
                    taken.append(row)
        await asyncio.gather(*(self._deliver(row, now) for row in taken))
        return len(taken)

    async def _deliver(self, row: Any, now: datetime) -> None:
        try:
            secrets = signing_secrets(row, self._secret_key, now)
        except SecretUnreadable:
            # another secret_key than the one that sealed it: retried, then dead
            result = "secret_unreadable"
        else:
            message = Message(row.id, row.message_id, row.url, row.payload, secrets)
            started = time.monotonic()
            result = await self._sender.send(message)
            elapsed = time.monotonic() - started
            self._metrics.webhook_delivery_duration.observe(elapsed)
        async with self._db.write() as conn:
            outcome = await outbox.settle(
                conn, self._config, row, result, datetime.now(UTC)
            )
        self._metrics.webhook_deliveries.labels(outcome).inc()
        log.info(
            "webhook_delivery_tried",
            message_id=row.message_id,
            outbox_id=row.id,
            attempt=row.attempts + 1,
            result=result,
            outcome=outcome,
        )

    async def refresh_gauges(self) -> int:
        """Set the outbox gauges; returns how many rows are pending."""
        depth = await outbox.depth(self._db)
        self._metrics.webhook_outbox.labels(outbox.PENDING).set(depth.pending)
        self._metrics.webhook_outbox.labels(outbox.DEAD).set(depth.dead)
        self._metrics.webhook_oldest_pending.set(depth.oldest_seconds)
        return depth.pending

    async def close(self) -> None:
        await self._sender.close()
