"""Locking a staff account after repeated failed sign-in steps: 1, 2, 4 … minutes
(capped) from the threshold on, counted in the database.

Each password or code is *claimed* on the account before it is checked: one
conditional ``UPDATE … RETURNING`` counts it as a failure (and locks the account
when it reaches the threshold) unless the account is locked. A right answer gives
its claim back. So however many attempts arrive at once, at most
``lockout_threshold`` wrong ones are checked before the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.settings import CONFIG
from controlplane.security import audit
from controlplane.storage.database import DB
from controlplane.storage.schema import users

log = structlog.get_logger()

#: Longest lock after repeated failures.
MAX_LOCK_MINUTES = 60
# failures past the threshold before the lock reaches MAX_LOCK_MINUTES
_DOUBLINGS = (MAX_LOCK_MINUTES - 1).bit_length()


@dataclass(frozen=True, slots=True)
class Attempt:
    """One sign-in step claimed on an account; it counts as a failure until it
    is given back."""

    user_id: int
    #: The account's failures counting this attempt; 0 when it was refused.
    failures: int
    #: The lock this attempt set by reaching the threshold, if it did.
    locked_until: datetime | None = None
    #: Refused: minutes until the account's lock ends.
    refused_minutes: int = 0

    @property
    def refused(self) -> bool:
        return self.refused_minutes > 0


def locked_minutes(locked_until: datetime | None) -> int:
    """Whole minutes (rounded up) until the lock ends; 0 when not locked."""
    if locked_until is None:
        return 0
    left = (locked_until - datetime.now(UTC)).total_seconds()
    return max(1, -(-int(left) // 60)) if left > 0 else 0


def lock_after(
    failures: int, threshold: int, now: datetime | None = None
) -> datetime | None:
    """1, 2, 4 … minutes (capped) from the ``threshold``-th failure on."""
    if failures < threshold:
        return None
    minutes = min(MAX_LOCK_MINUTES, 2 ** min(failures - threshold, 10))
    return (now or datetime.now(UTC)) + timedelta(minutes=minutes)


async def claim(request: web.Request, user_id: int) -> Attempt:
    """Count an attempt on ``user_id`` before it is checked, locking the account
    if it reaches the threshold; refused (not counted) while the account is
    locked."""
    threshold = request.app[CONFIG].security.lockout_threshold
    now = datetime.now(UTC)
    async with request.app[DB].write() as conn:
        row = (
            await conn.execute(
                sa.update(users)
                .where(
                    users.c.id == user_id,
                    sa.or_(users.c.locked_until.is_(None), users.c.locked_until <= now),
                )
                .values(
                    failed_logins=users.c.failed_logins + 1,
                    locked_until=_lock_on_claim(threshold, now),
                )
                .returning(users.c.failed_logins, users.c.locked_until)
            )
        ).first()
        if row is not None:
            return Attempt(user_id, row.failed_logins, row.locked_until)
        locked_until = (
            await conn.execute(
                sa.select(users.c.locked_until).where(users.c.id == user_id)
            )
        ).scalar()
    return Attempt(user_id, 0, refused_minutes=max(1, locked_minutes(locked_until)))


def _lock_on_claim(threshold: int, now: datetime) -> sa.ColumnElement[Any]:
    """``locked_until`` once the row's ``failed_logins`` counts one more failure,
    as :func:`lock_after` has it."""
    failures = users.c.failed_logins + 1

    def until(count: int) -> sa.ColumnElement[Any]:
        return sa.literal(lock_after(count, threshold, now), users.c.locked_until.type)

    steps = range(threshold, threshold + _DOUBLINGS)
    return sa.case(
        (failures < threshold, sa.null()),
        *((failures == count, until(count)) for count in steps),
        else_=until(threshold + _DOUBLINGS),
    )


async def give_back(conn: AsyncConnection, attempt: Attempt) -> None:
    """The attempt was right: it no longer counts, and the lock it set (if no
    later failure replaced it) goes."""
    unlock: sa.ColumnElement[Any] = users.c.locked_until
    if attempt.locked_until is not None:
        mine = sa.literal(attempt.locked_until, users.c.locked_until.type)
        unlock = sa.case((users.c.locked_until == mine, sa.null()), else_=unlock)
    await conn.execute(
        sa.update(users)
        .where(users.c.id == attempt.user_id)
        .values(
            failed_logins=sa.case(
                (users.c.failed_logins > 0, users.c.failed_logins - 1), else_=0
            ),
            locked_until=unlock,
        )
    )


async def count_failure(
    conn: AsyncConnection, attempt: Attempt, user: Any, action: str, reason: str
) -> None:
    """Audit and log a wrong answer; its claim already counted it (and locked)."""
    details: dict[str, Any] = {"reason": reason}
    locked = attempt.locked_until is not None
    if locked:
        details["locked_minutes"] = locked_minutes(attempt.locked_until)
    await audit.record(conn, action, user_id=user.id, username=user.username, **details)
    log.info(action, user_id=user.id, reason=reason, locked=locked)
