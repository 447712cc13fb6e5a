"""Keyframe requests: NACK first, then at most one keyframe request a second per
publisher, however many subscribers ask.

A keyframe costs several times an ordinary frame; on a weak uplink a storm of
them is what turns a little loss into a frozen picture.
"""

from __future__ import annotations

import os
import time

from mediaserver import packet as rtp
from mediaserver.leg import HISTORY_SIZE, LegInfo
from mediaserver.stream import KEYFRAME_INTERVAL, StreamInfo
from mediaserver.transport import DirectSrtp
from tests.mediaserver.test_fastpath import (
    CLIENT_KEY,
    PUBLISHER_KEY,
    VIDEO,
    Setup,
    inbound,
    outbound,
    setup,
    vp8,
)

SUBSCRIBER_CLIENT_KEY = os.urandom(30)
SCREEN = 0x5555


def with_screen(s: Setup) -> int:
    """A second video stream of the publisher (a shared screen), with its leg;
    returns the leg's SSRC."""
    info = StreamInfo("video", SCREEN, None, {96: "video/vp8"}, {}, 90000)
    stream = s.publisher.add_stream(info)
    s.subscriber.add_leg(stream, LegInfo(0xC1, 0xC2, {"video/vp8": 98}, {}))
    return 0xC1


def from_subscriber(s: Setup, *packets: bytes) -> None:
    """RTCP the subscriber's browser sends to us, protected with its key."""
    s.subscriber.transport._rx = DirectSrtp(inbound(SUBSCRIBER_CLIENT_KEY))
    client = outbound(SUBSCRIBER_CLIENT_KEY)
    for packet in packets:
        s.subscriber.handle_datagram(client.protect_rtcp(packet))


def plis_to_publisher(s: Setup) -> list[int]:
    """The media SSRCs of the PLIs the publisher got."""
    session = inbound(PUBLISHER_KEY)
    found = []
    for datagram in s.to_publisher:
        packet = session.unprotect_rtcp(datagram)
        for packet_type, fmt, part in rtp.iter_rtcp(packet):
            if packet_type == rtp.RTCP_PSFB and fmt == rtp.FMT_PLI:
                found.append(rtp.feedback_ssrcs(part)[1])
    return found


def started(s: Setup) -> Setup:
    """Video flowing to the subscriber; the start-up request's window over."""
    client = outbound(CLIENT_KEY)
    for seq in range(10):
        s.publisher.handle_datagram(client.protect(vp8(seq, keyframe=seq == 0)))
    s.publisher._last_keyframe_request -= KEYFRAME_INTERVAL
    s.to_publisher.clear()
    return s


def test_requests_from_several_subscribers_and_streams_make_one_a_second():
    s = started(setup())
    screen_leg = with_screen(s)
    s.publisher._last_keyframe_request -= KEYFRAME_INTERVAL
    s.to_publisher.clear()
    pli = rtp.build_pli(0x77, s.leg.ssrc)
    from_subscriber(s, pli, pli, rtp.build_pli(0x77, screen_leg), pli)
    assert len(plis_to_publisher(s)) == 1

    s.publisher._last_keyframe_request -= KEYFRAME_INTERVAL
    from_subscriber(s, rtp.build_pli(0x77, screen_leg))
    assert plis_to_publisher(s)[1:] == [SCREEN]


def test_a_nack_is_answered_from_history_without_a_keyframe_request():
    s = started(setup())
    sent = s.leg._first_seq + 5
    from_subscriber(s, rtp.build_nack(0x77, s.leg.ssrc, [sent]))
    assert s.stats.retransmitted == 1
    assert plis_to_publisher(s) == []


def test_retransmissions_keep_to_a_share_of_the_subscribers_downlink():
    """A subscriber whose downlink we estimate at 100 kbit/s asks for all ten
    packets again: a fifth of 100 kbit/s over the bucket's half second is
    1250 bytes, so about five of the ~230-byte packets go, and
    the rest are counted as over the budget, not sent and not asked of the
    publisher."""
    s = setup()
    s.subscriber.set_header_extensions(sent_transport_cc=3)
    s = started(s)
    estimate = s.subscriber.downlink
    assert estimate is not None
    estimate.bps = 100_000
    estimate.allow_retransmission(0, time.monotonic() - 1)  # a full bucket
    first = s.leg._first_seq
    from_subscriber(s, rtp.build_nack(0x77, s.leg.ssrc, list(range(first, first + 10))))
    assert 3 <= s.stats.retransmitted <= 6
    assert s.stats.dropped["retransmission_budget"] == 10 - s.stats.retransmitted
    assert nacks_to_publisher(s) == []
    assert plis_to_publisher(s) == []


def nacks_to_publisher(s: Setup) -> list[list[int]]:
    """The sequence numbers of each NACK the publisher got."""
    session = inbound(PUBLISHER_KEY)
    found = []
    for datagram in s.to_publisher:
        for packet_type, fmt, part in rtp.iter_rtcp(session.unprotect_rtcp(datagram)):
            if packet_type == rtp.RTCP_RTPFB and fmt == rtp.FMT_NACK:
                found.append(rtp.nack_sequence_numbers(part))
    return found


def test_a_packet_the_sfu_never_got_is_asked_of_the_publisher_again():
    """The SFU lost it too (its own NACK went unanswered): the subscriber's NACK
    becomes a second NACK to the publisher, not a keyframe request."""
    s = started(setup())
    client = outbound(CLIENT_KEY)
    for seq in (10, 11, 13, 14):  # 12 lost on the way to the SFU
        s.publisher.handle_datagram(client.protect(vp8(seq)))
    assert nacks_to_publisher(s) == [[12]]
    s.to_publisher.clear()
    from_subscriber(s, rtp.build_nack(0x77, s.leg.ssrc, [s.leg._first_seq + 12]))
    assert nacks_to_publisher(s) == [[12]]
    assert plis_to_publisher(s) == []


def test_a_nack_older_than_the_history_asks_for_a_keyframe():
    """The subscriber fell too far behind to recover by NACK: it would send a
    PLI after its own wait, so we ask at once."""
    s = started(setup())
    client = outbound(CLIENT_KEY)
    for seq in range(10, 10 + HISTORY_SIZE):
        s.publisher.handle_datagram(client.protect(vp8(seq)))
    s.to_publisher.clear()
    evicted = (s.leg._first_seq + 3) & 0xFFFF
    from_subscriber(s, rtp.build_nack(0x77, s.leg.ssrc, [evicted, evicted + 1]))
    assert s.stats.dropped["nack_not_in_history"] == 2
    assert nacks_to_publisher(s) == []
    assert plis_to_publisher(s) == [VIDEO]
