"""The desk's topics and opening hours: the config file's, with admin changes on top.

Every control-plane process keeps the effective settings; a change made on one
is announced on the event bus and the others read it again (and every
:data:`RELOAD_SECONDS` anyway, should a notice be lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from beeldbel.config import DeskConfig, Topic
from controlplane.base.bus import LocalBus
from controlplane.storage.database import Database
from controlplane.storage.schema import desk_settings

log = structlog.get_logger()

EDITABLE = ("topics", "opening_hours")
#: The event bus channel of desk changes.
CHANNEL = "desk"
#: Seconds between reads of the settings without a notice.
RELOAD_SECONDS = 60.0


class Desk:
    """The effective :class:`DeskConfig`; admins change it through :meth:`update`."""

    def __init__(self, base: DeskConfig, bus: LocalBus | None = None) -> None:
        self.base = base
        self.current = base
        self._bus = bus if bus is not None else LocalBus()

    async def reload(self, db: Database) -> None:
        async with db.read() as conn:
            rows = (await conn.execute(sa.select(desk_settings))).all()
        self.current = _apply(self.base, {row.key: row.value for row in rows})

    async def update(
        self,
        db: Database,
        key: str,
        value: Any,
        *,
        also: Callable[[AsyncConnection], Awaitable[None]] | None = None,
    ) -> DeskConfig:
        """Validate and store one editable setting; raises ``ValueError`` if wrong.

        ``also`` runs in the same transaction (e.g. to write the audit entry).
        """
        if key not in EDITABLE:
            raise ValueError(f"{key} cannot be changed here")
        candidate = _apply(self.current, {key: value})
        now = datetime.now(UTC)
        async with db.write() as conn:
            updated = await conn.execute(
                sa.update(desk_settings)
                .where(desk_settings.c.key == key)
                .values(value=value, updated_at=now)
            )
            if updated.rowcount == 0:
                await conn.execute(
                    sa.insert(desk_settings).values(
                        key=key, value=value, updated_at=now
                    )
                )
            if also is not None:
                await also(conn)
        self.current = candidate
        self._bus.publish(CHANNEL)  # the other processes read it again
        return candidate

    async def follow(self, db: Database) -> None:
        """Read the settings again at every change on another process (and every
        :data:`RELOAD_SECONDS`), until cancelled."""
        async with self._bus.subscribe(CHANNEL) as inbox:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(inbox.get(), RELOAD_SECONDS)
                try:
                    await self.reload(db)
                except Exception:
                    log.exception("desk_reload_failed")

    def topic(self, code: str) -> Topic | None:
        return next((t for t in self.current.topics if t.code == code), None)


def _apply(base: DeskConfig, overrides: dict[str, Any]) -> DeskConfig:
    changes: dict[str, Any] = {}
    if "topics" in overrides:
        changes["topics"] = tuple(Topic(**t) for t in overrides["topics"])
    if "opening_hours" in overrides:
        changes["opening_hours"] = dict(overrides["opening_hours"])
    return dataclasses.replace(base, **changes)


def topics_to_json(topics: tuple[Topic, ...]) -> list[dict[str, str]]:
    return [{"code": t.code, "nl": t.nl, "en": t.en} for t in topics]


DESK = web.AppKey("desk", Desk)


def page_values(request: web.Request) -> dict[str, Any]:
    """The desk as it is now (name, topics, hours) for every template."""
    return {"desk": request.app[DESK].current}
