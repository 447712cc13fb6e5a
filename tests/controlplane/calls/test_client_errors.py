"""Client error reports (``POST /gesprek/fout``) through the real app: a known
page, kind and code is counted and logged with codes only; anything else is a
400 that says what is wrong; a flood is cut off with 429."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from controlplane.app.factory import create_app
from controlplane.base.metrics import METRICS
from controlplane.calls.client_errors import CODES, KINDS, PAGES, browser_family

_DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')
URL = "/gesprek/fout"
CHROME_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/131.0.0.0 Safari/537.36"
)


@pytest.fixture
async def app_client(aiohttp_client: Any, make_config: Any, sqlite_url: str) -> Any:
    config = make_config(sqlite_url)
    security = dataclasses.replace(config.security, client_errors_per_ip_per_minute=5)
    return await aiohttp_client(
        create_app(dataclasses.replace(config, security=security))
    )


async def csrf(client: Any) -> str:
    """A CSRF token as the join page gives it (any page's token will do)."""
    match = _DATA_CSRF.search(await (await client.get("/gesprek")).text())
    assert match
    return match.group(1)


async def report(
    client: Any, token: str, body: Any, url: str = URL, **headers: str
) -> Any:
    return await client.post(
        url,
        data=json.dumps(body),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-CSRF-Token": token,
            **headers,
        },
    )


def counted(client: Any, page: str, kind: str) -> float:
    value = client.app[METRICS].registry.get_sample_value(
        "beeldbel_client_errors_total", {"page": page, "kind": kind}
    )
    return value or 0.0


async def test_a_known_error_is_counted_and_logged_with_codes_only(
    app_client, log_stream
):
    token = await csrf(app_client)
    before = counted(app_client, "device_check", "report")
    body = {"page": "device_check", "kind": "report", "code": "progress_failed"}
    response = await report(app_client, token, body, **{"User-Agent": CHROME_UA})
    assert response.status == 204
    assert counted(app_client, "device_check", "report") == before + 1
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    [line] = [e for e in events if e["event"] == "client_error_reported"]
    assert {k: line[k] for k in ("page", "kind", "code", "browser")} == {
        "page": "device_check",
        "kind": "report",
        "code": "progress_failed",
        "browser": "chrome",
    }
    assert "Mozilla" not in log_stream.getvalue()
    assert "127.0.0.1" not in json.dumps(line)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"page": "elsewhere", "kind": "report", "code": "progress_failed"}, "page"),
        ({"page": "join", "kind": "weird", "code": "progress_failed"}, "kind"),
        ({"page": "join", "kind": "report", "code": "https://x/#t=secret"}, "code"),
        # a code exists, but not of this kind
        ({"page": "join", "kind": "media", "code": "progress_failed"}, "code"),
        ({"page": ["join"], "kind": "report", "code": "progress_failed"}, "page"),
        ({"kind": "report", "code": "progress_failed"}, "page"),
    ],
)
async def test_anything_unknown_is_a_400_that_says_what(app_client, body, field):
    token = await csrf(app_client)
    response = await report(app_client, token, body)
    assert response.status == 400
    error = (await response.json())["error"]
    assert field in error["details"]
    assert error["message"]
    assert counted(app_client, "join", "report") == 0


async def test_message_in_the_pages_language(app_client):
    token = await csrf(app_client)
    body = {"page": "nowhere", "kind": "report", "code": "progress_failed"}
    dutch = await (await report(app_client, token, body)).json()
    english = await (await report(app_client, token, body, URL + "?lang=en")).json()
    assert dutch["error"]["message"] != english["error"]["message"]


async def test_not_json_and_no_csrf_are_refused(app_client):
    token = await csrf(app_client)
    not_json = await app_client.post(
        URL,
        data="page=join",
        headers={"X-CSRF-Token": token, "Accept": "application/json"},
    )
    assert not_json.status == 415
    no_token = await app_client.post(
        URL,
        json={"page": "join", "kind": "report", "code": "progress_failed"},
        headers={"Accept": "application/json"},
    )
    assert no_token.status == 403


async def test_a_flood_is_cut_off(app_client):
    token = await csrf(app_client)
    body = {"page": "call", "kind": "connection", "code": "websocket_failed"}
    statuses = [(await report(app_client, token, body)).status for _ in range(7)]
    assert statuses == [204] * 5 + [429] * 2
    assert counted(app_client, "call", "connection") == 5


def test_the_allow_lists_are_small_and_codes_unique():
    assert len(PAGES) <= 8
    assert len(KINDS) <= 10
    codes = [code for kind in KINDS for code in CODES[kind]]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"[a-z_]{2,40}", c) for c in (*PAGES, *KINDS, *codes))


@pytest.mark.parametrize(
    ("agent", "family"),
    [
        (CHROME_UA, "chrome"),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "firefox",
        ),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X)"
            " AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5"
            " Mobile/15E148 Safari/604.1",
            "safari",
        ),
        (CHROME_UA + " Edg/131.0.0.0", "edge"),
        ("", "other"),
        ("curl/8.0", "other"),
    ],
)
def test_browser_family(agent, family):
    assert browser_family(agent) == family


_FIELDS = st.sampled_from(["page", "kind", "code"]) | st.text(max_size=8)
_VALUES = st.one_of(
    st.sampled_from([*PAGES, *KINDS, "progress_failed", "unexpected"]),
    st.text(max_size=40),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
)
BODIES = st.one_of(
    st.dictionaries(_FIELDS, _VALUES, max_size=4).map(json.dumps),
    st.text(max_size=200),
)


@given(body=BODIES)
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
async def test_no_body_makes_it_fail(aiohttp_client, make_config, sqlite_url, body):
    config = make_config(sqlite_url)
    client = await aiohttp_client(create_app(config))
    token = await csrf(client)
    response = await client.post(
        URL,
        data=body.encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-CSRF-Token": token,
        },
    )
    assert response.status in (204, 400), (body, await response.text())
