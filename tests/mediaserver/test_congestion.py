"""Congestion-control signals on the short path, C and Python alike.

A publisher that numbers its packets (transport-cc) gets feedback on each one's
arrival; a subscriber gets our own transport-wide numbers (or abs-send-time) on
each forwarded packet, and its feedback reaches our estimate of its downlink;
Opus packets with in-band FEC are counted. Feedback is read back by the
package's parser, which is checked against packets built by hand from the
draft, not by the code that wrote them.
"""

from __future__ import annotations

import array
import math
import random
import struct
import time
from dataclasses import dataclass

import av
import pytest

from mediaserver import packet as rtp
from mediaserver.estimator import PROBE_AGAIN, PROBE_SECONDS, DownlinkEstimate
from tests.helpers import wait_for
from tests.mediaserver.packets import rtp_packet
from tests.mediaserver.test_fastpath import (
    AUDIO,
    CLIENT_KEY,
    VIDEO,
    Setup,
    outbound,
    plain,
    setup,
    udp_pair,
    vp8,
)

TRANSPORT_CC, ABS_SEND_TIME = 3, 2


@dataclass
class Feedback:
    base: int
    reference_us: int
    count: int
    #: sequence number → arrival in µs from the reference time, for those received
    arrivals: dict[int, int]


def parse_feedback(packet: bytes) -> Feedback:
    """A transport-cc feedback packet, read by the package's parser (itself
    checked below against packets built by hand from the draft)."""
    assert packet[0] & 0x1F == 15
    assert packet[1] == 205
    assert (struct.unpack_from("!H", packet, 2)[0] + 1) * 4 == len(packet)
    base, count = struct.unpack_from("!HH", packet, 12)
    reference = int.from_bytes(packet[16:19], "big", signed=True) * 64000
    arrivals = {
        seq: at - reference
        for seq, at in rtp.transport_feedback(packet)
        if at is not None
    }
    return Feedback(base, reference, count, arrivals)


def test_the_feedback_parser_reads_every_chunk_kind():
    """draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1, by hand: base
    65534, 23 statuses over the wrap: a run-length chunk (two received, small
    deltas), a one-bit vector chunk (one received, 13 lost) and a two-bit
    vector chunk (a large negative delta, 6 lost); reference time 128 ms."""
    chunks = struct.pack(
        "!HHH",
        0x2000 | 2,  # a run of two "small delta"
        0x8000 | 0x2000,  # one bit: received, then 13 lost
        0xC000 | 2 << 12,  # two bits: a large delta, then 6 lost
    )
    deltas = bytes([4, 8, 12]) + struct.pack("!h", -40)  # in units of 250 µs
    body = struct.pack("!HHI", 65534, 2 + 14 + 7, 2 << 8 | 5) + chunks + deltas
    packet = _rtcp_feedback(body)
    reported = rtp.transport_feedback(packet)
    assert len(reported) == 23
    assert reported[:3] == [(65534, 129_000), (65535, 131_000), (0, 134_000)]
    assert [seq for seq, at in reported if at is None] == [
        *range(1, 14),
        *range(15, 21),
    ]
    assert reported[16] == (14, 124_000)
    for truncated in (packet[:-8], packet[:22]):
        with pytest.raises(rtp.MalformedPacket):
            rtp.transport_feedback(_rtcp_feedback(truncated[12:]))
    # a run of 8191 claimed 65535 times over: refused before any work
    endless = struct.pack("!HHI", 0, 0xFFFF, 0) + struct.pack("!H", 0x1FFF) * 9
    with pytest.raises(rtp.MalformedPacket, match="too many"):
        rtp.transport_feedback(_rtcp_feedback(endless))


def _rtcp_feedback(body: bytes) -> bytes:
    """An RTPFB FMT 15 packet around ``body`` (from the base sequence number
    on), padded to 32 bits."""
    padding = (4 - len(body) % 4) % 4
    if padding:
        body += bytes(padding - 1) + bytes((padding,))
    words = (8 + len(body)) // 4
    first = 0x80 | (0x20 if padding else 0) | 15
    return struct.pack("!BBHII", first, 205, words, 1, 2) + body


def numbered(seq: int, transport_seq: int) -> bytes:
    """A VP8 packet with the transport-wide sequence number (one-byte header)."""
    ext = bytes([TRANSPORT_CC << 4 | 1]) + struct.pack("!H", transport_seq) + b"\x00"
    return vp8(seq, keyframe=seq == 0, ext=ext)


def publishing(path: str) -> Setup:
    """A publisher with transport-cc, fed through the C path or the Python one."""
    s = setup()
    s.publisher.set_header_extensions(transport_cc=TRANSPORT_CC)
    if path == "fast_handle":
        rx, tx = s.publisher.transport._rx, s.publisher.transport._tx
        assert rx is not None
        assert tx is not None
        s.publisher.attach(rx.address, tx.address, (rx, tx), -1, "127.0.0.1", 9)
    return s


def feed(s: Setup, path: str, packets: list[bytes]) -> None:
    client = outbound(CLIENT_KEY)
    for packet in packets:
        getattr(s.publisher, path)(client.protect(packet))


def feedbacks(s: Setup) -> list[Feedback]:
    found = []
    while (packet := s.publisher.transport_feedback(0xFEED, VIDEO)) is not None:
        found.append(parse_feedback(packet))
    return found


@pytest.mark.parametrize("path", ["fast_handle", "handle_datagram"])
def test_feedback_reports_each_numbered_packet_once(path):
    s = publishing(path)
    sent = [65533, 65534, 65535, 0, 2, 3, 7]  # across the wrap; 1, 4, 5, 6 lost
    start = time.monotonic()
    feed(s, path, [numbered(i, n) for i, n in enumerate(sent)])
    elapsed_us = (time.monotonic() - start) * 1e6

    [feedback] = feedbacks(s)
    assert feedback.base == 65533
    assert feedback.count == 11
    assert sorted(feedback.arrivals) == sorted(sent)
    times = [feedback.arrivals[n] for n in sent]
    assert times == sorted(times)  # handled in order
    # the reference is the first arrival rounded down to 64 ms
    assert 0 <= times[0] < 64000 + 250
    assert times[-1] - times[0] <= elapsed_us + 500

    # a late packet was reported lost already; the next feedback starts after 7
    feed(s, path, [numbered(20, 1), numbered(21, 8)])
    [after] = feedbacks(s)
    assert (after.base, after.count, list(after.arrivals)) == (8, 1, [8])
    assert feedbacks(s) == []


def test_feedback_goes_out_in_packets_of_bounded_size():
    """A long burst splits over several feedback packets, none over the MTU, and
    together they cover every sequence number once."""
    s = publishing("fast_handle")
    feed(s, "fast_handle", [numbered(i, i * 2) for i in range(600)])  # half lost
    found = feedbacks(s)
    assert len(found) > 1
    covered = [f.base + i for f in found for i in range(f.count)]
    assert covered == list(range(0, 1199))
    assert sum(len(f.arrivals) for f in found) == 600


def test_no_feedback_without_transport_cc():
    s = setup()
    feed(s, "handle_datagram", [numbered(0, 1)])
    assert s.publisher.transport_feedback(0xFEED, VIDEO) is None
    s.publisher.set_header_extensions(transport_cc=0)
    assert s.publisher.transport_feedback(0xFEED, VIDEO) is None


def abs_send_time_of(packet: bytes) -> int | None:
    header = rtp.parse_rtp(packet)
    if not packet[0] & 0x10:
        return None
    block = packet[header.csrc_end : header.payload_offset]
    assert block[:2] == b"\xbe\xde"
    assert block[4] == ABS_SEND_TIME << 4 | 2
    return int.from_bytes(block[5:8], "big")


def forwarded(s: Setup, path: str, packets: list[bytes]) -> list[bytes]:
    """``packets`` from the publisher, through the C path (sending from C) or the
    Python one: the RTP the subscriber got, decrypted."""
    sender, receiver = udp_pair()
    with sender, receiver:
        if path == "fast_handle":
            rx, tx = s.subscriber.transport._rx, s.subscriber.transport._tx
            assert tx is not None
            host, port = receiver.getsockname()
            s.subscriber.attach(
                tx.address, tx.address, (rx, tx), sender.fileno(), host, port
            )
            prx, ptx = s.publisher.transport._rx, s.publisher.transport._tx
            assert prx is not None
            assert ptx is not None
            s.publisher.attach(prx.address, ptx.address, (prx, ptx), -1, host, 9)
        feed(s, path, packets)
        while True:
            try:
                s.to_subscriber.append(receiver.recv(4096))
            except BlockingIOError:
                break
    return [p for p in plain(s.to_subscriber) if not rtp.is_rtcp(p)]


@pytest.mark.parametrize("path", ["fast_handle", "handle_datagram"])
def test_forwarded_packets_carry_abs_send_time(path):
    s = setup()
    s.subscriber.set_header_extensions(abs_send_time=ABS_SEND_TIME)
    now = time.monotonic()
    got = forwarded(s, path, [vp8(0, keyframe=True), vp8(1, ext=b"\x10\xff\x00\x00")])
    assert len(got) == 2
    for packet in got:
        stamp = abs_send_time_of(packet)
        assert stamp is not None
        # 6.18 fixed point, 24 bits: within 10 ms of when it was sent
        assert abs(stamp - (int(now * 262144) & 0xFFFFFF)) < 2622
        assert packet.endswith(vp8(1)[12:]) or packet.endswith(vp8(0, True)[12:])


def transport_seq_of(packet: bytes) -> int:
    header = rtp.parse_rtp(packet)
    block = packet[header.csrc_end : header.payload_offset]
    assert block[:4] == b"\xbe\xde\x00\x01"
    assert block[4] == TRANSPORT_CC << 4 | 1
    return int.from_bytes(block[5:7], "big")


@pytest.mark.parametrize("path", ["fast_handle", "handle_datagram"])
def test_forwarded_packets_carry_our_transport_wide_numbers(path):
    """With transport-cc on what we send, every forwarded packet carries the
    next of the subscriber's numbers, and the numbers remember when each packet
    left and how big it was."""
    s = setup()
    s.subscriber.set_header_extensions(sent_transport_cc=TRANSPORT_CC)
    before = time.monotonic()
    packets = [
        vp8(0, keyframe=True),
        *(vp8(i, ext=b"\x10\xff\x00\x00") for i in (1, 2)),
    ]
    got = forwarded(s, path, packets)
    after = time.monotonic()
    assert [transport_seq_of(p) for p in got] == [1, 2, 3]
    for packet, original in zip(got, packets, strict=True):
        sent = s.subscriber.sent_packet(transport_seq_of(packet))
        assert sent is not None
        sent_at, size = sent
        assert before <= sent_at <= after
        assert size == len(packet)
        ours, theirs = rtp.parse_rtp(packet), rtp.parse_rtp(original)
        assert packet[ours.payload_offset :] == original[theirs.payload_offset :]
    assert s.subscriber.sent_packet(4) is None
    with pytest.raises(ValueError, match="not both"):
        s.subscriber.set_header_extensions(
            abs_send_time=ABS_SEND_TIME, sent_transport_cc=TRANSPORT_CC
        )


def test_a_subscribers_feedback_sets_what_its_publisher_may_send():
    """The subscriber's browser is stood in for by a second PeerMedia that notes
    when our numbered packets arrived and writes the feedback (the C code that
    answers publishers). Over 0.4 s a third of them never arrive: back at the
    SFU that feedback brings the subscriber's estimate down, and the publisher
    hears it at once."""
    s = setup()
    s.subscriber.set_header_extensions(sent_transport_cc=TRANSPORT_CC)
    browser = setup().publisher
    browser.set_header_extensions(transport_cc=TRANSPORT_CC)
    got = forwarded(s, "handle_datagram", [vp8(i, keyframe=i == 0) for i in range(40)])
    start = time.monotonic()
    for i, packet in enumerate(got):
        if i % 3:
            browser.record_transport_cc(packet, start + i * 0.01)
    [feedback] = list(iter(lambda: browser.transport_feedback(1, 2), None))
    estimate = s.subscriber.downlink
    assert estimate is not None
    before = estimate.bps
    s.subscriber._handle_rtcp(feedback)
    assert estimate.loss() > 0.3
    assert estimate.bps < before
    assert s.stream.remb == {s.subscriber.rtcp_ssrc: estimate.bps}
    assert s.publisher._remb_sent == estimate.bps  # no audio measured yet


async def test_a_probe_is_paced_padding_on_the_video_legs_rtx():
    """A due probe: padding-only packets on the video leg's RTX SSRC, numbered
    like all the subscriber sends, at about the probe's rate for its 30 ms, in
    several ticks; the estimate knows its first and last number."""
    s = setup()
    s.subscriber.set_header_extensions(sent_transport_cc=TRANSPORT_CC)
    forwarded(s, "handle_datagram", [vp8(0, keyframe=True)])  # starts the leg
    s.to_subscriber.clear()
    started = time.monotonic()
    estimate = DownlinkEstimate(started - PROBE_AGAIN)  # a probe is due
    s.subscriber.downlink = estimate
    estimate.on_feedback([], started)  # feedback comes
    bps = estimate.probe_due(started)
    assert bps is not None
    s.subscriber.probe_if_due(started)  # the room's 100 ms tick
    assert estimate.probe_due(started) is None  # one at a time
    await wait_for(lambda: estimate._probe and estimate._probe.last_seq, 1, "the end")
    elapsed = time.monotonic() - started
    padding = [rtp.parse_rtp(p) for p in plain(s.to_subscriber)]
    assert {h.ssrc for h in padding} == {0xA2}  # the leg's RTX
    assert all(h.payload_type == 99 and h.first_byte & 0x20 for h in padding)
    assert all(h.payload_offset == h.payload_end for h in padding)  # padding only
    numbers = [transport_seq_of(p) for p in plain(s.to_subscriber)]
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))
    assert estimate._probe is not None
    assert (estimate._probe.first_seq, estimate._probe.last_seq) == (
        numbers[0],
        numbers[-1],
    )
    size = len(plain(s.to_subscriber)[0])
    expected = bps * PROBE_SECONDS / 8 / size
    assert expected <= len(numbers) <= expected + 2
    assert elapsed >= PROBE_SECONDS  # paced, not sent at once
    assert s.stats.probes == 1
    assert s.stats.probe_packets == len(numbers)


def test_without_abs_send_time_forwarded_packets_carry_no_extension():
    s = setup()
    feed(s, "handle_datagram", [vp8(0, keyframe=True)])
    [packet] = [p for p in plain(s.to_subscriber) if not rtp.is_rtcp(p)]
    assert abs_send_time_of(packet) is None


def opus_packets(fec: bool) -> list[bytes]:
    """Two seconds of a voice-like signal from libopus (FFmpeg's wrapper), 20 ms
    frames at 24 kbit/s, with or without in-band FEC."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "mono"
    codec.format = "s16"
    codec.bit_rate = 24000
    codec.options = {
        "application": "voip",
        "fec": "1" if fec else "0",
        "packet_loss": "10" if fec else "0",
    }
    rng = random.Random(1)
    packets = []
    for i in range(100):
        samples = array.array("h")
        for n in range(960 * i, 960 * (i + 1)):
            t = n / 48000
            level = 0.5 + 0.5 * math.sin(2 * math.pi * 3 * t)
            voice = math.sin(2 * math.pi * 180 * t) * level
            samples.append(int((voice * 0.4 + rng.gauss(0, 0.05)) * 20000))
        frame = av.AudioFrame(format="s16", layout="mono", samples=960)
        frame.planes[0].update(samples.tobytes())
        frame.sample_rate = 48000
        frame.pts = 960 * i
        packets += [bytes(p) for p in codec.encode(frame)]
    return packets


def test_fec_is_recognised_in_real_opus():
    with_fec = [rtp.opus_has_fec(p) for p in opus_packets(fec=True)]
    without = [rtp.opus_has_fec(p) for p in opus_packets(fec=False)]
    assert sum(with_fec) > len(with_fec) // 2
    assert not any(without)


@pytest.mark.parametrize(
    ("payload", "fec"),
    [
        (bytes([0x08, 0b0100_0000]), True),  # SILK NB 20 ms, mono: VAD, LBRR
        (bytes([0x08, 0b1000_0000]), False),  # voice, no LBRR
        (bytes([0x18, 0b0001_0000]), True),  # SILK NB 60 ms: three VAD flags
        (bytes([0x0C, 0b0001_0000]), True),  # 20 ms stereo: the side's LBRR
        (bytes([0x78, 0xFF]), True),  # hybrid FB 10 ms: SILK comes first
        (bytes([0x80, 0xFF]), False),  # CELT: no SILK layer
        (bytes([0x0B, 0xFF]), False),  # code 3: several frames, not read
        (bytes([0x08]), False),  # DTX: the TOC byte only
    ],
)
def test_fec_flag_in_the_c_path_as_in_python(payload, fec):
    assert rtp.opus_has_fec(payload) is fec
    counts = []
    for path in ("handle_datagram", "fast_handle"):
        s = publishing(path)
        audio = rtp_packet(seq=1, ssrc=AUDIO, pt=111, payload=payload)
        feed(s, path, [audio])
        counts.append(s.stats.opus_fec)
    assert counts == [int(fec)] * 2
