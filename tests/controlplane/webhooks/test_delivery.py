"""Delivery of the outbox to a real receiver on loopback, on SQLite and
PostgreSQL: signed so standardwebhooks' own ``Webhook.verify`` accepts it,
retried with backoff, dead-lettered and replayed, in order per request."""

from __future__ import annotations

import dataclasses
import json
import ssl
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
import trustme
from standardwebhooks.webhooks import Webhook

from beeldbel.config import WebhooksConfig
from controlplane.base.metrics import Metrics
from controlplane.requests import claim, start_attempt
from controlplane.storage.schema import webhook_outbox
from controlplane.webhooks import (
    Drainer,
    dead_letters,
    depth,
    replay,
    rotate_secret,
)
from controlplane.webhooks.outbox import prune
from tests.controlplane.requests.test_queue import add_user
from tests.controlplane.sample_requests import NAME, add_request
from tests.controlplane.webhooks.receivers import (
    SECRET_KEY,
    Receiver,
    integrator,
    start,
)
from tests.helpers import wait_for

FAST = WebhooksConfig(
    retry_base_ms=10,
    poll_ms=10,
    allow_private_addresses=True,
    timeout_seconds=2,
    lease_seconds=5,
)


def drainer(db, config: WebhooksConfig = FAST, metrics: Metrics | None = None):
    return Drainer(db, config, metrics or Metrics(), SECRET_KEY)


async def drain_until(d: Drainer, done: Callable[[], object]) -> None:
    async def round_then_check() -> object:
        await d.drain_once()
        return done()

    await wait_for(round_then_check, 10, "the outbox to be delivered")


async def outbox_rows(db) -> list[Any]:
    async with db.read() as conn:
        query = sa.select(webhook_outbox).order_by(webhook_outbox.c.id)
        return list((await conn.execute(query)).all())


async def test_an_api_request_is_told_signed_and_without_personal_data(
    db, aiohttp_server
):
    receiver = await start(aiohttp_server, Receiver())
    key_id, _endpoint, secret = await integrator(db, receiver.url)
    _rid, reference = await add_request(
        db, source="api", api_key_id=key_id, email="jan@example.nl"
    )
    metrics = Metrics()
    d = drainer(db, metrics=metrics)
    await drain_until(d, lambda: receiver.got)
    headers, body = receiver.got[0]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "callback.created"
    assert event["data"]["reference"] == reference
    assert event["data"]["state"] == "new"
    for personal in (NAME, "+31612345678", "612345678", "jan@example.nl"):
        assert personal not in body.decode()
    rows = await outbox_rows(db)
    assert [r.state for r in rows] == ["delivered"]
    assert metrics.webhook_deliveries.labels("delivered")._value.get() == 1
    await d.close()


async def test_requests_without_an_api_key_are_told_to_nobody(db, aiohttp_server):
    receiver = await start(aiohttp_server, Receiver())
    await integrator(db, receiver.url)
    await add_request(db, source="web")
    assert await outbox_rows(db) == []


async def test_a_receiver_failing_three_times_gets_it_on_the_fourth_try(
    db, aiohttp_server
):
    receiver = await start(aiohttp_server, Receiver((500, 500, 500, 200)))
    key_id, _endpoint, _secret = await integrator(db, receiver.url)
    await add_request(db, source="api", api_key_id=key_id)
    d = drainer(db)
    await drain_until(d, lambda: len(receiver.got) == 4)
    rows = await outbox_rows(db)
    assert [(r.state, r.attempts) for r in rows] == [("delivered", 4)]
    ids = {headers["webhook-id"] for headers, _body in receiver.got}
    assert len(ids) == 1, "every retry carries the same message id"
    await d.close()


async def test_dead_letter_after_the_give_up_time_and_replay(db, aiohttp_server):
    receiver = await start(aiohttp_server, Receiver((503,)))
    key_id, endpoint, _secret = await integrator(db, receiver.url)
    await add_request(db, source="api", api_key_id=key_id)
    config = dataclasses.replace(FAST, retry_base_ms=50, give_up_after_seconds=1)
    metrics = Metrics()
    d = drainer(db, config, metrics)

    async def dead() -> bool:
        return bool(await dead_letters(db))

    await wait_for(_drained_to(d, dead), 10, "the event to be dead-lettered")
    [letter] = await dead_letters(db)
    assert letter.last_error == "503"
    assert (await depth(db)).dead == 1
    assert metrics.webhook_deliveries.labels("dead_lettered")._value.get() == 1
    tries = len(receiver.got)
    receiver.statuses = (200,)
    assert await replay(db, endpoint.id) == 1
    await drain_until(d, lambda: len(receiver.got) == tries + 1)
    assert [r.state for r in await outbox_rows(db)] == ["delivered"]
    await d.close()


def _drained_to(d: Drainer, check: Callable[[], Any]) -> Callable[[], Any]:
    async def round_then_check() -> object:
        await d.drain_once()
        return await check()

    return round_then_check


async def test_events_of_one_request_arrive_in_order(db, aiohttp_server):
    """The first event fails once; the later ones wait for it."""
    receiver = await start(aiohttp_server, Receiver((500, 200)))
    key_id, _endpoint, _secret = await integrator(db, receiver.url)
    rid, _ref = await add_request(db, source="api", api_key_id=key_id)
    actor = await add_user(db, "agent1")
    await claim(db, rid, actor)
    await start_attempt(db, Metrics(), rid, actor)
    d = drainer(db)
    await drain_until(d, lambda: len(receiver.got) == 4)
    assert receiver.types() == [
        "callback.created",
        "callback.created",
        "callback.claimed",
        "callback.attempted",
    ]
    await d.close()


async def test_during_a_rotation_both_secrets_sign(db, aiohttp_server):
    receiver = await start(aiohttp_server, Receiver())
    key_id, endpoint, old = await integrator(db, receiver.url)
    new = await rotate_secret(db, SECRET_KEY, endpoint.id, overlap_hours=1)
    await add_request(db, source="api", api_key_id=key_id)
    d = drainer(db)
    await drain_until(d, lambda: receiver.got)
    headers, body = receiver.got[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert json.loads(body) == Webhook(secret).verify(body, headers)
    await d.close()


async def test_https_to_a_receiver_whose_certificate_is_trusted(db, aiohttp_server):
    """Over TLS, as in production: the certificate is checked (a trustme CA)."""
    ca = trustme.CA()
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_tls)
    receiver = Receiver()
    receiver.server = await aiohttp_server(
        receiver.app(), host="127.0.0.1", ssl=server_tls
    )
    url = receiver.url.replace("http://", "https://")
    key_id, _endpoint, secret = await integrator(db, url)
    await add_request(db, source="api", api_key_id=key_id)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)
    d = Drainer(db, FAST, Metrics(), SECRET_KEY, ssl_context=client_tls)
    await drain_until(d, lambda: receiver.got)
    headers, body = receiver.got[0]
    assert Webhook(secret).verify(body, headers)["type"] == "callback.created"
    await d.close()

    untrusting = Drainer(db, FAST, Metrics(), SECRET_KEY)
    await add_request(db, source="api", api_key_id=key_id)
    await untrusting.drain_once()
    assert len(receiver.got) == 1, "an untrusted certificate gets nothing"
    assert (await outbox_rows(db))[-1].last_error == "connection_failed"
    await untrusting.close()


async def test_delivered_rows_are_pruned_after_a_week(db, aiohttp_server):
    receiver = await start(aiohttp_server, Receiver())
    key_id, _endpoint, _secret = await integrator(db, receiver.url)
    await add_request(db, source="api", api_key_id=key_id)
    d = drainer(db)
    await drain_until(d, lambda: receiver.got)
    await add_request(db, source="api", api_key_id=key_id)  # still pending
    assert await prune(db, datetime.now(UTC) + timedelta(days=6)) == 0
    assert await prune(db, datetime.now(UTC) + timedelta(days=8)) == 1
    assert [r.state for r in await outbox_rows(db)] == ["pending"]
    await d.close()


async def test_the_gauges_tell_depth_and_the_oldest_wait(db, aiohttp_server):
    receiver = await start(aiohttp_server, Receiver((503, 200)))
    key_id, _endpoint, _secret = await integrator(db, receiver.url)
    await add_request(db, source="api", api_key_id=key_id)
    metrics = Metrics()
    d = drainer(db, metrics=metrics)
    assert await d.refresh_gauges() == 1
    assert metrics.webhook_outbox.labels("pending")._value.get() == 1
    assert metrics.webhook_oldest_pending._value.get() > 0
    await drain_until(d, lambda: len(receiver.got) == 2)
    assert await d.refresh_gauges() == 0
    assert metrics.webhook_oldest_pending._value.get() == 0
    assert metrics.webhook_deliveries.labels("retried")._value.get() == 1
    assert metrics.webhook_delivery_duration._sum.get() > 0
    await d.close()
