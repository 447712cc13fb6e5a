"""The one JSON-body reader: every JSON endpoint of the control plane answers a
body that is too deep, too large or not a JSON object with a 4xx, never a 500."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from controlplane.app.factory import create_app
from controlplane.base.errors import BadRequest
from controlplane.base.json_body import MAX_DEPTH, parse_json_object
from controlplane.base.settings import CONFIG
from controlplane.calls import join_links
from controlplane.storage.database import DB
from tests.controlplane.video_calls import (
    JSON,
    Guest,
    call_config,
    claimed,
    start,
)

DEEP = "[" * 30000 + "]" * 30000


def nested(depth: int) -> str:
    """A JSON object whose innermost value sits ``depth`` containers deep."""
    return '{"a":' * depth + "1" + "}" * depth


@pytest.fixture
async def client(aiohttp_client, make_config, sqlite_url, media):
    config = call_config(make_config, sqlite_url, str(media.make_url("")))
    return await aiohttp_client(create_app(config))


def test_depth_up_to_the_limit_is_read():
    body = parse_json_object(nested(MAX_DEPTH).encode())
    assert list(body) == ["a"]


@pytest.mark.parametrize(
    "raw",
    [
        DEEP,
        nested(MAX_DEPTH + 1),
        '{"a":' + "[" * 5000 + "]" * 5000 + "}",
        "[1]",
        "{nope",
        '{"a": NaN}',
    ],
)
def test_deep_broken_and_non_objects_are_bad_requests(raw):
    with pytest.raises(BadRequest):
        parse_json_object(raw.encode())


def test_brackets_inside_strings_do_not_count():
    text = '{"a": "' + "[{" * 1000 + '\\"' + "}]" * 1000 + '"}'
    assert parse_json_object(text.encode())["a"].startswith("[{[{")


def test_not_utf8_is_a_bad_request():
    with pytest.raises(BadRequest):
        parse_json_object(b'{"a": "\xff"}')


async def posted_deep(session, path: str, csrf: str) -> tuple[int, Any]:
    response = await session.post(
        path,
        data=DEEP,
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json", **JSON},
    )
    return response.status, await response.json()


async def test_every_call_endpoint_answers_deep_json_with_400(client, media):
    """The citizen's and the employee's JSON endpoints of a live call."""
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    for action in ("kwaliteit", "naar-telefoon", "bericht"):
        path = f"/staff/gesprekken/{room_id}/{action}"
        status, body = await posted_deep(client, path, token)
        assert (status, body["error"]["code"]) == (400, "bad_request"), path

    link = await join_links.create_link(
        client.server.app[DB],
        request_id=request_id,
        room_id=room_id,
        role="citizen",
        ttl=timedelta(minutes=5),
    )
    guest = Guest(client)
    try:
        await guest.land()
        status, body = await posted_deep(guest.session, "/gesprek/openen", guest.csrf)
        assert (status, body["error"]["code"]) == (400, "bad_request")
        assert (await guest.open(f"x#t={link}")).status == 200
        for path in ("/gesprek/voortgang", "/gesprek/kwaliteit"):
            status, body = await posted_deep(guest.session, path, guest.csrf)
            assert (status, body["error"]["code"]) == (400, "bad_request"), path
    finally:
        await guest.close()


async def test_a_body_over_the_limit_is_a_413(client, media):
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    limit = client.server.app[CONFIG].security.max_body_bytes
    response = await client.post(
        f"/staff/gesprekken/{room_id}/bericht",
        data=json.dumps({"text": "x" * limit}),
        headers={"X-CSRF-Token": token, "Content-Type": "application/json", **JSON},
    )
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "payload_too_large"
