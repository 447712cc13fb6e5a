"""The citizen's status page behind a signed link: where the request stands,
cancelling, another slot, asking for a new video link; refused when tampered
with or expired, and rate limited. Through the real app, on both databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from beeldbel.config import SecurityConfig
from controlplane.app.factory import create_app
from controlplane.base.settings import CONFIG
from controlplane.requests.desk import DESK
from controlplane.requests.intake import confirmation_token
from controlplane.requests.live import QUEUE_EVENTS
from controlplane.requests.slots import available_slots
from controlplane.requests.status_links import status_token
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log, callback_requests, request_notes
from tests.controlplane.sample_requests import add_request
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import csrf_from

_SLOT = re.compile(r'<option value="(\d{4}-[^"]+Z)"')


@pytest.fixture
async def sqlite_client(aiohttp_client, make_config, sqlite_url):
    """For page tests where the database backend does not matter."""
    return await aiohttp_client(create_app(make_config(sqlite_url)))


async def _request(client: Any, **overrides: Any) -> tuple[int, str]:
    """A stored request and the path of its status page."""
    request_id, reference = await add_request(client.server.app[DB], **overrides)
    token = status_token(client.server.app[SECRET_KEY], reference)
    return request_id, f"/verzoek/{token}"


async def _row(client: Any, request_id: int) -> dict[str, Any]:
    async with client.server.app[DB].read() as conn:
        row = await conn.execute(
            sa.select(callback_requests).where(callback_requests.c.id == request_id)
        )
        return dict(row.one()._mapping)


async def _set(client: Any, request_id: int, **values: Any) -> None:
    async with client.server.app[DB].write() as conn:
        await conn.execute(
            sa.update(callback_requests)
            .where(callback_requests.c.id == request_id)
            .values(**values)
        )


async def _audit(client: Any, request_id: int) -> list[tuple[str, str, Any]]:
    async with client.server.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(audit_log).where(audit_log.c.request_id == request_id)
        )
        return [(r.action, r.username, dict(r.details)) for r in rows]


async def _post(client: Any, path: str, page: str, **form: str) -> Any:
    data = {"csrf_token": csrf_from(page), **form}
    return await client.post(path, data=data, allow_redirects=False)


async def test_page_shows_the_state_slot_and_channel(client):
    _rid, path = await _request(client, channel="phone")
    page = await client.get(path)
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = await page.text()
    assert 'data-state="new"' in html
    assert "Ontvangen" in html
    assert "eindigt op 78" in html
    assert "zo snel mogelijk" in html
    assert "Canarie" not in html, "no name on the page"
    english = await (await client.get(path + "?lang=en")).text()
    assert "Received" in english
    assert "as soon as possible" in english


@pytest.mark.parametrize(
    ("state", "words"),
    [
        ("claimed", "Opgepakt"),
        ("calling", "Wordt gebeld"),
        ("completed", "Afgehandeld"),
        ("cancelled", "Geannuleerd"),
        ("no_answer", "Niet bereikt"),
        ("expired", "Verlopen"),
    ],
)
async def test_each_state_in_plain_words(sqlite_client, state, words):
    client = sqlite_client
    rid, path = await _request(client)
    closed = state in ("completed", "cancelled", "no_answer", "expired")
    await _set(
        client, rid, state=state, closed_at=datetime.now(UTC) if closed else None
    )
    html = await (await client.get(path)).text()
    assert f'data-state="{state}"' in html
    assert words in html
    # closed: nothing left to change
    assert ('id="cancel-request"' in html) == (state == "claimed")


async def test_cancel_with_confirmation_is_audited_and_told(client):
    rid, path = await _request(client)
    page = await client.get(path)
    assert f'href="{path}/annuleren"' in await page.text()
    confirm = await client.get(f"{path}/annuleren")
    assert confirm.status == 200
    confirm_html = await confirm.text()
    assert 'id="confirm-cancel"' in confirm_html
    async with client.server.app[QUEUE_EVENTS].subscribe() as events:
        done = await _post(client, f"{path}/annuleren", confirm_html)
        assert events.qsize() == 1
    assert done.status == 303
    assert done.headers["Location"].startswith(path)
    row = await _row(client, rid)
    assert (row["state"], row["outcome"]) == ("cancelled", "cancelled_by_citizen")
    assert await _audit(client, rid) == [
        ("request_cancelled", "citizen", {"from_state": "new"})
    ]
    shown = await (await client.get(done.headers["Location"])).text()
    assert "Geannuleerd" in shown
    again = await _post(client, f"{path}/annuleren", confirm_html)
    assert again.status == 409
    assert "kan niet meer" in await again.text()


async def test_cancel_needs_the_form_token(sqlite_client):
    _rid, path = await _request(sqlite_client)
    await sqlite_client.get(path)
    response = await sqlite_client.post(f"{path}/annuleren", data={})
    assert response.status == 403


async def test_change_slot_to_a_free_one_and_refuse_others(client):
    rid, path = await _request(client)
    html = await (await client.get(path)).text()
    offered = _SLOT.findall(html)
    assert offered, "the free slots are offered"
    async with client.server.app[QUEUE_EVENTS].subscribe() as events:
        moved = await _post(client, f"{path}/tijd", html, slot=offered[1])
        assert events.qsize() == 1
    assert moved.status == 303
    row = await _row(client, rid)
    assert row["preferred"] == "slot"
    wanted = datetime.fromisoformat(offered[1].replace("Z", "+00:00"))
    assert row["slot_start"] == wanted
    assert row["due_at"] == wanted
    assert ("slot_changed", "citizen", {"preferred": "slot"}) in await _audit(
        client, rid
    )

    now = datetime.now(UTC)
    off_grid = (wanted + timedelta(minutes=7)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for bad, message in [
        (offered[1], "al uw moment"),
        (off_grid, "niet meer beschikbaar"),
        (past, "niet meer beschikbaar"),
        ("morgen", "uit de lijst"),
    ]:
        refused = await _post(client, f"{path}/tijd", html, slot=bad)
        assert refused.status == 422, bad
        assert message in await refused.text(), bad
    assert (await _row(client, rid))["slot_start"] == wanted

    back = await _post(client, f"{path}/tijd", html, slot="asap")
    assert back.status == 303
    assert (await _row(client, rid))["preferred"] == "asap"


async def test_slot_cannot_change_once_picked_up(sqlite_client):
    client = sqlite_client
    rid, path = await _request(client)
    html = await (await client.get(path)).text()
    await _set(client, rid, state="claimed")
    slot = available_slots(client.server.app[DESK].current, datetime.now(UTC))[3]
    refused = await _post(
        client, f"{path}/tijd", html, slot=slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    )
    assert refused.status == 409
    assert 'id="slot"' not in await (await client.get(path)).text()


async def test_video_link_help_marks_the_request_for_the_employee(client):
    rid, path = await _request(client, channel="video")
    html = await (await client.get(path)).text()
    assert 'id="ask-link"' not in html, "no link is due before a call"
    await _set(client, rid, state="calling")
    html = await (await client.get(path)).text()
    assert 'id="ask-link"' in html
    async with client.server.app[QUEUE_EVENTS].subscribe() as events:
        asked = await _post(client, f"{path}/nieuwe-link", html)
        assert events.qsize() == 1
    assert asked.status == 303
    shown = await (await client.get(asked.headers["Location"])).text()
    assert "medewerker" in shown
    again = await _post(client, f"{path}/nieuwe-link", html)
    assert again.status == 303
    async with client.server.app[DB].read() as conn:
        notes = (
            await conn.execute(
                sa.select(request_notes.c.body).where(request_notes.c.request_id == rid)
            )
        ).all()
    assert len(notes) == 1, "asking twice in a row makes one note"
    assert "videolink" in notes[0].body
    assert ("link_help_asked", "citizen", {"state": "calling"}) in await _audit(
        client, rid
    )


async def test_tampered_links_are_refused_in_the_page_language(sqlite_client):
    client = sqlite_client
    _rid, path = await _request(client)
    token = path.rsplit("/", 1)[1]
    reference, signature = token.split(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    other = "BB-2222-2222"
    for bad in [
        f"{reference}.{flipped}",
        f"{other}.{signature}",
        reference,
        "x" * 500,
        "%00",
    ]:
        page = await client.get(f"/verzoek/{bad}")
        assert page.status == 404, bad
        assert "Deze link klopt niet" in await page.text()
    english = await client.get(f"/verzoek/{reference}.{flipped}?lang=en")
    assert "This link is not right" in await english.text()
    post = await client.post(f"/verzoek/{reference}.{flipped}/annuleren")
    assert post.status in (403, 404)


async def test_links_expire_with_the_request(sqlite_client):
    client = sqlite_client
    rid, path = await _request(client)
    days = client.server.app[CONFIG].retention.personal_data_days
    # closed, but within retention: still opens
    await _set(
        client, rid, state="completed", closed_at=datetime.now(UTC) - timedelta(days=1)
    )
    assert (await client.get(path)).status == 200
    await _set(client, rid, closed_at=datetime.now(UTC) - timedelta(days=days + 1))
    expired = await client.get(path)
    assert expired.status == 410
    assert "niet meer geldig" in await expired.text()
    rid, path = await _request(client)
    await _set(client, rid, purged_at=datetime.now(UTC))
    assert (await client.get(path)).status == 410


async def test_rate_limited_per_address(aiohttp_client, make_config, sqlite_url):
    config = make_config(sqlite_url, security=SecurityConfig(status_per_ip_per_hour=3))
    client = await aiohttp_client(create_app(config))
    _rid, path = await _request(client)
    for _ in range(3):
        assert (await client.get(path)).status == 200
    limited = await client.get(path)
    assert limited.status == 429
    assert "Retry-After" in limited.headers
    assert "te vaak" in await limited.text()


async def test_changes_rate_limited_per_request(
    aiohttp_client, make_config, sqlite_url
):
    config = make_config(
        sqlite_url, security=SecurityConfig(status_changes_per_request_per_hour=2)
    )
    client = await aiohttp_client(create_app(config))
    _rid, path = await _request(client)
    html = await (await client.get(path)).text()
    offered = _SLOT.findall(html)
    for slot in offered[:2]:
        assert (await _post(client, f"{path}/tijd", html, slot=slot)).status == 303
    limited = await _post(client, f"{path}/tijd", html, slot=offered[2])
    assert limited.status == 429


async def test_confirmation_page_links_to_the_status_page(sqlite_client):
    client = sqlite_client
    _rid, path = await _request(client)
    async with client.server.app[DB].read() as conn:
        reference = (
            await conn.execute(sa.select(callback_requests.c.reference))
        ).scalar_one()
    token = confirmation_token(
        client.server.app[SECRET_KEY], reference, datetime.now(UTC)
    )
    confirmation = await (await client.get(f"/bevestiging/{token}")).text()
    assert f'id="status-link" href="{path}"' in confirmation


async def test_staff_see_who_cancelled(sqlite_client):
    client = sqlite_client
    rid, path = await _request(client)
    confirm = await (await client.get(f"{path}/annuleren")).text()
    assert (await _post(client, f"{path}/annuleren", confirm)).status == 303
    await sign_in(client, "supervisor")
    html = await (await client.get(f"/staff/requests/{rid}")).text()
    assert "Geannuleerd door de burger" in html
    assert "console_cancel_" not in html
