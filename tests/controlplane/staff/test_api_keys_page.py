"""API keys in the browser (issue 12): an admin creates a key (its secret shown
once), sees it listed with its scopes and last use, and revokes it; every step is
audited without the secret. Through the real app on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest

from controlplane.app.factory import create_app
from tests.controlplane.audit_entries import audited
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import csrf_from

PAGE = "/staff/admin/api-keys"
_SECRET = re.compile(r'id="api-key-secret"[^>]*>(bb_[0-9a-f]+_[A-Za-z0-9_-]+)<')


@pytest.fixture
async def sqlite_client(aiohttp_client: Any, make_config: Any, sqlite_url: str) -> Any:
    return await aiohttp_client(create_app(make_config(sqlite_url)))


async def _post(client: Any, action: str, data: Any) -> Any:
    html = await (await client.get(PAGE)).text()
    form = [("csrf_token", csrf_from(html)), *data]
    return await client.post(action, data=form, allow_redirects=False)


async def _create(client: Any, name: str, *scopes: str) -> tuple[Any, str]:
    data = [("name", name), *(("scope", s) for s in scopes)]
    response = await _post(client, PAGE, data)
    return response, await response.text()


async def test_admin_creates_a_key_that_works_and_revokes_it(client):
    await sign_in(client, "admin")
    response, html = await _create(client, "Zaaksysteem", "callbacks:read")
    assert response.status == 200, html
    assert response.headers["Cache-Control"] == "no-store"
    secret = _SECRET.search(html)
    assert secret, html
    key = secret.group(1)
    assert 'id="copy-api-key"' in html
    # the key works against the API: an unknown reference is a 404, not a 401
    auth = {"Authorization": f"Bearer {key}"}
    found = await client.get("/api/v1/callbacks/BB-AAAA-AAAA", headers=auth)
    assert found.status == 404, await found.text()
    # listed with its scopes and its last use; the secret is not shown again
    listing = await (await client.get(PAGE)).text()
    assert key not in listing
    row = listing.split('id="api-keys"')[1].split("</table>")[0]
    assert "Zaaksysteem" in row
    assert "callbacks:read" in row
    assert 'data-state="active"' in row
    assert 'data-last-used="never"' not in row
    created = await audited(client, "api_key_created")
    assert created[0]["name"] == "Zaaksysteem"
    assert created[0]["scopes"] == ["callbacks:read"]
    key_id = created[0]["key_id"]

    response = await _post(client, f"{PAGE}/{key_id}/revoke", [("confirm", "yes")])
    assert response.status == 303
    refused = await client.get("/api/v1/callbacks/BB-AAAA-AAAA", headers=auth)
    assert refused.status == 401
    listing = await (await client.get(PAGE)).text()
    assert 'data-state="revoked"' in listing
    assert await audited(client, "api_key_revoked") == [
        {"key_id": key_id, "name": "Zaaksysteem"}
    ]
    everything = str(await audited(client, "api_key_created")) + listing
    # bb_<prefix>_<secret>: the secret itself may hold "_"
    assert key.split("_", 2)[2] not in everything


async def test_bad_key_forms_get_a_message_and_no_key(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin")
    for data, field in (
        ([("scope", "callbacks:read")], "name"),
        ([("name", "x" * 101), ("scope", "callbacks:read")], "name"),
        ([("name", "Zonder scope")], "scope"),
        ([("name", "Raar"), ("scope", "everything")], "scope"),
    ):
        response = await _post(client, PAGE, data)
        assert response.status == 422, data
        html = await response.text()
        assert f'id="api-key-{field}-error"' in html, (data, html)
        assert "api-key-secret" not in html
    assert await audited(client, "api_key_created") == []
    english = await _post(client, f"{PAGE}?lang=en", [("scope", "callbacks:read")])
    assert "Give the key a name" in await english.text()
    # revoking needs the confirmation box, and a key that exists
    _response, _html = await _create(client, "Koppeling", "calls:write")
    (created,) = await audited(client, "api_key_created")
    unconfirmed = await _post(client, f"{PAGE}/{created['key_id']}/revoke", [])
    assert unconfirmed.status == 422
    assert 'id="revoke-' in await unconfirmed.text()
    missing = await _post(client, f"{PAGE}/999999/revoke", [("confirm", "yes")])
    assert missing.status == 404
    assert await audited(client, "api_key_revoked") == []


async def test_only_admins_manage_keys_and_posts_need_the_form_token(sqlite_client):
    client = sqlite_client
    for role in ("agent", "supervisor"):
        client.session.cookie_jar.clear()
        await sign_in(client, role)
        assert (await client.get(PAGE)).status == 403
        html = await (await client.get("/staff")).text()
        forged = [
            ("csrf_token", csrf_from(html)),
            ("name", "x"),
            ("scope", "calls:write"),
        ]
        assert (await client.post(PAGE, data=forged)).status == 403
    client.session.cookie_jar.clear()
    await sign_in(client, "admin")
    no_token = await client.post(
        PAGE, data={"name": "x", "scope": "calls:write"}, allow_redirects=False
    )
    assert no_token.status == 403
    assert await audited(client, "api_key_created") == []
    nav = (await (await client.get("/staff/admin")).text()).split("admin-links")[1]
    assert f'href="{PAGE}"' in nav
