"""Hostile JSON at every JSON endpoint of a live call, citizen's and employee's:
whatever the body (deep nesting, huge numbers, wrong types, NUL, lone
surrogates, a megabyte of text, bytes that are no JSON at all), the answer is a
4xx or a success, never a 500. ``/api/v1`` has its own generated suite
(tests/controlplane/api/test_openapi.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.app.factory import create_app
from controlplane.calls import join_links
from controlplane.storage.database import DB
from tests.controlplane.video_calls import JSON, Guest, call_config, claimed, start

pytestmark = pytest.mark.slow

EXAMPLES = 80
# field names the endpoints read, so that bodies also reach their validation
FIELDS = (
    "text",
    "reason",
    "role",
    "token",
    "step",
    "failed",
    "connection_type",
    "join_to_first_picture_ms",
    "reconnects",
    "rtt_ms_p50",
    "rtt_ms_p95",
    "loss_pct",
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec=None), max_size=40)  # NUL and lone surrogates too
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_objects = st.dictionaries(
    st.sampled_from(FIELDS) | st.text(max_size=12), _values, max_size=6
).map(lambda body: json.dumps(body).encode())
BODIES = st.one_of(
    _objects,
    st.integers(33, 20_000).map(lambda n: ("[" * n + "]" * n).encode()),
    st.integers(33, 2_000).map(lambda n: ('{"text":' * n + "1" + "}" * n).encode()),
    st.binary(max_size=300),
    st.sampled_from(FIELDS).map(lambda f: json.dumps({f: "x" * 1_000_000}).encode()),
    st.just(b'{"text": "\\u0000", "reason": "\\ud800"}'),
    st.just(b'{"loss_pct": 1e999, "reconnects": -1}'),
)
STAFF_ACTIONS = ("kwaliteit", "bericht", "naar-telefoon", "tolk", "token")
GUEST_PATHS = ("/gesprek/openen", "/gesprek/voortgang", "/gesprek/kwaliteit")


@pytest.fixture
async def live_call(aiohttp_client, make_config, sqlite_url, media):
    """A started call: the employee's client, its CSRF token and room, and a
    citizen's browser that opened its link."""
    config = call_config(make_config, sqlite_url, str(media.make_url("")))
    client = await aiohttp_client(create_app(config))
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    link = await join_links.create_link(
        client.server.app[DB],
        request_id=request_id,
        room_id=room_id,
        role="citizen",
        ttl=timedelta(hours=1),
    )
    guest = Guest(client)
    assert (await guest.open(f"x#t={link}")).status == 200
    yield client, token, room_id, guest
    await guest.close()


@given(body=BODIES)
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
async def test_no_json_body_makes_a_call_endpoint_fail(live_call: Any, body: bytes):
    client, token, room_id, guest = live_call
    sends = [
        (client, f"/staff/gesprekken/{room_id}/{action}", token)
        for action in STAFF_ACTIONS
    ] + [(guest.session, path, guest.csrf) for path in GUEST_PATHS]
    for session, path, csrf in sends:
        response = await session.post(
            path,
            data=body,
            headers={"X-CSRF-Token": csrf, "Content-Type": "application/json", **JSON},
        )
        assert response.status < 500, (path, body[:200], await response.text())
