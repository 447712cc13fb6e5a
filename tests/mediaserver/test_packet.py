"""RTP/RTCP bytes: parsing, rewriting and building, including malformed input."""

from __future__ import annotations

import struct

import pytest

from mediaserver import packet as rtp
from tests.mediaserver.packets import rtp_packet


def test_parse_and_rewrite_strips_extensions_and_keeps_padding():
    data = rtp_packet(ext=b"\x10\xff\x00\x00", pad=4, payload=b"hello")
    header = rtp.parse_rtp(data)
    assert data[header.payload_offset : header.payload_end] == b"hello"
    out = rtp.rewrite_rtp(data, header, 100, 7, 9, 0xABCD)
    again = rtp.parse_rtp(out)
    assert (again.payload_type, again.sequence_number, again.timestamp, again.ssrc) == (
        100,
        7,
        9,
        0xABCD,
    )
    assert again.marker
    assert not out[0] & 0x10
    assert out[again.payload_offset : again.payload_end] == b"hello"


@pytest.mark.parametrize(
    "data",
    [
        b"\x80\x60",
        b"\x40" + bytes(11),
        rtp_packet(ext=b"\x10\xff\x00\x00")[:14],
        rtp_packet(pad=1)[:-1] + b"\xff",
        rtp_packet(pad=1)[:-1] + b"\x00",
        struct.pack("!BBHII", 0x8F, 96, 1, 1, 1),
    ],
    ids=["short", "version", "extension", "padding", "zero_padding", "csrc_count"],
)
def test_malformed_rtp_raises_malformed(data):
    with pytest.raises(rtp.MalformedPacket):
        rtp.parse_rtp(data)


def test_rtx_wrap_carries_the_original_sequence_number():
    original = rtp.rewrite_rtp(
        rtp_packet(seq=500), rtp.parse_rtp(rtp_packet(seq=500)), 97, 500, 1, 5
    )
    wrapped = rtp.rtx_wrap(original, 98, 11, 6)
    header = rtp.parse_rtp(wrapped)
    assert (header.payload_type, header.sequence_number, header.ssrc) == (98, 11, 6)
    assert wrapped[header.payload_offset : header.payload_offset + 2] == b"\x01\xf4"
    assert wrapped[header.payload_offset + 2 :] == b"abc"


def test_nack_round_trip_across_the_sequence_wrap():
    lost = [65534, 65535, 0, 3, 40]
    packet = rtp.build_nack(1, 2, lost)
    (_, fmt, body), *_ = rtp.iter_rtcp(packet)
    assert fmt == rtp.FMT_NACK
    assert rtp.feedback_ssrcs(body) == (1, 2)
    assert sorted(rtp.nack_sequence_numbers(body)) == sorted(lost)


def test_remb_round_trip():
    packet = rtp.build_remb(1, 2_345_678, [7, 8])
    assert rtp.remb_bitrate(packet) == pytest.approx(2_345_678, rel=1e-4)


def test_sender_and_receiver_reports():
    sr = rtp.build_sr(5, (1 << 40) + 7, 1234, 10, 2000)
    assert rtp.sender_info(sr) == (5, (1 << 40) + 7, 1234)
    block = rtp.ReportBlock(9, 12, -3, 70000, 40, 0xAABBCCDD, 65536)
    rr = rtp.build_rr(5, [block])
    ((packet_type, count, body),) = list(rtp.iter_rtcp(rr))
    assert (packet_type, count) == (rtp.RTCP_RR, 1)
    assert rtp.report_blocks(body, count, 8) == [block]


@pytest.mark.parametrize(
    "data",
    [
        b"\x81\xc9\x00\x07" + bytes(8),
        b"\x81\xc9",
        b"\x01\xc9\x00\x00",
    ],
    ids=["length_beyond", "truncated", "version"],
)
def test_malformed_rtcp_raises_malformed(data):
    with pytest.raises(rtp.MalformedPacket):
        list(rtp.iter_rtcp(data))


def test_short_report_blocks_are_malformed():
    with pytest.raises(rtp.MalformedPacket):
        rtp.report_blocks(struct.pack("!BBHI", 0x9F, 201, 1, 5), 31, 8)


def test_vp8_keyframe_detection():
    keyframe = bytes([0x90, 0x80, 0x81, 0x02, 0x00])  # X S, I, 15-bit picture id
    delta = bytes([0x90, 0x80, 0x81, 0x02, 0x01])
    middle = bytes([0x80, 0x80, 0x81, 0x02, 0x00])  # not the start of a frame
    assert rtp.is_vp8_keyframe_start(keyframe)
    assert not rtp.is_vp8_keyframe_start(delta)
    assert not rtp.is_vp8_keyframe_start(middle)
    assert not rtp.is_vp8_keyframe_start(b"\x10")


def test_h264_keyframe_detection():
    assert rtp.is_h264_keyframe_start(bytes([0x65, 0]))  # IDR
    assert rtp.is_h264_keyframe_start(bytes([0x78, 0, 2, 0x67, 0]))  # STAP-A SPS
    assert rtp.is_h264_keyframe_start(bytes([0x7C, 0x85]))  # FU-A start of IDR
    assert not rtp.is_h264_keyframe_start(bytes([0x7C, 0x05]))  # FU-A middle
    assert not rtp.is_h264_keyframe_start(bytes([0x41, 0]))  # non-IDR slice
