"""Rooms on several media nodes: each new room goes to the node with the fewest open
calls, a failing node is skipped, and tokens (``aud``), the browser's media URL and
hanging up follow the node stored with the call, also after a restart. The nodes
are real media servers in-process."""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from beeldbel.config import CallsConfig, MediaNodeConfig
from controlplane.app.factory import create_app
from controlplane.storage.database import DB
from controlplane.storage.schema import call_records
from tests.controlplane.video_calls import (
    JSON,
    MediaServer,
    call_config,
    claims,
    media_room,
    record_of,
    staff_json,
    start_call,
    video_request,
)
from tests.helpers import free_port


def node(node_id: str, server=None) -> MediaNodeConfig:
    """A node entry; without a server, one whose API nobody answers."""
    api = str(server.make_url("")) if server else f"http://127.0.0.1:{free_port()}"
    return MediaNodeConfig(node_id, api, f"wss://{node_id}.test:8444/ws")


def several(make_config, db_url, *nodes: MediaNodeConfig):
    config = call_config(make_config, db_url, "http://127.0.0.1:9")
    return dataclasses.replace(config, calls=CallsConfig(media_nodes=nodes))


async def node_of(client, room_id: str) -> str | None:
    return (await record_of(client, room_id)).media_node


async def test_rooms_go_to_the_node_with_fewest_open_calls(
    aiohttp_client,
    make_config,
    db_url,
    media_server: MediaServer,
):
    servers = {name: await media_server(name) for name in ("m-0", "m-1", "m-2")}
    config = several(make_config, db_url, *(node(n, s) for n, s in servers.items()))
    client = await aiohttp_client(create_app(config))

    # equal loads: config order
    rooms: dict[str, str] = {}
    token = None
    for expected in ("m-0", "m-1", "m-2", "m-0"):
        room_id, token = await start_call(client, token)
        assert await node_of(client, room_id) == expected
        rooms.setdefault(expected, room_id)
        for name, server in servers.items():
            status = await media_room(server, room_id)
            assert status == (200 if name == expected else 404), (name, room_id)

    # hanging up on m-1 makes it the least loaded
    assert token is not None
    ended = await staff_json(client, f"/staff/gesprekken/{rooms['m-1']}/einde", token)
    assert ended.status == 200
    assert await media_room(servers["m-1"], rooms["m-1"]) == 404
    room_id, _ = await start_call(client, token)
    assert await node_of(client, room_id) == "m-1"


async def test_a_failing_node_is_skipped_and_all_failing_is_a_503(
    aiohttp_client,
    make_config,
    db_url,
    media_server: MediaServer,
):
    server = await media_server("m-1")
    config = several(make_config, db_url, node("m-0"), node("m-1", server))
    client = await aiohttp_client(create_app(config))
    room_id, token = await start_call(client)
    assert await node_of(client, room_id) == "m-1"
    assert await media_room(server, room_id) == 200

    await server.close()
    request_id = await video_request(client)
    await client.post(f"/staff/requests/{request_id}/claim", data={"csrf_token": token})
    refused = await client.post(
        f"/staff/requests/{request_id}/video",
        data={"csrf_token": token},
        headers=JSON,
        allow_redirects=False,
    )
    assert refused.status == 503
    assert (await refused.json())["error"]["code"] == "media_unavailable"


async def test_tokens_url_and_hang_up_follow_the_stored_node_after_restart(
    aiohttp_client,
    make_config,
    db_url,
    media_server: MediaServer,
):
    first, second = await media_server("m-0"), await media_server("m-1")
    config = several(make_config, db_url, node("m-0", first), node("m-1", second))
    before = await aiohttp_client(create_app(config))
    kept, token = await start_call(before)
    room_id, token = await start_call(before, token)
    assert await node_of(before, room_id) == "m-1"
    cookies = before.session.cookie_jar.filter_cookies(before.make_url("/"))
    await before.close()

    # a new control-plane process on the same database, the same staff session
    client = await aiohttp_client(create_app(config))
    client.session.cookie_jar.update_cookies(cookies, client.make_url("/"))
    grant = await staff_json(client, f"/staff/gesprekken/{room_id}/token", token)
    assert grant.status == 200, await grant.text()
    body = await grant.json()
    assert body["media_url"] == "wss://m-1.test:8444/ws"
    assert claims(body["token"])["aud"] == "m-1"
    ended = await staff_json(client, f"/staff/gesprekken/{room_id}/einde", token)
    assert ended.status == 200
    assert await media_room(second, room_id) == 404
    assert await media_room(first, kept) == 200


async def test_calls_from_before_nodes_were_stored_are_on_the_first_node(
    aiohttp_client,
    make_config,
    sqlite_url,
    media_server: MediaServer,
):
    first, second = await media_server("m-0"), await media_server("m-1")
    config = several(make_config, sqlite_url, node("m-0", first), node("m-1", second))
    client = await aiohttp_client(create_app(config))
    old, token = await start_call(client)
    async with client.server.app[DB].write() as conn:
        await conn.execute(call_records.update().values(media_node=None))

    # the old call counts for m-0, so the next room goes to m-1
    room_id, token = await start_call(client, token)
    assert await node_of(client, room_id) == "m-1"
    grant = await staff_json(client, f"/staff/gesprekken/{old}/token", token)
    body = await grant.json()
    assert (body["media_url"], claims(body["token"])["aud"]) == (
        "wss://m-0.test:8444/ws",
        "m-0",
    )
    await staff_json(client, f"/staff/gesprekken/{old}/einde", token)
    assert await media_room(first, old) == 404
    async with client.server.app[DB].read() as conn:
        open_calls = await conn.scalar(
            sa.select(sa.func.count()).where(call_records.c.ended_at.is_(None))
        )
    assert open_calls == 1


async def test_csp_allows_every_nodes_websocket(
    aiohttp_client, make_config, sqlite_url
):
    nodes = (
        node("m-0"),
        node("m-1"),
        MediaNodeConfig("m-2", "http://x:1", "wss://m-0.test:8444/other"),
    )
    config = several(make_config, sqlite_url, *nodes)
    client = await aiohttp_client(create_app(config))
    csp = (await client.get("/privacy")).headers["Content-Security-Policy"]
    assert "connect-src 'self' wss://m-0.test:8444 wss://m-1.test:8444;" in csp
