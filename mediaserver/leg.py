"""One publisher stream as sent to one subscriber: the leg's SSRC, payload
types, sequence-number and timestamp offsets, abs-send-time, its send history for
NACKs, and its sender-report counters. Its per-packet part is in C
(``fastpath/forward.c``, ``leg_forward``), on the same state."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mediaserver import packet as rtp
from mediaserver._fastpath import LegCore

if TYPE_CHECKING:
    from mediaserver.forwarder import PeerMedia
    from mediaserver.stream import InboundStream

HISTORY_SIZE = 512
#: Bytes a packet costs on the wire beyond its payload: RTP header with
#: extensions, SRTP tag, UDP and IPv4 (what a sender's bitrate target counts).
PACKET_OVERHEAD = 60


@dataclass(slots=True)
class LegInfo:
    """What the subscriber's negotiation says about the leg that sends to it."""

    ssrc: int
    rtx_ssrc: int
    #: lower-case MIME type → payload type on this leg.
    payload_types: dict[str, int]
    #: payload type → its RTX payload type on this leg.
    rtx_payload_types: dict[int, int]


class OutboundLeg(LegCore):
    """One publisher stream as sent to one subscriber."""

    def __init__(self, source: InboundStream, subscriber: PeerMedia, info: LegInfo):
        self.source = source
        self.subscriber = subscriber
        self.kind = source.info.kind
        self.ssrc = info.ssrc
        self.rtx_ssrc = info.rtx_ssrc
        self.info = info
        self.payload_map: dict[int, int] = {}
        self.update_payload_map()
        self.rtx_payload_types = info.rtx_payload_types
        self.started = self.kind == "audio"
        self.seq_offset = 0
        self.ts_offset = random.getrandbits(32)
        self._first_seq = random.getrandbits(16)
        self._rtx_seq = random.getrandbits(16)
        self.history: list[bytes | None] = [None] * HISTORY_SIZE
        self.packets = 0
        self.octets = 0
        self._sr_sent: dict[int, float] = {}
        #: What the subscriber last reported lost of this leg, out of 256.
        self.fraction_lost = 0
        #: (when, wire bytes) at the last :meth:`wire_rate`.
        self._wire_mark = (0.0, 0)

    def wire_rate(self, now: float) -> int:
        """Bit/s this leg put on the wire since the last call (payload plus
        ``PACKET_OVERHEAD`` a packet); 0 at the first."""
        wire = self.octets + self.packets * PACKET_OVERHEAD
        then, before = self._wire_mark
        self._wire_mark = (now, wire)
        if then == 0.0 or now <= then:
            return 0
        return int((wire - before) * 8 / (now - then))

    def update_payload_map(self) -> None:
        """Publisher payload type → this leg's, by codec."""
        self.payload_map = {
            pt: self.info.payload_types[mime]
            for pt, mime in self.source.info.payload_types.items()
            if mime in self.info.payload_types
        }

    def forward(self, data: bytes, header: rtp.RtpHeader, keyframe: bool) -> None:
        if not self.started:
            if not keyframe:
                self.subscriber.stats.drop("awaiting_keyframe")
                return
            self.started = True
            self.seq_offset = (self._first_seq - header.sequence_number) & 0xFFFF
        payload_type = self.payload_map.get(header.payload_type)
        if payload_type is None:
            self.subscriber.stats.drop("unknown_payload_type")
            return
        seq = (header.sequence_number + self.seq_offset) & 0xFFFF
        out = rtp.rewrite_rtp(
            data,
            header,
            payload_type,
            seq,
            (header.timestamp + self.ts_offset) & 0xFFFFFFFF,
            self.ssrc,
            self.subscriber.send_extensions(
                time.monotonic(), rtp.stamped_size(data, header)
            ),
        )
        self.history[seq % HISTORY_SIZE] = out
        self.packets += 1
        self.octets += header.payload_end - header.payload_offset
        self.subscriber.send_rtp(out, self.kind)
        self.subscriber.stats.forwarded[self.kind] += 1

    def retransmit(self, seq: int) -> bool | None:
        """Resend ``seq`` from history, on RTX where negotiated; None when the
        subscriber's downlink has no room for it now."""
        out = self.history[seq % HISTORY_SIZE]
        if out is None or _sequence_number(out) != seq:
            return False
        downlink = self.subscriber.downlink
        if downlink is not None and not downlink.allow_retransmission(
            len(out), time.monotonic()
        ):
            return None
        rtx_pt = self.rtx_payload_types.get(out[1] & 0x7F)
        if rtx_pt is not None:
            out = self._rtx(out, rtx_pt)
        self.subscriber.send_rtp(out, self.kind)
        return True

    def next_rtx_seq(self) -> int:
        self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
        return self._rtx_seq

    def _rtx(self, out: bytes, rtx_pt: int) -> bytes:
        """``out`` on this leg's RTX stream, with a fresh abs-send-time or
        transport-wide number: an estimator counts only packets that carry it."""
        seq = self.next_rtx_seq()
        rtx = rtp.rtx_wrap(out, rtx_pt, seq, self.rtx_ssrc)
        header = rtp.parse_rtp(rtx)
        stamp = self.subscriber.send_extensions(
            time.monotonic(), rtp.stamped_size(rtx, header)
        )
        if not stamp:
            return rtx
        return rtp.rewrite_rtp(
            rtx, header, rtx_pt, seq, header.timestamp, self.rtx_ssrc, stamp
        )

    def recent(self, seq: int) -> bool:
        """Whether ``seq`` is among this leg's last ``HISTORY_SIZE`` sequence
        numbers, sent or not: a NACK for it that the history cannot answer is for
        a packet the SFU never got."""
        newest = (self.source._max_seq + self.seq_offset) & 0xFFFF
        return self.started and 0 < (newest - seq) & 0xFFFF < HISTORY_SIZE

    def send_sender_report(self, ntp: int, rtp_ts: int) -> None:
        """The publisher's NTP↔RTP mapping in this leg's timestamp space."""
        if not self.started:
            return
        report = rtp.build_sr(
            self.ssrc, ntp, rtp_ts + self.ts_offset, self.packets, self.octets
        )
        lsr = (ntp >> 16) & 0xFFFFFFFF
        if len(self._sr_sent) > 8:
            self._sr_sent.clear()
        self._sr_sent[lsr] = time.monotonic()
        self.subscriber.send_rtcp(report)

    def on_report(self, block: rtp.ReportBlock) -> None:
        stats = self.subscriber.stats
        sent_at = self._sr_sent.get(block.lsr)
        if sent_at is not None and block.lsr:
            rtt = time.monotonic() - sent_at - block.dlsr / 65536
            if rtt >= 0:
                stats.on_rtt(rtt)
        stats.on_jitter(block.jitter / self.source.info.clock_rate)
        stats.on_loss(block.fraction_lost / 256)
        self.fraction_lost = block.fraction_lost


def _sequence_number(packet: bytes) -> int:
    return (packet[2] << 8) | packet[3]
