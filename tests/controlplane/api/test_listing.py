"""``GET /api/v1/callbacks``: a key's own API requests, oldest first, in pages
joined by an opaque cursor, filtered by state and by time of change."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from controlplane.security.api_keys import create_api_key, create_api_key_with_id
from controlplane.storage.database import DB
from tests.controlplane.sample_requests import VALID, add_request

PROBLEM = "application/problem+json"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _keys(client: Any) -> tuple[str, str]:
    db = client.server.app[DB]
    scopes = ("callbacks:write", "callbacks:read")
    return await create_api_key(db, "a", scopes), await create_api_key(db, "b", scopes)


async def _create(client: Any, key: str, **changes: Any) -> str:
    response = await client.post(
        "/api/v1/callbacks", json={**VALID, **changes}, headers=_auth(key)
    )
    assert response.status == 201, await response.text()
    reference: str = (await response.json())["reference"]
    return reference


async def _pages(client: Any, key: str, query: str) -> list[list[str]]:
    pages, cursor = [], None
    while True:
        url = f"/api/v1/callbacks?{query}" + (f"&cursor={cursor}" if cursor else "")
        response = await client.get(url, headers=_auth(key))
        assert response.status == 200, await response.text()
        body = await response.json()
        pages.append([item["reference"] for item in body["items"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


async def test_only_the_keys_own_requests_in_pages(client):
    db = client.server.app[DB]
    scopes = ("callbacks:write", "callbacks:read")
    mine, mine_id = await create_api_key_with_id(db, "a", scopes)
    other = await create_api_key(db, "b", scopes)
    made = [await _create(client, mine) for _ in range(5)]
    await _create(client, other)
    # a form request never shows, even one that somehow carries the key's id
    await add_request(db, source="web", api_key_id=mine_id)
    pages = await _pages(client, mine, "limit=2")
    assert [len(page) for page in pages] == [2, 2, 1]
    assert [ref for page in pages for ref in page] == made
    one = await client.get("/api/v1/callbacks?limit=1", headers=_auth(mine))
    shown = (await one.json())["items"][0]
    detail = await client.get(f"/api/v1/callbacks/{made[0]}", headers=_auth(mine))
    assert shown == await detail.json()
    for personal in ("Jan de Vries", "12345678", "jan@example.nl", "langzaam"):
        assert personal not in await one.text()


async def test_a_request_changed_between_pages_is_listed_once(client):
    mine, _ = await _keys(client)
    made = [await _create(client, mine) for _ in range(3)]
    first = await client.get("/api/v1/callbacks?limit=1", headers=_auth(mine))
    cursor = (await first.json())["next_cursor"]
    cancel = f"/api/v1/callbacks/{made[0]}/cancel"
    assert (await client.post(cancel, headers=_auth(mine))).status == 200
    rest = await client.get(
        f"/api/v1/callbacks?limit=5&cursor={cursor}", headers=_auth(mine)
    )
    assert [i["reference"] for i in (await rest.json())["items"]] == made[1:]


async def test_filter_by_status_and_since(client):
    mine, _ = await _keys(client)
    first, second = await _create(client, mine), await _create(client, mine)
    before_cancel = datetime.now(UTC) - timedelta(milliseconds=1)
    await client.post(f"/api/v1/callbacks/{second}/cancel", headers=_auth(mine))
    assert await _pages(client, mine, "status=cancelled") == [[second]]
    assert await _pages(client, mine, "status=new") == [[first]]
    since = before_cancel.isoformat().replace("+00:00", "Z")
    assert await _pages(client, mine, f"since={since}") == [[second]]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    query = "since=" + later.replace("+", "%2B")
    assert await _pages(client, mine, query) == [[]]


def _forged(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("status=lost", "status"),
        ("since=yesterday", "since"),
        ("since=2026-12-01T10:00:00", "since"),
        ("since=1700000000", "since"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=%%%", "cursor"),
        ("cursor=" + _forged("no separator"), "cursor"),
        ("cursor=" + _forged("0001-01-01T00:00:00+05:00|BB-2222-2222"), "cursor"),
        ("cursor=" + _forged("2026-01-01T00:00:00|BB-2222-2222"), "cursor"),
        ("status=new&status=claimed", "status"),
        ("colour=red", "colour"),
    ],
)
async def test_bad_parameters_are_problems_naming_them(
    sqlite_url, make_config, aiohttp_client, query, parameter
):
    from controlplane.app.factory import create_app

    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    mine, _ = await _keys(client)
    response = await client.get(f"/api/v1/callbacks?{query}", headers=_auth(mine))
    assert response.status == 422, await response.text()
    assert response.content_type == PROBLEM
    errors = (await response.json())["errors"]
    assert parameter in {error["parameter"] for error in errors}


async def test_listing_needs_the_read_scope(client):
    writer = await create_api_key(client.server.app[DB], "w", ("callbacks:write",))
    response = await client.get("/api/v1/callbacks", headers=_auth(writer))
    assert response.status == 403
    assert (await client.get("/api/v1/callbacks")).status == 401


async def test_an_unknown_parameter_is_called_a_parameter(client):
    mine, _ = await _keys(client)
    response = await client.get("/api/v1/callbacks?colour=red", headers=_auth(mine))
    problem = await response.json()
    assert problem["detail"] == "unknown parameter 'colour'"
    assert problem["errors"] == [
        {"parameter": "colour", "code": "unknown_field", "detail": "unknown parameter"}
    ]
