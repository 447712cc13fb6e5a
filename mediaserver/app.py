"""Wires one media worker: UDP port, rooms, token verifier, signalling, API, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry

from beeldbel.config import MediaServerConfig
from beeldbel.tokens import HttpsJwksFetcher, KeySet, TokenVerifier
from mediaserver import api
from mediaserver.forwarder import ForwarderStats
from mediaserver.heartbeat import beat_forever
from mediaserver.loop_errors import count_connect_aborts
from mediaserver.metrics import Metrics
from mediaserver.room import Rooms
from mediaserver.signalling import Signalling
from mediaserver.udp_mux import UdpMux

log = structlog.get_logger()

MUX = web.AppKey("mux", UdpMux)
STATS = web.AppKey("stats", ForwarderStats)
SWEEP_INTERVAL = 1.0
#: How often publishers hear when their packets arrived (transport-cc): as often
#: as a browser's own receiver tells it at low bitrates.
FEEDBACK_INTERVAL = 0.1


def create_app(
    config: MediaServerConfig, registry: CollectorRegistry | None = None
) -> web.Application:
    app = web.Application(middlewares=[api.error_middleware])
    stats = ForwarderStats()
    mux = UdpMux(
        config.advertised_address or config.udp_bind,
        batch_window=config.batch_window_us / 1e6,
    )
    rooms = Rooms(
        stats,
        mux,
        max_participants=config.max_participants,
        peer_timeout=config.peer_timeout_seconds,
    )
    registry = registry if registry is not None else CollectorRegistry()
    metrics = Metrics(registry, stats, rooms)
    mux.on_latency = metrics.latency_seconds.observe
    mux.on_drop = stats.drop
    app[api.ROOMS] = rooms
    app[api.API_SECRET] = config.api_secret
    app[api.METRICS_SECRET] = config.metrics_secret
    app[api.REGISTRY] = registry
    app[MUX] = mux
    app[STATS] = stats
    signalling = Signalling(config, rooms, _verifier(config))
    app.router.add_get("/ws", signalling.handle)
    api.add_routes(app)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await mux.bind(config.udp_bind, config.udp_port)
        log.info("media_worker_started", udp_port=mux.port)
        restore = count_connect_aborts(
            asyncio.get_running_loop(), metrics.connect_aborted.inc
        )
        tasks = [
            asyncio.create_task(_sweep_forever(rooms)),
            asyncio.create_task(_feedback_forever(rooms)),
            asyncio.create_task(metrics.watch_loop_lag()),
        ]
        if config.control_plane_url:
            tasks.append(asyncio.create_task(beat_forever(config, rooms, stats)))
        yield
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        mux.close()
        restore()

    async def on_shutdown(app: web.Application) -> None:
        await rooms.close()

    app.cleanup_ctx.append(lifecycle)
    app.on_shutdown.append(on_shutdown)
    return app


def _verifier(config: MediaServerConfig) -> TokenVerifier:
    context = ssl.create_default_context()
    if config.jwks_ca_file:
        context.load_verify_locations(config.jwks_ca_file)
    keys = KeySet(HttpsJwksFetcher(config.jwks_url, ssl=context))
    return TokenVerifier(keys, audience=config.node_id, issuer=config.token_issuer)


async def _sweep_forever(rooms: Rooms) -> None:
    while True:
        await asyncio.sleep(SWEEP_INTERVAL)
        try:
            await rooms.sweep()
        except Exception:
            log.exception("sweep_failed")


async def _feedback_forever(rooms: Rooms) -> None:
    while True:
        await asyncio.sleep(FEEDBACK_INTERVAL)
        try:
            rooms.send_transport_feedback()
        except Exception:
            log.exception("transport_feedback_failed")


async def drain(app: web.Application, timeout: float) -> bool:  # noqa: ASYNC109
    """Refuse new rooms, then wait until calls end or ``timeout``; True if drained."""
    rooms = app[api.ROOMS]
    rooms.draining = True
    log.info("media_worker_draining", timeout=timeout)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while rooms.busy and loop.time() < deadline:  # noqa: ASYNC110 (rare, coarse)
        await asyncio.sleep(0.2)
    return not rooms.busy
