"""The webhook outbox survives ``kill -9`` (issue 13): a real ``python -m
controlplane`` process commits a request made over the API, starts to deliver
its event to a receiver in this test, and is SIGKILLed while the receiver still
holds that delivery unanswered. After a restart the event arrives again, is
acknowledged once, and nothing more is sent. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import sqlalchemy as sa
from aiohttp import web

from controlplane.storage.schema import webhook_outbox
from tests.controlplane.sample_requests import VALID
from tests.controlplane.storage.test_durability import ControlPlane, _free_ports
from tests.controlplane.webhooks.receivers import SECRET_KEY, integrator_with_key
from tests.helpers import wait_for

pytestmark = pytest.mark.slow


class HoldingReceiver:
    """Holds the first delivery unanswered until released; answers 200 after."""

    def __init__(self) -> None:
        self.arrivals: list[str] = []
        self.acknowledged: list[str] = []
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        await request.read()
        message_id = request.headers["webhook-id"]
        self.arrivals.append(message_id)
        if len(self.arrivals) == 1:
            await self.release.wait()
            return web.Response(status=200)
        self.acknowledged.append(message_id)
        return web.Response(status=200)


async def outbox_states(db) -> list[tuple[str, str]]:
    async with db.read() as conn:
        rows = await conn.execute(
            sa.select(webhook_outbox.c.event_type, webhook_outbox.c.state)
        )
        return [(str(t), str(s)) for t, s in rows]


async def test_an_event_outlives_a_killed_control_plane(
    db, db_url, tmp_path: Path, aiohttp_server
):
    receiver = HoldingReceiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    server = await aiohttp_server(app, host="127.0.0.1")
    key, _key_id, _endpoint, _secret = await integrator_with_key(
        db, str(server.make_url("/hook")), ("callback.created",)
    )
    base_url = f"http://127.0.0.1:{_free_ports(1)[0]}"
    toml = _config(tmp_path, base_url)
    env = {"PATH": "/usr/bin:/bin", "BEELDBEL_DATABASE_URL": db_url}
    plane = ControlPlane(toml, env, tmp_path / "controlplane.log")
    try:
        await plane.start(base_url)
        async with aiohttp.ClientSession() as session:
            response = await session.post(
                f"{base_url}/api/v1/callbacks",
                json=VALID,
                headers={"Authorization": f"Bearer {key}"},
            )
            assert response.status == 201, await response.text()
        await wait_for(lambda: receiver.arrivals, 10, "the first delivery")
        await plane.kill()  # mid-delivery: the receiver has not answered
        receiver.release.set()
        assert await outbox_states(db) == [("callback.created", "pending")]

        await plane.start(base_url)

        async def delivered() -> bool:
            return await outbox_states(db) == [("callback.created", "delivered")]

        await wait_for(delivered, 30, "the event delivered after the restart")
    finally:
        await plane.stop()
    assert len(receiver.acknowledged) == 1, "acknowledged once"
    assert len(set(receiver.arrivals)) == 1, "the same message both times"
    assert len(receiver.arrivals) == 2
    assert VALID["name"] not in json.dumps(receiver.arrivals)


def _config(tmp_path: Path, base_url: str, name: str = "beeldbel") -> Path:
    """A control plane's config at ``base_url``: webhooks to loopback allowed,
    short timeout, lease and backoff; the secret key the tests seal with."""
    port = base_url.rsplit(":", 1)[1]
    toml = tmp_path / f"{name}.toml"
    toml.write_text(
        f'[server]\nport = {port}\npublic_url = "{base_url}"\n'
        f'data_dir = "{tmp_path / name}"\n'
        f"[tls]\nenabled = false\n[metrics]\nport = 0\n"
        f'[security]\nsecret_key = "{SECRET_KEY.decode()}"\n'
        "[webhooks]\nallow_private_addresses = true\ntimeout_seconds = 5\n"
        "lease_seconds = 6\npoll_ms = 50\nretry_base_ms = 50\n"
    )
    return toml


async def test_two_control_planes_send_each_event_once(
    db, db_url, tmp_path: Path, aiohttp_server
):
    """Both processes drain one outbox: every event is acknowledged once, and no
    event is ever being sent by both at the same time."""
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []
    acknowledged: list[str] = []

    async def slow(request: web.Request) -> web.Response:
        message_id = request.headers["webhook-id"]
        in_flight[message_id] = in_flight.get(message_id, 0) + 1
        if in_flight[message_id] > 1:
            overlaps.append(message_id)
        await asyncio.sleep(0.05)  # a slow receiver: tries would overlap
        in_flight[message_id] -= 1
        acknowledged.append(message_id)
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", slow)
    server = await aiohttp_server(app, host="127.0.0.1")
    key, _key_id, _endpoint, _secret = await integrator_with_key(
        db, str(server.make_url("/hook"))
    )
    env = {"PATH": "/usr/bin:/bin", "BEELDBEL_DATABASE_URL": db_url}
    urls = [f"http://127.0.0.1:{port}" for port in _free_ports(2)]
    planes = [
        ControlPlane(_config(tmp_path, url, f"cp{i}"), env, tmp_path / f"cp{i}.log")
        for i, url in enumerate(urls)
    ]
    try:
        for plane, url in zip(planes, urls, strict=True):
            await plane.start(url)
        async with aiohttp.ClientSession() as session:
            for i in range(10):
                response = await session.post(
                    f"{urls[i % 2]}/api/v1/callbacks",
                    json=VALID,
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status == 201, await response.text()

        async def all_delivered() -> bool:
            states = await outbox_states(db)
            return len(states) == 10 and {s for _t, s in states} == {"delivered"}

        await wait_for(all_delivered, 30, "every event delivered")
    finally:
        for plane in planes:
            await plane.stop()
    assert overlaps == []
    assert len(acknowledged) == len(set(acknowledged)) == 10
