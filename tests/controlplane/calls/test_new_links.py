"""A new link from the staff call page (issue 11): it goes out by e-mail or SMS
(or is copied), the citizen can open it, and the link it replaces is refused with
its own reason, also in the browser that opened it. The interpreter invitation
goes by e-mail or SMS too. A real media node (in-process), a real SMTP server
and an SMS gateway on loopback."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from beeldbel.config import SmsConfig
from controlplane.app.factory import create_app
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log
from tests.controlplane.video_calls import (
    ADDRESS,
    Guest,
    call_config,
    claimed,
    staff_json,
    start,
)
from tests.helpers import read_event, wait_for

_LINK = re.compile(r"https?://\S+/gesprek#t=[A-Za-z0-9_-]+")
INTERPRETER = "tolk.jansen@example.org"


@pytest.fixture
def gateway() -> list[dict[str, Any]]:
    """What the SMS gateway received."""
    return []


@pytest.fixture
async def client(
    aiohttp_client,
    aiohttp_server,
    make_config,
    sqlite_url,
    media,
    smtp,
    gateway,
):
    async def receive(request: web.Request) -> web.Response:
        gateway.append(await request.json())
        return web.json_response({"id": "1"}, status=202)

    sms_app = web.Application()
    sms_app.router.add_post("/send", receive)
    sms_server = await aiohttp_server(sms_app)
    config = dataclasses.replace(
        call_config(make_config, sqlite_url, str(media.make_url("")), smtp[1]),
        sms=SmsConfig(enabled=True, gateway_url=str(sms_server.make_url("/send"))),
    )
    return await aiohttp_client(create_app(config))


def links_to(mailbox, address: str) -> list[str]:
    found = []
    for _sender, recipients, message in mailbox.messages:
        if address in recipients:
            text = message.get_body(("plain",)).get_content()
            match = _LINK.search(text)
            assert match, text
            found.append(match.group(0))
    return found


async def audited(client, action: str) -> list[dict[str, Any]]:
    async with client.server.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.details).where(audit_log.c.action == action)
        )
        return [dict(row.details) for row in rows]


async def test_a_new_link_by_e_mail_works_and_the_old_one_is_refused(client, smtp):
    mailbox, _port = smtp
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token, send_email="1")
    await wait_for(lambda: links_to(mailbox, ADDRESS), message="the first e-mail")
    (old,) = links_to(mailbox, ADDRESS)
    events = await client.get(
        f"/staff/gesprekken/{room_id}/events", headers={"Accept": "text/event-stream"}
    )

    made = await staff_json(
        client, f"/staff/gesprekken/{room_id}/link", token, {"email": True}
    )
    assert made.status == 200, await made.text()
    reply = await made.json()
    assert reply["sent"] == ["email"]
    assert reply["failed"] == []
    await wait_for(lambda: len(links_to(mailbox, ADDRESS)) == 2, message="e-mail 2")
    new = links_to(mailbox, ADDRESS)[1]
    assert new == reply["link"] != old
    sent = [await read_event(events, "link_sent") for _ in range(2)]
    assert [e["via"] for e in sent] == ["email", "email"]

    citizen, stranger = Guest(client), Guest(client)
    try:
        refused = await stranger.open(old)
        assert refused.status == 410
        assert (await refused.json())["error"]["code"] == "link_replaced"
        opened = await citizen.open(new)
        assert opened.status == 200, await opened.text()
        assert (await citizen.get("/gesprek/apparaat")).status == 200
    finally:
        await citizen.close()
        await stranger.close()
    # who sent which way, never to what address
    ((details,),) = [await audited(client, "join_link_replaced")]
    assert details["via"] == ["email"]
    assert ADDRESS not in str(details)


async def test_the_browser_that_opened_the_old_link_is_out(client):
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    link_path = f"/staff/gesprekken/{room_id}/link"
    first = await (await staff_json(client, link_path, token, {})).json()
    wrong_device, right_device = Guest(client), Guest(client)
    try:
        assert (await wrong_device.open(first["link"])).status == 200
        second = await (await staff_json(client, link_path, token, {})).json()
        assert second["sent"] == []
        # the page the wrong device had says why, in the citizen's words
        page = await wrong_device.session.get("/gesprek/bellen")
        assert page.status == 410
        assert "vervangen door een nieuwe link" in await page.text()
        grant = await wrong_device.post("/gesprek/token", {})
        assert (await grant.json())["error"]["code"] == "link_replaced"
        assert (await right_device.open(second["link"])).status == 200
        assert (await right_device.post("/gesprek/token", {})).status == 200
    finally:
        await wrong_device.close()
        await right_device.close()


async def test_sms_and_the_end_of_the_call(client, gateway):
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    made = await staff_json(
        client, f"/staff/gesprekken/{room_id}/link", token, {"sms": True}
    )
    reply = await made.json()
    assert reply["sent"] == ["sms"]
    ((message,),) = [gateway]
    assert message["to"] == "+31612345678"
    assert reply["link"] in message["text"]
    await staff_json(client, f"/staff/gesprekken/{room_id}/einde", token)
    late = await staff_json(client, f"/staff/gesprekken/{room_id}/link", token, {})
    assert late.status == 410


async def test_the_interpreter_invitation_goes_by_e_mail_or_sms(
    client,
    smtp,
    gateway,
):
    mailbox, _port = smtp
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    path = f"/staff/gesprekken/{room_id}/tolk"
    mailed = await staff_json(client, path, token, {"email": INTERPRETER})
    assert mailed.status == 200, await mailed.text()
    assert (await mailed.json())["sent"] == ["email"]
    await wait_for(lambda: links_to(mailbox, INTERPRETER), message="the invitation")
    message = next(m for _s, to, m in mailbox.messages if INTERPRETER in to)
    assert "tolk" in message["Subject"].lower()
    texted = await staff_json(client, path, token, {"phone": "06-87654321"})
    assert (await texted.json())["sent"] == ["sms"]
    ((sms,),) = [gateway]
    assert sms["to"] == "+31687654321"
    assert "tolk" in sms["text"].lower()
    interpreter = Guest(client)
    try:
        opened = await interpreter.open(links_to(mailbox, INTERPRETER)[0])
        assert opened.status == 200
    finally:
        await interpreter.close()
    # audited with the ways it went, never the address or number
    details = await audited(client, "interpreter_invited")
    assert [d["via"] for d in details] == [["email"], ["sms"]]
    assert INTERPRETER not in str(details)
    assert "687654321" not in str(details)

    wrong = await staff_json(client, path, token, {"email": "not an address"})
    assert wrong.status == 422
    assert set((await wrong.json())["error"]["details"]) == {"email"}
    odd = await staff_json(client, path, token, {"phone": "12"})
    assert set((await odd.json())["error"]["details"]) == {"phone"}


async def test_messages_from_one_call_are_limited_before_a_link_is_made(
    client, smtp, gateway
):
    """An employee's page (or a script with its session) cannot flood a citizen
    or an interpreter's address: e-mails and texts from one call are counted
    (``[security] messages_per_call_per_hour``, here 10; the start's e-mail is
    one). Over it the answer is a 429 and no new link replaces the citizen's."""
    mailbox, _port = smtp
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token, send_email="1")
    link_path = f"/staff/gesprekken/{room_id}/link"
    for _ in range(4):  # 1 + 4 e-mails and 4 texts
        made = await staff_json(client, link_path, token, {"email": True, "sms": True})
        assert (await made.json())["sent"] == ["email", "sms"]
    last = await (await staff_json(client, link_path, token, {"sms": True})).json()
    await wait_for(lambda: len(links_to(mailbox, ADDRESS)) == 5, message="5 e-mails")
    assert len(gateway) == 5

    refused = await staff_json(client, link_path, token, {"email": True})
    assert refused.status == 429, await refused.text()
    assert int(refused.headers["Retry-After"]) > 0
    invited = await staff_json(
        client, f"/staff/gesprekken/{room_id}/tolk", token, {"email": INTERPRETER}
    )
    assert invited.status == 429
    # the citizen's last link still works, and nothing more went out
    citizen = Guest(client)
    try:
        assert (await citizen.open(last["link"])).status == 200
    finally:
        await citizen.close()
    assert len(links_to(mailbox, ADDRESS)) == 5
    assert len(gateway) == 5
    # a link to copy sends nothing, so it is still made
    copied = await staff_json(client, link_path, token, {})
    assert copied.status == 200
