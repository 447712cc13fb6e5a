"""``GET /api/v1/topics`` and ``GET /api/v1/slots``: what a new request may ask
for, from the same desk settings and slot grid as the citizen form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest

from beeldbel.config import DeskConfig, Topic
from controlplane.app.factory import create_app
from controlplane.requests import DESK, available_slots
from controlplane.security.api_keys import create_api_key
from controlplane.storage.database import DB
from tests.controlplane.sample_requests import VALID

ALWAYS_OPEN = {day: "00:00-24:00" for day in ("mon", "tue", "wed", "thu", "fri")}
ALWAYS_OPEN |= {"sat": "00:00-24:00", "sun": "00:00-24:00"}
DESK_CONFIG = DeskConfig(
    topics=(Topic("report_crime", "Aangifte doen", "Report a crime"),
            Topic("lost_item", "Iets verloren", "Lost something")),
    opening_hours=ALWAYS_OPEN,
    slot_minutes=30,
    booking_days=2,
)  # fmt: skip


@pytest.fixture
async def api(sqlite_url, make_config, aiohttp_client):
    client = await aiohttp_client(create_app(make_config(sqlite_url, desk=DESK_CONFIG)))
    db = client.server.app[DB]
    client.key = await create_api_key(db, "crm", ("callbacks:write",))
    client.reader = await create_api_key(db, "dash", ("callbacks:read",))
    client.caller = await create_api_key(db, "video", ("calls:write",))
    return client


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _q(moment: datetime) -> str:
    return quote(moment.isoformat())


async def test_topics_are_the_desks(api):
    for key in (api.key, api.reader):
        response = await api.get("/api/v1/topics", headers=_auth(key))
        assert response.status == 200
        assert (await response.json())["items"] == [
            {"code": "report_crime", "nl": "Aangifte doen", "en": "Report a crime"},
            {"code": "lost_item", "nl": "Iets verloren", "en": "Lost something"},
        ]
    assert (await api.get("/api/v1/topics", headers=_auth(api.caller))).status == 403
    assert (await api.get("/api/v1/topics")).status == 401


async def test_slots_in_a_window_can_be_booked(api):
    now = datetime.now(UTC)
    start, end = now + timedelta(hours=3), now + timedelta(hours=6)
    url = f"/api/v1/slots?from={_q(start)}&to={_q(end)}"
    response = await api.get(url, headers=_auth(api.key))
    assert response.status == 200, await response.text()
    items = (await response.json())["items"]
    grid = available_slots(api.server.app[DESK].current, now)
    expected = [s for s in grid if start <= s < end]
    assert [datetime.fromisoformat(i["start"]) for i in items] == expected
    assert len(items) == 6
    first = items[0]
    assert datetime.fromisoformat(first["end"]) - datetime.fromisoformat(
        first["start"]
    ) == timedelta(minutes=30)
    body = {**VALID, "preferred": "slot", "slot": first["start"]}
    created = await api.post("/api/v1/callbacks", json=body, headers=_auth(api.key))
    assert created.status == 201, await created.text()


async def test_slots_default_to_the_whole_booking_window(api):
    response = await api.get("/api/v1/slots", headers=_auth(api.reader))
    items = (await response.json())["items"]
    starts = [datetime.fromisoformat(i["start"]) for i in items]
    assert (
        starts
        == available_slots(api.server.app[DESK].current, datetime.now(UTC))[
            : len(starts)
        ]
    )
    assert starts[-1] - starts[0] > timedelta(days=1)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("from=tomorrow", "from"),
        ("from=2026-12-07T10:00:00", "from"),
        ("to=2026-12-07", "to"),
        ("from=0001-01-01T00:00:00%2B05:00", "from"),
        ("to=9999-12-31T23:59:59-05:00", "to"),
        ("from=2026-12-08T10:00:00Z&to=2026-12-07T10:00:00Z", "to"),
        ("from=2026-12-08T10:00:00Z&to=2026-12-08T10:00:00Z", "to"),
        ("from=2026-12-08T10:00:00Z&from=2026-12-09T10:00:00Z", "from"),
        ("when=now", "when"),
    ],
)
async def test_bad_windows_are_problems_naming_the_parameter(api, query, parameter):
    response = await api.get(f"/api/v1/slots?{query}", headers=_auth(api.key))
    assert response.status == 422, await response.text()
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json()
    assert parameter in {e["parameter"] for e in body["errors"]}
    assert body["error"]["code"] == "validation_failed"
