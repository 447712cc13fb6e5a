"""Webhook endpoints in the browser (issue 13): an admin adds an endpoint to an
API key (its signing secret shown once), rotates the secret, replays a dead
letter and removes the endpoint; bad input is a 422 at the field; only admins;
every change audited without the secret or the URL. Through the real app on
SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from controlplane.app.factory import create_app
from controlplane.storage.database import DB
from controlplane.storage.schema import webhook_outbox
from controlplane.webhooks import list_endpoints
from tests.controlplane.audit_entries import audited
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import csrf_from

KEYS = "/staff/admin/api-keys"
URL = "https://hooks.example.org/beeldbel?token=geheim"
_SECRET = re.compile(r'id="webhook-secret"[^>]*>(whsec_[A-Za-z0-9+/=]+)<')


@pytest.fixture
async def sqlite_client(aiohttp_client: Any, make_config: Any, sqlite_url: str) -> Any:
    return await aiohttp_client(create_app(make_config(sqlite_url)))


async def _post(client: Any, page: str, action: str, data: Any) -> Any:
    html = await (await client.get(page)).text()
    form = [("csrf_token", csrf_from(html)), *data]
    return await client.post(action, data=form, allow_redirects=False)


async def _key(client: Any) -> str:
    """An API key made on the key page; its webhooks page."""
    data = [("name", "Zaaksysteem"), ("scope", "callbacks:write")]
    response = await _post(client, KEYS, KEYS, data)
    assert response.status == 200
    (created,) = await audited(client, "api_key_created")
    page = f"{KEYS}/{created['key_id']}/webhooks"
    assert f'href="{page}"' in await (await client.get(KEYS)).text()
    return page


async def _add(client: Any, page: str, url: str, *events: str) -> Any:
    data = [("url", url), *(("event", e) for e in events)]
    return await _post(client, page, page, data)


def dead_letter(endpoint_id: int, message_id: str, event_type: str) -> Any:
    """An outbox row given up on (shared with the browser test)."""
    now = datetime.now(UTC)
    return sa.insert(webhook_outbox).values(
        message_id=message_id,
        endpoint_id=endpoint_id,
        request_id=1,
        event_type=event_type,
        payload="{}",
        state="dead",
        attempts=17,
        next_attempt_at=now,
        created_at=now,
        last_error="503",
    )


async def _dead_letter(client: Any, endpoint_id: int) -> None:
    async with client.server.app[DB].write() as conn:
        await conn.execute(dead_letter(endpoint_id, "msg_dood", "callback.claimed"))


async def _state(client: Any, message_id: str) -> Any:
    async with client.server.app[DB].read() as conn:
        return await conn.scalar(
            sa.select(webhook_outbox.c.state).where(
                webhook_outbox.c.message_id == message_id
            )
        )


async def test_an_admin_adds_rotates_replays_and_removes_an_endpoint(client):
    await sign_in(client, "admin")
    page = await _key(client)
    response = await _add(client, page, URL, "callback.claimed", "call.ended")
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    html = await response.text()
    found = _SECRET.search(html)
    assert found, html
    secret = found.group(1)
    assert 'id="copy-api-key"' in html
    (endpoint,) = await list_endpoints(client.server.app[DB])
    assert endpoint.url == URL
    assert endpoint.event_types == ("callback.claimed", "call.ended")
    listing = await (await client.get(page)).text()
    assert secret not in listing, "the secret is shown once"
    assert f'href="{KEYS}" aria-current="page"' in listing, "where we are: API keys"
    assert "hooks.example.org" in listing
    assert 'data-rotation="never"' in listing

    rotate = f"{page}/{endpoint.id}/rotate"
    rotated = await _post(client, page, rotate, [])
    assert rotated.status == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    new = _SECRET.search(await rotated.text())
    assert new
    assert new.group(1) != secret
    assert 'data-rotation="overlap"' in await (await client.get(page)).text()

    await _dead_letter(client, endpoint.id)
    listing = await (await client.get(page)).text()
    assert 'id="dead-letters-' in listing
    assert "callback.claimed" in listing
    assert "503" in listing
    replay = f"{page}/{endpoint.id}/replay"
    replayed = await _post(client, page, replay, [("message", "msg_dood")])
    assert replayed.status == 303
    assert await _state(client, "msg_dood") == "pending"

    remove = f"{page}/{endpoint.id}/remove"
    unconfirmed = await _post(client, page, remove, [])
    assert unconfirmed.status == 422
    assert f'id="remove-{endpoint.id}-error"' in await unconfirmed.text()
    removed = await _post(client, page, remove, [("confirm", "yes")])
    assert removed.status == 303
    assert await list_endpoints(client.server.app[DB]) == []

    audit = [
        *await audited(client, "webhook_endpoint_added"),
        *await audited(client, "webhook_secret_rotated"),
        *await audited(client, "webhook_events_replayed"),
        *await audited(client, "webhook_endpoint_removed"),
    ]
    assert [entry["endpoint_id"] for entry in audit] == [endpoint.id] * 4
    # whose endpoint it was stays readable after it is gone
    assert [entry["api_key_id"] for entry in audit] == [endpoint.api_key_id] * 4
    assert audit[2]["count"] == 1
    for text in (secret, new.group(1), "geheim", "hooks.example.org"):
        assert text not in str(audit)
    # the audit log names these actions and their details in words
    log = await (await client.get("/staff/admin/audit")).text()
    for words in (
        "Webhookadres toegevoegd",
        "Ondertekengeheim vervangen",
        "Webhookadres: ",
    ):
        assert words in log, words


async def test_bad_endpoint_forms_get_a_message_at_the_field(sqlite_client):
    client = sqlite_client
    await sign_in(client, "admin")
    page = await _key(client)
    for url, events, field in (
        ("https://127.0.0.1/hook", ["callback.created"], "url"),
        ("https://10.0.0.1/hook", ["callback.created"], "url"),
        ("http://hooks.example.org/hook", ["callback.created"], "url"),
        ("", ["callback.created"], "url"),
        ("https://", ["callback.created"], "url"),
        ("https://gebruiker:wachtwoord@hooks.example.org/", ["call.ended"], "url"),
        ("https://hooks.example.org/hook", [], "event"),
        ("https://hooks.example.org/hook", ["callback.nonsense"], "event"),
    ):
        response = await _add(client, page, url, *events)
        assert response.status == 422, url
        html = await response.text()
        assert f'id="webhook-{field}-error"' in html, (url, events, html)
        assert "whsec_" not in html
    credentials = await _add(
        client, page, "https://a:b@hooks.example.org/", "call.ended"
    )
    assert "gebruikersnaam" in await credentials.text()
    refused = await _add(client, page, "https://127.0.0.1/hook", "call.ended")
    assert "openbaar" in await refused.text()
    english = await _add(client, page + "?lang=en", "https://[::1]/hook", "call.ended")
    assert "public" in await english.text()
    assert await list_endpoints(client.server.app[DB]) == []
    assert await audited(client, "webhook_endpoint_added") == []
    missing = await _post(client, page, f"{page}/999/rotate", [])
    assert missing.status == 404
    assert (await client.get(f"{KEYS}/999/webhooks")).status == 404


async def test_only_admins_manage_webhooks_and_posts_need_the_form_token(
    sqlite_client,
):
    client = sqlite_client
    await sign_in(client, "admin")
    page = await _key(client)
    for role in ("agent", "supervisor"):
        client.session.cookie_jar.clear()
        await sign_in(client, role)
        assert (await client.get(page)).status == 403
        html = await (await client.get("/staff")).text()
        forged = [
            ("csrf_token", csrf_from(html)),
            ("url", URL),
            ("event", "call.ended"),
        ]
        assert (await client.post(page, data=forged)).status == 403
    client.session.cookie_jar.clear()
    await sign_in(client, "admin", "tweede.beheerder")
    no_token = await client.post(
        page, data={"url": URL, "event": "call.ended"}, allow_redirects=False
    )
    assert no_token.status == 403
    assert await list_endpoints(client.server.app[DB]) == []
