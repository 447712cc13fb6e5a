"""Phone callbacks get surveys too (issue 12): the employee's after completing a
phone callback, and the citizen's through a signed, expiring link by e-mail or
SMS, with the same questions as after a video call, worded for the phone, stored
with channel ``phone``. Through the real app, a real SMTP server on loopback and
an HTTP SMS gateway, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from beeldbel.config import SecurityConfig, SmsConfig
from controlplane.app.factory import create_app
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.security.survey_links import survey_token
from controlplane.storage.database import DB
from controlplane.storage.schema import call_records
from tests.controlplane.audit_entries import audited
from tests.controlplane.mail import smtp
from tests.controlplane.requests.test_confirmations import gateway, mail_config
from tests.controlplane.sample_requests import add_request
from tests.controlplane.staff_accounts import create, sign_in
from tests.controlplane.video_calls import call_config, claimed, staff_json, start
from tests.helpers import csrf_from, wait_for

__all__ = ["gateway", "smtp"]

_LINK = re.compile(r"http://127\.0\.0\.1(/enquete/[A-Za-z0-9._-]+)")
EMPLOYEE = {"quality": "4", "case_handled": "yes", "would_use_again": "unsure"}
CITIZEN = {"ease": "5", "av_quality": "3", "would_use_again": "yes", "comment": ""}


@pytest.fixture
async def sqlite_client(aiohttp_client: Any, make_config: Any, sqlite_url: str) -> Any:
    return await aiohttp_client(create_app(make_config(sqlite_url)))


async def _post(client: Any, path: str, page: str, **data: str) -> Any:
    html = await (await client.get(page)).text()
    form = {"csrf_token": csrf_from(html), **data}
    return await client.post(path, data=form, allow_redirects=False)


async def _complete_phone(client: Any, link: bool, **request: Any) -> int:
    """A phone request claimed, called and completed by the signed-in agent;
    returns its id after checking the completion leads to the survey."""
    rid, _reference = await add_request(
        client.server.app[DB], channel="phone", **request
    )
    page = f"/staff/requests/{rid}"
    for step in ("claim", "start"):
        response = await _post(client, f"{page}/{step}", page)
        assert response.status == 303, await response.text()
    html = await (await client.get(page)).text()
    assert 'id="survey-link"' in html
    extra = {"survey_link": "yes"} if link else {}
    done = await _post(client, f"{page}/complete", page, outcome="resolved", **extra)
    assert done.status == 303, await done.text()
    assert done.headers["Location"].startswith(f"/staff/requests/{rid}/enquete")
    return rid


async def _records(client: Any) -> list[Any]:
    async with client.server.app[DB].read() as conn:
        return list((await conn.execute(sa.select(call_records))).all())


async def test_employee_answers_after_completing_a_phone_callback(client):
    await sign_in(client, "agent")
    rid = await _complete_phone(client, link=False)
    survey = f"/staff/requests/{rid}/enquete"
    html = await (await client.get(survey)).text()
    assert "telefoongesprek" in html
    assert f'action="{survey}"' in html
    assert await _records(client) == []  # nothing stored before an answer
    answered = await _post(client, survey, survey, **EMPLOYEE)
    assert answered.status == 303, await answered.text()
    (record,) = await _records(client)
    assert answered.headers["Location"] == f"/staff/gesprekken/{record.id}/enquete"
    assert (record.channel, record.request_id) == ("phone", rid)
    assert record.employee_quality == 4
    assert record.employee_case_handled == "yes"
    assert record.employee_would_use_again == "unsure"
    assert record.media_node is None
    thanks = await client.get(answered.headers["Location"])
    assert thanks.status == 200
    assert 'id="to-request"' not in await thanks.text()  # closed already
    # answered: the phone survey shows the saved answers, not a second form
    again = await client.get(survey, allow_redirects=False)
    assert again.status == 303
    assert await audited(client, "survey_link_sent") == []
    # another agent may not answer it
    client.session.cookie_jar.clear()
    await sign_in(client, "agent", "other.agent")
    assert (await client.get(survey)).status == 403


async def test_citizen_answers_through_a_mailed_link(
    aiohttp_client, make_config, db_url, smtp
):
    mailbox, port = smtp
    client = await aiohttp_client(
        create_app(make_config(db_url, mail=mail_config(port)))
    )
    await sign_in(client, "agent")
    address = "burger.canary@example.org"
    await _complete_phone(client, link=True, email=address)
    await wait_for(lambda: mailbox.messages, 10, "the survey e-mail")
    (_sender, rcpts, message) = mailbox.messages[0]
    assert rcpts == [address]
    body = str(message.get_body(preferencelist=("plain",)).get_content())
    link = _LINK.search(body)
    assert link, body
    assert await audited(client, "survey_link_sent") == [{"via": "email"}]

    client.session.cookie_jar.clear()  # the citizen's own browser
    page = await client.get(link.group(1))
    assert page.status == 200
    html = await page.text()
    assert "Hoe ging het telefoongesprek?" in html
    assert f'action="{link.group(1)}"' in html
    answered = await _post(client, link.group(1), link.group(1), **CITIZEN)
    assert answered.status == 303, await answered.text()
    thanks = await (await client.get(link.group(1))).text()
    assert 'id="survey-thanks"' in thanks
    assert "citizen-survey" not in thanks
    (record,) = await _records(client)
    assert record.channel == "phone"
    assert (record.citizen_ease, record.citizen_av_quality) == (5, 3)
    assert record.citizen_would_use_again == "yes"
    assert address not in str(await audited(client, "survey_link_sent"))


async def test_citizen_gets_the_link_by_sms(
    aiohttp_client, make_config, sqlite_url, gateway
):
    url, received = gateway
    sms = SmsConfig(enabled=True, gateway_url=url)
    client = await aiohttp_client(create_app(make_config(sqlite_url, sms=sms)))
    await sign_in(client, "agent")
    await _complete_phone(client, link=True, phone="+31612345678", email=None)
    await wait_for(lambda: received, 10, "the survey text message")
    (text,) = received
    assert text["to"] == "+31612345678"
    link = _LINK.search(text["text"])
    assert link, text
    assert len(text["text"]) <= 320
    client.session.cookie_jar.clear()
    page = await client.get(link.group(1))
    assert page.status == 200
    assert "telefoongesprek" in await page.text()
    assert await audited(client, "survey_link_sent") == [{"via": "sms"}]


async def test_tampered_expired_or_misplaced_links_are_refused(sqlite_client):
    client = sqlite_client
    await create(client, "agent", "some.agent")
    await sign_in(client, "agent")
    rid = await _complete_phone(client, link=False)
    secret = client.server.app[SECRET_KEY]
    now = datetime.now(UTC)
    good = survey_token(secret, rid, now + timedelta(days=1))
    assert (await client.get(f"/enquete/{good}")).status == 200
    head, _, signature = good.rpartition(".")
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    for token in (f"{head}.{flipped}", f"{rid + 1}{good[len(str(rid)) :]}", "x" * 300):
        refused = await client.get(f"/enquete/{token}")
        assert refused.status == 404, token
        assert "link" in (await refused.text()).lower()
    expired = survey_token(secret, rid, now - timedelta(seconds=1))
    assert (await client.get(f"/enquete/{expired}")).status == 410
    # a signed link of a request that is no completed phone callback
    open_rid, _ = await add_request(client.server.app[DB], channel="phone")
    other = survey_token(secret, open_rid, now + timedelta(days=1))
    assert (await client.get(f"/enquete/{other}")).status == 404
    english = await client.get(f"/enquete/{expired}?lang=en")
    assert "expired" in (await english.text()).lower()


async def test_a_video_call_gone_on_by_phone_keeps_one_record(
    aiohttp_client, make_config, sqlite_url, media, smtp
):
    """A video call switched to phone and then completed: its surveys stay on the
    video call's record (already worded for the phone), no second record."""
    config = call_config(make_config, sqlite_url, str(media.make_url("")), smtp[1])
    client = await aiohttp_client(create_app(config))
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    path = f"/staff/gesprekken/{room_id}/naar-telefoon"
    switched = await staff_json(client, path, token, {"reason": "technical_problem"})
    assert switched.status == 200, await switched.text()
    page = f"/staff/requests/{request_id}"
    done = await _post(client, f"{page}/complete", page, outcome="resolved")
    assert done.headers["Location"] == f"{page}/enquete"
    (record,) = await _records(client)
    survey = await client.get(f"{page}/enquete", allow_redirects=False)
    assert survey.status == 303
    assert survey.headers["Location"] == f"/staff/gesprekken/{record.id}/enquete"
    secret = client.server.app[SECRET_KEY]
    link = survey_token(secret, request_id, datetime.now(UTC) + timedelta(days=1))
    answered = await _post(client, f"/enquete/{link}", f"/enquete/{link}", **CITIZEN)
    assert answered.status == 303
    (after,) = await _records(client)
    assert (after.id, after.channel, after.citizen_ease) == (record.id, "video", 5)


async def test_guessing_survey_links_is_rate_limited(
    aiohttp_client, make_config, sqlite_url
):
    """The citizen's survey link is a public page: guesses from one address are
    limited like the status page's."""
    config = make_config(sqlite_url, security=SecurityConfig(status_per_ip_per_hour=3))
    client = await aiohttp_client(create_app(config))
    answers = [(await client.get(f"/enquete/{n}.1.guess")).status for n in range(4)]
    assert answers == [404, 404, 404, 429]
