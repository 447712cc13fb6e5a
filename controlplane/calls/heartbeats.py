"""Media nodes reporting themselves: the heartbeat endpoint, and the sweep that marks
a silent node down and ends its calls.

``POST /api/internal/media-nodes/{node_id}/heartbeat`` (``Authorization: Bearer
<[mediaserver] api_secret>``) stores the node's load. Every control-plane process
sweeps each second: a watched node silent for ``[calls] node_down_after_seconds``
is marked down by one conditional update, and the process whose update it was
ends the node's open calls with outcome ``media_lost``; the employee's call page
gets the ``ended`` event and says to start the call again. The sweep also sets
the per-node gauges.

A process judges silence only after it has itself watched, with the database
answering, for ``node_down_after_seconds``: after a restart of every control
plane, or a database outage, no heartbeat could be stored, and the old
``last_seen`` would otherwise end every call of every healthy node.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import math
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web

from controlplane.base.errors import BadRequest, NotFound, Unauthorized
from controlplane.base.json_body import json_body
from controlplane.base.metrics import METRICS
from controlplane.base.settings import CONFIG
from controlplane.calls import node_registry as registry
from controlplane.calls.placement import MEDIA_NODES
from controlplane.calls.rooms import end_call, find_call
from controlplane.requests import Actor
from controlplane.storage.database import DB

log = structlog.get_logger()

PATH = "/api/internal/media-nodes/{node_id}/heartbeat"
#: The outcome of a call whose media node was lost.
MEDIA_LOST = "media_lost"
SWEEP_SECONDS = 1.0
#: Sweeps between deletions of reservations that no longer count.
FORGET_EVERY = 60
#: Calls of a lost node ended at the same time.
END_CONCURRENCY = 8
#: A node down this long should have no open calls left; any are ended.
LEFTOVER_SECONDS = 60
_SYSTEM = Actor(id=None, username="system", role="admin")
_INTS = ("capacity", "rooms", "participants")
_NUMBERS = ("packets_per_second", "cpu")

_SWEEP_TASK = web.AppKey("node_sweep_task", asyncio.Task[None])


def _authorize(request: web.Request) -> None:
    secret = request.app[CONFIG].mediaserver.api_secret
    header = request.headers.get("Authorization", "")
    expected = f"Bearer {secret.reveal()}"
    if not secret or not hmac.compare_digest(header.encode(), expected.encode()):
        raise Unauthorized("missing or wrong bearer secret")


def parse_load(body: dict[str, Any]) -> registry.Load:
    """A heartbeat's body; :class:`BadRequest` naming the first wrong field.
    Unknown fields are ignored, so newer nodes can report more."""
    values: dict[str, Any] = {}
    for name in _INTS:
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadRequest(f"{name} must be a whole number, not {value!r:.40}")
        values[name] = value
    for name in _NUMBERS:
        value = body.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BadRequest(f"{name} must be a number, not {value!r:.40}")
        if not math.isfinite(value):
            raise BadRequest(f"{name} must be finite")
        values[name] = float(value)
    draining = body.get("draining")
    if not isinstance(draining, bool):
        raise BadRequest(f"draining must be true or false, not {draining!r:.40}")
    try:
        return registry.Load(draining=draining, **values)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


async def heartbeat(request: web.Request) -> web.Response:
    """Store a node's load (204); a node not in the config is 404."""
    _authorize(request)
    node_id = request.match_info["node_id"]
    if node_id not in request.app[MEDIA_NODES]:
        # the config is the list of nodes rooms may go on (and of the origins
        # the pages' CSP allows): a node cannot add itself
        raise NotFound(f"media node {node_id[:64]!r} is not in [calls] media_nodes")
    load = parse_load(await json_body(request))
    now = datetime.now(UTC)
    if await registry.record_heartbeat(request.app[DB], node_id, load, now):
        log.info("media_node_back", node=node_id)
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


async def sweep(app: web.Application, *, judge: bool = True) -> list[str]:
    """One round: mark silent nodes down (when ``judge``), end their calls,
    refresh the gauges; the nodes this process marked down."""
    db, nodes, now = app[DB], app[MEDIA_NODES], datetime.now(UTC)
    down_after = app[CONFIG].calls.node_down_after_seconds
    lost = await registry.mark_lost(db, down_after, now) if judge else []
    states = await registry.node_states(db, nodes.registry, now)
    nodes.mark(states)  # first: ending the calls then skips the dead node's API
    metrics = app[METRICS]
    for state in states:
        metrics.media_node_rooms.labels(state.node_id).set(state.placed)
        metrics.media_node_capacity.labels(state.node_id).set(state.capacity)
        metrics.media_node_up.labels(state.node_id).set(1 if state.up else 0)
        metrics.media_node_draining.labels(state.node_id).set(int(state.draining))
    for node_id in lost:
        await end_lost_calls(app, node_id)
    return lost


async def end_leftovers(app: web.Application) -> int:
    """End the calls still open on nodes down for :data:`LEFTOVER_SECONDS`: the
    process that marked the node died while ending them, or a call was recorded
    on the node just as it went down. How many."""
    before = datetime.now(UTC) - timedelta(seconds=LEFTOVER_SECONDS)
    ended = 0
    for node_id in await registry.down_since(app[DB], before):
        if node_id in app[MEDIA_NODES]:
            ended += await end_lost_calls(app, node_id, quiet=True)
    return ended


async def end_lost_calls(
    app: web.Application, node_id: str, *, quiet: bool = False
) -> int:
    """End every open call on ``node_id`` as ``media_lost``; how many."""
    rooms = await registry.open_rooms_on(app[DB], app[MEDIA_NODES].registry, node_id)
    limit = asyncio.Semaphore(END_CONCURRENCY)

    async def end(room_id: str) -> None:
        async with limit:
            try:
                await end_call(app, await find_call(app, room_id), _SYSTEM, MEDIA_LOST)
            except Exception:
                log.exception("media_lost_call_not_ended", room_id=room_id)

    await asyncio.gather(*(end(room_id) for room_id in rooms))
    if rooms or not quiet:
        log.warning("media_node_lost", node=node_id, calls=len(rooms))
    return len(rooms)


async def _sweep_forever(app: web.Application) -> None:
    rounds = 0
    down_after = app[CONFIG].calls.node_down_after_seconds
    #: since when this process has watched with the database answering
    watching_since: float | None = None
    while True:
        try:
            started = time.monotonic()
            judge = (
                watching_since is not None and started - watching_since >= down_after
            )
            await sweep(app, judge=judge)
            if watching_since is None:
                watching_since = started
            rounds += 1
            if rounds % FORGET_EVERY == 0:
                await registry.forget_reservations(
                    app[DB], app[MEDIA_NODES].registry, datetime.now(UTC)
                )
                await end_leftovers(app)
        except Exception:
            watching_since = None
            log.exception("media_node_sweep_failed")
        await asyncio.sleep(SWEEP_SECONDS)


async def _watch(app: web.Application) -> AsyncIterator[None]:
    await registry.ensure_nodes(app[DB], app[MEDIA_NODES].registry.ids)
    app[_SWEEP_TASK] = asyncio.create_task(_sweep_forever(app))
    yield
    app[_SWEEP_TASK].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await app[_SWEEP_TASK]


def setup(app: web.Application) -> None:
    """The heartbeat route and the sweep (after the database is set up)."""
    app.router.add_post(PATH, heartbeat)
    app.cleanup_ctx.append(_watch)
