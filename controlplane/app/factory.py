"""Builds the control plane's ``web.Application``; the only place that wires things."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager as AsyncContextManager

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from beeldbel.assets import STATIC
from beeldbel.config import Config
from controlplane import api, calls, pilot, requests, staff, webhooks
from controlplane.app import health
from controlplane.app.middlewares import (
    add_security_headers,
    error_pages,
    request_context,
)
from controlplane.base.bus import BUS, make_bus
from controlplane.base.i18n import CATALOG, Catalog
from controlplane.base.metrics import METRICS, Metrics
from controlplane.base.rendering import setup_templates
from controlplane.base.settings import CONFIG
from controlplane.requests import DESK, QUEUE_EVENTS, Desk, QueueEvents
from controlplane.security import csrf, jwks
from controlplane.security.ratelimit import LIMITS, Limits, LimitStore
from controlplane.security.secrets_store import SECRET_KEY, load_secret_key
from controlplane.storage.database import DB, Database


def create_app(config: Config, *, metrics: Metrics | None = None) -> web.Application:
    app = web.Application(
        middlewares=[request_context, error_pages, csrf.csrf_middleware],
        client_max_size=config.security.max_body_bytes,
    )
    app[CONFIG] = config
    app[METRICS] = metrics or Metrics()
    app[CATALOG] = Catalog.load()
    app[BUS] = make_bus(config.redis.url, config.redis.prefix)
    app[DESK] = Desk(config.desk, app[BUS])
    app[QUEUE_EVENTS] = QueueEvents(app[BUS])
    bus = app[BUS]
    app[METRICS].event_bus_connected.set_function(lambda: float(bus.is_connected()))
    app[SECRET_KEY] = load_secret_key(config)
    store = LimitStore.from_config(config)
    store.on_failure = app[METRICS].rate_limit_store_failures.inc
    app[LIMITS] = Limits.from_config(config, store)
    app.cleanup_ctx.append(_shared_state(store))
    app.cleanup_ctx.append(_database)
    app.on_response_prepare.append(add_security_headers)
    setup_templates(app, csrf.page_values, requests.desk_page_values)
    app.router.add_static("/static/", STATIC, name="static", append_version=True)
    app.router.add_get("/favicon.ico", _favicon)
    # route order is kept from the flat layout: requests and staff first
    requests.setup(app)
    staff.setup(app)
    api.setup(app)
    jwks.setup(app)
    calls.setup(app)
    pilot.setup(app)
    health.setup(app)
    webhooks.setup(app)
    return app


async def _favicon(request: web.Request) -> web.Response:
    """Browsers and tools ask /favicon.ico whatever the page links: not a 404."""
    icon = request.app.router["static"].url_for(filename="favicon.svg")
    raise web.HTTPMovedPermanently(str(icon))


def _shared_state(
    store: LimitStore,
) -> Callable[[web.Application], AsyncContextManager[None]]:
    """The event bus and the rate-limit store: connected for the app's life."""

    @contextlib.asynccontextmanager
    async def connected(app: web.Application) -> AsyncIterator[None]:
        await app[BUS].start()
        yield
        await app[BUS].close()
        await store.close()

    return connected


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[CONFIG].database.url)
    await db.migrate(app[SECRET_KEY])
    app[DB] = db
    await app[DESK].reload(db)
    follower = asyncio.create_task(app[DESK].follow(db))
    yield
    follower.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await follower
    await db.close()


def create_metrics_app(
    metrics: Metrics, refresh: Callable[[], Awaitable[None]] | None = None
) -> web.Application:
    """``/metrics`` on its own listener, so it is never reachable from the internet.

    ``refresh`` runs before each scrape (e.g. to read queue depth from the database).
    """

    async def serve(_request: web.Request) -> web.Response:
        if refresh is not None:
            await refresh()
        return web.Response(
            body=generate_latest(metrics.registry),
            headers={"Content-Type": CONTENT_TYPE_LATEST},
        )

    app = web.Application()
    app.router.add_get("/metrics", serve)
    return app
