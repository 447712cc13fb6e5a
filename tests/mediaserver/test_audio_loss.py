"""A publisher's audio report carries its subscribers' worst loss.

The publisher's Opus encoder adds in-band FEC for the loss that receiver reports
give for its audio. The SFU receives its audio over the publisher's own uplink,
so without this a citizen on a lossy downlink would hear every lost packet
concealed while the employee's encoder, told 0 %, sends no FEC.
"""

from __future__ import annotations

from mediaserver import packet as rtp
from tests.mediaserver.packets import rtp_packet
from tests.mediaserver.test_fastpath import (
    AUDIO,
    CLIENT_KEY,
    PUBLISHER_KEY,
    VIDEO,
    Setup,
    inbound,
    outbound,
    setup,
    vp8,
)
from tests.mediaserver.test_keyframes import from_subscriber


def reports_to_publisher(s: Setup) -> dict[int, rtp.ReportBlock]:
    session = inbound(PUBLISHER_KEY)
    found = {}
    for datagram in s.to_publisher:
        for packet_type, count, part in rtp.iter_rtcp(session.unprotect_rtcp(datagram)):
            if packet_type == rtp.RTCP_RR:
                found.update({b.ssrc: b for b in rtp.report_blocks(part, count, 8)})
    s.to_publisher.clear()
    return found


def received(s: Setup) -> Setup:
    client = outbound(CLIENT_KEY)
    for seq in range(20):
        s.publisher.handle_datagram(client.protect(vp8(seq, keyframe=seq == 0)))
        audio = rtp_packet(seq=seq, ssrc=AUDIO, pt=111, payload=b"\x08\x40" + bytes(40))
        s.publisher.handle_datagram(client.protect(audio))
    s.to_publisher.clear()
    return s


def subscriber_report(s: Setup, kind: str, fraction: int) -> bytes:
    leg = next(leg for leg in s.subscriber.legs.values() if leg.kind == kind)
    block = rtp.ReportBlock(leg.ssrc, fraction, 3, 40000, 0, 0, 0)
    return rtp.build_rr(0x77, [block])


def test_the_publishers_audio_report_carries_the_worst_subscriber_loss():
    s = received(setup())
    s.publisher.send_receiver_report()
    clean = reports_to_publisher(s)
    assert (clean[AUDIO].fraction_lost, clean[VIDEO].fraction_lost) == (0, 0)

    from_subscriber(s, subscriber_report(s, "audio", 20))  # ~8 % on its downlink
    from_subscriber(s, subscriber_report(s, "video", 40))
    s.publisher.send_receiver_report()
    reports = reports_to_publisher(s)
    assert reports[AUDIO].fraction_lost == 20
    # video's loss-based rate control must not hear of a downlink it cannot help
    assert reports[VIDEO].fraction_lost == 0
    # the cumulative count stays what the SFU itself lost
    assert reports[AUDIO].packets_lost == 0

    from_subscriber(s, subscriber_report(s, "audio", 0))
    s.publisher.send_receiver_report()
    assert reports_to_publisher(s)[AUDIO].fraction_lost == 0
