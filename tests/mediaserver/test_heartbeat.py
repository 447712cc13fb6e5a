"""A media node with ``control_plane_url`` reports itself: at once, then every
``heartbeat_seconds``, with its load and the shared bearer secret, and it keeps
beating through a control plane that fails for a while. The control plane here
is a real HTTP server that records what arrives."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mediaserver.api import ROOMS
from tests.helpers import wait_for
from tests.mediaserver.conftest import API_SECRET, NODE, create_room

PATH = f"/api/internal/media-nodes/{NODE}/heartbeat"


async def test_heartbeats_carry_the_load_and_survive_failures(
    aiohttp_server, make_server
):
    beats: list[tuple[str, dict[str, Any]]] = []
    failing = {"on": False}

    async def receive(request: web.Request) -> web.Response:
        beats.append((request.headers["Authorization"], await request.json()))
        return web.Response(status=500 if failing["on"] else 204)

    app = web.Application()
    app.router.add_post(PATH, receive)
    control_plane = await aiohttp_server(app)

    server = await make_server(
        control_plane_url=str(control_plane.make_url("")),
        heartbeat_seconds=1,
        capacity=7,
    )
    await wait_for(lambda: beats, 5, "the first heartbeat at start")
    auth, first = beats[0]
    assert auth == f"Bearer {API_SECRET}"
    assert first == {
        "capacity": 7,
        "rooms": 0,
        "participants": 0,
        "packets_per_second": 0.0,
        "cpu": 0.0,
        "draining": False,
    }

    await create_room(server, "r1")
    failing["on"] = True
    seen = len(beats)
    await wait_for(lambda: len(beats) >= seen + 2, 5, "beats go on while refused")
    failing["on"] = False
    server.app[ROOMS].draining = True
    seen = len(beats)
    await wait_for(lambda: len(beats) > seen, 5, "the next heartbeat")
    last = beats[-1][1]
    assert (last["rooms"], last["draining"]) == (1, True)
    assert 0 <= last["cpu"] < 5
