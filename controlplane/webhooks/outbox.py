"""The outbox's rows through their life: pending → delivered, or → dead after
``give_up_after_seconds``; a dead row is pending again when an admin replays it.

A row is taken for one try by a conditional ``UPDATE`` that moves its
``next_attempt_at`` past the try's end: no other process picks it meanwhile,
and if the process dies mid-try the row is simply due again then (at least
once, never lost). Of one request's rows for one endpoint only the oldest
pending one is due, so they arrive in order.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import WebhooksConfig
from controlplane.security import audit
from controlplane.storage.database import Database
from controlplane.storage.schema import webhook_endpoints, webhook_outbox
from controlplane.webhooks.errors import EndpointInvalid

_out = webhook_outbox
PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
#: How long a delivered row is kept (to look into a complaint), then deleted.
KEEP_DELIVERED = timedelta(days=7)


async def due(conn: AsyncConnection, now: datetime, limit: int) -> list[Any]:
    """Pending rows due by ``now``, each the oldest pending one of its request
    and endpoint, with their endpoint's URL and secrets."""
    earlier = _out.alias("earlier")
    blocked = sa.exists().where(
        earlier.c.endpoint_id == _out.c.endpoint_id,
        earlier.c.request_id == _out.c.request_id,
        earlier.c.state == PENDING,
        earlier.c.id < _out.c.id,
    )
    ep = webhook_endpoints
    query = (
        sa.select(
            _out.c.id,
            _out.c.message_id,
            _out.c.payload,
            _out.c.attempts,
            _out.c.next_attempt_at,
            _out.c.created_at,
            ep.c.url,
            ep.c.secret,
            ep.c.previous_secret,
            ep.c.previous_until,
        )
        .join(ep, ep.c.id == _out.c.endpoint_id)
        .where(_out.c.state == PENDING, _out.c.next_attempt_at <= now, ~blocked)
        .order_by(_out.c.id)
        .limit(limit)
    )
    return list((await conn.execute(query)).all())


async def take(
    conn: AsyncConnection, row_id: int, seen: datetime, until: datetime
) -> bool:
    """Take the row for one try lasting until ``until``, if nobody else did
    since it was read as due at ``seen``."""
    result = await conn.execute(
        sa.update(_out)
        .where(_out.c.id == row_id, _out.c.state == PENDING)
        .where(_out.c.next_attempt_at == seen)
        .values(next_attempt_at=until, attempts=_out.c.attempts + 1)
    )
    return result.rowcount == 1


def retry_delay(config: WebhooksConfig, attempts: int) -> timedelta:
    """Exponential backoff with jitter: about base·2^(attempts-1), capped, then a
    random half to whole of it (so many failing rows do not retry together)."""
    base = config.retry_base_ms / 1000 * 2 ** min(attempts - 1, 40)
    capped = min(base, float(config.retry_max_seconds))
    return timedelta(seconds=random.uniform(capped / 2, capped))  # noqa: S311


async def settle(
    conn: AsyncConnection,
    config: WebhooksConfig,
    row: Any,
    result: str,
    now: datetime,
) -> str:
    """Record a try's ``result``: ``delivered``, ``retried`` or ``dead_lettered``
    (returned, for the metrics)."""
    if result == DELIVERED:
        values: dict[str, Any] = {"state": DELIVERED, "delivered_at": now}
        outcome = DELIVERED
    else:
        next_at = now + retry_delay(config, row.attempts + 1)
        give_up = row.created_at + timedelta(seconds=config.give_up_after_seconds)
        dead = next_at > give_up
        values = {"state": DEAD if dead else PENDING, "next_attempt_at": next_at}
        outcome = "dead_lettered" if dead else "retried"
    values["last_error"] = None if result == DELIVERED else result[:40]
    await conn.execute(
        sa.update(_out)
        .where(_out.c.id == row.id, _out.c.state == PENDING)
        .values(**values)
    )
    return outcome


@dataclass(frozen=True, slots=True)
class Depth:
    pending: int
    dead: int
    #: Age of the oldest pending row, seconds (0 when none).
    oldest_seconds: float


async def depth(db: Database, now: datetime | None = None) -> Depth:
    """How much waits in the outbox, and for how long the oldest."""
    now = now or datetime.now(UTC)
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(_out.c.state, sa.func.count(), sa.func.min(_out.c.created_at))
            .where(_out.c.state.in_((PENDING, DEAD)))
            .group_by(_out.c.state)
        )
        by_state = {state: (int(n), oldest) for state, n, oldest in rows}
    pending, oldest = by_state.get(PENDING, (0, None))
    if isinstance(oldest, datetime) and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)  # min() skips the column type
    age = 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())
    return Depth(pending, by_state.get(DEAD, (0, None))[0], age)


async def replay(
    db: Database,
    endpoint_id: int,
    message_id: str | None = None,
    *,
    username: str | None = None,
) -> int:
    """Dead rows of ``endpoint_id`` (or its one ``message_id``) are pending again,
    due now, with a fresh ``give_up_after_seconds``; returns how many."""
    now = datetime.now(UTC)
    conditions = [_out.c.endpoint_id == endpoint_id, _out.c.state == DEAD]
    if message_id is not None:
        conditions.append(_out.c.message_id == message_id)
    async with db.write() as conn:
        key_id = await conn.scalar(
            sa.select(webhook_endpoints.c.api_key_id).where(
                webhook_endpoints.c.id == endpoint_id
            )
        )
        if key_id is None:
            raise EndpointInvalid(f"there is no webhook endpoint {endpoint_id}")
        result = await conn.execute(
            sa.update(_out)
            .where(*conditions)
            .values(state=PENDING, attempts=0, next_attempt_at=now, created_at=now)
        )
        await audit.record(
            conn,
            "webhook_events_replayed",
            username=username,
            endpoint_id=endpoint_id,
            api_key_id=key_id,
            count=result.rowcount,
        )
    return int(result.rowcount)


async def dead_letters(db: Database, endpoint_id: int | None = None) -> list[Any]:
    """The dead rows (message id, endpoint, type, tries, last error, when)."""
    query = sa.select(
        _out.c.message_id,
        _out.c.endpoint_id,
        _out.c.event_type,
        _out.c.attempts,
        _out.c.last_error,
        _out.c.created_at,
    ).where(_out.c.state == DEAD)
    if endpoint_id is not None:
        query = query.where(_out.c.endpoint_id == endpoint_id)
    async with db.read() as conn:
        return list((await conn.execute(query.order_by(_out.c.id))).all())


async def prune(db: Database, now: datetime | None = None) -> int:
    """Delete rows delivered more than :data:`KEEP_DELIVERED` ago; returns how
    many (the outbox does not grow without end)."""
    cutoff = (now or datetime.now(UTC)) - KEEP_DELIVERED
    async with db.write() as conn:
        result = await conn.execute(
            sa.delete(_out).where(
                _out.c.state == DELIVERED, _out.c.delivered_at < cutoff
            )
        )
    return int(result.rowcount)
