"""CSRF: a form token is good only for the browser it was made for, and a request
from another site is refused even when it carries a good token."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from controlplane.security.secrets_store import SECRET_KEY
from tests.helpers import csrf_from

JSON = {"Accept": "application/json"}


async def form_token(client) -> str:
    """Load the citizen form (which sets the anchor cookie); its CSRF token."""
    page = await client.get("/")
    assert page.status == 200
    return csrf_from(await page.text())


async def submit(client, token: str, **headers: str):
    return await client.post(
        "/", data={"csrf_token": token}, headers={**JSON, **headers}
    )


async def test_the_right_token_passes(client):
    """The control for the tests below: the same request with the browser's own
    token and its own origin gets past the CSRF check, to the form's own 400."""
    token = await form_token(client)
    origin = str(client.make_url("/")).rstrip("/")
    response = await submit(client, token, Origin=origin)
    assert response.status == 400
    assert (await response.json())["error"]["code"] != "csrf_failed"


async def test_a_well_formed_token_of_another_anchor_is_refused(client):
    await form_token(client)
    key = client.server.app[SECRET_KEY]
    forged = hmac.new(key, b"another browser's anchor", hashlib.sha256).hexdigest()
    response = await submit(client, forged)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "csrf_failed"


@pytest.mark.parametrize(
    "origin",
    ["https://evil.example", "http://127.0.0.1.evil.example", "null.example"],
)
async def test_another_sites_origin_is_refused_with_a_valid_token(client, origin):
    token = await form_token(client)
    response = await submit(client, token, Origin=origin)
    assert response.status == 403
    assert (await response.json())["error"]["code"] == "csrf_failed"
