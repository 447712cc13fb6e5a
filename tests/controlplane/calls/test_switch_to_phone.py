"""Switching a video call to a phone call, as the citizen meets it (issue 11):
their call page knows the number we will ring (masked), hears why the call
ended, and the survey asks about the phone call. Over HTTP against a real media
node (in-process) and a real SMTP server on loopback."""

from __future__ import annotations

import json
import re

import aiohttp
import pytest

from controlplane.app.factory import create_app
from controlplane.requests.validation import mask_phone
from tests.controlplane.mail import smtp  # noqa: F401 (a fixture)
from tests.controlplane.video_calls import (
    Guest,
    call_config,
    claimed,
    staff_json,
    start,
)
from tests.helpers import wait_for

_LINK = re.compile(r"https?://\S+/gesprek#t=[A-Za-z0-9_-]+")


@pytest.mark.parametrize(
    ("e164", "shown"),
    [
        ("+31612345678", "06-…78"),
        ("+31201234567", "020-…67"),
        ("+3210123456", "+32…56"),
    ],
)
def test_a_masked_number_shows_only_what_the_citizen_recognises(e164, shown):
    assert mask_phone(e164) == shown


async def ended_event(response: aiohttp.ClientResponse) -> dict[str, object]:
    """The data of the ``ended`` event on the citizen's open event stream."""
    kind = ""
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            kind = line.removeprefix("event: ")
        elif line.startswith("data: ") and kind == "ended":
            response.close()
            data: dict[str, object] = json.loads(line.removeprefix("data: "))
            return data
    raise AssertionError("the stream closed without an ended event")


async def test_the_citizen_learns_we_phone_them_now(
    aiohttp_client,
    make_config,
    sqlite_url,
    media,
    smtp,  # noqa: F811
):
    mailbox, port = smtp
    config = call_config(make_config, sqlite_url, str(media.make_url("")), port)
    client = await aiohttp_client(create_app(config))
    request_id, token = await claimed(client, phone="+31612345678")
    room_id = await start(client, request_id, token, send_email="1")
    await wait_for(lambda: mailbox.messages, message="the e-mail with the link")
    link = _LINK.search(mailbox.messages[0][2].get_body(("plain",)).get_content())
    assert link is not None
    citizen = Guest(client)
    try:
        assert (await citizen.open(link.group(0))).status == 200
        page = await (await citizen.session.get("/gesprek/bellen")).text()
        assert 'data-phone-hint="06-…78"' in page
        assert "12345678" not in page

        events = await citizen.session.get("/gesprek/events")
        assert events.status == 200
        path = f"/staff/gesprekken/{room_id}/naar-telefoon"
        body = {"reason": "technical_problem"}
        assert (await staff_json(client, path, token, body)).status == 200

        assert (await ended_event(events))["outcome"] == "switched_to_phone"
        status = await (await citizen.get("/gesprek/status")).json()
        assert status["ended"] is True
        assert status["outcome"] == "switched_to_phone"

        survey = await (await citizen.session.get("/gesprek/enquete")).text()
        assert "Hoe ging het telefoongesprek?" in survey
        assert "videogesprek" not in survey
    finally:
        await citizen.close()
