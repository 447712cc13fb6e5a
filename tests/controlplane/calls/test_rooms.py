"""Video calls over HTTP against a real media server (in-process) and a real SMTP
server on loopback: start, link by e-mail, citizen session, media tokens, live
progress, waiting-room message, interpreter link, hang-up and switch to phone."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiohttp import web

from beeldbel.config import (
    MediaServerConfig,
    Secret,
    SmsConfig,
)
from beeldbel.turn import ice_servers_for
from controlplane.app.factory import create_app
from controlplane.calls import join_links
from controlplane.calls import record as records
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log, callback_requests
from mediaserver.ice_servers import ice_servers_for as media_ice_servers_for
from tests.controlplane.video_calls import (
    ADDRESS,
    JSON,
    NODE,
    Guest,
    call_config,
    claimed,
    claims,
    media_room,
    record_of,
    staff_json,
    start,
    video_request,
)
from tests.helpers import free_port, read_event, wait_for

_LINK = re.compile(r"https?://\S+/gesprek#t=[A-Za-z0-9_-]+")
_DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')


@pytest.fixture
async def client(aiohttp_client, make_config, db_url, media, smtp):
    config = call_config(make_config, db_url, str(media.make_url("")), smtp[1])
    return await aiohttp_client(create_app(config))


@pytest.fixture
async def sqlite_client(aiohttp_client, make_config, sqlite_url, media, smtp):
    config = call_config(make_config, sqlite_url, str(media.make_url("")), smtp[1])
    return await aiohttp_client(create_app(config))


async def audit_actions(client, request_id: int) -> list[str]:
    async with client.server.app[DB].read() as conn:
        rows = await conn.execute(
            sa.select(audit_log.c.action, audit_log.c.details)
            .where(audit_log.c.request_id == request_id)
            .order_by(audit_log.c.id)
        )
        return [row.action for row in rows]


def found(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    assert match, f"{pattern.pattern} not found"
    return match.group(0)


async def test_whole_call_from_start_to_hang_up(client, media, smtp, capfd):
    mailbox, _port = smtp
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token, send_email="1")

    # the room exists on the media node; the request is being called
    assert await media_room(media, room_id) == 200
    async with client.server.app[DB].read() as conn:
        state = (
            await conn.execute(
                sa.select(callback_requests.c.state).where(
                    callback_requests.c.id == request_id
                )
            )
        ).scalar_one()
    assert state == "calling"
    record = await record_of(client, room_id)
    assert record is not None
    assert record.request_id == request_id

    # the link went out by e-mail, to the citizen only
    await wait_for(lambda: len(mailbox.messages) == 1, message="the e-mail")
    _sender, recipients, message = mailbox.messages[0]
    assert recipients == [ADDRESS]
    link = found(_LINK, message.get_body(("plain",)).get_content())

    events = await client.get(
        f"/staff/gesprekken/{room_id}/events", headers={"Accept": "text/event-stream"}
    )
    assert events.status == 200
    assert (await read_event(events, "link_sent"))["via"] == "email"

    citizen = Guest(client)
    try:
        opened = await citizen.open(link)
        assert opened.status == 200, await opened.text()
        status = await citizen.get("/gesprek/status")
        assert await status.json() == {"ended": False, "outcome": None, "message": None}
        assert (await read_event(events, "link_opened"))["role"] == "citizen"

        # progress reaches the employee's stream at once
        sent = await citizen.post(
            "/gesprek/voortgang",
            {"step": "device_check_failed", "failed": ["camera"]},
        )
        assert sent.status == 204
        progress = await read_event(events, "progress")
        assert progress["step"] == "device_check_failed"
        assert progress["failed"] == ["camera"]
        assert progress["at"].endswith("Z")

        # a message for the waiting room, pushed and polled
        lobby = await citizen.session.get(
            "/gesprek/events", headers={"Accept": "text/event-stream"}
        )
        assert lobby.status == 200
        said = await staff_json(
            client,
            f"/staff/gesprekken/{room_id}/bericht",
            token,
            {"text": "Even geduld"},
        )
        assert said.status == 204
        status = await citizen.get("/gesprek/status")
        assert (await status.json())["message"] == "Even geduld"
        assert (await read_event(lobby, "lobby_message"))["text"] == "Even geduld"

        # media tokens: fresh, short-lived, for this room and role
        grant = await (await citizen.post("/gesprek/token", {})).json()
        assert grant["media_url"] == "wss://media.test:8444/ws"
        assert grant["room_id"] == room_id
        assert grant["force_relay"] is False
        citizen_claims = claims(grant["token"])
        assert citizen_claims["role"] == "citizen"
        assert citizen_claims["room"] == room_id
        assert citizen_claims["aud"] == NODE
        assert citizen_claims["exp"] - citizen_claims["iat"] == 60
        (turn,) = grant["ice_servers"]
        assert turn["username"].endswith(":" + citizen_claims["sub"])
        again = await (await citizen.post("/gesprek/token", {})).json()
        assert claims(again["token"])["jti"] != citizen_claims["jti"]
        assert claims(again["token"])["sub"] == citizen_claims["sub"]

        agent = await staff_json(client, f"/staff/gesprekken/{room_id}/token", token)
        assert claims((await agent.json())["token"])["role"] == "agent"

        quality = await citizen.post(
            "/gesprek/kwaliteit",
            {
                "join_to_first_picture_ms": 420,
                "connection_type": "relay",
                "reconnects": 1,
                "rtt_ms_p50": 3,
                "rtt_ms_p95": 9.6,
                "loss_pct": 0.5,
            },
        )
        assert quality.status == 204
        record = await record_of(client, room_id)
        assert record.quality == records.Quality(420, "relay", 1, 3, 10, 0.5)

        invited = await staff_json(client, f"/staff/gesprekken/{room_id}/tolk", token)
        assert _LINK.fullmatch((await invited.json())["link"])

        # hang up: the room is gone, the session and the link are spent
        ended = await staff_json(client, f"/staff/gesprekken/{room_id}/einde", token)
        assert await ended.json() == {"next": f"/staff/gesprekken/{record.id}/enquete"}
        assert (await read_event(events, "ended"))["outcome"] == "completed"
        await read_event(lobby, "ended")
        assert await media_room(media, room_id) == 404
        late = await citizen.post("/gesprek/token", {})
        assert late.status == 410
        assert (await late.json())["error"]["code"] == "link_expired"
        assert (await (await citizen.get("/gesprek/status")).json())["ended"] is True
        page = await citizen.get("/gesprek/bellen")
        assert page.status == 303
        assert page.headers["Location"] == "/gesprek/enquete"
        # the citizen's last quality report comes in as the call ends
        final = await citizen.post(
            "/gesprek/kwaliteit",
            {
                "join_to_first_picture_ms": 420,
                "connection_type": "relay",
                "reconnects": 2,
                "rtt_ms_p50": 4,
                "rtt_ms_p95": 11,
                "loss_pct": 0.7,
            },
        )
        assert final.status == 204
        assert (await record_of(client, room_id)).quality == records.Quality(
            420, "relay", 2, 4, 11, 0.7
        )
    finally:
        await citizen.close()
    other = Guest(client)
    try:
        refused = await other.open(link)
        assert refused.status in (409, 410)
    finally:
        await other.close()
    record = await record_of(client, room_id)
    assert record.outcome == "completed"
    assert record.ended_at is not None
    # no address, link or token reached a log line
    logged = "".join(capfd.readouterr())
    assert "video_call_ended" in logged
    for secret in (ADDRESS, link.split("#t=")[1], grant["token"], "Even geduld"):
        assert secret not in logged
    actions = await audit_actions(client, request_id)
    for action in ("call_started", "video_call_started", "interpreter_invited"):
        assert action in actions
    # the call over, its request goes back to the employee who held it
    assert actions[-2:] == ["video_call_ended", "call_over"]


async def test_starting_again_returns_the_running_call(sqlite_client, media):
    request_id, token = await claimed(sqlite_client)
    first = await start(sqlite_client, request_id, token)
    assert await start(sqlite_client, request_id, token) == first


async def test_switch_to_phone_ends_the_call(sqlite_client, media):
    client = sqlite_client
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    path = f"/staff/gesprekken/{room_id}/naar-telefoon"
    bad = await staff_json(client, path, token, {"reason": "bored"})
    assert bad.status == 422
    assert "reason" in (await bad.json())["error"]["details"]
    switched = await staff_json(client, path, token, {"reason": "technical_problem"})
    assert await switched.json() == {"next": f"/staff/requests/{request_id}"}
    assert await media_room(media, room_id) == 404
    async with client.server.app[DB].read() as conn:
        channel = (
            await conn.execute(
                sa.select(callback_requests.c.channel).where(
                    callback_requests.c.id == request_id
                )
            )
        ).scalar_one()
    assert channel == "phone"
    record = await record_of(client, room_id)
    assert record.outcome == "switched_to_phone"
    assert "channel_switched" in await audit_actions(client, request_id)


async def test_bad_inputs_get_clear_4xx(sqlite_client, media):
    client = sqlite_client
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    base = f"/staff/gesprekken/{room_id}"

    not_json = await client.post(
        base + "/bericht", data="text", headers={"X-CSRF-Token": token, **JSON}
    )
    assert not_json.status == 415
    broken = await client.post(
        base + "/bericht",
        data=b"{nope",
        headers={"X-CSRF-Token": token, "Content-Type": "application/json", **JSON},
    )
    assert broken.status == 400
    for text in ("", "   ", "x" * 501, 7):
        response = await staff_json(client, base + "/bericht", token, {"text": text})
        assert response.status == 422, text
    for body in (
        {"loss_pct": 101},
        {"connection_type": "carrier-pigeon"},
        {"reconnects": -1},
        {"rtt_ms_p50": "fast"},
        {"join_to_first_picture_ms": True},
    ):
        response = await staff_json(client, base + "/kwaliteit", token, body)
        assert response.status == 422, body
    no_csrf = await client.post(base + "/einde", json={}, headers=JSON)
    assert no_csrf.status == 403
    for path in (
        "/staff/gesprekken/unknown/token",
        f"/staff/gesprekken/{'a' * 40}/token",
    ):
        assert (await staff_json(client, path, token)).status == 404

    # phone requests and unknown ones get no call
    phone_id = await video_request(client, channel="phone")
    response = await client.post(
        f"/staff/requests/{phone_id}/video",
        data={"csrf_token": token},
        headers=JSON,
        allow_redirects=False,
    )
    assert response.status in (403, 409)
    response = await client.post(
        "/staff/requests/999999/video", data={"csrf_token": token}, headers=JSON
    )
    assert response.status == 404

    # no session, no call
    guest = Guest(client)
    try:
        page = await guest.session.get("/gesprek")
        guest.csrf = found(_DATA_CSRF, await page.text())[len('data-csrf="') : -1]
        assert (await guest.post("/gesprek/token", {})).status == 401
        assert (await guest.get("/gesprek/status")).status == 401
        assert (await guest.get("/gesprek/apparaat")).status == 401
    finally:
        await guest.close()


async def test_guest_progress_is_checked(sqlite_client, media):
    client = sqlite_client
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    link_token = await join_links.create_link(
        client.server.app[DB],
        request_id=request_id,
        room_id=room_id,
        role="interpreter",
        ttl=timedelta(minutes=5),
    )
    guest = Guest(client)
    try:
        assert (await guest.open(f"x#t={link_token}")).status == 200
        for body in (
            {"step": "dancing"},
            {"step": "waiting", "failed": ["nose"]},
            {"step": "waiting", "failed": "camera"},
        ):
            assert (await guest.post("/gesprek/voortgang", body)).status == 422
        grant = await (await guest.post("/gesprek/token", {})).json()
        assert claims(grant["token"])["role"] == "interpreter"
    finally:
        await guest.close()


async def test_media_node_down_is_a_503_and_nothing_changes(
    aiohttp_client, make_config, sqlite_url
):
    config = call_config(make_config, sqlite_url, f"http://127.0.0.1:{free_port()}")
    client = await aiohttp_client(create_app(config))
    request_id, token = await claimed(client)
    response = await client.post(
        f"/staff/requests/{request_id}/video",
        data={"csrf_token": token},
        headers=JSON,
        allow_redirects=False,
    )
    assert response.status == 503
    assert (await response.json())["error"]["code"] == "media_unavailable"
    assert "video_call_started" not in await audit_actions(client, request_id)
    assert "call_started" not in await audit_actions(client, request_id)


async def test_page_csp_lets_pages_reach_the_media_node(sqlite_client):
    response = await sqlite_client.get("/privacy")
    csp = response.headers["Content-Security-Policy"]
    assert "connect-src 'self' wss://media.test:8444;" in csp


def test_turn_credentials_match_the_media_servers():
    config = MediaServerConfig(
        stun_urls=("stun:127.0.0.1:3478",),
        turn_urls=("turn:127.0.0.1:3478",),
        turn_secret=Secret("s3cret"),
        turn_ttl_seconds=600,
    )
    assert ice_servers_for(config, "citizen-4", now=1000) == media_ice_servers_for(
        config, "citizen-4", now=1000
    )
    assert ice_servers_for(MediaServerConfig(), "p") == []


async def test_call_pages_render_with_their_data(sqlite_client, media):
    client = sqlite_client
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    page = await client.get(f"/staff/gesprekken/{room_id}")
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = await page.text()
    assert 'data-role="agent"' in html
    # the citizen's language and needs are on the call page, not only the request's
    assert '<dd id="citizen-language">Nederlands</dd>' in html
    assert 'id="citizen-needs"' in html
    assert f'data-token-url="/staff/gesprekken/{room_id}/token"' in html
    link = found(_LINK, html)

    citizen = Guest(client)
    try:
        assert (await citizen.open(link)).status == 200
        for path in ("/gesprek/apparaat", "/gesprek/bellen"):
            response = await citizen.session.get(path)
            assert response.status == 200, path
            body = await response.text()
            assert 'data-role="citizen"' in body
            assert 'data-token-url="/gesprek/token"' in body
            assert 'data-events-url="/gesprek/events"' in body
        # once opened, the link is no longer offered to copy
        html = await (await client.get(f"/staff/gesprekken/{room_id}")).text()
        assert _LINK.search(html) is None
        assert 'data-step="link_opened"' in html
        # its time is on the desk's clock (Europe/Amsterdam), not UTC
        assert 'data-time-zone="Europe/Amsterdam"' in html
        stamp = re.search(r'<time datetime="([^"]+)">([0-9:]+)</time>', html)
        assert stamp
        utc = datetime.fromisoformat(stamp.group(1).replace("Z", "+00:00"))
        amsterdam = utc.astimezone(ZoneInfo("Europe/Amsterdam"))
        assert stamp.group(2) == amsterdam.strftime("%H:%M")
        assert amsterdam.utcoffset() != timedelta(0)  # the test can tell the two
        # the page's stream starts after what the page shows (no duplicates)
        url = f"/staff/gesprekken/{room_id}/events?after=1"
        assert f'data-events-url="{url}"' in html
        events = await client.get(url, headers={"Accept": "text/event-stream"})
        await citizen.post("/gesprek/voortgang", {"step": "waiting"})
        first = [(await events.content.readline()).decode() for _ in range(2)]
        assert first == ["id: 2\n", "event: progress\n"]
        events.close()
    finally:
        await citizen.close()


async def test_sms_through_the_gateway_and_a_failed_delivery_is_shown(
    aiohttp_client, aiohttp_server, make_config, sqlite_url, media
):
    received: list[dict[str, Any]] = []

    async def gateway(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.json_response({"id": "1"}, status=202)

    sms_app = web.Application()
    sms_app.router.add_post("/send", gateway)
    sms_server = await aiohttp_server(sms_app)
    config = dataclasses.replace(
        call_config(make_config, sqlite_url, str(media.make_url(""))),
        sms=SmsConfig(enabled=True, gateway_url=str(sms_server.make_url("/send"))),
    )
    client = await aiohttp_client(create_app(config))
    request_id, token = await claimed(client)
    # the SMTP server of this config does not exist: that delivery fails
    room_id = await start(client, request_id, token, send_sms="1", send_email="1")
    ((message,),) = [received]
    assert message["to"] == "+31612345678"
    assert "/gesprek#t=" in message["text"]
    events = await client.get(
        f"/staff/gesprekken/{room_id}/events", headers={"Accept": "text/event-stream"}
    )
    failed = await read_event(events, "link_failed")
    assert failed["via"] == "email"
    events.close()


async def test_hang_up_works_when_the_media_node_is_gone(sqlite_client, media):
    client = sqlite_client
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    await media.close()
    ended = await staff_json(client, f"/staff/gesprekken/{room_id}/einde", token)
    assert ended.status == 200, await ended.text()
    record = await record_of(client, room_id)
    assert record.outcome == "completed"
    huge = await client.post(
        f"/staff/requests/{'9' * 5000}/video", data={"csrf_token": token}, headers=JSON
    )
    assert huge.status == 404
