"""Several control-plane processes, one outbox: one lease holder at a time, and
even two drainers racing over the same rows never send one event twice at the
same time (each row is taken by a conditional update first)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from aiohttp import web

from controlplane.base.metrics import Metrics
from controlplane.webhooks import Drainer
from controlplane.webhooks.lease import Lease
from tests.controlplane.sample_requests import add_request
from tests.controlplane.webhooks.receivers import SECRET_KEY, Receiver, integrator
from tests.controlplane.webhooks.test_delivery import FAST, outbox_rows
from tests.helpers import wait_for


async def test_one_holder_at_a_time_and_a_dead_holder_is_replaced(db):
    first, second = Lease(db, "first", 30), Lease(db, "second", 30)
    now = datetime.now(UTC)
    assert await first.hold(now)
    assert not await second.hold(now)
    assert await first.hold(now + timedelta(seconds=10)), "the holder renews"
    assert not await second.hold(now + timedelta(seconds=39))
    # the first stopped renewing (killed): its lease runs out
    assert await second.hold(now + timedelta(seconds=41))
    assert not await first.hold(now + timedelta(seconds=42))
    await second.give_up()
    assert await first.hold(now + timedelta(seconds=43))


async def test_two_drainers_racing_send_each_event_once(db, aiohttp_server):
    in_flight: dict[str, int] = {}
    overlaps: list[str] = []
    receiver = Receiver()

    async def slow(request: web.Request) -> web.Response:
        message_id = request.headers["webhook-id"]
        in_flight[message_id] = in_flight.get(message_id, 0) + 1
        if in_flight[message_id] > 1:
            overlaps.append(message_id)
        await asyncio.sleep(0.05)  # the receiver is slow: tries would overlap
        in_flight[message_id] -= 1
        return await receiver.handle(request)

    app = web.Application()
    app.router.add_post("/hook", slow)
    server = await aiohttp_server(app, host="127.0.0.1")
    key_id, _endpoint, _secret = await integrator(db, str(server.make_url("/hook")))
    for _ in range(12):
        await add_request(db, source="api", api_key_id=key_id)
    one = Drainer(db, FAST, Metrics(), SECRET_KEY)
    two = Drainer(db, FAST, Metrics(), SECRET_KEY)

    async def race() -> bool:
        await asyncio.gather(one.drain_once(), two.drain_once())
        return len(receiver.got) >= 12

    await wait_for(race, 10, "every event delivered")
    ids = [headers["webhook-id"] for headers, _body in receiver.got]
    assert len(ids) == len(set(ids)) == 12
    assert overlaps == []
    assert {r.state for r in await outbox_rows(db)} == {"delivered"}
    await one.close()
    await two.close()
