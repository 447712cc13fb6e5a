"""Every way a request of an API key closes queues its event in the closing
transaction: completed, no answer after the last attempt (told as completed,
state no_answer), cancelled by the desk, the citizen or the integrator, expired."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from beeldbel.config import DeskConfig
from controlplane.app.factory import create_app
from controlplane.base.metrics import Metrics
from controlplane.requests import (
    cancel,
    claim,
    complete,
    expire_overdue,
    no_answer,
    start_attempt,
)
from controlplane.requests.self_service import cancel as citizen_cancel
from controlplane.storage.database import DB
from controlplane.storage.schema import callback_requests, webhook_outbox
from tests.controlplane.requests.test_queue import add_user
from tests.controlplane.sample_requests import VALID, add_request
from tests.controlplane.webhooks.receivers import integrator, integrator_with_key


async def last_event(db, request_id: int) -> tuple[str, dict[str, Any]]:
    async with db.read() as conn:
        payload = await conn.scalar(
            sa.select(webhook_outbox.c.payload)
            .where(webhook_outbox.c.request_id == request_id)
            .order_by(webhook_outbox.c.id.desc())
            .limit(1)
        )
    body = json.loads(payload)
    return body["type"], body["data"]


async def test_each_way_of_closing_is_told(db):
    key_id, _endpoint, _secret = await integrator(db, "https://example.org/h")
    actor = await add_user(db, "agent1")
    metrics, desk = Metrics(), DeskConfig(max_attempts=1)

    async def called() -> int:
        rid, _ref = await add_request(db, source="api", api_key_id=key_id)
        await claim(db, rid, actor)
        await start_attempt(db, metrics, rid, actor)
        return rid

    done = await called()
    await complete(db, metrics, done, actor, "report_taken")
    kind, data = await last_event(db, done)
    assert (kind, data["state"], data["outcome"]) == (
        "callback.completed",
        "completed",
        "report_taken",
    )
    unanswered = await called()
    await no_answer(db, metrics, desk, unanswered, actor)
    kind, data = await last_event(db, unanswered)
    assert (kind, data["state"]) == ("callback.completed", "no_answer")
    dropped = await called()
    await cancel(db, metrics, dropped, actor, "duplicate")
    assert (await last_event(db, dropped))[0] == "callback.cancelled"
    withdrawn, _ref = await add_request(db, source="api", api_key_id=key_id)
    await citizen_cancel(db, metrics, withdrawn, datetime.now(UTC))
    kind, data = await last_event(db, withdrawn)
    assert (kind, data["outcome"]) == ("callback.cancelled", "cancelled_by_citizen")
    late, _ref = await add_request(db, source="api", api_key_id=key_id)
    later = datetime.now(UTC) + timedelta(hours=desk.expire_after_hours + 1)
    assert await expire_overdue(db, metrics, desk, now=later) == [late]
    kind, data = await last_event(db, late)
    assert (kind, data["state"]) == ("callback.expired", "expired")


async def test_a_cancel_over_the_api_is_told(aiohttp_client, make_config, db_url):
    app = create_app(make_config(db_url))
    client = await aiohttp_client(app)
    key, _key_id, _endpoint, _secret = await integrator_with_key(
        app[DB], "https://example.org/h"
    )
    auth = {"Authorization": f"Bearer {key}"}
    created = await client.post("/api/v1/callbacks", json=VALID, headers=auth)
    cancelled = await client.post(created.headers["Location"] + "/cancel", headers=auth)
    assert cancelled.status == 200
    reference = (await cancelled.json())["reference"]
    async with app[DB].read() as conn:
        request_id = await conn.scalar(
            sa.select(callback_requests.c.id).where(
                callback_requests.c.reference == reference
            )
        )
    assert request_id is not None
    kind, data = await last_event(app[DB], request_id)
    assert (kind, data["outcome"]) == ("callback.cancelled", "cancelled_by_api")
