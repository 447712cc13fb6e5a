"""The short media path: SRTP in, route by SSRC, rewrite per leg, SRTP out.

Everything here runs synchronously inside the UDP socket's receive callback
(:meth:`PeerMedia.handle_datagram`); there is no task or queue per packet. On the
shared port the common packet (RTP of a known stream) takes the same steps in C
(``mediaserver/fastpath/``): :class:`PeerMedia` here, ``InboundStream``
(``stream.py``) and ``OutboundLeg`` (``leg.py``) subclass its types, so both
paths share one state, and the C path calls back into their methods for
everything else (RTCP, RTX, unknown SSRCs, NACKs to send, drops to count). A
publisher's stream fans out to one leg per subscriber. Each leg owns its SSRC,
payload types, sequence-number and timestamp offsets, a send history for NACKs
and its sender-report counters.
RTCP is bridged: NACKs are answered from the leg's history, and PLI/FIR from a
subscriber, or a NACK the history cannot answer, becomes a PLI to the publisher,
at most one a second per publisher; the publisher's sender
reports are translated per leg (lip-sync), and the publisher gets our receiver
reports, NACKs and REMB.

Congestion control: a publisher's browser numbers its packets (transport-cc) and
gets our feedback about ten times a second, so it sizes its uplink itself. On
a subscriber's downlink we number what we send it (transport-cc again) and
estimate the link ourselves from its feedback, with probes (``estimator.py``
says why the browser's own estimate was not enough). A subscriber without
transport-cc (aiortc) estimates its downlink from the abs-send-time we write
and reports it as REMB. The publisher gets the lowest estimate of its
subscribers, plus the audio it sends: a REMB counts only the video a
subscriber receives, while a publisher's browser spends it on all it sends
(otherwise a low estimate holds itself down: at 70 kbit/s, with ~50 kbit/s of
it audio, too little video is left for the receiver's estimator to raise it).
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from mediaserver import packet as rtp
from mediaserver._fastpath import PeerCore
from mediaserver.estimator import PROBE_SECONDS, DownlinkEstimate, Reported
from mediaserver.leg import LegInfo, OutboundLeg
from mediaserver.packet import MalformedPacket
from mediaserver.stream import InboundStream, StreamInfo
from mediaserver.transport import MediaTransport, SrtpError

log = structlog.get_logger()

#: REMB sent to a publisher when no subscriber reported an estimate yet.
DEFAULT_REMB_BPS = 1_500_000
#: A subscriber estimate this much away from what the publisher last heard goes
#: to the publisher at once, not with the next receiver report (up to 1 s later).
REMB_CHANGE = 0.1
#: One in this many forwarded packets is timed for the forwarding histogram.
TIMING_SAMPLE = 16


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
    transport_feedback_in: int = 0
    #: probes of a subscriber's downlink, and their padding packets
    probes: int = 0
    probe_packets: int = 0
    on_forward_time: Callable[[float], None] = _noop
    on_rtt: Callable[[float], None] = _noop
    on_jitter: Callable[[float], None] = _noop
    on_loss: Callable[[float], None] = _noop

    def drop(self, reason: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1


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
        #: Bit/s of audio this publisher sends, as of its last receiver report.
        self._audio_bps = 0
        #: Our estimate of this subscriber's downlink, with transport-cc on
        #: what we send it.
        self.downlink: DownlinkEstimate | None = None

    # wiring (called by the room, not per packet)

    def set_header_extensions(
        self,
        *,
        transport_cc: int = 0,
        abs_send_time: int = 0,
        sent_transport_cc: int = 0,
    ) -> None:
        """The extension ids negotiated with this participant (0: none):
        ``transport_cc`` on what it sends us, ``abs_send_time`` or
        ``sent_transport_cc`` on what we send."""
        self._set_extensions(transport_cc, abs_send_time, sent_transport_cc)
        if sent_transport_cc and self.downlink is None:
            self.downlink = DownlinkEstimate(time.monotonic())
        elif not sent_transport_cc:
            self.downlink = None

    def send_extensions(self, now: float, size: int) -> bytes:
        """The extension block for a packet of ``size`` bytes the Python path
        sends now (what the C path writes itself)."""
        if self.sent_transport_cc_id:
            return self.number_packet(now, size)
        if self.abs_send_time_id:
            return rtp.abs_send_time(self.abs_send_time_id, now)
        return b""

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
            elif packet_type == rtp.RTCP_RTPFB and count == rtp.FMT_TRANSPORT_CC:
                self._on_transport_feedback(packet)

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

    def _on_transport_feedback(self, packet: bytes) -> None:
        """When our packets reached this subscriber: its downlink estimate, for
        the publishers it receives video from."""
        estimate = self.downlink
        if estimate is None:
            return
        self.stats.transport_feedback_in += 1
        reported = []
        for seq, arrival_us in rtp.transport_feedback(packet):
            sent = self.sent_packet(seq)
            if sent is not None:
                arrived = None if arrival_us is None else arrival_us / 1e6
                reported.append(Reported(seq, sent[0], sent[1], arrived))
        if estimate.on_feedback(reported, time.monotonic()):
            self._tell_publishers(estimate.bps)

    def _tell_publishers(self, bps: int) -> None:
        publishers = []
        for leg in self.legs.values():
            if leg.kind == "video":
                leg.source.remb[self.rtcp_ssrc] = bps
                if leg.source.publisher not in publishers:
                    publishers.append(leg.source.publisher)
        for publisher in publishers:
            publisher.on_estimate()

    def probe_if_due(self, now: float) -> None:
        """Padding on a video leg's RTX stream, paced over PROBE_SECONDS, when
        the downlink estimate asks for a probe."""
        estimate = self.downlink
        if estimate is None:
            return
        legs = [
            leg
            for leg in self.legs.values()
            if leg.kind == "video" and leg.started and leg.rtx_payload_types
        ]
        if not legs or (bps := estimate.probe_due(now)) is None:
            return
        self.stats.probes += 1
        ProbeSender(self, legs[0], bps, now).start()

    def _on_nack(self, packet: bytes) -> None:
        _, media_ssrc = rtp.feedback_ssrcs(packet)
        leg = self.legs.get(media_ssrc)
        if leg is None:
            return
        self.stats.nack["from_subscriber"] += 1
        never_got: list[int] = []
        too_old = False
        for seq in rtp.nack_sequence_numbers(packet):
            sent = leg.retransmit(seq)
            if sent:
                self.stats.retransmitted += 1
            elif sent is None:
                self.stats.drop("retransmission_budget")
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
        """What this publisher may send: the lowest video estimate of its
        subscribers plus its audio, or a default before any; None when it
        publishes no video."""
        video = [s for s in self.streams.values() if s.kind == "video"]
        if not video:
            return None
        estimates = [bps for s in video for bps in s.remb.values()]
        return min(estimates) + self._audio_bps if estimates else DEFAULT_REMB_BPS

    def _measure_audio(self) -> None:
        """The audio this publisher sends, from what its busiest audio leg sent
        since the last receiver report (each subscriber gets the same audio)."""
        now = time.monotonic()
        rates = [
            leg.wire_rate(now)
            for stream in self.streams.values()
            if stream.kind == "audio"
            for leg in stream.legs
        ]
        self._audio_bps = max(rates, default=0)

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
        self._measure_audio()
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


class ProbeSender:
    """One probe of a subscriber's downlink: padding-only packets on a video
    leg's RTX stream at ``bps`` for PROBE_SECONDS, as browsers probe, paced in
    ticks of PACE_SECONDS, the first and last noted for the estimate."""

    PACE_SECONDS = 0.005

    def __init__(self, media: PeerMedia, leg: OutboundLeg, bps: int, now: float):
        self.media = media
        self.leg = leg
        self.bps = bps
        self.started_at = now
        self.sent = 0
        self.last_seq: int | None = None

    def start(self) -> None:
        self._tick()

    def _tick(self) -> None:
        now = time.monotonic()
        elapsed = min(now - self.started_at, PROBE_SECONDS)
        size = 12 + 8 + rtp.MAX_PADDING
        owed = int(self.bps * elapsed / 8 / size) + 1 - self.sent
        estimate = self.media.downlink
        if estimate is None or not self.media.transport.sending:
            return
        for _ in range(max(owed, 0)):
            seq = self._send_one(now, size)
            if self.sent == 0:
                estimate.probe_started(seq, now)
            self.sent += 1
            self.last_seq = seq
        if elapsed < PROBE_SECONDS:
            asyncio.get_running_loop().call_later(self.PACE_SECONDS, self._tick)
        elif self.last_seq is not None:
            estimate.probe_ended(self.last_seq)

    def _send_one(self, now: float, size: int) -> int:
        leg = self.leg
        block = self.media.number_packet(now, size)
        rtx_pt = next(iter(leg.rtx_payload_types.values()))
        packet = rtp.padding_packet(
            rtx_pt, leg.next_rtx_seq(), leg.ts_offset, leg.rtx_ssrc, block
        )
        self.media.send_rtp(packet, leg.kind)
        self.media.stats.probe_packets += 1
        return (block[5] << 8) | block[6]
