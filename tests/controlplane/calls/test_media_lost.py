"""A media node that dies is found out by its missing heartbeats: its calls end as
``media_lost``, the employee's call page hears it within 15 s, and the next call
goes to another node. The lost node is a real media server process (killed with
SIGKILL), with the default heartbeat and down times."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import time
from datetime import UTC, datetime

from beeldbel.config import CallsConfig, MediaNodeConfig
from controlplane.app.factory import create_app
from controlplane.calls import node_registry as registry
from controlplane.calls.placement import MEDIA_NODES
from controlplane.storage.database import DB
from tests.controlplane.video_calls import (
    API_SECRET,
    MediaServer,
    call_config,
    record_of,
    start_call,
)
from tests.helpers import free_port, read_event, wait_for

#: What the issue promises the employee.
TOLD_WITHIN = 15.0


async def media_process(
    port: int, control_plane_url: str
) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "BEELDBEL_MEDIASERVER_NODE_ID": "m-0",
        "BEELDBEL_MEDIASERVER_PORT": str(port),
        "BEELDBEL_MEDIASERVER_UDP_PORT": "0",
        "BEELDBEL_MEDIASERVER_API_SECRET": API_SECRET,
        "BEELDBEL_MEDIASERVER_JWKS_URL": "https://127.0.0.1:9/jwks.json",
        "BEELDBEL_MEDIASERVER_CONTROL_PLANE_URL": control_plane_url,
        "BEELDBEL_LOGGING_FORMAT": "json",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediaserver",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def test_a_killed_node_ends_its_calls_and_the_agent_is_told(
    aiohttp_client, make_config, db_url, media_server: MediaServer
):
    port = free_port()
    spare = await media_server("m-1")  # never heartbeats: up, not watched
    nodes = (
        MediaNodeConfig("m-0", f"http://127.0.0.1:{port}", "wss://m-0.test/ws"),
        MediaNodeConfig("m-1", str(spare.make_url("")), "wss://m-1.test/ws"),
    )
    config = call_config(make_config, db_url, "http://127.0.0.1:9")
    config = dataclasses.replace(config, calls=CallsConfig(media_nodes=nodes))
    client = await aiohttp_client(create_app(config))
    app = client.server.app
    process = await media_process(port, str(client.make_url("")))
    try:

        async def m0_watched() -> bool:
            states = await registry.node_states(
                app[DB], app[MEDIA_NODES].registry, datetime.now(UTC)
            )
            return states[0].watched and states[0].up

        await wait_for(m0_watched, 20, "m-0's first heartbeat")
        room_id, token = await start_call(client)
        assert (await record_of(client, room_id)).media_node == "m-0"
        page = await (await client.get(f"/staff/gesprekken/{room_id}")).text()
        # the texts the page shows when the 'ended' event says media_lost
        assert "De mediaserver is weggevallen. Start het gesprek opnieuw" in page
        assert "Mediaserver weggevallen: start het gesprek opnieuw" in page
        events = await client.get(
            f"/staff/gesprekken/{room_id}/events",
            headers={"Accept": "text/event-stream"},
        )
        assert events.status == 200

        process.kill()
        killed = time.monotonic()
        await process.wait()
        ended = await asyncio.wait_for(read_event(events, "ended"), TOLD_WITHIN)
        told_after = time.monotonic() - killed
        assert ended["outcome"] == "media_lost"
        assert told_after < TOLD_WITHIN, told_after
        record = await record_of(client, room_id)
        assert record.outcome == "media_lost"
        assert record.ended_at is not None

        next_room, _ = await start_call(client, token)
        assert (await record_of(client, next_room)).media_node == "m-1"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
