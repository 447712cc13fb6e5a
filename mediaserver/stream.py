"""One stream a participant publishes: its receive statistics, keyframe
detection and requests, NACKs on gaps, and its fan-out to one leg per
subscriber. Its per-packet part is in C (``fastpath/forward.c``,
``stream_on_rtp``), on the same state."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mediaserver import packet as rtp
from mediaserver._fastpath import StreamCore

if TYPE_CHECKING:
    from mediaserver.forwarder import PeerMedia
    from mediaserver.leg import OutboundLeg

#: At most one keyframe request a second to a publisher, however many subscribers
#: ask: a keyframe costs several ordinary frames, and on a weak uplink a storm of
#: them turns a little loss into a frozen picture.
KEYFRAME_INTERVAL = 1.0
MAX_NACK_GAP = 64

_HEADER = struct.Struct("!BBHII")


@dataclass(slots=True)
class StreamInfo:
    """What the publisher's SDP says about one of its streams."""

    kind: str
    ssrc: int
    rtx_ssrc: int | None
    #: payload type → lower-case MIME type, e.g. ``{96: "video/vp8"}``.
    payload_types: dict[int, str]
    #: RTX payload type → the payload type it repairs.
    rtx_payload_types: dict[int, int]
    clock_rate: int


class InboundStream(StreamCore):
    """One stream a participant publishes, with its receive statistics."""

    def __init__(self, publisher: PeerMedia, info: StreamInfo) -> None:
        self.publisher = publisher
        self.info = info
        self.kind = info.kind
        self.is_video = info.kind == "video"
        self.media_ssrc = info.ssrc
        self.clock_rate = info.clock_rate
        # payload types keep their meaning on a connection (mediaserver/sdp.py)
        self.payload_types = info.payload_types
        self.legs: list[OutboundLeg] = []
        self._max_seq = -1
        self._cycles = 0
        self._base_seq = 0
        self._received = 0
        self._expected_prior = 0
        self._received_prior = 0
        self._jitter = 0.0
        self._transit = 0.0
        self._has_transit = False
        self._last_sr = 0
        self._last_sr_at = 0.0
        self.remb: dict[int, int] = {}

    def on_rtp(self, data: bytes, header: rtp.RtpHeader, now: float) -> None:
        self._update_stats(header, now)
        keyframe = False
        if self.kind == "video":
            payload = memoryview(data)[header.payload_offset : header.payload_end]
            mime = self.info.payload_types.get(header.payload_type, "")
            if mime == "video/h264":
                keyframe = rtp.is_h264_keyframe_start(payload)
            else:
                keyframe = rtp.is_vp8_keyframe_start(payload)
            if keyframe:
                self.publisher.stats.keyframes += 1
        elif rtp.opus_has_fec(data[header.payload_offset : header.payload_end]):
            self.publisher.stats.opus_fec += 1
        self.forward(data, header, keyframe)

    def forward(self, data: bytes, header: rtp.RtpHeader, keyframe: bool) -> None:
        stats = self.publisher.stats
        if not self.publisher.forwarding:
            stats.drop("lobby")
            return
        for leg in self.legs:
            leg.forward(data, header, keyframe)

    def on_rtx(self, data: bytes, header: rtp.RtpHeader) -> None:
        """A retransmission the publisher sent on RTX after our NACK."""
        if header.payload_end - header.payload_offset < 2:
            self.publisher.stats.drop("rtx_padding")
            return
        apt = self.info.rtx_payload_types.get(header.payload_type)
        if apt is None:
            self.publisher.stats.drop("unknown_payload_type")
            return
        at = header.payload_offset
        osn = (data[at] << 8) | data[at + 1]
        original = (
            _HEADER.pack(
                header.first_byte & 0xCF,
                header.marker | apt,
                osn,
                header.timestamp,
                self.info.ssrc,
            )
            + data[12 : header.csrc_end]
            + data[header.payload_offset + 2 : header.payload_end]
        )
        self.forward(original, rtp.parse_rtp(original), False)

    def _update_stats(self, header: rtp.RtpHeader, now: float) -> None:
        seq = header.sequence_number
        if self._max_seq < 0:
            self._max_seq = self._base_seq = seq
        else:
            delta = (seq - self._max_seq) & 0xFFFF
            if 0 < delta < 0x8000:
                if seq < self._max_seq:
                    self._cycles += 1 << 16
                if 1 < delta <= MAX_NACK_GAP and self.kind == "video":
                    missing = [(self._max_seq + i) & 0xFFFF for i in range(1, delta)]
                    self.publisher.send_nack(self.info.ssrc, missing)
                self._max_seq = seq
        self._received += 1
        arrival = now * self.info.clock_rate
        transit = arrival - header.timestamp
        if self._has_transit:
            d = abs(transit - self._transit)
            self._jitter += (d - self._jitter) / 16
        self._transit = transit
        self._has_transit = True

    def on_sender_report(self, ntp: int, rtp_ts: int) -> None:
        self._last_sr = (ntp >> 16) & 0xFFFFFFFF
        self._last_sr_at = time.monotonic()
        for leg in self.legs:
            leg.send_sender_report(ntp, rtp_ts)

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe, at most once per
        ``KEYFRAME_INTERVAL`` over all its streams. A subscriber whose request
        falls in the interval asks again (browsers repeat PLI while they wait),
        and legs still waiting for their first keyframe are asked for at each
        receiver report."""
        if self.kind != "video":
            return
        publisher = self.publisher
        now = time.monotonic()
        if now - publisher._last_keyframe_request < KEYFRAME_INTERVAL:
            return
        publisher._last_keyframe_request = now
        publisher.send_pli(self.info.ssrc)

    def report_block(self) -> rtp.ReportBlock | None:
        if self._max_seq < 0:
            return None
        extended_max = self._cycles + self._max_seq
        expected = extended_max - self._base_seq + 1
        lost = max(0, expected - self._received)
        expected_interval = expected - self._expected_prior
        lost_interval = expected_interval - (self._received - self._received_prior)
        self._expected_prior = expected
        self._received_prior = self._received
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = min(255, (lost_interval << 8) // expected_interval)
        if self.kind == "audio":
            # the publisher's Opus encoder sizes its in-band FEC by this: tell it
            # the worst loss on the way to any subscriber, not only to the SFU
            # (the cumulative count stays ours: congestion control reads that)
            fraction = max([fraction, *(leg.fraction_lost for leg in self.legs)])
        dlsr = 0
        if self._last_sr:
            dlsr = int((time.monotonic() - self._last_sr_at) * 65536)
        return rtp.ReportBlock(
            self.info.ssrc,
            fraction,
            min(lost, 0x7FFFFF),
            extended_max,
            int(self._jitter),
            self._last_sr,
            dlsr,
        )
