"""Webhooks to integrators (Standard Webhooks): endpoints per API key, the
durable outbox and its delivery.

Owns the endpoints (URL, event types, signing secret), the outbox rows written
in the transaction of the change they tell of, and the lease-holding drainer
that delivers them at least once, in order per request, with retries and a
dead letter. Offers :func:`callback_event` and :func:`request_closed` to the
packages that change requests and calls, the endpoint and replay operations to
the CLI and admin pages, the events' typed bodies (:data:`EVENT_MODELS`) to the
OpenAPI document, and :func:`setup` to run the drainer in the app.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from controlplane.base.metrics import METRICS
from controlplane.base.settings import CONFIG
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB
from controlplane.webhooks.drainer import Drainer
from controlplane.webhooks.endpoints import (
    Endpoint,
    add_endpoint,
    list_endpoints,
    remove_endpoint,
    rotate_secret,
)
from controlplane.webhooks.errors import EndpointInvalid
from controlplane.webhooks.events import (
    CALL_EVENTS,
    CALLBACK_EVENTS,
    EVENT_TYPES,
    callback_event,
    request_closed,
)
from controlplane.webhooks.outbox import dead_letters, depth, replay
from controlplane.webhooks.payloads import EVENT_MODELS

DRAINER = web.AppKey("webhook_drainer", Drainer)


def setup(app: web.Application) -> None:
    """Run the outbox drainer for the app's life (after the database is up)."""
    app.cleanup_ctx.append(_draining)


async def _draining(app: web.Application) -> AsyncIterator[None]:
    drainer = Drainer(app[DB], app[CONFIG].webhooks, app[METRICS], app[SECRET_KEY])
    app[DRAINER] = drainer
    task = asyncio.create_task(drainer.run())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    with contextlib.suppress(Exception):
        await drainer.lease.give_up()


__all__ = [
    "CALLBACK_EVENTS",
    "CALL_EVENTS",
    "DRAINER",
    "EVENT_MODELS",
    "EVENT_TYPES",
    "Drainer",
    "Endpoint",
    "EndpointInvalid",
    "add_endpoint",
    "callback_event",
    "dead_letters",
    "depth",
    "list_endpoints",
    "remove_endpoint",
    "replay",
    "request_closed",
    "rotate_secret",
    "setup",
]
