"""Reads the numbers a scrape needs from the database: queue depth by state, the
oldest wait, whether the desk is open and how many staff are online (the alert
rules in ``deploy/prometheus/alerts.yml`` watch the last three)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from beeldbel.config import DeskConfig
from controlplane.base.metrics import Metrics
from controlplane.requests.callbacks import State
from controlplane.requests.slots import is_open_at
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests, sessions, users


async def refresh_queue_depth(db: Database, metrics: Metrics) -> None:
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(callback_requests.c.state, sa.func.count()).group_by(
                    callback_requests.c.state
                )
            )
        ).all()
    counts = {state: count for state, count in rows}
    for state in State:
        metrics.queue_depth.labels(state.value).set(counts.get(state.value, 0))


async def refresh_desk_gauges(
    db: Database,
    metrics: Metrics,
    desk: DeskConfig,
    idle_minutes: int,
    now: datetime | None = None,
) -> None:
    """The oldest wait of a due, unclaimed request; whether the desk is open; the
    staff with a session neither expired nor idle ``idle_minutes`` or longer."""
    now = now or datetime.now(UTC)
    queued = callback_requests.c
    async with db.read() as conn:
        oldest = await conn.scalar(
            sa.select(sa.func.min(queued.due_at)).where(
                queued.state == State.NEW.value, queued.due_at <= now
            )
        )
        online = await conn.scalar(
            sa.select(sa.func.count(sa.distinct(sessions.c.user_id)))
            .join(users, users.c.id == sessions.c.user_id)
            .where(
                users.c.active.is_(True),
                sessions.c.expires_at > now,
                sessions.c.last_seen_at > now - timedelta(minutes=idle_minutes),
            )
        )
    waited = 0.0
    if oldest is not None:
        # SQLite gives naive datetimes back; they are UTC
        waited = (now - oldest.replace(tzinfo=oldest.tzinfo or UTC)).total_seconds()
    metrics.oldest_wait.set(max(0.0, waited))
    metrics.desk_open.set(int(is_open_at(desk, now)))
    metrics.staff_online.set(int(online or 0))
