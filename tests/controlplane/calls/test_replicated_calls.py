"""Two control-plane processes (two real apps) on one database and one real Redis:
a call's news, its link to copy and its waiting-room message are the same on
both, and an event stream that reconnects to the other process resumes after
its ``Last-Event-ID`` with nothing lost and nothing repeated."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from typing import Any

import pytest

from beeldbel.config import RedisConfig
from controlplane.app.factory import create_app
from controlplane.base.bus import BUS, RedisBus
from controlplane.base.metrics import METRICS
from tests.controlplane.video_calls import Guest, call_config, start_call
from tests.helpers import wait_for

_LINK = re.compile(r'(https?://[^"<\s]+/gesprek#t=[A-Za-z0-9_-]+)')
SSE = {"Accept": "text/event-stream"}


async def next_event(response: Any) -> tuple[int, str, dict[str, Any]]:
    """The next numbered event on a stream: (id, event, data)."""
    seq, event, data = 0, "", ""
    while True:
        line = await asyncio.wait_for(response.content.readline(), 20)
        assert line, "the event stream ended"
        text = line.decode().rstrip("\n")
        if text.startswith("id:"):
            seq = int(text[3:])
        elif text.startswith("event:"):
            event = text[6:].strip()
        elif text.startswith("data:"):
            data = text[5:].strip()
        elif not text and event:
            return seq, event, json.loads(data)


@pytest.fixture
async def replicas(aiohttp_client, make_config, db_url, media, redis_url):
    """Replica A and B: the same config (database, Redis), each its own app."""
    config = dataclasses.replace(
        call_config(make_config, db_url, str(media.make_url(""))),
        redis=RedisConfig(url=redis_url),
    )
    a = await aiohttp_client(create_app(config))
    b = await aiohttp_client(create_app(config))
    for client in (a, b):
        bus = client.app[BUS]
        assert isinstance(bus, RedisBus)
        await wait_for(bus.connected.is_set, 10, "the bus never reached Redis")
    return a, b


async def test_call_news_and_live_state_cross_replicas_and_streams_resume(replicas):
    a, b = replicas
    room_id, token = await start_call(a)
    # the employee's session is in the database: B knows it too
    b.session.cookie_jar.update_cookies(
        a.session.cookie_jar.filter_cookies(a.make_url("/"))
    )

    # the link to copy, made on A, is on the call page that B renders
    page = await b.get(f"/staff/gesprekken/{room_id}")
    assert page.status == 200
    match = _LINK.search(await page.text())
    assert match, "B's call page has no link to copy"

    stream_b = await b.get(f"/staff/gesprekken/{room_id}/events", headers=SSE)
    assert stream_b.status == 200
    citizen = Guest(a)
    try:
        assert (await citizen.open(match.group(1))).status == 200
        # the call page's first status poll marks the link opened
        assert (await citizen.get("/gesprek/status")).status == 200
        seq, event, data = await next_event(stream_b)
        assert (event, data["role"]) == ("link_opened", "citizen")
        # the link was opened: B's page no longer offers it
        assert (
            match.group(1)
            not in await (await b.get(f"/staff/gesprekken/{room_id}")).text()
        )

        # a waiting-room message set on B reaches the citizen's status on A
        said = await b.post(
            f"/staff/gesprekken/{room_id}/bericht",
            json={"text": "Even geduld"},
            headers={"X-CSRF-Token": token, "Accept": "application/json"},
        )
        assert said.status == 204, await said.text()
        status = await (await citizen.get("/gesprek/status")).json()
        assert status == {"ended": False, "outcome": None, "message": "Even geduld"}

        # progress through A, live on B's stream, numbered
        steps = ["device_check_passed", "waiting", "in_call"]
        for step in steps[:1]:
            assert (
                await citizen.post("/gesprek/voortgang", {"step": step})
            ).status == 204
        seen, event, data = await next_event(stream_b)
        assert (event, data["step"]) == ("progress", steps[0])
        assert seen > seq
        stream_b.close()

        # while nobody listens, more happens (through B this time)
        for step in steps[1:]:
            citizen_b = citizen.session  # same browser, other replica's address
            sent = await citizen_b.post(
                b.make_url("/gesprek/voortgang"),
                json={"step": step},
                headers={"X-CSRF-Token": citizen.csrf, "Accept": "application/json"},
            )
            assert sent.status == 204, await sent.text()

        # the page reconnects to A with Last-Event-ID: exactly what it missed
        stream_a = await a.get(
            f"/staff/gesprekken/{room_id}/events",
            headers={**SSE, "Last-Event-ID": str(seen)},
        )
        got = [await next_event(stream_a) for _ in steps[1:]]
        assert [d["step"] for _s, _e, d in got] == steps[1:]
        assert [s for s, _e, _d in got] == [seen + 1, seen + 2]
        stream_a.close()
    finally:
        await citizen.close()


async def test_the_citizen_link_is_opened_once_over_both_replicas(replicas):
    """Both replicas race to mark the link opened: the employee hears it once."""
    a, b = replicas
    room_id, _token = await start_call(a)
    calls_a, calls_b = (client.app[calls_key()] for client in (a, b))
    firsts = await asyncio.gather(
        *(calls.mark_opened(room_id) for calls in [calls_a, calls_b] * 5)
    )
    assert sum(firsts) == 1


async def test_the_bus_wakes_every_listener_when_its_redis_connection_comes_back(
    replicas, redis_url
):
    import redis.asyncio as redis

    a, _b = replicas
    bus = a.app[BUS]
    assert isinstance(bus, RedisBus)
    async with bus.subscribe("queue") as inbox:
        admin = redis.Redis.from_url(redis_url)
        try:
            await admin.client_kill_filter(_type="pubsub")
        finally:
            await admin.aclose()
        notice = await asyncio.wait_for(inbox.get(), 20)
        assert notice == "resync"
    await wait_for(bus.connected.is_set, 10, "the bus did not reconnect")
    gauge = a.app[METRICS].registry.get_sample_value("beeldbel_event_bus_connected")
    assert gauge == 1.0


async def test_the_bus_gauge_drops_while_redis_is_away(
    aiohttp_client, make_config, sqlite_url
):
    from tests.helpers import free_port

    # nothing listens there: the bus keeps trying and says so
    config = dataclasses.replace(
        make_config(sqlite_url),
        redis=RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0"),
    )
    client = await aiohttp_client(create_app(config))
    registry = client.app[METRICS].registry
    assert registry.get_sample_value("beeldbel_event_bus_connected") == 0.0
    assert registry.get_sample_value("process_cpu_seconds_total") is not None


def calls_key() -> Any:
    from controlplane.calls.live_state import CALLS

    return CALLS
