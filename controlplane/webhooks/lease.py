"""The outbox lease: one control-plane process drains the outbox at a time.

A row in ``webhook_leases`` names the holder and when its hold runs out. It is
taken or renewed by one conditional ``UPDATE`` (held by me, or run out), made
by one ``INSERT`` the first time (a unique key: one of racing inserts wins), so
it works on SQLite and PostgreSQL alike. A holder that dies simply stops
renewing; another takes over once ``lease_seconds`` have passed.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from controlplane.storage.database import Database
from controlplane.storage.schema import webhook_leases

OUTBOX = "webhook_outbox"
_lease = webhook_leases


class Lease:
    """``holder``'s claim on the lease ``name``, ``seconds`` at a time."""

    def __init__(self, db: Database, holder: str, seconds: int, name: str = OUTBOX):
        self._db = db
        self.holder = holder
        self._seconds = seconds
        self._name = name

    async def hold(self, now: datetime | None = None) -> bool:
        """Take or renew the lease; False while another holds it."""
        now = now or datetime.now(UTC)
        until = now + timedelta(seconds=self._seconds)
        try:
            async with self._db.write() as conn:
                result = await conn.execute(
                    sa.update(_lease)
                    .where(_lease.c.name == self._name)
                    .where(
                        sa.or_(
                            _lease.c.holder == self.holder, _lease.c.expires_at < now
                        )
                    )
                    .values(holder=self.holder, expires_at=until)
                )
                if result.rowcount == 1:
                    return True
                exists = await conn.scalar(
                    sa.select(_lease.c.name).where(_lease.c.name == self._name)
                )
                if exists is not None:
                    return False
                await conn.execute(
                    sa.insert(_lease).values(
                        name=self._name, holder=self.holder, expires_at=until
                    )
                )
        except IntegrityError:
            return False
        return True

    async def give_up(self) -> None:
        """Let another process take over at once (a clean shutdown)."""
        async with self._db.write() as conn:
            await conn.execute(
                sa.delete(_lease).where(
                    _lease.c.name == self._name, _lease.c.holder == self.holder
                )
            )
