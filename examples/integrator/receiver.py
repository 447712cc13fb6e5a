"""The webhook receiver: an HTTPS endpoint that verifies every message with the
``standardwebhooks`` library before it believes it."""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One verified webhook: its ``webhook-id``, type and the request it is about."""

    webhook_id: str
    type: str
    reference: str
    state: str
    data: dict[str, Any]


class Receiver:
    """Answers 2xx to each message whose signature holds (so Beeldbel stops
    retrying it), 400 to any other; queues each verified message once, as a
    message may come twice (at least once delivery, same ``webhook-id``)."""

    def __init__(self, secret: str) -> None:
        self._webhook = Webhook(secret)
        self._seen: set[str] = set()
        self.events: asyncio.Queue[Event] = asyncio.Queue()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()  # verify the raw bytes, not re-encoded JSON
        try:
            payload = self._webhook.verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            log.warning("webhook refused: %s", exc)
            return web.Response(status=400)
        webhook_id = request.headers["webhook-id"]
        if webhook_id not in self._seen:
            self._seen.add(webhook_id)
            data = payload["data"]
            self.events.put_nowait(
                Event(
                    webhook_id, payload["type"], data["reference"], data["state"], data
                )
            )
        return web.Response(status=204)

    async def serve(self, host: str, port: int, tls: ssl.SSLContext) -> web.AppRunner:
        """Listen on ``https://host:port/`` (any path); clean up the returned runner."""
        app = web.Application()
        app.router.add_post("/{path:.*}", self.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port, ssl_context=tls).start()
        return runner
