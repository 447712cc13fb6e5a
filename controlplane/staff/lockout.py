"""Locking a staff account after repeated failed sign-in steps: 1, 2, 4 … minutes
(capped) from the threshold on, counted in the database.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.settings import CONFIG
from controlplane.security import audit
from controlplane.storage.schema import users

log = structlog.get_logger()

#: Longest lock after repeated failures.
MAX_LOCK_MINUTES = 60


def locked_minutes(locked_until: datetime | None) -> int:
    """Whole minutes (rounded up) until the lock ends; 0 when not locked."""
    if locked_until is None:
        return 0
    left = (locked_until - datetime.now(UTC)).total_seconds()
    return max(1, -(-int(left) // 60)) if left > 0 else 0


def lock_after(failures: int, threshold: int) -> datetime | None:
    """1, 2, 4 … minutes (capped) from the ``threshold``-th failure on."""
    if failures < threshold:
        return None
    minutes = min(MAX_LOCK_MINUTES, 2 ** min(failures - threshold, 10))
    return datetime.now(UTC) + timedelta(minutes=minutes)


async def count_failure(
    conn: AsyncConnection, request: web.Request, user: Any, action: str, reason: str
) -> None:
    """Count a failed step for ``user`` (locking after the threshold) and audit it."""
    threshold = request.app[CONFIG].security.lockout_threshold
    # increment in the database: concurrent failures each count
    await conn.execute(
        sa.update(users)
        .where(users.c.id == user.id)
        .values(failed_logins=users.c.failed_logins + 1)
    )
    failures = (
        await conn.execute(
            sa.select(users.c.failed_logins).where(users.c.id == user.id)
        )
    ).scalar_one()
    locked_until = lock_after(failures, threshold)
    if locked_until is not None:
        await conn.execute(
            sa.update(users)
            .where(users.c.id == user.id)
            .values(locked_until=locked_until)
        )
    details: dict[str, Any] = {"reason": reason}
    if locked_until is not None:
        details["locked_minutes"] = locked_minutes(locked_until)
    await audit.record(conn, action, user_id=user.id, username=user.username, **details)
    log.info(action, user_id=user.id, reason=reason, locked=locked_until is not None)
