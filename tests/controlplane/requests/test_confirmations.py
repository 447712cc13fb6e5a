"""A new request is confirmed to the citizen, by e-mail or SMS, with its reference
and a status link: from the web form, the staff's phone-line entry and the API.
Through the real app, a real SMTP server on loopback and an HTTP SMS gateway."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from beeldbel.config import MailConfig, SmsConfig
from controlplane.app.factory import create_app
from controlplane.base.metrics import METRICS
from controlplane.security.api_keys import create_api_key
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log, callback_requests
from tests.controlplane.mail import smtp
from tests.controlplane.sample_requests import VALID
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import csrf_from, free_port, wait_for

__all__ = ["smtp"]

ADDRESS = "burger.canary@example.org"
_STATUS_LINK = re.compile(r"http://127\.0\.0\.1/verzoek/\S+")
_SUBMISSION = re.compile(r'name="submission_id" value="([^"]+)"')
ANSWERS = {
    "name": "Jan Jansen",
    "phone": "06-12345678",
    "topic": "report_question",
    "channel": "video",
    "preferred": "asap",
    "language": "nl",
    "consent": "yes",
}


@pytest.fixture
async def gateway(aiohttp_server) -> tuple[str, list[dict[str, Any]]]:
    """An SMS gateway that accepts every message and keeps it."""
    received: list[dict[str, Any]] = []

    async def receive(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"id": "1"}, status=202)

    app = web.Application()
    app.router.add_post("/send", receive)
    server = await aiohttp_server(app)
    return str(server.make_url("/send")), received


def mail_config(port: int) -> MailConfig:
    return MailConfig(
        enabled=True,
        host="127.0.0.1",
        port=port,
        security="none",
        sender="desk@beeldbel.example",
        timeout_seconds=5,
    )


async def _submit_form(client: Any, **answers: str) -> str:
    """Post the citizen form; returns the new request's reference."""
    html = await (await client.get("/")).text()
    submission = _SUBMISSION.search(html)
    assert submission
    form = {
        "csrf_token": csrf_from(html),
        "submission_id": submission.group(1),
        **ANSWERS,
        **answers,
    }
    response = await client.post("/", data=form, allow_redirects=False)
    assert response.status == 303, await response.text()
    async with client.server.app[DB].read() as conn:
        refs = (await conn.execute(sa.select(callback_requests.c.reference))).all()
    return str(refs[-1].reference)


def _body(message: Any) -> str:
    return str(message.get_body(preferencelist=("plain",)).get_content())


async def _audited(client: Any, action: str) -> list[dict[str, Any]]:
    async with client.server.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == action)
        )
        return [dict(row.details) for row in rows]


def _confirmations(client: Any, via: str, result: str) -> float:
    value = client.server.app[METRICS].registry.get_sample_value(
        "beeldbel_confirmations_total", {"via": via, "result": result}
    )
    return value or 0.0


async def test_form_with_email_gets_a_mail_with_a_working_status_link(
    aiohttp_client, make_config, db_url, smtp
):
    mailbox, port = smtp
    client = await aiohttp_client(
        create_app(make_config(db_url, mail=mail_config(port)))
    )
    reference = await _submit_form(client, email=ADDRESS)
    await wait_for(lambda: mailbox.messages, 10, "the confirmation e-mail")
    (_sender, rcpts, message) = mailbox.messages[0]
    assert rcpts == [ADDRESS]
    assert reference in message["Subject"]
    body = _body(message)
    assert reference in body
    link = _STATUS_LINK.search(body)
    assert link, body
    # the link opens the status page, more than once
    for _ in range(2):
        page = await client.get(link.group(0).removeprefix("http://127.0.0.1"))
        assert page.status == 200
        assert reference in await page.text()
    await wait_for(lambda: _confirmations(client, "email", "sent") == 1, 5, "count")
    assert await _audited(client, "confirmation_sent") == [{"via": "email"}]


async def test_form_with_only_a_phone_number_gets_an_sms(
    aiohttp_client, make_config, sqlite_url, gateway
):
    url, received = gateway
    config = make_config(sqlite_url, sms=SmsConfig(enabled=True, gateway_url=url))
    client = await aiohttp_client(create_app(config))
    reference = await _submit_form(client, channel="phone")
    await wait_for(lambda: received, 10, "the confirmation SMS")
    (sms,) = received
    assert sms["to"] == "+31612345678"
    assert reference in sms["text"]
    link = _STATUS_LINK.search(sms["text"])
    assert link
    page = await client.get(link.group(0).removeprefix("http://127.0.0.1"))
    assert page.status == 200
    await wait_for(lambda: _confirmations(client, "sms", "sent") == 1, 5, "count")


async def test_a_failed_send_never_fails_the_request_and_is_recorded(
    aiohttp_client, make_config, sqlite_url, log_stream
):
    # nothing listens on this SMTP port, and there is no SMS gateway
    config = make_config(sqlite_url, mail=mail_config(free_port()))
    client = await aiohttp_client(create_app(config))
    reference = await _submit_form(client, email=ADDRESS)
    assert reference.startswith("BB-")
    await wait_for(lambda: _confirmations(client, "email", "failed") == 1, 10, "count")
    failed = await _audited(client, "confirmation_failed")
    assert failed == [{"via": "email", "reason": "delivery_mail_failed"}]
    assert ADDRESS not in log_stream.getvalue()


async def test_phone_line_entry_and_api_are_confirmed_too(
    aiohttp_client, make_config, sqlite_url, smtp, gateway
):
    mailbox, port = smtp
    url, received = gateway
    config = make_config(
        sqlite_url,
        mail=mail_config(port),
        sms=SmsConfig(enabled=True, gateway_url=url),
    )
    client = await aiohttp_client(create_app(config))
    key = await create_api_key(client.server.app[DB], "t", ("callbacks:write",))
    created = await client.post(
        "/api/v1/callbacks",
        json=VALID,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert created.status == 201
    reference = (await created.json())["reference"]
    await wait_for(lambda: mailbox.messages, 10, "the API request's e-mail")
    assert reference in _body(mailbox.messages[0][2])

    await sign_in(client)
    html = await (await client.get("/staff/requests/new")).text()
    submission = _SUBMISSION.search(html)
    assert submission
    form = {
        "csrf_token": csrf_from(html),
        "submission_id": submission.group(1),
        "name": "Piet Telefoon",
        "phone": "06 12345678",
        "topic": "other",
        "channel": "phone",
        "language": "en",
        "preferred": "asap",
        "consent_phone": "yes",
    }
    entered = await client.post("/staff/requests/new", data=form, allow_redirects=False)
    assert entered.status == 303
    await wait_for(lambda: received, 10, "the phone-line request's SMS")
    assert "received" in received[0]["text"]
    assert "?lang=en" in received[0]["text"]
