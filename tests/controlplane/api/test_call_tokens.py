"""Integrator API: join links and media tokens for a video request's call, with a
real media server in-process; scopes, ownership and every bad input."""

from __future__ import annotations

from typing import Any

import jwt
import pytest

from controlplane.app.factory import create_app
from controlplane.security.api_keys import create_api_key
from controlplane.storage.database import DB
from tests.controlplane.video_calls import call_config

BODY = {
    "name": "Canary Burger",
    "phone": "0612345678",
    "topic": "report_crime",
    "channel": "video",
    "preferred": "asap",
    "language": "nl",
    "consent": True,
}


@pytest.fixture
async def api(aiohttp_client, make_config, db_url, media):
    client = await aiohttp_client(
        create_app(call_config(make_config, db_url, str(media.make_url(""))))
    )
    db = client.server.app[DB]
    client.key = await create_api_key(
        db, "front end", ("callbacks:write", "calls:write")
    )
    client.plain = await create_api_key(db, "no calls", ("callbacks:write",))
    return client


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def new_callback(api, key: str, **changes: Any) -> str:
    response = await api.post(
        "/api/v1/callbacks", json={**BODY, **changes}, headers=auth(key)
    )
    assert response.status == 201, await response.text()
    reference: str = (await response.json())["reference"]
    return reference


async def tokens(api, reference: str, body: Any, key: str | None = None) -> Any:
    return await api.post(
        f"/api/v1/callbacks/{reference}/tokens",
        json=body,
        headers=auth(key or api.key),
    )


async def test_media_token_and_links_share_one_room(api):
    reference = await new_callback(api, api.key)
    agent = await tokens(api, reference, {"role": "agent", "kind": "media"})
    assert agent.status == 200, await agent.text()
    assert agent.headers["Cache-Control"] == "no-store"
    grant = await agent.json()
    claims = jwt.decode(grant["token"], options={"verify_signature": False})
    assert claims["role"] == "agent"
    assert claims["room"] == grant["room_id"]
    assert grant["media_url"] == "wss://media.test:8444/ws"
    assert grant["kind"] == "media"

    link = await (
        await tokens(api, reference, {"role": "citizen", "kind": "link"})
    ).json()
    assert link["room_id"] == grant["room_id"]
    assert "/gesprek#t=" in link["link"]
    interpreter = await tokens(api, reference, {"role": "interpreter", "kind": "link"})
    assert (await interpreter.json())["room_id"] == grant["room_id"]


async def test_refusals(api):
    reference = await new_callback(api, api.key)
    cases = [
        ({"role": "agent", "kind": "link"}, 422),
        ({"role": "boss", "kind": "media"}, 422),
        ({"role": "citizen", "kind": "pigeon"}, 422),
        ({"role": "citizen"}, 422),
        ({"role": 1, "kind": "media"}, 422),
        ({"role": "citizen", "kind": "media", "extra": 1}, 422),
        ([], 400),
    ]
    for body, status in cases:
        response = await tokens(api, reference, body)
        assert response.status == status, (body, await response.text())
        assert "error" in await response.json()
    text = await api.post(
        f"/api/v1/callbacks/{reference}/tokens",
        data="role=agent",
        headers={**auth(api.key), "Content-Type": "text/plain"},
    )
    assert text.status == 415
    good = {"role": "citizen", "kind": "link"}
    assert (await tokens(api, reference, good, key=api.plain)).status == 403
    no_key = await api.post(f"/api/v1/callbacks/{reference}/tokens", json=good)
    assert no_key.status == 401
    assert (await tokens(api, "BB-0000-0000", good)).status == 404

    # another key's request does not exist for this key
    other = await new_callback(api, api.plain)
    assert (await tokens(api, other, good)).status == 404

    phone = await new_callback(api, api.key, channel="phone")
    refused = await tokens(api, phone, good)
    assert refused.status == 409
    assert "phone" in (await refused.json())["error"]["message"]

    cancelled = await new_callback(api, api.key)
    response = await api.post(
        f"/api/v1/callbacks/{cancelled}/cancel", headers=auth(api.key)
    )
    assert response.status == 200
    assert (await tokens(api, cancelled, good)).status == 409
