"""Retention: personal data and old records are erased on a schedule.

Personal data of a request (name, phone, e-mail, accessibility note, notes, the
citizen's free-text survey comment) is erased ``retention.personal_data_days``
after it closed; the row itself stays for statistics (state, channel, topic,
times, outcome, accessibility codes). Audit entries go after
``retention.audit_days``, idempotency keys after a day, and expired staff
sessions at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import Config, RetentionConfig
from controlplane.base.metrics import METRICS
from controlplane.base.settings import CONFIG
from controlplane.requests.callbacks import CLOSED_STATES
from controlplane.security import audit
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import (
    audit_log,
    call_events,
    call_records,
    callback_requests,
    idempotency_keys,
    live_calls,
    request_notes,
    sessions,
)

log = structlog.get_logger()

IDEMPOTENCY_TTL = timedelta(days=1)
#: A running call's news and live state (its links to copy, the waiting-room
#: message) outlive any call; a call that ends deletes its live state itself,
#: this catches what a process that stopped mid-call left behind.
CALL_STATE_TTL = timedelta(days=2)
PERSONAL_COLUMNS = ("name", "phone", "email", "accessibility_note")


async def purge(db: Database, config: Config, now: datetime | None = None) -> int:
    """Erase what is past its retention; return how many requests were erased."""
    now = now or datetime.now(UTC)
    retention = config.retention
    cutoff = now - timedelta(days=retention.personal_data_days)
    expired = sa.and_(
        callback_requests.c.closed_at < cutoff,
        callback_requests.c.state.in_([s.value for s in CLOSED_STATES]),
    )
    async with db.write() as conn:
        count = await _erase_personal_data(conn, expired, now)
        await _delete_expired(conn, retention, now)
        if count:
            await audit.record(conn, "personal_data_purged", requests=count)
    await db.checkpoint()
    log.info("retention_purged", requests=count)
    return count


async def _erase_personal_data(
    conn: AsyncConnection, expired: sa.ColumnElement[bool], now: datetime
) -> int:
    """Erase the personal data of the ``expired`` requests; return how many."""
    expired_ids = sa.select(callback_requests.c.id).where(expired)
    await conn.execute(
        sa.delete(request_notes).where(request_notes.c.request_id.in_(expired_ids))
    )
    # the survey's free text may name people too
    await conn.execute(
        sa.update(call_records)
        .where(
            call_records.c.request_id.in_(expired_ids),
            call_records.c.citizen_comment.is_not(None),
        )
        .values(citizen_comment=None)
    )
    erased = await conn.execute(
        sa.update(callback_requests)
        .where(expired, callback_requests.c.purged_at.is_(None))
        .values(purged_at=now, **dict.fromkeys(PERSONAL_COLUMNS))
    )
    return erased.rowcount or 0


async def _delete_expired(
    conn: AsyncConnection, retention: RetentionConfig, now: datetime
) -> None:
    """Delete old idempotency keys and audit entries, expired sessions, and the
    state of calls long over."""
    await conn.execute(
        sa.delete(idempotency_keys).where(
            idempotency_keys.c.created_at < now - IDEMPOTENCY_TTL
        )
    )
    await conn.execute(
        sa.delete(audit_log).where(
            audit_log.c.at < now - timedelta(days=retention.audit_days)
        )
    )
    await conn.execute(sa.delete(sessions).where(sessions.c.expires_at < now))
    await conn.execute(
        sa.delete(call_events).where(call_events.c.created_at < now - CALL_STATE_TTL)
    )
    await conn.execute(
        sa.delete(live_calls).where(live_calls.c.updated_at < now - CALL_STATE_TTL)
    )


def setup(app: web.Application) -> None:
    """Run :func:`purge` at start and every ``retention.purge_interval_minutes``."""
    app.cleanup_ctx.append(_purge_periodically)


async def _purge_periodically(app: web.Application) -> AsyncIterator[None]:
    task = asyncio.create_task(_loop(app))
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _loop(app: web.Application) -> None:
    config = app[CONFIG]
    interval = max(1, config.retention.purge_interval_minutes) * 60
    while True:
        try:
            count = await purge(app[DB], config)
            app[METRICS].purged.inc(count)
            app[METRICS].purge_last_run.set_to_current_time()
        except Exception:
            log.exception("retention_purge_failed")
        await asyncio.sleep(interval)
