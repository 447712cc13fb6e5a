"""A subscriber's downlink estimate (REMB) reaches the publisher: the lowest of
its subscribers', at once when it falls, and with each receiver report."""

from __future__ import annotations

from mediaserver import packet as rtp
from mediaserver.forwarder import DEFAULT_REMB_BPS
from mediaserver.leg import PACKET_OVERHEAD
from tests.mediaserver.packets import rtp_packet
from tests.mediaserver.test_fastpath import (
    AUDIO,
    CLIENT_KEY,
    PUBLISHER_KEY,
    SUBSCRIBER_KEY,
    Setup,
    inbound,
    outbound,
    setup,
)
from tests.mediaserver.test_keyframes import from_subscriber, started


def rembs_to_publisher(s: Setup) -> list[int]:
    session = inbound(PUBLISHER_KEY)
    found = []
    for datagram in s.to_publisher:
        for packet_type, fmt, part in rtp.iter_rtcp(session.unprotect_rtcp(datagram)):
            if packet_type == rtp.RTCP_PSFB and fmt == rtp.FMT_REMB:
                bitrate = rtp.remb_bitrate(part)
                assert bitrate is not None
                found.append(bitrate)
    s.to_publisher.clear()
    return found


def near(bitrate: int, expected: int) -> bool:
    return abs(bitrate - expected) <= expected // 100  # REMB's mantissa rounds


def test_a_falling_estimate_reaches_the_publisher_at_once():
    s = started(setup())
    s.publisher.send_receiver_report()
    assert rembs_to_publisher(s) == [DEFAULT_REMB_BPS]

    from_subscriber(s, rtp.build_remb(0x77, 400_000, [s.leg.ssrc]))
    [sent] = rembs_to_publisher(s)
    assert near(sent, 400_000)

    # a small change waits for the next receiver report
    from_subscriber(s, rtp.build_remb(0x77, 380_000, [s.leg.ssrc]))
    assert rembs_to_publisher(s) == []
    s.publisher.send_receiver_report()
    [periodic] = rembs_to_publisher(s)
    assert near(periodic, 380_000)

    # a rise too: the publisher may send more at once
    from_subscriber(s, rtp.build_remb(0x77, 2_000_000, [s.leg.ssrc]))
    [raised] = rembs_to_publisher(s)
    assert near(raised, 2_000_000)


def test_the_publisher_gets_the_lowest_subscriber_estimate():
    s = started(setup())
    s.stream.remb[0x1] = 250_000  # another subscriber's estimate, by its SSRC
    from_subscriber(s, rtp.build_remb(0x77, 900_000, [s.leg.ssrc]))
    s.to_publisher.clear()
    s.publisher.send_receiver_report()
    assert [near(b, 250_000) for b in rembs_to_publisher(s)] == [True]


def test_the_publisher_may_send_its_audio_beside_the_video_estimate():
    """A subscriber's estimate counts the video it receives only (a browser's
    receive-side estimator leaves audio out), and the publisher spends a REMB on
    everything: it gets the estimate plus the audio it sends, or a low estimate
    leaves too little video for the estimator ever to raise it."""
    s = started(setup())
    s.publisher.send_receiver_report()  # the audio's first measurement: none yet
    assert rembs_to_publisher(s) == [DEFAULT_REMB_BPS]
    from_subscriber(s, rtp.build_remb(0x77, 70_000, [s.leg.ssrc]))
    [alone] = rembs_to_publisher(s)
    assert near(alone, 70_000)

    # one second of Opus at 50 packets of 100 bytes: 40 kbit/s, 64 on the wire
    client = outbound(CLIENT_KEY)
    for seq in range(50):
        opus = rtp_packet(seq=seq, ts=960 * seq, ssrc=AUDIO, pt=111, payload=bytes(100))
        s.publisher.handle_datagram(client.protect(opus))
    [audio_leg] = [leg for leg in s.subscriber.legs.values() if leg.kind == "audio"]
    when, wire = audio_leg._wire_mark
    audio_leg._wire_mark = (when - 1.0, wire)
    s.publisher.send_receiver_report()
    [with_audio] = rembs_to_publisher(s)
    audio = 50 * (100 + PACKET_OVERHEAD) * 8
    assert abs(with_audio - (70_000 + audio)) < 2_000, with_audio


def test_a_retransmission_on_rtx_carries_abs_send_time():
    """A repair counts for the subscriber's estimator like the packet it
    repairs: the estimator leaves out packets without abs-send-time."""
    s = started(setup())
    s.subscriber.set_header_extensions(abs_send_time=3)
    lost = (s.leg._first_seq + 5) & 0xFFFF
    s.to_subscriber.clear()
    from_subscriber(s, rtp.build_nack(0x77, s.leg.ssrc, [lost]))
    [datagram] = s.to_subscriber
    repair = inbound(SUBSCRIBER_KEY).unprotect(datagram)
    header = rtp.parse_rtp(repair)
    assert (header.ssrc, header.payload_type) == (0xA2, 99)  # the leg's RTX
    assert repair[12:17] == bytes([0xBE, 0xDE, 0, 1, 3 << 4 | 2])
    assert repair[header.payload_offset : header.payload_offset + 2] == lost.to_bytes(
        2, "big"
    )
