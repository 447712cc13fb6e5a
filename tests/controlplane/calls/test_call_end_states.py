"""No request stays "being called" once its video call is over (issue 11): each
way a call ends gives the request a state, and the call page's end step closes it
in one go (handled / follow-up needed / not reached). Over HTTP against a real
media node (in-process) and a real SMTP server on loopback."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from controlplane.app.factory import create_app
from controlplane.calls.heartbeats import end_lost_calls
from controlplane.requests import Request, State, get_request
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log
from tests.controlplane.video_calls import (
    NODE,
    Guest,
    call_config,
    claimed,
    record_of,
    staff_json,
    start,
)
from tests.helpers import wait_for

_LINK = re.compile(r"https?://\S+/gesprek#t=[A-Za-z0-9_-]+")


@pytest.fixture
async def client(aiohttp_client, make_config, db_url, media, smtp):
    config = call_config(make_config, db_url, str(media.make_url("")), smtp[1])
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def sqlite_client(aiohttp_client, make_config, sqlite_url, media, smtp):
    config = call_config(make_config, sqlite_url, str(media.make_url("")), smtp[1])
    return await aiohttp_client(create_app(config))


async def request_of(client, request_id: int) -> Request:
    return await get_request(client.server.app[DB], request_id)


async def audited(client, request_id: int) -> list[tuple[str, dict[str, Any]]]:
    async with client.server.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.action, audit_log.c.details)
            .where(audit_log.c.request_id == request_id)
            .order_by(audit_log.c.id)
        )
        return [(row.action, row.details) for row in rows]


async def started(client) -> tuple[int, str, str]:
    """A claimed video request whose call runs: (request id, room id, csrf)."""
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    assert (await request_of(client, request_id)).state is State.CALLING
    return request_id, room_id, token


async def end(client, room_id: str, token: str) -> None:
    ended = await staff_json(client, f"/staff/gesprekken/{room_id}/einde", token)
    assert ended.status == 200, await ended.text()


async def close(client, room_id: str, token: str, result: str):
    path = f"/staff/gesprekken/{room_id}/afsluiten"
    return await staff_json(client, path, token, {"result": result})


async def test_employee_ends_then_closes_it_as_handled_in_one_step(client):
    request_id, room_id, token = await started(client)
    early = await close(client, room_id, token, "handled")
    assert early.status == 409, "a call still running is not closed from its page"

    await end(client, room_id, token)
    held = await request_of(client, request_id)
    assert (held.state, held.attempts) == (State.CLAIMED, 1)
    assert held.claimed_by is not None

    closed = await close(client, room_id, token, "handled")
    assert closed.status == 200, await closed.text()
    record = await record_of(client, room_id)
    assert await closed.json() == {"next": f"/staff/gesprekken/{record.id}/enquete"}
    done = await request_of(client, request_id)
    assert (done.state, done.outcome) == (State.COMPLETED, "resolved")
    actions = await audited(client, request_id)
    assert ("call_over", {}) in actions
    assert actions[-1] == (
        "request_closed",
        {"state": "completed", "outcome": "resolved", "attempts": 1},
    )


async def test_a_request_closed_elsewhere_goes_on_to_the_survey(sqlite_client):
    request_id, room_id, token = await started(sqlite_client)
    await end(sqlite_client, room_id, token)
    await sqlite_client.post(
        f"/staff/requests/{request_id}/complete",
        data={"csrf_token": token, "outcome": "referred"},
        allow_redirects=False,
    )
    again = await close(sqlite_client, room_id, token, "handled")
    record = await record_of(sqlite_client, room_id)
    assert await again.json() == {"next": f"/staff/gesprekken/{record.id}/enquete"}
    done = await request_of(sqlite_client, request_id)
    assert (done.state, done.outcome) == (State.COMPLETED, "referred")


async def test_a_wrong_choice_is_a_422_naming_the_field(sqlite_client):
    _request_id, room_id, token = await started(sqlite_client)
    await end(sqlite_client, room_id, token)
    wrong = await close(sqlite_client, room_id, token, "maybe")
    assert wrong.status == 422
    error = (await wrong.json())["error"]
    assert error["details"] == {"result": "console_field_result_invalid"}


async def test_citizen_leaves_then_the_employee_ends_and_needs_a_follow_up(
    sqlite_client,
    smtp,
):
    mailbox, _port = smtp
    request_id, token = await claimed(sqlite_client)
    room_id = await start(sqlite_client, request_id, token, send_email="1")
    await wait_for(lambda: mailbox.messages, message="the e-mail with the link")
    body = mailbox.messages[0][2].get_body(("plain",)).get_content()
    citizen = Guest(sqlite_client)
    try:
        link = _LINK.search(body)
        assert link is not None
        assert (await citizen.open(link.group(0))).status == 200
        left = await citizen.post("/gesprek/voortgang", {"step": "left"})
        assert left.status == 204
        # the citizen leaving ends nothing: the employee still ends the call
        assert (await request_of(sqlite_client, request_id)).state is State.CALLING
    finally:
        await citizen.close()
    await end(sqlite_client, room_id, token)
    assert (await request_of(sqlite_client, request_id)).state is State.CLAIMED
    closed = await close(sqlite_client, room_id, token, "follow_up")
    assert closed.status == 200
    done = await request_of(sqlite_client, request_id)
    assert (done.state, done.outcome) == (State.COMPLETED, "follow_up")


async def test_not_reached_puts_it_back_for_a_retry(sqlite_client):
    request_id, room_id, token = await started(sqlite_client)
    await end(sqlite_client, room_id, token)
    closed = await close(sqlite_client, room_id, token, "not_reached")
    item = await request_of(sqlite_client, request_id)
    assert await closed.json() == {"next": f"/staff?retry={item.reference}"}
    assert (item.state, item.attempts, item.claimed_by) == (State.NEW, 1, None)


async def test_a_lost_media_node_gives_the_request_back_to_its_holder(sqlite_client):
    request_id, room_id, token = await started(sqlite_client)
    assert await end_lost_calls(sqlite_client.server.app, NODE) == 1
    assert (await record_of(sqlite_client, room_id)).outcome == "media_lost"
    held = await request_of(sqlite_client, request_id)
    assert (held.state, held.attempts) == (State.CLAIMED, 1)
    # the employee starts the call again from the request page
    again = await start(sqlite_client, request_id, token)
    assert again != room_id
    calling = await request_of(sqlite_client, request_id)
    assert (calling.state, calling.attempts) == (State.CALLING, 2)


async def test_switch_to_phone_keeps_it_calling_by_phone(sqlite_client):
    request_id, room_id, token = await started(sqlite_client)
    path = f"/staff/gesprekken/{room_id}/naar-telefoon"
    switched = await staff_json(
        sqlite_client, path, token, {"reason": "technical_problem"}
    )
    assert switched.status == 200, await switched.text()
    # the employee phones the citizen now: being called, by phone
    item = await request_of(sqlite_client, request_id)
    assert (item.state, item.channel) == (State.CALLING, "phone")
    assert (await record_of(sqlite_client, room_id)).outcome == "switched_to_phone"
    page = await (await sqlite_client.get(f"/staff/requests/{request_id}")).text()
    assert 'id="complete"' in page


async def test_the_request_page_offers_closing_once_the_call_is_over(sqlite_client):
    request_id, room_id, token = await started(sqlite_client)
    await end(sqlite_client, room_id, token)
    page = await (await sqlite_client.get(f"/staff/requests/{request_id}")).text()
    for control in ('id="complete"', 'id="no-answer"', 'id="start-video"'):
        assert control in page
    completed = await sqlite_client.post(
        f"/staff/requests/{request_id}/complete",
        data={"csrf_token": token, "outcome": "referred"},
        allow_redirects=False,
    )
    assert completed.status == 303
    done = await request_of(sqlite_client, request_id)
    assert (done.state, done.outcome) == (State.COMPLETED, "referred")


async def test_the_survey_answered_handled_yes_completes_the_request(sqlite_client):
    request_id, room_id, token = await started(sqlite_client)
    await end(sqlite_client, room_id, token)
    record = await record_of(sqlite_client, room_id)
    answered = await sqlite_client.post(
        f"/staff/gesprekken/{record.id}/enquete",
        data={
            "csrf_token": token,
            "quality": "4",
            "case_handled": "yes",
            "would_use_again": "yes",
        },
        allow_redirects=False,
    )
    assert answered.status == 303
    done = await request_of(sqlite_client, request_id)
    assert (done.state, done.outcome) == (State.COMPLETED, "resolved")
