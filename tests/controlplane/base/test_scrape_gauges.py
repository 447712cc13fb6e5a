"""The gauges the alert rules watch (issue 12): the oldest wait in the queue,
whether the desk is open, staff online (read from the database at each scrape),
when the purge last ran, and media nodes that drain. Real app, real SQLite."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from beeldbel.config import WEEKDAYS, DeskConfig
from controlplane.app.factory import create_app
from controlplane.base.metrics import METRICS, Metrics
from controlplane.calls import heartbeats
from controlplane.requests import DESK, refresh_desk_gauges
from controlplane.storage.database import DB
from tests.controlplane.calls.test_node_registry import AUTH, IDLE, configured
from tests.controlplane.sample_requests import add_request
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import wait_for

ALWAYS_OPEN = DeskConfig(opening_hours=dict.fromkeys(WEEKDAYS, "00:00-24:00"))


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


async def test_oldest_wait_open_desk_and_staff_online(
    aiohttp_client, make_config, db_url
):
    metrics = Metrics()
    config = make_config(db_url, desk=ALWAYS_OPEN)
    client = await aiohttp_client(create_app(config, metrics=metrics))
    app = client.server.app
    idle = config.security.session_idle_minutes

    await refresh_desk_gauges(app[DB], metrics, app[DESK].current, idle)
    assert value(metrics, "beeldbel_callback_oldest_wait_seconds") == 0
    assert value(metrics, "beeldbel_desk_open") == 1
    assert value(metrics, "beeldbel_staff_online") == 0

    await add_request(app[DB])  # due at once ("asap")
    await sign_in(client)
    later = datetime.now(UTC) + timedelta(minutes=10)
    await refresh_desk_gauges(app[DB], metrics, app[DESK].current, idle, later)
    waited = value(metrics, "beeldbel_callback_oldest_wait_seconds")
    assert waited is not None
    assert 590 < waited < 700
    assert value(metrics, "beeldbel_staff_online") == 1

    # a session idle longer than the limit is no longer online
    much_later = later + timedelta(minutes=idle)
    closed = DeskConfig(opening_hours={})
    await refresh_desk_gauges(app[DB], metrics, closed, idle, much_later)
    assert value(metrics, "beeldbel_staff_online") == 0
    assert value(metrics, "beeldbel_desk_open") == 0


async def test_the_purge_stamps_its_last_run(aiohttp_client, make_config, sqlite_url):
    before = time.time()
    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    metrics = client.server.app[METRICS]

    def stamped() -> bool:
        last = value(metrics, "beeldbel_retention_last_run_timestamp_seconds")
        return last is not None and last >= before

    await wait_for(stamped, message="the purge at start never stamped its run")


async def test_a_draining_node_is_shown(
    aiohttp_client, make_config, sqlite_url, media_server
):
    servers = {name: await media_server(name) for name in ("m-0", "m-1")}
    config = configured(make_config, sqlite_url, servers)
    client = await aiohttp_client(create_app(config))
    beat = heartbeats.PATH.format(node_id="m-0")
    drains = await client.post(beat, json={**IDLE, "draining": True}, headers=AUTH)
    assert drains.status == 204
    app = client.server.app
    await heartbeats.sweep(app)
    metrics = app[METRICS]
    assert value(metrics, "beeldbel_media_node_draining", node="m-0") == 1
    assert value(metrics, "beeldbel_media_node_draining", node="m-1") == 0
