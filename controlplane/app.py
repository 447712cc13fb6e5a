"""Builds the control plane's ``web.Application``; the only place that wires things."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from common.config import Config
from controlplane import (
    admin,
    api,
    api_tokens,
    call_guests,
    calls,
    console,
    intake,
    join_links,
    jwks,
    retention,
    staff_auth,
    survey,
)
from controlplane.csrf import csrf_middleware
from controlplane.desk import Desk
from controlplane.i18n import Catalog
from controlplane.live import QueueEvents
from controlplane.metrics import Metrics
from controlplane.middlewares import add_security_headers, error_pages, request_context
from controlplane.ratelimit import RateLimit
from controlplane.rendering import STATIC, setup_templates
from controlplane.secrets_store import load_secret_key
from controlplane.state import (
    CATALOG,
    CONFIG,
    DB,
    DESK,
    LIMITS,
    METRICS,
    QUEUE_EVENTS,
    SECRET_KEY,
    Limits,
)
from controlplane.storage.database import Database


def create_app(config: Config, *, metrics: Metrics | None = None) -> web.Application:
    app = web.Application(
        middlewares=[request_context, error_pages, csrf_middleware],
        client_max_size=config.security.max_body_bytes,
    )
    app[CONFIG] = config
    app[METRICS] = metrics or Metrics()
    app[CATALOG] = Catalog.load()
    app[DESK] = Desk(config.desk)
    app[QUEUE_EVENTS] = QueueEvents()
    app[SECRET_KEY] = load_secret_key(config)
    sec = config.security
    app[LIMITS] = Limits(
        intake_per_ip=RateLimit("intake_per_ip", sec.intake_per_ip_per_hour, 3600),
        intake_global=RateLimit("intake_global", sec.intake_global_per_minute, 60),
        login_per_ip=RateLimit("login_per_ip", sec.login_per_ip_per_minute, 60),
        api_per_key=RateLimit("api_per_key", sec.api_per_key_per_minute, 60),
    )
    app.cleanup_ctx.append(_database)
    app.on_response_prepare.append(add_security_headers)
    setup_templates(app)
    app.router.add_static("/static/", STATIC, name="static", append_version=True)
    for module in (
        intake,
        staff_auth,
        console,
        admin,
        api,
        retention,
        jwks,
        join_links,
        survey,
        calls,
        call_guests,
        api_tokens,
    ):
        module.setup(app)
    return app


async def _database(app: web.Application) -> AsyncIterator[None]:
    db = Database(app[CONFIG].database.url)
    await db.migrate(app[SECRET_KEY])
    app[DB] = db
    await app[DESK].reload(db)
    yield
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
