"""A subscriber's downlink estimate (REMB) reaches the publisher: the lowest of
its subscribers', at once when it falls, and with each receiver report."""

from __future__ import annotations

from mediaserver import packet as rtp
from mediaserver.forwarder import DEFAULT_REMB_BPS
from tests.mediaserver.test_fastpath import PUBLISHER_KEY, Setup, inbound, setup
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
