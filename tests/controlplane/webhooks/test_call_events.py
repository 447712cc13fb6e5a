"""A video call of an integrator's request, told by webhooks: started, the
citizen joined, ended (outcome and quality, no personal data) and switched to
the phone, each queued in the outbox with the change. Over HTTP against a real
media node (in-process)."""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa

from controlplane.app.factory import create_app
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log, call_records, webhook_outbox
from controlplane.webhooks import EVENT_MODELS, EVENT_TYPES
from controlplane.webhooks.payloads import example
from tests.controlplane.mail import smtp  # noqa: F401 (a fixture)
from tests.controlplane.video_calls import (
    ADDRESS,
    Guest,
    call_config,
    claimed,
    staff_json,
    start,
)
from tests.controlplane.webhooks.receivers import integrator

_LINK = re.compile(r"https?://\S+/gesprek#t=[A-Za-z0-9_-]+")


async def events(app) -> list[dict[str, Any]]:
    async with app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(webhook_outbox.c.payload).order_by(webhook_outbox.c.id)
        )
        return [json.loads(payload) for (payload,) in rows]


async def test_a_call_switched_to_the_phone_is_told(
    aiohttp_client,
    make_config,
    sqlite_url,
    media,
    smtp,  # noqa: F811
):
    config = call_config(make_config, sqlite_url, str(media.make_url("")), smtp[1])
    client = await aiohttp_client(create_app(config))
    app = client.server.app
    key_id, _endpoint, _secret = await integrator(
        app[DB], "https://hooks.example.org/beeldbel", allow_private=False
    )
    request_id, token = await claimed(
        client, source="api", api_key_id=key_id, phone="+31612345678"
    )
    room_id = await start(client, request_id, token)
    page = await (await client.get(f"/staff/gesprekken/{room_id}")).text()
    link = _LINK.search(page)
    assert link is not None
    citizen = Guest(client)
    try:
        assert (await citizen.open(link.group(0))).status == 200
        joined = await citizen.post("/gesprek/voortgang", {"step": "in_call"})
        assert joined.status == 204
    finally:
        await citizen.close()
    path = f"/staff/gesprekken/{room_id}/naar-telefoon"
    body = {"reason": "technical_problem"}
    assert (await staff_json(client, path, token, body)).status == 200

    told = await events(app)
    assert [e["type"] for e in told] == [
        "callback.created",
        "callback.claimed",
        "callback.attempted",
        "call.started",
        "call.citizen_joined",
        "call.ended",
        "call.switched_to_phone",
    ]
    models = {name: model for name, _summary, model in EVENT_MODELS}
    for event in told:
        models[event["type"]].model_validate(event)  # as documented
    ended = told[5]["data"]
    assert ended["call"]["outcome"] == "switched_to_phone"
    assert ended["call"]["quality"]["connection_type"] == "unknown"
    assert ended["channel"] == "phone"
    text = json.dumps(told)
    for personal in ("Canary Burger", ADDRESS, "612345678", room_id):
        assert personal not in text


def test_every_event_type_is_documented_with_an_example_that_validates():
    assert [name for name, _summary, _model in EVENT_MODELS] == list(EVENT_TYPES)
    for name, summary, model in EVENT_MODELS:
        assert summary
        schema = model.model_json_schema()
        assert schema["examples"] == [example(name)]
        model.model_validate(example(name))


async def test_the_end_is_recorded_only_with_its_events(
    aiohttp_client,
    make_config,
    sqlite_url,
    media,
    smtp,  # noqa: F811
):
    """The call record's end, its audit entry and its webhook events are one
    transaction: when the outbox cannot be written, the end is not recorded."""
    config = call_config(make_config, sqlite_url, str(media.make_url("")), smtp[1])
    client = await aiohttp_client(create_app(config))
    app = client.server.app
    key_id, _endpoint, _secret = await integrator(
        app[DB], "https://hooks.example.org/beeldbel", allow_private=False
    )
    request_id, token = await claimed(client, source="api", api_key_id=key_id)
    room_id = await start(client, request_id, token)
    async with app[DB].write() as conn:
        await conn.execute(sa.text("ALTER TABLE webhook_outbox RENAME TO outbox_away"))
    ended = await staff_json(client, f"/staff/gesprekken/{room_id}/einde", token)
    assert ended.status == 500
    async with app[DB].read() as conn:
        ended_at = await conn.scalar(
            sa.select(call_records.c.ended_at).where(call_records.c.room_id == room_id)
        )
        audited = await conn.scalar(
            sa.select(sa.func.count())
            .select_from(audit_log)
            .where(audit_log.c.action == "video_call_ended")
        )
    assert (ended_at, audited) == (None, 0)
