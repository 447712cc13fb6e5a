"""The staff console over HTTP, through the real app with a signed-in client, on
both databases: queue page, claiming and working a request, errors, supervisor
actions, phone-line entry and the live event stream."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from controlplane.app.factory import create_app
from controlplane.base.i18n import Catalog
from controlplane.base.metrics import METRICS
from controlplane.requests import queue, queue_items
from controlplane.requests.callbacks import (
    ACCESSIBILITY_NEEDS,
    CHANNELS,
    SOURCES,
    State,
    find_by_reference,
)
from controlplane.requests.live import QUEUE_EVENTS
from controlplane.requests.queue_items import Actor
from controlplane.staff import console, users
from controlplane.storage.database import DB, Database
from controlplane.storage.schema import audit_log, callback_requests
from tests.controlplane.sample_requests import NAME, add_request
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import csrf_from, read_event, wait_for


@pytest.fixture
async def sqlite_client(aiohttp_client, make_config, sqlite_url):
    """For HTTP behaviour that does not depend on the database backend."""
    return await aiohttp_client(create_app(make_config(sqlite_url)))


async def csrf(client: Any, path: str = "/staff") -> str:
    page = await client.get(path)
    assert page.status == 200, await page.text()
    return csrf_from(await page.text())


async def post(client: Any, path: str, token: str, **data: str) -> Any:
    return await client.post(
        path, data={"csrf_token": token, **data}, allow_redirects=False
    )


async def set_column(client: Any, request_id: int, **values: Any) -> None:
    async with client.server.app[DB].write() as conn:
        await conn.execute(
            sa.update(callback_requests)
            .where(callback_requests.c.id == request_id)
            .values(**values)
        )


async def audit_rows(client: Any, request_id: int) -> Sequence[Any]:
    db: Database = client.server.app[DB]
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log)
                .where(audit_log.c.request_id == request_id)
                .order_by(audit_log.c.id)
            )
        ).all()
    return rows


async def other_agent(client: Any, username: str = "other.agent") -> Actor:
    db = client.server.app[DB]
    await users.create_user(db, username, "agent", password="x" * 16)
    found = [u for u in await users.list_users(db) if u["username"] == username]
    return Actor(found[0]["id"], username, "agent")


async def test_queue_needs_a_signed_in_agent(sqlite_client):
    response = await sqlite_client.get("/staff", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/staff/login")
    events = await sqlite_client.get(
        "/staff/queue/events", headers={"Accept": "text/event-stream"}
    )
    assert events.status == 401


async def test_queue_lists_open_requests_due_first(client):
    await sign_in(client)
    later_id, later = await add_request(client.server.app[DB], channel="phone")
    _, first = await add_request(client.server.app[DB])
    await set_column(client, later_id, due_at=datetime.now(UTC) + timedelta(hours=1))
    response = await client.get("/staff")
    assert response.status == 200
    html = await response.text()
    assert 'id="queue"' in html
    assert 'id="queue-status"' in html
    assert NAME in html
    assert "Gebarentaal" in html, "accessibility needs are readable labels"
    assert "Aangifte doen" in html, "topics are labels"
    assert "Zo snel mogelijk" in html
    assert html.count('class="claim"') == 2
    references = re.findall(r'data-reference="(BB-[^"]+)"', html)
    assert references == [first, later]
    assert "nog niet aan de beurt" in html


async def test_filters_narrow_the_queue_and_refuse_unknown_values(sqlite_client):
    agent = await sign_in(sqlite_client)
    _, video = await add_request(sqlite_client.server.app[DB])
    rid, phone = await add_request(sqlite_client.server.app[DB], channel="phone")
    html = await (await sqlite_client.get("/staff?channel=phone")).text()
    assert 'data-events="/staff/queue/events?channel=phone"' in html
    assert phone in html
    assert video not in html
    await queue.claim(sqlite_client.server.app[DB], rid, Actor(agent.id, "x", "agent"))
    mine = await (await sqlite_client.get("/staff?mine=1")).text()
    assert phone in mine
    assert video not in mine
    bad = await sqlite_client.get("/staff?channel=fax")
    assert bad.status == 422
    assert "filter" in (await bad.text()).lower()


async def test_claim_work_and_complete(client):
    """The full flow writes an audit row per step and never logs the name."""
    agent = await sign_in(client)
    rid, reference = await add_request(client.server.app[DB])
    with structlog.testing.capture_logs() as logs:
        token = await csrf(client)
        claimed = await post(client, f"/staff/requests/{rid}/claim", token)
        assert claimed.status == 303
        assert claimed.headers["Location"] == f"/staff/requests/{rid}"

        page = await client.get(f"/staff/requests/{rid}")
        html = await page.text()
        assert 'id="start-call"' in html
        assert NAME in html
        started = await post(client, f"/staff/requests/{rid}/start", token)
        assert started.status == 303

        html = await (await client.get(f"/staff/requests/{rid}")).text()
        for element in ('id="outcome"', 'id="complete"', 'id="no-answer"'):
            assert element in html
        done = await post(
            client, f"/staff/requests/{rid}/complete", token, outcome="resolved"
        )
        assert done.status == 303
        assert done.headers["Location"] == f"/staff?closed={reference}"
        assert reference in await (await client.get(done.headers["Location"])).text()

    stored = await find_by_reference(client.server.app[DB], reference)
    assert stored is not None
    assert stored["state"] == "completed"
    assert stored["outcome"] == "resolved"
    rows = await audit_rows(client, rid)
    assert [r.action for r in rows] == [
        "request_claimed",
        "call_started",
        "request_closed",
    ]
    assert {r.username for r in rows} == {agent.username}
    assert logs, "actions are logged"
    assert NAME not in repr(logs)
    assert "+31612345678" not in repr(logs)


async def test_someone_else_took_it_is_a_409(client):
    await sign_in(client)
    rid, _ = await add_request(client.server.app[DB])
    rival = await other_agent(client)
    await queue.claim(client.server.app[DB], rid, rival)
    token = await csrf(client)
    response = await post(client, f"/staff/requests/{rid}/claim", token)
    assert response.status == 409
    assert "Iemand anders heeft dit verzoek net opgepakt" in await response.text()
    # and the held request is not for this agent to open
    assert (await client.get(f"/staff/requests/{rid}")).status == 403


async def test_unknown_requests_are_404(sqlite_client):
    await sign_in(sqlite_client)
    token = await csrf(sqlite_client)
    assert (await sqlite_client.get("/staff/requests/424242")).status == 404
    assert (
        await sqlite_client.get("/staff/requests/99999999999999999999")
    ).status == 404
    assert (await sqlite_client.get("/staff/requests/abc")).status == 404
    response = await post(sqlite_client, "/staff/requests/424242/claim", token)
    assert response.status == 404
    assert "Dit verzoek bestaat niet" in await response.text()


@pytest.mark.parametrize("number", ["9" * 5000, "\u00b2", "\u0661\u0662"])
async def test_odd_numbers_are_4xx_not_500(sqlite_client, number):
    """Over-long or non-ASCII digits in an address, a form or the query string."""
    await sign_in(sqlite_client, "supervisor")
    rid, _ = await add_request(sqlite_client.server.app[DB])
    token = await csrf(sqlite_client)
    assert (await sqlite_client.get(f"/staff/requests/{number}")).status == 404
    claim = await post(sqlite_client, f"/staff/requests/{number}/claim", token)
    assert claim.status == 404
    queue_page = await sqlite_client.get("/staff", params={"released_count": number})
    assert queue_page.status == 200
    await post(sqlite_client, f"/staff/requests/{rid}/claim", token)
    reassign = await post(
        sqlite_client, f"/staff/requests/{rid}/reassign", token, user_id=number
    )
    assert reassign.status == 422


async def test_wrong_step_is_409_and_bad_values_422(sqlite_client):
    await sign_in(sqlite_client)
    rid, _ = await add_request(sqlite_client.server.app[DB])
    token = await csrf(sqlite_client)
    await post(sqlite_client, f"/staff/requests/{rid}/claim", token)
    early = await post(
        sqlite_client, f"/staff/requests/{rid}/complete", token, outcome="resolved"
    )
    assert early.status == 409
    assert "huidige status" in await early.text()

    await post(sqlite_client, f"/staff/requests/{rid}/start", token)
    bad = await post(
        sqlite_client, f"/staff/requests/{rid}/complete", token, outcome="made_up"
    )
    assert bad.status == 422
    html = await bad.text()
    assert "Kies een uitkomst uit de lijst" in html
    assert 'aria-invalid="true"' in html
    assert 'href="#outcome"' in html
    empty_note = await post(
        sqlite_client, f"/staff/requests/{rid}/notes", token, note=" "
    )
    assert empty_note.status == 422
    switch = await post(
        sqlite_client, f"/staff/requests/{rid}/switch-channel", token, channel="phone"
    )
    assert switch.status == 422
    assert "Kies een reden uit de lijst" in await switch.text()


async def test_no_answer_goes_back_to_the_queue(sqlite_client):
    await sign_in(sqlite_client)
    rid, reference = await add_request(sqlite_client.server.app[DB])
    token = await csrf(sqlite_client)
    await post(sqlite_client, f"/staff/requests/{rid}/claim", token)
    await post(sqlite_client, f"/staff/requests/{rid}/start", token)
    response = await post(sqlite_client, f"/staff/requests/{rid}/no-answer", token)
    assert response.status == 303
    assert response.headers["Location"] == f"/staff?retry={reference}"
    html = await (await sqlite_client.get("/staff")).text()
    assert "Nieuwe poging" in html
    stored = await find_by_reference(sqlite_client.server.app[DB], reference)
    assert stored is not None
    assert (stored["state"], stored["attempts"]) == ("new", 1)


async def test_notes_with_control_characters_are_422(sqlite_client):
    """NUL and the like cannot be stored (PostgreSQL refuses NUL): a clear error."""
    await sign_in(sqlite_client)
    rid, _ = await add_request(sqlite_client.server.app[DB])
    token = await csrf(sqlite_client)
    await post(sqlite_client, f"/staff/requests/{rid}/claim", token)
    note = await post(
        sqlite_client, f"/staff/requests/{rid}/notes", token, note="a\x00b"
    )
    assert note.status == 422
    assert "tekens die niet bewaard kunnen worden" in await note.text()
    switch = await post(
        sqlite_client,
        f"/staff/requests/{rid}/switch-channel",
        token,
        channel="phone",
        reason="other",
        note="a\x1bb",
    )
    assert switch.status == 422
    assert await queue_items.list_notes(sqlite_client.server.app[DB], rid) == []


async def test_switch_channel_and_notes(sqlite_client):
    await sign_in(sqlite_client)
    rid, _ = await add_request(sqlite_client.server.app[DB])
    token = await csrf(sqlite_client)
    await post(sqlite_client, f"/staff/requests/{rid}/claim", token)
    switched = await post(
        sqlite_client,
        f"/staff/requests/{rid}/switch-channel",
        token,
        channel="phone",
        reason="technical_problem",
        note="Camera stuk",
    )
    assert switched.status == 303
    noted = await post(
        sqlite_client, f"/staff/requests/{rid}/notes", token, note="Belt na 17 uur"
    )
    assert noted.status == 303
    html = await (await sqlite_client.get(f"/staff/requests/{rid}")).text()
    assert 'data-channel="phone"' in html
    assert "Camera stuk" in html
    assert "Belt na 17 uur" in html
    rows = await audit_rows(sqlite_client, rid)
    assert rows[-2].details == {
        "from_channel": "video",
        "to_channel": "phone",
        "reason": "technical_problem",
    }
    assert rows[-1].action == "note_added"
    assert "Belt" not in repr([r.details for r in rows])


async def test_agents_cannot_reassign_supervisors_can(sqlite_client):
    rid, _ = await add_request(sqlite_client.server.app[DB])
    holder = await other_agent(sqlite_client, "holder")
    target = await other_agent(sqlite_client, "target")
    await queue.claim(sqlite_client.server.app[DB], rid, holder)

    await sign_in(sqlite_client, "agent", "plain.agent")
    token = await csrf(sqlite_client)
    refused = await post(
        sqlite_client, f"/staff/requests/{rid}/reassign", token, user_id=str(target.id)
    )
    assert refused.status == 403

    sqlite_client.session.cookie_jar.clear()
    await sign_in(sqlite_client, "supervisor", "the.boss")
    token = await csrf(sqlite_client)
    html = await (await sqlite_client.get(f"/staff/requests/{rid}")).text()
    assert 'id="reassign-user"' in html
    moved = await post(
        sqlite_client, f"/staff/requests/{rid}/reassign", token, user_id=str(target.id)
    )
    assert moved.status == 303
    stored = await queue_items.get_request(sqlite_client.server.app[DB], rid)
    assert stored.claimed_by == target.id
    assert (await audit_rows(sqlite_client, rid))[-1].action == "request_reassigned"
    bad = await post(
        sqlite_client, f"/staff/requests/{rid}/reassign", token, user_id="x"
    )
    assert bad.status == 422


async def test_supervisor_releases_stale_claims(client):
    rid, reference = await add_request(client.server.app[DB])
    holder = await other_agent(client, "holder")
    db = client.server.app[DB]
    await queue.claim(db, rid, holder, now=datetime.now(UTC) - timedelta(hours=1))
    await sign_in(client, "supervisor")
    html = await (await client.get("/staff")).text()
    assert 'class="release-stale"' in html
    token = csrf_from(html)
    response = await post(client, "/staff/queue/release-stale", token)
    assert response.status == 303
    assert response.headers["Location"] == "/staff?released_count=1"
    stored = await find_by_reference(db, reference)
    assert stored is not None
    assert stored["state"] == "new"
    assert (await audit_rows(client, rid))[-1].action == "stale_claim_released"


async def test_expiry_run_closes_overdue_requests(client):
    rid, _ = await add_request(client.server.app[DB])
    db = client.server.app[DB]
    await set_column(client, rid, due_at=datetime.now(UTC) - timedelta(hours=25))
    assert await console.expire_now(client.server.app) == [rid]
    assert (await queue_items.get_request(db, rid)).state.value == "expired"


async def test_phone_line_entry_stores_once(client):
    await sign_in(client)
    page = await client.get("/staff/requests/new")
    html = await page.text()
    submission = re.search(r'name="submission_id" value="([^"]+)"', html)
    assert submission
    form = {
        "csrf_token": csrf_from(html),
        "submission_id": submission.group(1),
        "name": "Piet Telefoon",
        "phone": "06 12345678",
        "topic": "other",
        "channel": "phone",
        "language": "nl",
        "preferred": "asap",
        "consent_phone": "yes",
    }
    missing = await client.post(
        "/staff/requests/new",
        data={**form, "consent_phone": "", "phone": ""},
        allow_redirects=False,
    )
    assert missing.status == 422
    text = await missing.text()
    assert "aan de telefoon akkoord" in text
    assert 'href="#phone"' in text

    first = await client.post("/staff/requests/new", data=form, allow_redirects=False)
    assert first.status == 303
    again = await client.post("/staff/requests/new", data=form, allow_redirects=False)
    assert again.headers["Location"] == first.headers["Location"]
    detail = await client.get(first.headers["Location"])
    assert "Piet Telefoon" in await detail.text()
    assert "Telefoonlijn" in await detail.text()
    metrics = client.server.app[METRICS]
    assert (
        metrics.registry.get_sample_value(
            "beeldbel_callback_requests_received_total",
            {"channel": "phone", "topic": "other", "source": "phone"},
        )
        == 1
    )


async def test_event_stream_pushes_fresh_rows(client):
    """A console that is open sees a new request without reloading."""
    await sign_in(client)
    response = await client.get(
        "/staff/queue/events", headers={"Accept": "text/event-stream"}
    )
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    first = await asyncio.wait_for(read_event(response, "rows"), 5)
    assert first["references"] == []

    _, reference = await add_request(client.server.app[DB])
    client.server.app[QUEUE_EVENTS].publish()

    async def pushed() -> bool:
        event = await asyncio.wait_for(read_event(response, "rows"), 5)
        return reference in event["references"] and reference in event["html"]

    await wait_for(pushed, timeout=10, message="the new request on the stream")
    response.close()


async def test_event_stream_ends_when_the_session_ends(sqlite_client):
    await sign_in(sqlite_client)
    response = await sqlite_client.get(
        "/staff/queue/events", headers={"Accept": "text/event-stream"}
    )
    await asyncio.wait_for(read_event(response, "rows"), 5)
    token = await csrf(sqlite_client)
    logout = await sqlite_client.post(
        "/staff/logout", data={"csrf_token": token}, allow_redirects=False
    )
    assert logout.status in (302, 303)
    sqlite_client.server.app[QUEUE_EVENTS].publish()
    await asyncio.wait_for(read_event(response, "signed_out"), 5)
    assert await asyncio.wait_for(response.content.read(), 5) == b""


async def test_event_stream_sends_heartbeats(sqlite_client, monkeypatch):
    """An idle stream gets a comment now and then, so proxies keep it open."""
    monkeypatch.setattr(console, "HEARTBEAT_SECONDS", 0.05)
    await sign_in(sqlite_client)
    response = await sqlite_client.get(
        "/staff/queue/events", headers={"Accept": "text/event-stream"}
    )

    async def heartbeat() -> bool:
        line: bytes = await asyncio.wait_for(response.content.readline(), 5)
        assert line, "the event stream ended"
        return line == b": heartbeat\n"

    await wait_for(heartbeat, message="a heartbeat comment")
    response.close()


async def test_phone_line_entry_with_a_slot_and_english_labels(sqlite_client):
    await sign_in(sqlite_client)
    html = await (await sqlite_client.get("/staff/requests/new?lang=en")).text()
    assert "Enter a request from the phone line" in html
    slot = re.search(r'<option value="(\d{4}-[^"]+Z)"[^>]*>([^<]+)</option>', html)
    submission = re.search(r'name="submission_id" value="([^"]+)"', html)
    assert slot
    assert submission
    response = await sqlite_client.post(
        "/staff/requests/new",
        data={
            "csrf_token": csrf_from(html),
            "submission_id": submission.group(1),
            "name": "Slot Person",
            "phone": "0612345678",
            "topic": "other",
            "channel": "video",
            "language": "en",
            "preferred": "slot",
            "slot": slot.group(1),
            "accessibility": ["text_chat", "extra_time"],
            "consent_phone": "yes",
        },
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    detail = await (await sqlite_client.get(response.headers["Location"])).text()
    assert slot.group(2) in detail, "the slot is shown in the desk's local time"
    assert "Text chat, Extra time" in detail
    queue_page = await (await sqlite_client.get("/staff")).text()
    assert "not due yet" in queue_page


def test_every_code_has_a_label_in_both_languages():
    """Codes shown to staff are translated; a missing key would show the code."""
    catalog = Catalog.load()
    keys = [f"console_state_{s.value}" for s in State]
    keys += [f"console_channel_{c}" for c in CHANNELS]
    keys += [f"console_need_{n}" for n in ACCESSIBILITY_NEEDS]
    keys += [f"console_outcome_{o}" for o in (*queue.OUTCOMES, "no_answer", "expired")]
    keys += [f"console_cancel_{r}" for r in queue.CANCEL_REASONS]
    keys += [f"console_switch_{r}" for r in queue.SWITCH_REASONS]
    keys += [f"console_source_{s}" for s in SOURCES]
    keys += ["console_language_nl", "console_language_en"]
    missing = [key for key in keys if key not in catalog]
    assert not missing


async def test_twenty_racing_claims_over_http_have_one_winner(client):
    await sign_in(client)
    rid, _ = await add_request(client.server.app[DB])
    token = await csrf(client)
    responses = await asyncio.gather(
        *(post(client, f"/staff/requests/{rid}/claim", token) for _ in range(20))
    )
    statuses = sorted(r.status for r in responses)
    assert statuses == [303] + [409] * 19
    claims = [r for r in await audit_rows(client, rid) if r.action == "request_claimed"]
    assert len(claims) == 1


class _ProductionServer(TestServer):
    """Like ``web.run_app``: a handler runs on when its client goes away."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        kwargs["handler_cancellation"] = False
        return web.AppRunner(self.app, **kwargs)


async def test_a_console_gone_before_the_stream_starts_is_not_a_failure(
    aiohttp_client, make_config, sqlite_url
):
    """A browser that closes ``/staff/queue/events`` while it opens (a reload, a
    closed tab) is normal: no exception is logged."""
    client = await aiohttp_client(
        _ProductionServer(create_app(make_config(sqlite_url)))
    )
    await sign_in(client)
    cookies = client.session.cookie_jar.filter_cookies(client.make_url("/"))
    cookie = "; ".join(f"{name}={c.value}" for name, c in cookies.items())
    with structlog.testing.capture_logs() as logs:
        _, writer = await asyncio.open_connection(client.server.host, client.port)
        writer.write(
            b"GET /staff/queue/events HTTP/1.1\r\nHost: localhost\r\n"
            + f"Cookie: {cookie}\r\n\r\n".encode()
        )
        writer.close()
        await writer.wait_closed()

        async def handled() -> bool:
            return any(e["event"] == "http_request_handled" for e in logs)

        await wait_for(handled, message="the stream request to be handled")
    assert [e["event"] for e in logs if e["log_level"] == "error"] == []
