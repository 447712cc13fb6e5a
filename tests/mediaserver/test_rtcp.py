"""RTCP bridging: a subscriber's PLI reaches the publisher, NACKs are answered."""

from __future__ import annotations

import contextlib
import struct
import time

from mediaserver.api import REGISTRY, ROOMS
from mediaserver.app import MUX, STATS
from mediaserver.stream import KEYFRAME_INTERVAL
from tests.helpers import wait_for
from tests.mediaserver.client import decodes, join, without_candidates
from tests.mediaserver.conftest import create_room
from tests.mediaserver.packets import send_authenticated
from tests.mediaserver.relay import LossyRelay

BURST = 20


def video_leg_ssrc(server, subscriber_id: str):
    participant = server.app[ROOMS].get("r1").participants[subscriber_id]
    return next(
        leg.ssrc for leg in participant.peer.media.legs.values() if leg.kind == "video"
    )


async def test_subscriber_pli_produces_a_keyframe(server, clients, token):
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(interpreter) and decodes(agent), 20, "media flows")
    stats = server.app[STATS]
    video = next(t for t in agent.pc.getTransceivers() if t.kind == "video")
    plis_seen = []
    original = video.sender._handle_rtcp_packet

    async def spy(packet):
        if (
            getattr(packet, "fmt", None) == 1
            and type(packet).__name__ == "RtcpPsfbPacket"
        ):
            plis_seen.append(packet)
        await original(packet)

    video.sender._handle_rtcp_packet = spy  # type: ignore[method-assign]
    keyframes = stats.keyframes
    leg_ssrc = video_leg_ssrc(server, "i1")
    pli = struct.pack("!BBHII", 0x81, 206, 2, 0x1234, leg_ssrc)
    # PLIs to the publisher are rate-limited (the start-up ones may still hold
    # the window): repeat until one gets through
    for _ in range(8):
        await send_authenticated(interpreter, pli, rtcp=True)
        with contextlib.suppress(AssertionError):
            await wait_for(lambda: plis_seen, 0.6, "PLI forwarded")
            break
    await wait_for(lambda: plis_seen, 5, "the publisher got a PLI")
    await wait_for(lambda: stats.keyframes > keyframes, 5, "a new keyframe arrived")
    assert stats.pli["from_subscriber"] >= 1


async def test_plis_to_a_publisher_are_rate_limited(server, clients, token):
    """A burst of PLIs from a subscriber reaches the publisher as at most one PLI
    per ``KEYFRAME_INTERVAL``."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(interpreter) and decodes(agent), 20, "media flows")
    stats = server.app[STATS]
    pli = struct.pack("!BBHII", 0x81, 206, 2, 0x1234, video_leg_ssrc(server, "i1"))
    received, sent = stats.pli["from_subscriber"], stats.pli["to_publisher"]
    start = time.monotonic()
    for _ in range(BURST):
        await send_authenticated(interpreter, pli, rtcp=True)
    await wait_for(
        lambda: stats.pli["from_subscriber"] - received >= BURST, 5, "the burst read"
    )
    elapsed = time.monotonic() - start
    forwarded = stats.pli["to_publisher"] - sent
    # aiortc's own receivers may send PLIs too: they share the same limit
    assert forwarded <= elapsed / KEYFRAME_INTERVAL + 1, (forwarded, elapsed)


def is_rtp(data: bytes) -> bool:
    return 127 < data[0] < 192 and not 192 <= data[1] <= 223 and len(data) > 12


async def test_lost_packet_is_recovered_by_nack(server, clients, token):
    """A video packet the relay drops on its way to the subscriber is resent (RTX)
    from the leg's history after the subscriber's NACK."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1", width=640, height=480)
    relay = LossyRelay(("127.0.0.1", server.app[MUX].port))
    relay_port = await relay.start()
    try:
        interpreter = clients()
        interpreter.rewrite_remote_sdp = lambda sdp: sdp.replace(
            f" {server.app[MUX].port} typ host", f" {relay_port} typ host"
        )
        # the SFU must not find the direct loopback path around the relay
        interpreter.rewrite_local_sdp = without_candidates
        await interpreter.connect("r1", token(role="interpreter", sub="i1"))
        await interpreter.publish()
        await wait_for(lambda: decodes(interpreter, 640, 480), 20, "media via relay")
        dropped_at = relay.dropped
        leg_ssrc = video_leg_ssrc(server, "i1")

        def drop_one(data: bytes) -> bool:
            # the RTP header is not encrypted: the SSRC tells the video leg
            return (
                relay.dropped == dropped_at
                and is_rtp(data)
                and struct.unpack_from("!I", data, 8)[0] == leg_ssrc
            )

        relay.drop_to_client = drop_one
        stats = server.app[STATS]
        await wait_for(lambda: relay.dropped > dropped_at, 5, "the relay dropped one")
        await wait_for(lambda: stats.retransmitted >= 1, 5, "the server resent it")
        assert stats.nack["from_subscriber"] >= 1
        frames = interpreter.got("video")[0].frames
        await wait_for(
            lambda: interpreter.got("video")[0].frames > frames + 5, 10, "video goes on"
        )
    finally:
        relay.close()
    assert agent.pc.connectionState == "connected"


async def test_sender_reports_are_translated_and_receiver_reports_measured(
    server, clients, token
):
    """Publishers' SRs reach subscribers per leg; the subscribers' RRs about our
    legs yield RTT, jitter and loss observations."""
    await create_room(server)
    await join(clients, server, token, "agent", "a1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(interpreter), 20, "media flows")
    registry = server.app[REGISTRY]

    def observed(name: str) -> float:
        return registry.get_sample_value(f"beeldbel_media_{name}_count") or 0.0

    await wait_for(lambda: observed("rtt_seconds") > 0, 10, "an RTT from an RR")
    assert observed("jitter_seconds") > 0
    assert observed("loss_ratio") > 0
    rtts = registry.get_sample_value("beeldbel_media_rtt_seconds_sum") or 0.0
    assert 0 <= rtts / observed("rtt_seconds") < 0.5


async def test_publisher_leg_keeps_nack_and_remb(server, clients, token):
    """A packet lost between publisher and SFU is NACKed by the SFU and resent by
    the publisher (RTX); the publisher also gets REMB. The loss is made at the
    SFU's socket (a relay can be bypassed: ICE finds the direct loopback path)."""
    await create_room(server)
    agent = await join(clients, server, token, "agent", "a1", width=640, height=480)
    video = next(t for t in agent.pc.getTransceivers() if t.kind == "video")
    feedback: list[str] = []
    original = video.sender._handle_rtcp_packet

    async def spy(packet):
        feedback.append(f"{type(packet).__name__}:{getattr(packet, 'fmt', '')}")
        await original(packet)

    video.sender._handle_rtcp_packet = spy  # type: ignore[method-assign]
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(interpreter, 640, 480), 20, "media flows")
    # drop one of the agent's video packets as it arrives at the SFU
    mux = server.app[MUX]
    media = server.app[ROOMS].get("r1").participants["a1"].peer.media
    (address,) = [a for a, h in mux._media.items() if h.__self__ is media]
    video_ssrc = next(s.info.ssrc for s in media.streams.values() if s.kind == "video")
    dropped: list[bytes] = []

    def lossy(data: bytes) -> None:
        # the RTP header is not encrypted: the SSRC tells the video packets
        is_rtp = not 192 <= data[1] <= 223
        if (
            not dropped
            and is_rtp
            and struct.unpack_from("!I", data, 8)[0] == video_ssrc
        ):
            dropped.append(data)
            return
        media.handle_datagram(data)

    mux.route_fast(address, None)  # this peer's datagrams take the Python path
    mux._media[address] = lossy
    stats = server.app[STATS]
    await wait_for(lambda: stats.nack["to_publisher"] >= 1, 5, "the SFU NACKed")
    await wait_for(
        lambda: "RtcpRtpfbPacket:1" in feedback, 5, "the publisher got the NACK"
    )
    await wait_for(lambda: "RtcpPsfbPacket:15" in feedback, 5, "the publisher got REMB")
    assert agent.pc.connectionState == "connected"
