"""RTP and RTCP at the byte level: the little parsing and building the forwarder needs.

Hand-written rather than aiortc's ``RtpPacket``: a forwarded packet only needs its
fixed header read and rewritten (a few µs less per packet), and every malformed
input raises :class:`MalformedPacket` (a ``ValueError``) instead of whatever the
parser of the day raises.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_RTPFB = 205
RTCP_PSFB = 206
FMT_NACK = 1
FMT_PLI = 1
FMT_FIR = 4
FMT_REMB = 15
FMT_TRANSPORT_CC = 15
#: The most packets one transport-cc feedback may report (Chrome sends one at
#: least every 250 ms: ~300 packets at 3 Mbit/s).
MAX_FEEDBACK_STATUSES = 2048
#: The most padding one RTP packet carries (its count is one byte).
MAX_PADDING = 255

_HEADER = struct.Struct("!BBHII")
_RTCP_HEADER = struct.Struct("!BBH")
_U32 = struct.Struct("!I")
_U16 = struct.Struct("!H")


class MalformedPacket(ValueError):
    """A packet that does not parse; the caller drops and counts it."""


def is_rtcp(data: bytes) -> bool:
    """RFC 5761 demultiplexing of RTP and RTCP on one port."""
    return len(data) >= 2 and 192 <= data[1] <= 223


@dataclass(slots=True)
class RtpHeader:
    """The fields of an RTP packet the forwarder reads; ``payload_offset`` skips
    CSRCs and header extensions; ``payload_end`` excludes padding."""

    first_byte: int
    marker: int
    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    csrc_end: int
    payload_offset: int
    payload_end: int


def parse_rtp(data: bytes) -> RtpHeader:
    length = len(data)
    if length < 12:
        raise MalformedPacket("rtp shorter than its header")
    first, second, seq, ts, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        raise MalformedPacket("rtp version is not 2")
    offset = csrc_end = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        if length < offset + 4:
            raise MalformedPacket("rtp extension header truncated")
        offset += 4 + 4 * _U16.unpack_from(data, offset + 2)[0]
    end = length
    if first & 0x20:
        if length == 0 or data[-1] == 0:
            raise MalformedPacket("rtp padding length is zero")
        end -= data[-1]
    if offset > end:
        raise MalformedPacket("rtp header longer than the packet")
    return RtpHeader(
        first, second & 0x80, second & 0x7F, seq, ts, ssrc, csrc_end, offset, end
    )


def rewrite_rtp(
    data: bytes,
    header: RtpHeader,
    payload_type: int,
    seq: int,
    ts: int,
    ssrc: int,
    extensions: bytes = b"",
) -> bytes:
    """The packet with new PT, sequence number, timestamp and SSRC, and with
    ``extensions`` (a whole extension block, or nothing) in place of the
    publisher's header extensions (their ids belong to its negotiation)."""
    first = (header.first_byte & 0xEF) | (0x10 if extensions else 0)
    fixed = _HEADER.pack(first, header.marker | payload_type, seq, ts, ssrc)
    return (
        fixed + data[12 : header.csrc_end] + extensions + data[header.payload_offset :]
    )


#: Bytes of the header extension block we write: profile, length, one element.
EXTENSION_BLOCK = 8


def stamped_size(data: bytes, header: RtpHeader) -> int:
    """The size of ``data`` once :func:`rewrite_rtp` gives it our extension
    block in place of its own."""
    return header.csrc_end + EXTENSION_BLOCK + len(data) - header.payload_offset


def abs_send_time(ext_id: int, now: float) -> bytes:
    """The extension block with abs-send-time (6.18 fixed-point seconds, 24 bits)
    for a packet sent at ``now``: a subscriber's browser estimates its downlink
    from it. Only differences matter, so a monotonic clock will do."""
    value = int(now * 262144) & 0xFFFFFF
    return struct.pack("!HHB", 0xBEDE, 1, (ext_id << 4) | 2) + value.to_bytes(3, "big")


def padding_packet(
    payload_type: int, seq: int, timestamp: int, ssrc: int, extensions: bytes
) -> bytes:
    """A padding-only RTP packet (RFC 3550 §5.1) of ``MAX_PADDING`` bytes of
    padding, as browsers send on RTX to probe a link; ``extensions`` as from
    :func:`abs_send_time`."""
    first = 0xA0 | (0x10 if extensions else 0)
    fixed = _HEADER.pack(first, payload_type & 0x7F, seq, timestamp, ssrc)
    return fixed + extensions + bytes(MAX_PADDING - 1) + bytes((MAX_PADDING,))


def opus_has_fec(payload: memoryview | bytes) -> bool:
    """Whether an Opus packet (RFC 6716) carries in-band FEC: its SILK layer's LBRR
    flag. SILK codes its voice-activity flags (one per 20 ms, one for a 10 ms
    frame) and then the LBRR flag first, each with probability 1/2, so they are
    the first bits after the TOC byte; stereo repeats them for the side channel.
    CELT-only packets (configs 16-31) have no SILK layer; only packets whose
    first frame follows the TOC byte (codes 0 and 1) are read."""
    if len(payload) < 2:
        return False
    toc = payload[0]
    config, stereo, code = toc >> 3, toc >> 2 & 1, toc & 3
    if config >= 16 or code > 1:
        return False
    frames = config & 3 if config < 12 and config & 3 else 1
    mid = payload[1] >> (7 - frames) & 1
    side = payload[1] >> (6 - 2 * frames) & 1 if stereo else 0
    return bool(mid or side)


def rtx_wrap(
    packet: bytes, rtx_payload_type: int, rtx_seq: int, rtx_ssrc: int
) -> bytes:
    """RFC 4588: the same packet on the RTX stream, original seq first in payload."""
    header = parse_rtp(packet)
    fixed = _HEADER.pack(
        header.first_byte & 0xCF,
        header.marker | rtx_payload_type,
        rtx_seq,
        header.timestamp,
        rtx_ssrc,
    )
    osn = _U16.pack(header.sequence_number)
    return (
        fixed
        + packet[12 : header.csrc_end]
        + osn
        + packet[header.payload_offset : header.payload_end]
    )


def is_vp8_keyframe_start(payload: memoryview | bytes) -> bool:
    """First packet of a VP8 key frame (RFC 7741 descriptor, then P bit clear)."""
    if len(payload) < 2:
        return False
    first = payload[0]
    if not first & 0x10 or first & 0x07:  # not start of partition 0
        return False
    offset = 1
    if first & 0x80:
        ext = payload[1]
        offset = 2
        if ext & 0x80:
            offset += 2 if len(payload) > 2 and payload[2] & 0x80 else 1
        if ext & 0x40:
            offset += 1
        if ext & 0x30:
            offset += 1
    return len(payload) > offset and not payload[offset] & 0x01


def is_h264_keyframe_start(payload: memoryview | bytes) -> bool:
    """A packet starting an IDR picture or carrying an SPS (RFC 6184)."""
    if not payload:
        return False
    nal_type = payload[0] & 0x1F
    if nal_type in (5, 7):
        return True
    if nal_type == 24:  # STAP-A
        offset = 1
        while offset + 2 < len(payload):
            size = (payload[offset] << 8) | payload[offset + 1]
            if payload[offset + 2] & 0x1F in (5, 7):
                return True
            offset += 2 + size
        return False
    if nal_type == 28 and len(payload) > 1:  # FU-A
        return bool(payload[1] & 0x80) and payload[1] & 0x1F == 5
    return False


# RTCP


@dataclass(slots=True)
class ReportBlock:
    ssrc: int
    fraction_lost: int
    packets_lost: int
    highest_sequence: int
    jitter: int
    lsr: int
    dlsr: int


def iter_rtcp(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """``(packet_type, count_or_fmt, packet)`` for each packet of a compound."""
    offset = 0
    length = len(data)
    while offset < length:
        if length - offset < 4:
            raise MalformedPacket("rtcp header truncated")
        first, packet_type, words = _RTCP_HEADER.unpack_from(data, offset)
        if first >> 6 != 2:
            raise MalformedPacket("rtcp version is not 2")
        end = offset + 4 + 4 * words
        if end > length:
            raise MalformedPacket("rtcp length beyond the packet")
        yield packet_type, first & 0x1F, data[offset:end]
        offset = end


def report_blocks(packet: bytes, count: int, offset: int) -> list[ReportBlock]:
    if len(packet) < offset + 24 * count:
        raise MalformedPacket("rtcp report blocks truncated")
    blocks = []
    for i in range(count):
        at = offset + 24 * i
        ssrc, lost, highest, jitter, lsr, dlsr = struct.unpack_from(
            "!IIIIII", packet, at
        )
        cumulative = lost & 0xFFFFFF
        if cumulative & 0x800000:
            cumulative -= 0x1000000
        blocks.append(
            ReportBlock(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr)
        )
    return blocks


def feedback_ssrcs(packet: bytes) -> tuple[int, int]:
    """Sender SSRC and media SSRC of an RTPFB/PSFB packet."""
    if len(packet) < 12:
        raise MalformedPacket("rtcp feedback truncated")
    sender, media = struct.unpack_from("!II", packet, 4)
    return sender, media


def nack_sequence_numbers(packet: bytes) -> list[int]:
    """Lost sequence numbers of a generic NACK (RFC 4585), wrapped at 16 bits."""
    lost: list[int] = []
    for at in range(12, len(packet) - 3, 4):
        pid, blp = struct.unpack_from("!HH", packet, at)
        lost.append(pid)
        for bit in range(16):
            if blp & (1 << bit):
                lost.append((pid + bit + 1) & 0xFFFF)
    return lost


def remb_bitrate(packet: bytes) -> int | None:
    """The bitrate of a REMB packet, or None if this PSFB/APP is not REMB."""
    if len(packet) < 20 or packet[12:16] != b"REMB":
        return None
    exponent = packet[17] >> 2
    mantissa = ((packet[17] & 0x03) << 16) | (packet[18] << 8) | packet[19]
    return int(mantissa << exponent)


def transport_feedback(packet: bytes) -> list[tuple[int, int | None]]:
    """``(sequence number, arrival in µs)`` for each packet a transport-cc feedback
    (draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1) reports, arrival
    None when it was not received; arrivals are on the receiver's clock, so only
    their differences mean anything."""
    if len(packet) < 20:
        raise MalformedPacket("transport-cc feedback truncated")
    end = len(packet) - (packet[-1] if packet[0] & 0x20 else 0)
    base, count = struct.unpack_from("!HH", packet, 12)
    if count > MAX_FEEDBACK_STATUSES:
        # a browser reports a few hundred at most; 65535 would be work for
        # nothing (we keep when 1024 packets left, fastpath SentLog)
        raise MalformedPacket("transport-cc feedback reports too many packets")
    symbols: list[int] = []
    at = 20
    while len(symbols) < count:
        if at + 2 > end:
            raise MalformedPacket("transport-cc status chunks truncated")
        chunk = _U16.unpack_from(packet, at)[0]
        at += 2
        if not chunk & 0x8000:  # run length
            symbols += [chunk >> 13 & 3] * (chunk & 0x1FFF)
        elif chunk & 0x4000:  # seven two-bit symbols
            symbols += [chunk >> (12 - 2 * i) & 3 for i in range(7)]
        else:  # fourteen one-bit symbols
            symbols += [chunk >> (13 - i) & 1 for i in range(14)]
    clock = int.from_bytes(packet[16:19], "big", signed=True) * 64000
    reported: list[tuple[int, int | None]] = []
    for i, symbol in enumerate(symbols[:count]):
        seq = (base + i) & 0xFFFF
        if symbol == 0:
            reported.append((seq, None))
            continue
        if symbol == 3:
            raise MalformedPacket("transport-cc status 3 is reserved")
        size = symbol
        if at + size > end:
            raise MalformedPacket("transport-cc deltas truncated")
        if size == 1:
            clock += packet[at] * 250
        else:
            clock += struct.unpack_from("!h", packet, at)[0] * 250
        at += size
        reported.append((seq, clock))
    return reported


def sender_info(packet: bytes) -> tuple[int, int, int]:
    """SSRC, 64-bit NTP timestamp and RTP timestamp of a sender report."""
    if len(packet) < 28:
        raise MalformedPacket("rtcp sender report truncated")
    ssrc, ntp_high, ntp_low, rtp_ts = struct.unpack_from("!IIII", packet, 4)
    return ssrc, (ntp_high << 32) | ntp_low, rtp_ts


def build_sr(ssrc: int, ntp: int, rtp_ts: int, packets: int, octets: int) -> bytes:
    return struct.pack(
        "!BBHIIIIII",
        0x80,
        RTCP_SR,
        6,
        ssrc,
        ntp >> 32,
        ntp & 0xFFFFFFFF,
        rtp_ts & 0xFFFFFFFF,
        packets & 0xFFFFFFFF,
        octets & 0xFFFFFFFF,
    )


def build_rr(sender_ssrc: int, blocks: list[ReportBlock]) -> bytes:
    body = b"".join(
        struct.pack(
            "!IIIIII",
            b.ssrc,
            (b.fraction_lost << 24) | (b.packets_lost & 0xFFFFFF),
            b.highest_sequence & 0xFFFFFFFF,
            b.jitter & 0xFFFFFFFF,
            b.lsr,
            b.dlsr,
        )
        for b in blocks
    )
    return (
        struct.pack(
            "!BBHI", 0x80 | len(blocks), RTCP_RR, 1 + 6 * len(blocks), sender_ssrc
        )
        + body
    )


def build_pli(sender_ssrc: int, media_ssrc: int) -> bytes:
    return struct.pack("!BBHII", 0x80 | FMT_PLI, RTCP_PSFB, 2, sender_ssrc, media_ssrc)


def build_nack(sender_ssrc: int, media_ssrc: int, lost: list[int]) -> bytes:
    items: list[tuple[int, int]] = []
    for seq in sorted(set(lost)):
        if items and 0 < (seq - items[-1][0]) & 0xFFFF <= 16:
            pid, blp = items[-1]
            items[-1] = (pid, blp | 1 << (((seq - pid) & 0xFFFF) - 1))
        else:
            items.append((seq, 0))
    fci = b"".join(struct.pack("!HH", pid, blp) for pid, blp in items)
    return (
        struct.pack(
            "!BBHII",
            0x80 | FMT_NACK,
            RTCP_RTPFB,
            2 + len(items),
            sender_ssrc,
            media_ssrc,
        )
        + fci
    )


def build_remb(sender_ssrc: int, bitrate: int, ssrcs: list[int]) -> bytes:
    exponent = 0
    mantissa = bitrate
    while mantissa > 0x3FFFF:
        mantissa >>= 1
        exponent += 1
    fci = b"REMB" + bytes(
        [
            len(ssrcs),
            (exponent << 2) | (mantissa >> 16),
            (mantissa >> 8) & 0xFF,
            mantissa & 0xFF,
        ]
    )
    fci += b"".join(_U32.pack(s) for s in ssrcs)
    return (
        struct.pack(
            "!BBHII", 0x80 | FMT_REMB, RTCP_PSFB, 2 + len(fci) // 4, sender_ssrc, 0
        )
        + fci
    )
