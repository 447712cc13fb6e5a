"""Media nodes that report themselves: the heartbeat endpoint (auth, bad bodies),
placement by capacity, draining and health, atomic across several control-plane
processes on one database, and the per-node gauges. The media nodes are real
media servers in-process."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import TestServer
from prometheus_client import generate_latest

from beeldbel.config import CallsConfig, Config, MediaNodeConfig
from controlplane.app.factory import create_app
from controlplane.base.errors import MediaUnavailable
from controlplane.base.metrics import METRICS
from controlplane.calls import heartbeats
from controlplane.calls import node_registry as registry
from controlplane.calls.placement import MEDIA_NODES, MediaNodes
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import media_nodes
from mediaserver.api import ROOMS
from tests.controlplane.video_calls import (
    API_SECRET,
    MediaServer,
    call_config,
    record_of,
    start_call,
)
from tests.helpers import wait_for

AUTH = {"Authorization": f"Bearer {API_SECRET}"}
IDLE = {
    "capacity": 10,
    "rooms": 0,
    "participants": 0,
    "packets_per_second": 0.0,
    "cpu": 0.01,
    "draining": False,
}


def beat_path(node_id: str) -> str:
    return heartbeats.PATH.format(node_id=node_id)


def configured(
    make_config: Callable[..., Config], db_url: str, servers: dict[str, TestServer]
) -> Config:
    nodes = tuple(
        MediaNodeConfig(name, str(s.make_url("")), f"wss://{name}.test/ws")
        for name, s in servers.items()
    )
    config = call_config(make_config, db_url, "http://127.0.0.1:9")
    return dataclasses.replace(config, calls=CallsConfig(media_nodes=nodes))


def load(**changes) -> registry.Load:
    return registry.Load(**{**IDLE, **changes})


async def test_concurrent_starts_in_four_processes_never_overfill_a_node(
    make_config, db_url, media_server: MediaServer
):
    """40 rooms placed at once by four control planes (each its own engine, as
    separate processes) on two nodes of capacity 10: exactly 10 per node, the
    other 20 starts are refused, and a refused node gives its place back."""
    servers = {name: await media_server(name) for name in ("m-0", "m-1")}
    config = configured(make_config, db_url, servers)
    databases = [Database(db_url) for _ in range(4)]
    await databases[0].migrate()
    planes = [MediaNodes.from_config(config) for _ in databases]
    try:
        await registry.ensure_nodes(databases[0], ("m-0", "m-1"))
        now = datetime.now(UTC)
        for name in servers:
            await registry.record_heartbeat(databases[0], name, load(), now)

        async def place(index: int) -> str:
            db, nodes = databases[index % 4], planes[index % 4]
            try:
                node = await nodes.create_room(
                    db, f"room-{index:04d}-xxxxxxxxxx", "VP8"
                )
            except MediaUnavailable:
                return "refused"
            return node.node_id

        results = await asyncio.gather(*(place(i) for i in range(40)))
        assert results.count("m-0") == 10
        assert results.count("m-1") == 10
        assert results.count("refused") == 20
        for server in servers.values():
            assert len(server.app[ROOMS].rooms) == 10

        # a place is given back when the node refuses the room
        freed = f"room-{results.index('m-0'):04d}-xxxxxxxxxx"
        await registry.cancel(databases[0], freed)
        await servers["m-0"].close()
        states = await registry.node_states(databases[1], planes[1].registry, now)
        assert [s.placed for s in states] == [9, 10]
        with pytest.raises(MediaUnavailable):
            await planes[1].create_room(databases[1], "room-again-xxxxxxxxx", "VP8")
        states = await registry.node_states(databases[1], planes[1].registry, now)
        assert [s.placed for s in states] == [9, 10], "refused: place given back"
    finally:
        for db in databases:
            await db.close()
        for nodes in planes:
            await nodes.close()


async def test_draining_and_down_nodes_get_no_rooms(sqlite_db, make_config):
    nodes = registry.Nodes(("m-0", "m-1", "m-2"), reservation_seconds=60)
    await registry.ensure_nodes(sqlite_db, nodes.ids)
    now = datetime.now(UTC)
    await registry.record_heartbeat(sqlite_db, "m-0", load(draining=True), now)
    await registry.record_heartbeat(
        sqlite_db, "m-1", load(), now - timedelta(seconds=11)
    )
    # m-2 never sent a heartbeat: up, not watched, placed on (as without heartbeats)
    assert await registry.mark_lost(sqlite_db, 10, now) == ["m-1"]
    assert await registry.mark_lost(sqlite_db, 10, now) == [], "marked once only"
    states = await registry.node_states(sqlite_db, nodes, now)
    assert [s.node_id for s in registry.placement_order(states)] == ["m-2"]
    assert not await registry.reserve(sqlite_db, nodes, "m-0", "r-draining", now)
    assert not await registry.reserve(sqlite_db, nodes, "m-1", "r-down", now)
    assert await registry.reserve(sqlite_db, nodes, "m-2", "r-fine", now)

    # a heartbeat brings a down node back; a busy CPU puts it last
    assert await registry.record_heartbeat(sqlite_db, "m-1", load(cpu=0.9), now)
    states = await registry.node_states(sqlite_db, nodes, now)
    assert [s.node_id for s in registry.placement_order(states)] == ["m-2", "m-1"]

    # an expired reservation no longer counts
    later = now + timedelta(seconds=61)
    states = await registry.node_states(sqlite_db, nodes, later)
    assert [s.placed for s in states] == [0, 0, 0]
    assert await registry.forget_reservations(sqlite_db, nodes, later) == 1


async def test_heartbeat_endpoint(aiohttp_client, make_config, db_url, media_server):
    servers = {name: await media_server(name) for name in ("m-0", "m-1")}
    client = await aiohttp_client(create_app(configured(make_config, db_url, servers)))

    wrong = await client.post(
        beat_path("m-0"), json=IDLE, headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status == 401
    assert (await client.post(beat_path("m-0"), json=IDLE)).status == 401
    unknown = await client.post(beat_path("m-9"), json=IDLE, headers=AUTH)
    assert unknown.status == 404
    assert "m-9" in (await unknown.json())["error"]["message"]

    bad_bodies = [
        ({**IDLE, "rooms": "3"}, "rooms"),
        ({**IDLE, "rooms": True}, "rooms"),
        ({**IDLE, "rooms": -1}, "rooms"),
        ({**IDLE, "capacity": 0}, "capacity"),
        ({k: v for k, v in IDLE.items() if k != "cpu"}, "cpu"),
        ({**IDLE, "cpu": 1e300}, "cpu"),
        ({**IDLE, "packets_per_second": None}, "packets_per_second"),
        ({**IDLE, "draining": "no"}, "draining"),
        ([1, 2], "JSON object"),
    ]
    for body, field in bad_bodies:
        response = await client.post(beat_path("m-0"), json=body, headers=AUTH)
        assert response.status == 400, body
        assert field in (await response.json())["error"]["message"], body
    garbage = await client.post(
        beat_path("m-0"),
        data=b"{nope",
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert garbage.status == 400

    body = {**IDLE, "capacity": 7, "rooms": 2, "participants": 3, "extra": 1}
    good = await client.post(beat_path("m-0"), json=body, headers=AUTH)
    assert good.status == 204
    app = client.server.app
    await heartbeats.sweep(app)
    states = await registry.node_states(
        app[DB], app[MEDIA_NODES].registry, datetime.now(UTC)
    )
    assert [(s.node_id, s.capacity, s.watched) for s in states] == [
        ("m-0", 7, True),
        ("m-1", 100, False),
    ]
    scrape = generate_latest(app[METRICS].registry).decode()
    assert 'beeldbel_media_node_capacity{node="m-0"} 7.0' in scrape
    assert 'beeldbel_media_node_up{node="m-1"} 1.0' in scrape
    assert 'beeldbel_media_node_rooms{node="m-0"} 0.0' in scrape


async def test_calls_left_on_a_node_long_down_are_ended(
    aiohttp_client, make_config, sqlite_url, media_server
):
    """A call still open on a node that went down over a minute ago (the process
    that marked it died while ending its calls) is ended by the next round."""
    servers = {name: await media_server(name) for name in ("m-0", "m-1")}
    config = configured(make_config, sqlite_url, servers)
    client = await aiohttp_client(create_app(config))
    room_id, _token = await start_call(client)
    assert (await record_of(client, room_id)).media_node == "m-0"
    db = client.server.app[DB]
    async with db.write() as conn:
        await conn.execute(
            media_nodes.update()
            .where(media_nodes.c.node_id == "m-0")
            .values(
                state="down",
                state_changed_at=datetime.now(UTC) - timedelta(seconds=61),
            )
        )
    assert await heartbeats.end_leftovers(client.server.app) == 1
    record = await record_of(client, room_id)
    assert record.outcome == "media_lost"
    assert await heartbeats.end_leftovers(client.server.app) == 0


async def test_a_restarted_control_plane_does_not_end_the_calls_of_live_nodes(
    aiohttp_client, make_config, sqlite_url, media_server
):
    """No control plane stored heartbeats for a minute (all restarted, or the
    database was away), so every node's last heartbeat is old. A fresh process
    first watches for node_down_after_seconds: a node that beats again keeps its
    call; one that stays silent is marked down after that."""
    servers = {name: await media_server(name) for name in ("m-0", "m-1")}
    config = configured(make_config, sqlite_url, servers)
    config = dataclasses.replace(
        config, calls=dataclasses.replace(config.calls, node_down_after_seconds=3)
    )
    first = await aiohttp_client(create_app(config))
    room_id, _token = await start_call(first)
    assert (await record_of(first, room_id)).media_node == "m-0"
    for node in ("m-0", "m-1"):
        beat = await first.post(beat_path(node), json=IDLE, headers=AUTH)
        assert beat.status == 204
    await first.close()
    db = Database(sqlite_url)
    async with db.write() as conn:
        await conn.execute(
            media_nodes.update().values(
                last_seen=datetime.now(UTC) - timedelta(seconds=60)
            )
        )
    await db.close()

    restarted = await aiohttp_client(create_app(config))
    gauges = restarted.server.app[METRICS].registry

    def swept() -> bool:
        return (
            gauges.get_sample_value("beeldbel_media_node_up", {"node": "m-0"})
            is not None
        )

    # its first round runs before any heartbeat reaches it, as after a restart
    await wait_for(swept, 10, "the restarted process never swept")

    async def silent_node_marked_down() -> bool:
        # m-0 is alive and beats, as a real node does every few seconds
        beat = await restarted.post(beat_path("m-0"), json=IDLE, headers=AUTH)
        assert beat.status == 204
        up = gauges.get_sample_value("beeldbel_media_node_up", {"node": "m-1"})
        return bool(up == 0)

    await wait_for(silent_node_marked_down, 30, "m-1 never marked down", 0.5)
    assert gauges.get_sample_value("beeldbel_media_node_up", {"node": "m-0"}) == 1
    record = await record_of(restarted, room_id)
    assert record.ended_at is None, record.outcome


async def test_a_start_that_fails_before_its_record_gives_its_place_back(
    aiohttp_client, make_config, sqlite_url, media_server
):
    """The room was made, then the queue step failed (e.g. the request was
    cancelled meanwhile): the room goes and so does its place on the node, at
    once rather than when the reservation expires."""
    from controlplane.calls.rooms import open_room
    from controlplane.storage.schema import room_reservations

    servers = {name: await media_server(name) for name in ("m-0",)}
    client = await aiohttp_client(
        create_app(configured(make_config, sqlite_url, servers))
    )
    app = client.server.app

    async def refused() -> None:
        raise MediaUnavailable("calls_media_unavailable")

    with pytest.raises(MediaUnavailable):
        await open_room(app, 1, user_id=None, username="agent", before_record=refused)
    async with app[DB].read() as conn:
        left = (await conn.execute(room_reservations.select())).all()
    assert left == []
    assert servers["m-0"].app[ROOMS].rooms == {}
