"""Reads the numbers a scrape needs from the database (queue depth by state)."""

from __future__ import annotations

import sqlalchemy as sa

from controlplane.base.metrics import Metrics
from controlplane.requests.callbacks import State
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests


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
