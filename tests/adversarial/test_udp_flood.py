"""Hostile datagrams on the media server's shared UDP port during a live call.

Two aiortc peers call through the real SFU; meanwhile every kind of hostile
datagram arrives, from a stranger's address and spoofed from a peer's own. The
call keeps flowing, the server keeps serving, and the log grows by a few lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

from structlog.testing import capture_logs

from mediaserver.app import MUX, STATS
from tests.helpers import wait_for
from tests.mediaserver.client import MediaClient, decodes, join
from tests.mediaserver.conftest import create_room

#: Datagrams of each kind (the issue's 5,000).
PER_KIND = 5000
#: Sent between two yields to the event loop, so the server reads as it goes.
CHUNK = 100
COOKIE = 0x2112A442
rng = random.Random(9)


def random_bytes() -> bytes:
    return os.urandom(rng.randrange(1, 1400))


def truncated_stun() -> bytes:
    """A binding request with the right cookie whose attributes are cut short."""
    attributes = struct.pack("!HH", rng.choice([0x0006, 0x0024, 0x8029]), 8)
    attributes += os.urandom(rng.randrange(0, 8))
    if rng.random() < 0.5:
        attributes = struct.pack("!HH", 0x0024, 0)  # PRIORITY of length 0
    length = rng.choice([len(attributes), len(attributes) + 4, 4])
    header = struct.pack("!HHI", 0x0001, length, COOKIE) + os.urandom(12)
    return header + attributes


def dtls_like() -> bytes:
    """A DTLS record header (content type 20 to 23, DTLS 1.2) with junk after it."""
    length = rng.randrange(0, 300)
    epoch_seq = os.urandom(8)
    header = struct.pack("!BH", rng.choice([20, 21, 22, 23]), 0xFEFD) + epoch_seq
    claimed = rng.choice([length, length + 50, 0xFFFF])
    return header + struct.pack("!H", claimed) + os.urandom(length)


def bad_rtp_or_rtcp() -> bytes:
    """RTP or RTCP whose lengths lie: header extension, CSRC count or RTCP length
    beyond the datagram, or shorter than any header."""
    ssrc = rng.getrandbits(32)
    kind = rng.randrange(4)
    if kind == 0:  # RTCP claiming more words than sent
        return struct.pack("!BBHI", 0x81, rng.choice([200, 201, 205, 206]), 200, ssrc)
    if kind == 1:  # RTP with an extension longer than the packet
        head = struct.pack("!BBHII", 0x90, 96, rng.getrandbits(16), 0, ssrc)
        return head + struct.pack("!HH", 0xBEDE, 300) + os.urandom(4)
    if kind == 2:  # 15 CSRCs claimed, none sent
        return struct.pack("!BBHII", 0x8F, 96, rng.getrandbits(16), 0, ssrc)
    return bytes([0x80 | rng.randrange(64)]) + os.urandom(rng.randrange(0, 11))


def huge() -> bytes:
    return bytes([rng.choice([0, 1, 22, 0x80, 0x90])]) + os.urandom(65506)


KINDS: dict[str, Callable[[], bytes]] = {
    "random": random_bytes,
    "truncated_stun": truncated_stun,
    "dtls_like": dtls_like,
    "bad_rtp_rtcp": bad_rtp_or_rtcp,
    "64k": huge,
}


def peer_transport(client: MediaClient) -> Any:
    """The client's own ICE socket: what it sends comes from its real address."""
    connection = client.pc.getTransceivers()[0].sender.transport.transport._connection
    (protocol,) = connection._protocols
    return protocol.transport


def video_frames(client: MediaClient) -> int:
    return client.got("video")[0].frames


async def flood(
    send: Callable[[bytes], None],
    make: Callable[[], bytes],
    watcher: MediaClient,
    label: str,
) -> None:
    """Send ``PER_KIND`` datagrams, then wait for ``watcher`` to decode more video."""
    frames = video_frames(watcher)
    for start in range(0, PER_KIND, CHUNK):
        for _ in range(min(CHUNK, PER_KIND - start)):
            send(make())
        await asyncio.sleep(0)  # let the server (same loop) read
    await wait_for(
        lambda: video_frames(watcher) > frames + 3, 10, f"video frames after {label}"
    )


async def test_hostile_datagrams_do_not_disturb_a_call(server, clients, token, caplog):
    caplog.set_level(logging.WARNING)
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(interpreter) and decodes(agent), 20, "media flows")
    target = ("127.0.0.1", server.app[MUX].port)
    spoofed = peer_transport(agent)
    stats = server.app[STATS]
    sent = 0
    started = time.monotonic()
    with (
        capture_logs() as logs,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as stranger,
    ):
        stranger.setblocking(False)

        def from_stranger(data: bytes) -> None:
            # our own send buffer full: that one is not sent
            with contextlib.suppress(BlockingIOError):
                stranger.sendto(data, target)

        def from_peer(data: bytes) -> None:
            spoofed.sendto(data, target)

        for name, make in KINDS.items():
            for send in (from_stranger, from_peer):
                await flood(send, make, interpreter, f"{name} {send.__name__}")
                sent += PER_KIND
    elapsed = time.monotonic() - started
    print(f"{sent} hostile datagrams in {elapsed:.1f} s")
    assert agent.pc.connectionState == "connected"
    assert interpreter.pc.connectionState == "connected"
    assert (await server.get("/healthz")).status == 200
    assert sum(stats.dropped.values()) > 0
    loud = [e for e in logs if e.get("log_level") in ("warning", "error", "critical")]
    assert len(loud) <= 5, loud
    assert not [e for e in logs if "exc_info" in e or "exception" in e], logs
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) <= 5, [r.getMessage() for r in records]
    assert not [r for r in records if r.exc_info]
