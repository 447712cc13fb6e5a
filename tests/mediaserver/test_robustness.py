"""Malformed packets are dropped and counted; silent peers are removed."""

from __future__ import annotations

import logging
import os
import socket
import struct

from structlog.testing import capture_logs

from mediaserver.app import MUX, STATS
from tests.helpers import wait_for
from tests.mediaserver.client import decodes, join
from tests.mediaserver.conftest import create_room, metric
from tests.mediaserver.packets import send_authenticated


def video_ssrc(client) -> int:
    video = next(t for t in client.pc.getTransceivers() if t.kind == "video")
    return int(video.sender._ssrc)


async def test_malformed_rtp_and_rtcp_leave_the_call_connected(server, clients, token):
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(interpreter), 20, "media flows")
    # a fresh SSRC: libsrtp keeps a replay window per SSRC on both ends
    ssrc = (video_ssrc(agent) + 1) & 0xFFFFFFFF
    header = struct.pack("!BBHII", 0x90, 96, 1000, 1234, ssrc)
    bad_rtp = [
        # one-byte header extension with a 1-byte element where abs-send-time
        # needs 3 (the packet that makes aiortc's own receiver close the call)
        header + struct.pack("!HH", 0xBEDE, 1) + bytes([0x30, 0, 0, 0]) + b"x",
        # extension length beyond the packet
        header + struct.pack("!HH", 0xBEDE, 200) + b"\x00" * 4,
        # padding longer than the packet
        struct.pack("!BBHII", 0xA0, 96, 1001, 1234, ssrc) + b"\x00\x00\xff",
    ]
    bad_rtcp = [
        struct.pack("!BBHI", 0x81, 201, 40, ssrc),  # length beyond the packet
        struct.pack("!BBHII", 0x81, 205, 2, ssrc, 0) + b"",  # NACK with no FCI
        struct.pack("!BBHI", 0x9F, 201, 1, ssrc),  # 31 report blocks claimed
    ]
    stats = server.app[STATS]
    before = dict(stats.dropped)
    total_before = sum(before.values())
    for packet in bad_rtp:
        await send_authenticated(agent, packet, rtcp=False)
    for packet in bad_rtcp:
        await send_authenticated(agent, packet, rtcp=True)
    # the empty NACK is well-formed (it names no leg): five of six are dropped
    await wait_for(
        lambda: sum(stats.dropped.values()) - total_before >= 5, 5, "all dropped"
    )
    assert stats.dropped.get("malformed", 0) - before.get("malformed", 0) >= 3
    frames = interpreter.got("video")[0].frames
    await wait_for(
        lambda: interpreter.got("video")[0].frames > frames + 10,
        10,
        "video keeps flowing after the malformed packets",
    )
    assert agent.pc.connectionState == "connected"


async def test_silent_peer_is_removed(make_server, token):
    """A peer whose packets stop is removed after peer_timeout_seconds."""
    server = await make_server(peer_timeout_seconds=2)
    from tests.mediaserver.client import MediaClient

    await create_room(server)
    agent = MediaClient(str(server.make_url("/ws")))
    other = MediaClient(str(server.make_url("/ws")))
    try:
        for client, sub, role in ((agent, "a1", "agent"), (other, "i1", "interpreter")):
            await client.connect("r1", token(role=role, sub=sub))
            await client.publish()
        await wait_for(lambda: decodes(other), 20, "media flows")
        # silence the agent: its socket stops sending, nothing is closed politely
        connection = agent.pc.getTransceivers()[
            0
        ].sender.transport.transport._connection
        for protocol in connection._protocols:
            protocol.transport.sendto = lambda data, addr=None: None  # type: ignore[method-assign]
        await wait_for(
            lambda: any(
                m["type"] == "participants" and len(m["participants"]) == 1
                for m in other.messages
            ),
            10,
            "silent agent removed",
        )
    finally:
        await agent.close()
        await other.close()


def stun_with_empty_priority() -> bytes:
    """A 24-byte binding request whose PRIORITY attribute has length 0."""
    header = struct.pack("!HHI", 0x0001, 4, 0x2112A442) + os.urandom(12)
    return header + struct.pack("!HH", 0x0024, 0)


async def test_malformed_stun_is_counted_not_logged(server, caplog):
    """Unparseable STUN from anyone is a counted drop: no log line per datagram,
    no traceback (an unauthenticated sender must not be able to fill the log)."""
    caplog.set_level(logging.INFO)
    name = "beeldbel_media_dropped_packets_total"
    before = await metric(server, name, reason="malformed_stun")
    target = ("127.0.0.1", server.app[MUX].port)
    with (
        capture_logs() as logs,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker,
    ):
        for _ in range(500):
            attacker.sendto(stun_with_empty_priority(), target)

        async def counted() -> bool:
            return await metric(server, name, reason="malformed_stun") - before == 500

        await wait_for(counted, 10, "500 malformed STUN datagrams counted")
    assert len(logs) <= 3, logs
    assert not any("exc_info" in entry or "exception" in entry for entry in logs)
    records = [r for r in caplog.records if r.name != "aiohttp.access"]
    assert len(records) <= 3, [r.getMessage() for r in records]
    assert not any(r.exc_info for r in records)
