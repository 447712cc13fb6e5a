"""Every signalling message that cannot be handled gets a protocol ``error`` (or
a close code), never an escaped exception, and the session goes on."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import WSMsgType
from aiortc import RTCPeerConnection
from structlog.testing import capture_logs

from tests.mediaserver.conftest import create_room


async def next_of(ws, *types: str) -> dict[str, Any]:
    """The next message of one of ``types`` (roster updates are skipped)."""
    while True:
        message: dict[str, Any] = await ws.receive_json(timeout=10)
        if message["type"] in types:
            return message


async def client_offer_sdp() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


def no_tracebacks(logs, caplog: pytest.LogCaptureFixture):
    assert not [e for e in logs if "exc_info" in e or "exception" in e], logs
    assert not [r for r in caplog.records if r.exc_info], caplog.text


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"type": "offer", "sdp": "garbage"}, id="garbage_offer"),
        pytest.param({"type": "answer", "sdp": "garbage"}, id="answer_unasked"),
        pytest.param("valid_answer", id="valid_answer_unasked"),
        pytest.param({"type": "admit", "participant_id": 7}, id="wrong_type"),
    ],
)
async def test_a_bad_message_gets_an_error_and_the_session_goes_on(
    server, token, caplog, bad
):
    await create_room(server)
    caplog.set_level(logging.INFO)
    if bad == "valid_answer":
        bad = {"type": "answer", "sdp": await client_offer_sdp()}
    with capture_logs() as logs:
        async with server.session.ws_connect(server.make_url("/ws")) as ws:
            await ws.send_json({"type": "join", "room_id": "r1", "token": token()})
            assert (await next_of(ws, "joined", "error"))["type"] == "joined"
            await ws.send_json(bad)
            reply = await next_of(ws, "error")
            assert reply["code"] == "bad_message", reply
            # still usable: the next message is answered too
            await ws.send_json({"type": "no_such_type"})
            reply = await next_of(ws, "error")
            assert reply["code"] == "bad_message", reply
            assert not ws.closed
    no_tracebacks(logs, caplog)


@pytest.mark.parametrize(
    ("text", "close_code"),
    [
        pytest.param("[" * 30000 + "]" * 30000, 1009, id="deep_nesting_60k"),
        pytest.param("[" * 2000 + "]" * 2000, 1009, id="deep_nesting_4k"),
        pytest.param("[" * 17 + "]" * 17, 1009, id="depth_17"),
        pytest.param('{"type": "join", "x": "' + "a" * 70000 + '"}', 1009, id="big"),
    ],
)
async def test_a_hostile_first_message_is_closed_with_a_code(
    server, caplog, text, close_code
):
    """Deeply nested or oversized JSON as the first message: the socket closes
    with a WebSocket close code, and nothing escapes as a traceback."""
    caplog.set_level(logging.INFO)
    with capture_logs() as logs:
        async with server.session.ws_connect(server.make_url("/ws")) as ws:
            await ws.send_str(text)
            while True:
                msg = await ws.receive(timeout=10)
                if msg.type != WSMsgType.TEXT:
                    break
            assert msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED), msg
            assert ws.close_code == close_code, (msg, ws.close_code)
    no_tracebacks(logs, caplog)


async def test_a_bad_answer_to_a_server_offer_can_be_corrected(
    server, token, clients, caplog
):
    """A garbage answer to the server's offer gets an error; the offer stays
    open, and the real answer that follows completes the negotiation."""
    from aiortc import RTCSessionDescription

    from tests.mediaserver.client import join

    await create_room(server)
    caplog.set_level(logging.INFO)
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendonly")
    pc.addTransceiver("video", direction="sendonly")
    with capture_logs() as logs:
        async with server.session.ws_connect(server.make_url("/ws")) as ws:
            await ws.send_json({"type": "join", "room_id": "r1", "token": token()})
            assert (await next_of(ws, "joined", "error"))["type"] == "joined"
            # an offer with no media is refused before aiortc sees it
            await ws.send_json({"type": "offer", "sdp": "v=0\r\n"})
            assert (await next_of(ws, "error"))["code"] == "bad_message"
            await pc.setLocalDescription(await pc.createOffer())
            await ws.send_json({"type": "offer", "sdp": pc.localDescription.sdp})
            answer = await next_of(ws, "answer", "error")
            assert answer["type"] == "answer", answer
            await pc.setRemoteDescription(
                RTCSessionDescription(answer["sdp"], "answer")
            )
            await join(clients, server, token, "interpreter", "i1")
            offer = await next_of(ws, "offer")
            await ws.send_json({"type": "answer", "sdp": "garbage"})
            assert (await next_of(ws, "error"))["code"] == "bad_message"
            await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
            await ws.send_json({"type": "answer", "sdp": pc.localDescription.sdp})
            await ws.send_json({"type": "no_such_type"})
            assert (await next_of(ws, "error"))["code"] == "bad_message"
    await pc.close()
    no_tracebacks(logs, caplog)
    assert not [e for e in logs if e["event"] == "renegotiation_failed"], logs
