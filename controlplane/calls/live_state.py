"""What the pages of a running call show, whichever control-plane process serves
them: the join links to copy (sealed: a link is a credential until opened),
whether the citizen opened theirs, and the message for the waiting room.

Rows of ``live_calls``; a call's row goes when the call ends, and the purge
removes any left behind by a process that stopped mid-call.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.calls.events import CallEvents
from controlplane.security.secret_box import LIVE_LINKS, SecretBox
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB
from controlplane.storage.schema import live_calls

_LINKS = ("join_link", "interpreter_link")


@dataclass(slots=True)
class LiveCall:
    """What the pages of one running call show."""

    join_link: str | None = None
    interpreter_link: str | None = None
    message: str | None = None
    opened: bool = False


def guest_channel(room_id: str) -> str:
    """The events of a room that its citizen and interpreter pages may see."""
    return f"guest:{room_id}"


class Calls:
    """The running calls' live state and event streams (in the database, so
    every control-plane process sees the same)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self.events = CallEvents(app)

    def _box(self) -> SecretBox:
        return SecretBox(self._app[SECRET_KEY], LIVE_LINKS)

    async def live(self, room_id: str) -> LiveCall:
        async with self._app[DB].read() as conn:
            row = (
                await conn.execute(
                    sa.select(live_calls).where(live_calls.c.room_id == room_id)
                )
            ).first()
        if row is None:
            return LiveCall()
        box = self._box()
        links = {
            name: box.open(getattr(row, name)).decode() if getattr(row, name) else None
            for name in _LINKS
        }
        return LiveCall(message=row.message, opened=bool(row.opened), **links)

    async def update_live(self, room_id: str, **changes: Any) -> None:
        """Set some of :class:`LiveCall`'s fields of ``room_id``."""
        box = self._box()
        values = {
            name: box.seal(value.encode()) if name in _LINKS and value else value
            for name, value in changes.items()
        }
        values["updated_at"] = datetime.now(UTC)
        async with self._app[DB].write() as conn:
            await _ensure_row(conn, room_id)
            await conn.execute(
                live_calls.update()
                .where(live_calls.c.room_id == room_id)
                .values(**values)
            )

    async def mark_opened(self, room_id: str) -> bool:
        """Mark the citizen's link opened; True only for the first to do so."""
        async with self._app[DB].write() as conn:
            await _ensure_row(conn, room_id)
            result = await conn.execute(
                live_calls.update()
                .where(live_calls.c.room_id == room_id, live_calls.c.opened.is_(False))
                .values(opened=True, updated_at=datetime.now(UTC))
            )
        return bool(result.rowcount)

    async def forget(self, room_id: str) -> None:
        """Drop the live state of a call that ended (links, message)."""
        async with self._app[DB].write() as conn:
            await conn.execute(
                live_calls.delete().where(live_calls.c.room_id == room_id)
            )


async def _ensure_row(conn: AsyncConnection, room_id: str) -> None:
    exists = await conn.scalar(
        sa.select(live_calls.c.room_id).where(live_calls.c.room_id == room_id)
    )
    if exists is not None:
        return
    try:
        async with conn.begin_nested():
            await conn.execute(
                live_calls.insert().values(
                    room_id=room_id, opened=False, updated_at=datetime.now(UTC)
                )
            )
    except IntegrityError:
        pass  # another process made it first: the row is there either way


CALLS = web.AppKey("calls", Calls)
