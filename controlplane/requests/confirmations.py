"""Confirming a new request to the citizen: its reference and status link, by
e-mail when they gave an address, otherwise (or when the e-mail fails) by SMS.

Sending runs in the background after the request is stored, so a slow or broken
mail server or SMS gateway never delays or fails the request. Each outcome is
counted (``beeldbel_confirmations_total{via,result}``); a sent or failed one is
also audited with codes only. Pending sends get :data:`DRAIN_SECONDS` when the
app stops; one cut off then is counted and audited as failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import structlog
from aiohttp import web

from controlplane.base.errors import DeliveryFailed
from controlplane.base.i18n import CATALOG
from controlplane.base.metrics import METRICS
from controlplane.base.settings import CONFIG
from controlplane.notify import mailer, sms
from controlplane.requests.desk import DESK
from controlplane.requests.status_links import status_url
from controlplane.requests.wording import next_steps, translator
from controlplane.security import audit
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB

log = structlog.get_logger()

#: Seconds pending confirmations may still take when the app stops.
DRAIN_SECONDS = 5.0
_ACTIONS = {"sent": "confirmation_sent", "failed": "confirmation_failed"}


class Confirmations:
    """The app's confirmations in flight (a strong reference to each task)."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._pending: set[asyncio.Task[None]] = set()

    def send(self, row: dict[str, Any]) -> None:
        """Confirm the stored request ``row`` in the background."""
        task = asyncio.create_task(self._confirm(row))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def drain(self) -> None:
        """Let pending sends finish for a while, then cut them off."""
        if not self._pending:
            return
        _done, late = await asyncio.wait(self._pending, timeout=DRAIN_SECONDS)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)

    async def _confirm(self, row: dict[str, Any]) -> None:
        via = "none"
        try:
            via = await self._deliver(row)
        except asyncio.CancelledError:
            await self._record(row["id"], via, "failed", "stopped")
            raise
        except Exception:
            log.exception("confirmation_crashed", request_id=row["id"])
            await self._record(row["id"], via, "failed", "error")

    async def _deliver(self, row: dict[str, Any]) -> str:
        """Try e-mail, then SMS; returns the way last tried."""
        config = self._app[CONFIG]
        attempts = []
        if row["email"] and config.mail.enabled:
            attempts.append(("email", self._mail))
        if row["phone"] and config.sms.enabled and sms.can_take_sms(row["phone"]):
            attempts.append(("sms", self._text))
        if not attempts:
            self._app[METRICS].confirmations.labels("none", "skipped").inc()
            log.info("confirmation_skipped", request_id=row["id"])
            return "none"
        for via, send in attempts:
            try:
                await send(row)
            except DeliveryFailed as exc:
                await self._record(row["id"], via, "failed", exc.message)
                continue
            await self._record(row["id"], via, "sent")
            return via
        return attempts[-1][0]

    def _texts(self, row: dict[str, Any]) -> tuple[str, str, str]:
        """The status link, the language and the desk's name for ``row``."""
        app = self._app
        lang = row["language"]
        link = status_url(
            app[CONFIG].server.public_url, app[SECRET_KEY], row["reference"], lang
        )
        return link, lang, app[DESK].current.name

    async def _mail(self, row: dict[str, Any]) -> None:
        link, lang, desk_name = self._texts(row)
        catalog = self._app[CATALOG]
        details = next_steps(row, self._app[DESK].current, translator(catalog, lang))
        await mailer.send_confirmation(
            self._app[CONFIG].mail,
            row["email"],
            row["reference"],
            link,
            details,
            lang,
            desk_name,
            catalog=catalog,
        )

    async def _text(self, row: dict[str, Any]) -> None:
        link, lang, desk_name = self._texts(row)
        text = sms.confirmation_text(
            row["reference"], link, lang, desk_name, catalog=self._app[CATALOG]
        )
        await sms.send_sms(self._app[CONFIG].sms, row["phone"], text)

    async def _record(
        self, request_id: int, via: str, result: str, reason: str | None = None
    ) -> None:
        """Count, log and audit one outcome (codes only: no address, no link)."""
        details: dict[str, Any] = {"via": via}
        if reason is not None:
            details["reason"] = reason
        action = _ACTIONS[result]
        log.info(action, request_id=request_id, **details)
        try:
            async with self._app[DB].write() as conn:
                await audit.record(conn, action, request_id=request_id, **details)
        except Exception:
            log.exception("confirmation_audit_failed", request_id=request_id)
        self._app[METRICS].confirmations.labels(via, result).inc()


CONFIRMATIONS = web.AppKey("confirmations", Confirmations)


def setup(app: web.Application) -> None:
    """Keep the app's confirmations, drained before the database closes."""
    app[CONFIRMATIONS] = Confirmations(app)
    app.cleanup_ctx.append(_drained)


async def _drained(app: web.Application) -> AsyncIterator[None]:
    yield
    await app[CONFIRMATIONS].drain()
