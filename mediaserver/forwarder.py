"""The short media path: SRTP in, route by SSRC, rewrite per leg, SRTP out.

Everything here runs synchronously inside the UDP socket's receive callback
(:meth:`PeerMedia.handle_datagram`); there is no task or queue per packet. On the
shared port the common packet (RTP of a known stream) takes the same steps in C
(``mediaserver/fastpath/``): the three classes here subclass its types, so both
paths share one state, and the C path calls back into the methods here for
everything else (RTCP, RTX, unknown SSRCs, NACKs to send, drops to count). A
publisher's stream (:class:`InboundStream`) fans out to one :class:`OutboundLeg`
per subscriber. Each leg owns its SSRC, payload types, sequence-number and
timestamp offsets, a send history for NACKs and its sender-report counters.
RTCP is bridged: NACKs are answered from the leg's history, and PLI/FIR from a
subscriber, or a NACK the history cannot answer, becomes a PLI to the publisher,
at most one a second per publisher; the publisher's sender
reports are translated per leg (lip-sync), and the publisher gets our receiver
reports, NACKs and REMB.

Congestion control: a publisher's browser numbers its packets (transport-cc) and
gets our feedback about ten times a second, so it sizes its uplink itself; a
subscriber's browser estimates its downlink from the abs-send-time we write on
each packet and reports it as REMB, and the publisher gets the lowest REMB of its
subscribers. We chose the subscriber's own estimate over an estimator of ours:
the browser's is tested on real networks, and the forwarder only stamps 3 bytes.
"""

from __future__ import annotations

import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from mediaserver import packet as rtp
from mediaserver._fastpath import LegCore, PeerCore, StreamCore
from mediaserver.packet import MalformedPacket
from mediaserver.transport import MediaTransport, SrtpError

log = structlog.get_logger()

HISTORY_SIZE = 512
#: At most one keyframe request a second to a publisher, however many subscribers
#: ask: a keyframe costs several ordinary frames, and on a weak uplink a storm of
#: them turns a little loss into a frozen picture.
KEYFRAME_INTERVAL = 1.0
MAX_NACK_GAP = 64
#: REMB sent to a publisher when no subscriber reported an estimate yet.
DEFAULT_REMB_BPS = 1_500_000
#: A subscriber estimate this much away from what the publisher last heard goes
#: to the publisher at once, not with the next receiver report (up to 1 s later).
REMB_CHANGE = 0.1
#: One in this many forwarded packets is timed for the forwarding histogram.
TIMING_SAMPLE = 16

_HEADER = struct.Struct("!BBHII")


def _noop(value: float) -> None:
    """Default observer: metrics are wired in by the app."""


@dataclass(slots=True)
class ForwarderStats:
    """Plain counters bumped per packet; the metrics collector reads them."""

    packets_in: dict[str, int] = field(
        default_factory=lambda: {"audio": 0, "video": 0, "rtcp": 0}
    )
    bytes_in: dict[str, int] = field(
        default_factory=lambda: {"audio": 0, "video": 0, "rtcp": 0}
    )
    packets_out: dict[str, int] = field(
        default_factory=lambda: {"audio": 0, "video": 0, "rtcp": 0}
    )
    bytes_out: dict[str, int] = field(
        default_factory=lambda: {"audio": 0, "video": 0, "rtcp": 0}
    )
    forwarded: dict[str, int] = field(default_factory=lambda: {"audio": 0, "video": 0})
    dropped: dict[str, int] = field(default_factory=dict)
    pli: dict[str, int] = field(
        default_factory=lambda: {"from_subscriber": 0, "to_publisher": 0}
    )
    nack: dict[str, int] = field(
        default_factory=lambda: {"from_subscriber": 0, "to_publisher": 0}
    )
    retransmitted: int = 0
    keyframes: int = 0
    #: Opus packets that carry in-band FEC (the publisher protects its audio).
    opus_fec: int = 0
    transport_feedback: int = 0
    on_forward_time: Callable[[float], None] = _noop
    on_rtt: Callable[[float], None] = _noop
    on_jitter: Callable[[float], None] = _noop
    on_loss: Callable[[float], None] = _noop

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


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
        ext_id = self.subscriber.abs_send_time_id
        out = rtp.rewrite_rtp(
            data,
            header,
            payload_type,
            seq,
            (header.timestamp + self.ts_offset) & 0xFFFFFFFF,
            self.ssrc,
            rtp.abs_send_time(ext_id, time.monotonic()) if ext_id else b"",
        )
        self.history[seq % HISTORY_SIZE] = out
        self.packets += 1
        self.octets += header.payload_end - header.payload_offset
        self.subscriber.send_rtp(out, self.kind)
        self.subscriber.stats.forwarded[self.kind] += 1

    def retransmit(self, seq: int) -> bool:
        """Resend ``seq`` from history, on RTX where negotiated."""
        out = self.history[seq % HISTORY_SIZE]
        if out is None or _sequence_number(out) != seq:
            return False
        rtx_pt = self.rtx_payload_types.get(out[1] & 0x7F)
        if rtx_pt is not None:
            self._rtx_seq = (self._rtx_seq + 1) & 0xFFFF
            out = rtp.rtx_wrap(out, rtx_pt, self._rtx_seq, self.rtx_ssrc)
        self.subscriber.send_rtp(out, self.kind)
        return True

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


class PeerMedia(PeerCore):
    """One participant's end of the short path: what it publishes and receives."""

    def __init__(self, transport: MediaTransport, stats: ForwarderStats) -> None:
        self.transport = transport
        self.stats = stats
        self.rtcp_ssrc = random.getrandbits(32)
        self.streams: dict[int, InboundStream] = {}
        self.rtx_streams: dict[int, InboundStream] = {}
        self.legs: dict[int, OutboundLeg] = {}
        #: False while the participant waits in the lobby: nothing is forwarded.
        self.forwarding = False
        self.last_packet_at = time.monotonic()
        self._timing_count = 0
        self._last_keyframe_request = 0.0
        #: The REMB this publisher last got from us (0: none yet).
        self._remb_sent = 0

    # wiring (called by the room, not per packet)

    def set_header_extensions(
        self, *, transport_cc: int = 0, abs_send_time: int = 0
    ) -> None:
        """The extension ids negotiated with this participant (0: none):
        ``transport_cc`` on what it sends us, ``abs_send_time`` on what we send."""
        self._set_extensions(transport_cc, abs_send_time)

    def add_stream(self, info: StreamInfo) -> InboundStream:
        stream = InboundStream(self, info)
        self.streams[info.ssrc] = stream
        if info.rtx_ssrc is not None:
            self.rtx_streams[info.rtx_ssrc] = stream
        return stream

    def add_leg(self, source: InboundStream, info: LegInfo) -> OutboundLeg:
        leg = OutboundLeg(source, self, info)
        self.legs[info.ssrc] = leg
        source.legs.append(leg)
        source.request_keyframe()
        return leg

    def remove_leg(self, leg: OutboundLeg) -> None:
        self.legs.pop(leg.ssrc, None)
        if leg in leg.source.legs:
            leg.source.legs.remove(leg)

    def on_transport_started(self) -> None:
        """Video legs set up before DTLS was up start again from a keyframe."""
        for leg in self.legs.values():
            if leg.kind == "video":
                leg.started = False
                leg.source.request_keyframe()

    def close(self) -> None:
        for leg in list(self.legs.values()):
            self.remove_leg(leg)
        for stream in self.streams.values():
            for leg in list(stream.legs):
                leg.subscriber.remove_leg(leg)
        self.transport.stop()

    # the per-packet path

    def handle_datagram(self, data: bytes) -> None:
        """One SRTP/SRTCP datagram from this peer; never raises."""
        stats = self.stats
        now = time.monotonic()
        self.last_packet_at = now
        try:
            if rtp.is_rtcp(data):
                plain = self.transport.unprotect_rtcp(data)
                stats.packets_in["rtcp"] += 1
                stats.bytes_in["rtcp"] += len(data)
                self._handle_rtcp(plain)
                return
            self._timing_count += 1
            timed = not self._timing_count % TIMING_SAMPLE
            start = time.perf_counter() if timed else 0.0
            plain = self.transport.unprotect(data)
            if self.transport_cc_id:
                self.record_transport_cc(plain, now)
            self._handle_rtp(plain, len(data), now)
            if timed:
                stats.on_forward_time(time.perf_counter() - start)
        except SrtpError:
            stats.drop("srtp")
        except (MalformedPacket, ValueError, IndexError, struct.error):
            stats.drop("malformed")
        except Exception:
            log.exception("packet_handling_failed")
            stats.drop("error")

    def handle_plain_rtp(self, data: bytes, size: int, now: float) -> None:
        """An unprotected RTP packet the C path does not forward itself (RTX, an
        unknown SSRC); never raises."""
        try:
            self._handle_rtp(data, size, now)
        except (MalformedPacket, ValueError, IndexError, struct.error):
            self.stats.drop("malformed")
        except Exception:
            log.exception("packet_handling_failed")
            self.stats.drop("error")

    def _handle_rtp(self, data: bytes, size: int, now: float) -> None:
        header = rtp.parse_rtp(data)
        stream = self.streams.get(header.ssrc)
        if stream is not None:
            self.stats.packets_in[stream.kind] += 1
            self.stats.bytes_in[stream.kind] += size
            stream.on_rtp(data, header, now)
            return
        stream = self.rtx_streams.get(header.ssrc)
        if stream is not None:
            self.stats.packets_in[stream.kind] += 1
            self.stats.bytes_in[stream.kind] += size
            stream.on_rtx(data, header)
            return
        self.stats.drop("unknown_ssrc")

    def _handle_rtcp(self, data: bytes) -> None:
        for packet_type, count, packet in rtp.iter_rtcp(data):
            if packet_type == rtp.RTCP_SR:
                ssrc, ntp, rtp_ts = rtp.sender_info(packet)
                stream = self.streams.get(ssrc)
                if stream is not None:
                    stream.on_sender_report(ntp, rtp_ts)
                self._on_report_blocks(rtp.report_blocks(packet, count, 28))
            elif packet_type == rtp.RTCP_RR:
                self._on_report_blocks(rtp.report_blocks(packet, count, 8))
            elif packet_type == rtp.RTCP_PSFB:
                self._on_payload_feedback(count, packet)
            elif packet_type == rtp.RTCP_RTPFB and count == rtp.FMT_NACK:
                self._on_nack(packet)

    def _on_report_blocks(self, blocks: list[rtp.ReportBlock]) -> None:
        for block in blocks:
            leg = self.legs.get(block.ssrc)
            if leg is not None:
                leg.on_report(block)

    def _on_payload_feedback(self, fmt: int, packet: bytes) -> None:
        _, media_ssrc = rtp.feedback_ssrcs(packet)
        if fmt in (rtp.FMT_PLI, rtp.FMT_FIR):
            if fmt == rtp.FMT_FIR and len(packet) >= 16:
                media_ssrc = struct.unpack_from("!I", packet, 12)[0]
            leg = self.legs.get(media_ssrc)
            if leg is not None:
                self.stats.pli["from_subscriber"] += 1
                leg.source.request_keyframe()
        elif fmt == rtp.FMT_REMB:
            bitrate = rtp.remb_bitrate(packet)
            if bitrate is not None:
                for ssrc in _remb_ssrcs(packet):
                    leg = self.legs.get(ssrc)
                    if leg is not None:
                        leg.source.remb[self.rtcp_ssrc] = bitrate
                        leg.source.publisher.on_estimate()

    def _on_nack(self, packet: bytes) -> None:
        _, media_ssrc = rtp.feedback_ssrcs(packet)
        leg = self.legs.get(media_ssrc)
        if leg is None:
            return
        self.stats.nack["from_subscriber"] += 1
        never_got: list[int] = []
        too_old = False
        for seq in rtp.nack_sequence_numbers(packet):
            if leg.retransmit(seq):
                self.stats.retransmitted += 1
            elif leg.recent(seq):
                never_got.append((seq - leg.seq_offset) & 0xFFFF)
            else:
                self.stats.drop("nack_not_in_history")
                too_old = True
        source = leg.source
        if never_got:
            # lost before the SFU too, and our own NACK went unanswered: ask the
            # publisher again (its browser keeps about a second of packets)
            source.publisher.send_nack(source.info.ssrc, never_got)
        if too_old:
            # the subscriber cannot recover by NACK: it would send a PLI after
            # its own wait, so ask for it now
            source.request_keyframe()

    # sending

    def send_rtp(self, packet: bytes, kind: str) -> None:
        try:
            self.transport.send_rtp(packet)
        except SrtpError:  # e.g. a late packet outside libsrtp's replay window
            self.stats.drop("srtp_protect")
            return
        self.stats.packets_out[kind] += 1
        self.stats.bytes_out[kind] += len(packet)

    def send_rtcp(self, packet: bytes) -> None:
        try:
            self.transport.send_rtcp(packet)
        except SrtpError:
            self.stats.drop("srtp_protect")
            return
        self.stats.packets_out["rtcp"] += 1
        self.stats.bytes_out["rtcp"] += len(packet)

    def send_pli(self, media_ssrc: int) -> None:
        self.stats.pli["to_publisher"] += 1
        self.send_rtcp(rtp.build_pli(self.rtcp_ssrc, media_ssrc))

    def on_estimate(self) -> None:
        """A subscriber of this publisher reported a new downlink estimate: a
        change of more than ``REMB_CHANGE`` goes to the publisher at once."""
        bitrate = self._lowest_estimate()
        last = self._remb_sent
        if bitrate is not None and abs(bitrate - last) > last * REMB_CHANGE:
            self.send_rtcp(self._remb(bitrate))

    def _lowest_estimate(self) -> int | None:
        """What this publisher's video may use: the lowest estimate of its
        subscribers, or a default before any; None when it publishes no video."""
        video = [s for s in self.streams.values() if s.kind == "video"]
        if not video:
            return None
        estimates = [bps for s in video for bps in s.remb.values()]
        return min(estimates) if estimates else DEFAULT_REMB_BPS

    def _remb(self, bitrate: int | None) -> bytes:
        if bitrate is None:
            return b""
        self._remb_sent = bitrate
        ssrcs = [s.info.ssrc for s in self.streams.values() if s.kind == "video"]
        return rtp.build_remb(self.rtcp_ssrc, bitrate, ssrcs)

    def send_nack(self, media_ssrc: int, lost: list[int]) -> None:
        self.stats.nack["to_publisher"] += 1
        self.send_rtcp(rtp.build_nack(self.rtcp_ssrc, media_ssrc, lost))

    def send_transport_feedback(self) -> None:
        """Tell the publisher's browser when its packets arrived (transport-cc).

        Called about ten times a second by the room for every participant; sends
        nothing when transport-cc was not negotiated or nothing arrived."""
        media_ssrc = next(iter(self.streams), 0)
        while (
            feedback := self.transport_feedback(self.rtcp_ssrc, media_ssrc)
        ) is not None:
            self.stats.transport_feedback += 1
            self.send_rtcp(feedback)

    def send_receiver_report(self) -> None:
        """RR for every stream this peer publishes, plus REMB for its video.

        Called about once a second by the room, not per packet. Legs still
        waiting for a keyframe ask for one again here.
        """
        blocks = [b for s in self.streams.values() if (b := s.report_block())]
        remb = self._remb(self._lowest_estimate())
        self.send_rtcp(rtp.build_rr(self.rtcp_ssrc, blocks) + remb)
        for leg in self.legs.values():
            if not leg.started:
                leg.source.request_keyframe()


def _remb_ssrcs(packet: bytes) -> list[int]:
    if len(packet) < 20:
        return []
    count = packet[16]
    return [
        struct.unpack_from("!I", packet, 20 + 4 * i)[0]
        for i in range(count)
        if 24 + 4 * i <= len(packet)
    ]
