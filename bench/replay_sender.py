"""The replay sender: aiortc peers set up the calls, then one timer loop per
client process sends every peer's media itself.

Each publishing transceiver becomes a :class:`ReplayStream`: its negotiated SSRC,
payload type, ``mid`` and abs-send-time extension ids, a random first sequence
number and timestamp as aiortc picks them, and the packets aiortc would write
for the same pre-encoded frames (``bench.replay_media``), protected with the
peer's own SRTP session and written with ``socket.sendto`` on its ICE pair's
socket. :class:`ReplayLoop` wakes at the next frame due (at most ``tick``
seconds later, to read; at least ``MIN_ROUND`` later), sends every frame that is
due (each stream on its own schedule, the streams' phases spread), then reads
what arrived (``bench.replay_receiver``).

Why: aiortc's own send path (a task per sender, ``RtpPacket.serialize``, an
``await`` per packet, aioice's queue on the receive side) lets one client core
drive about 20 calls; this one is several times cheaper.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import random
import struct
import time
from typing import Any

from aiortc import RTCRtpTransceiver
from aiortc.rtcrtpparameters import RTCRtpParameters
from aiortc.rtcrtpsender import random_sequence_number
from aiortc.rtp import HeaderExtensions, HeaderExtensionsMap

from bench.replay_media import Frame, ReplayMedia, vp8_descriptor
from bench.replay_peer import ReplayPeer
from bench.replay_receiver import ReplayReceiver

#: the shortest time between two rounds of the loop, seconds
MIN_ROUND = 0.001
#: sent packets each stream remembers (send time, payload) for timing
RING = 1024
_NTP_EPOCH = 2208988800
_HEADER = struct.Struct("!BBHII")
_PLACEHOLDER = b"\xab\xcd\xef"  # an abs-send-time value, to find its place


class ReplayStream:
    """One published SSRC: builds, protects and sends its frames in turn."""

    def __init__(
        self,
        peer: ReplayPeer,
        transceiver: RTCRtpTransceiver,
        media: ReplayMedia,
        counters: list[int],
    ) -> None:
        self.peer = peer
        self.kind = transceiver.kind
        self.video = self.kind == "video"
        self.frames: tuple[Frame, ...] = media.video if self.video else media.audio
        self.interval = 1 / media.fps if self.video else 0.02
        self.step = media.video_step if self.video else media.audio_step
        self.ssrc: int = transceiver.sender._ssrc
        payload_type = transceiver._codecs[0].payloadType
        assert payload_type is not None
        self.payload_type = payload_type
        self.seq = random_sequence_number()
        self.timestamp = random.getrandbits(32)
        self.picture_id = random.getrandbits(15)
        self.index = random.randrange(len(self.frames)) if not self.video else 0
        self._counters = counters  # [packets sent, send errors] of the process
        self._ext_head, self._ext_tail, self._has_ast = _extension_template(transceiver)
        self._first_byte = 0x90 if self._ext_head else 0x80
        #: the sender's fields its RTCP loop reads for sender reports
        self._sender_state: dict[str, Any] = vars(transceiver.sender)
        self.packets = self.octets = 0
        self.sent_seq = [-1] * RING
        self.sent_at = [0.0] * RING
        self.sent_payload = [b""] * RING

    def send_frame(self) -> None:
        frame = self.frames[self.index % len(self.frames)]
        self.index += 1
        now = time.time()
        ntp = int((now + _NTP_EPOCH) * 4294967296)
        ext = self._ext_head
        if self._has_ast:
            ext += ((ntp >> 14) & 0xFFFFFF).to_bytes(3, "big") + self._ext_tail
        chunks = frame.chunks
        last = len(chunks) - 1
        timestamp, ssrc, pt = self.timestamp, self.ssrc, self.payload_type
        peer = self.peer
        send, buffer, view, length = peer.sock.send, peer.buffer, peer.view, peer.length
        protect, context, cdata = peer.srtp_protect, peer.context, peer.cdata
        start = rest = b""  # Opus: the payload as it is
        if self.video:
            start = vp8_descriptor(True, self.picture_id)
            rest = vp8_descriptor(False, self.picture_id)
        octets = 0
        pack, first_byte = _HEADER.pack, self._first_byte
        sent_seq, sent_at, sent_payload = self.sent_seq, self.sent_at, self.sent_payload
        seq = self.seq
        for i, chunk in enumerate(chunks):
            payload = (rest if i else start) + chunk
            marker = 0x80 if i == last else 0
            plain = pack(first_byte, marker | pt, seq, timestamp, ssrc) + ext + payload
            # peer.protect(plain), inlined: it is most of a client's work
            size = len(plain)
            buffer[0:size] = plain
            length[0] = size
            if protect(context, cdata, length):
                raise ValueError("srtp_protect failed")
            slot = seq & (RING - 1)
            sent_seq[slot] = seq
            sent_payload[slot] = payload
            sent_at[slot] = time.time()
            try:
                send(view[: length[0]])
            except OSError:  # a full send buffer, or the server has gone
                self._counters[1] += 1
            seq = (seq + 1) & 0xFFFF
            octets += len(payload)
        self.seq = seq
        self._counters[0] += len(chunks)
        self.packets += len(chunks)
        self.octets += octets
        state = self._sender_state
        state["_RTCRtpSender__ntp_timestamp"] = ntp
        state["_RTCRtpSender__rtp_timestamp"] = timestamp
        state["_RTCRtpSender__packet_count"] = self.packets
        state["_RTCRtpSender__octet_count"] = self.octets
        self.timestamp = (timestamp + self.step) & 0xFFFFFFFF
        if self.video:
            self.picture_id = (self.picture_id + 1) & 0x7FFF


def _extension_template(transceiver: RTCRtpTransceiver) -> tuple[bytes, bytes, bool]:
    """The header extension block aiortc writes for this transceiver (``mid`` and
    abs-send-time, where negotiated), split around the abs-send-time value."""
    ids = HeaderExtensionsMap()
    ids.configure(RTCRtpParameters(headerExtensions=transceiver._headerExtensions))
    values = HeaderExtensions()
    values.mid = transceiver.mid
    values.abs_send_time = int.from_bytes(_PLACEHOLDER, "big")
    profile, value = ids.set(values)
    if not value:
        return b"", b"", False
    block = struct.pack("!HH", profile, len(value) >> 2) + value
    at = block.find(_PLACEHOLDER)
    if at < 0:
        return block, b"", False
    return block[:at], block[at + 3 :], True


class ReplayLoop:
    """The one timer loop of a client process: sends what is due, then reads."""

    def __init__(
        self, media: ReplayMedia, receiver: ReplayReceiver, tick: float
    ) -> None:
        self.media = media
        self.receiver = receiver
        self.tick = tick
        #: [packets sent, send errors]
        self.counters = [0, 0]
        #: how late frames were sent (s), while ``recording``
        self.lateness: list[float] = []
        self.recording = False
        self._due: list[tuple[float, int, ReplayStream]] = []
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None

    def add_room(self, peers: list[ReplayPeer]) -> None:
        """A room's peers (already connected): their streams start within one
        frame interval, at random phases."""
        streams = [
            ReplayStream(peer, transceiver, self.media, self.counters)
            for peer in peers
            for transceiver in peer.sending()
        ]
        self.receiver.add_room(peers, streams)
        start = time.perf_counter()
        for stream in streams:
            due = start + random.random() * stream.interval
            heapq.heappush(self._due, (due, next(self._order), stream))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        due = self._due
        while True:
            now = time.perf_counter()
            while due and due[0][0] <= now:
                at, order, stream = heapq.heappop(due)
                if self.recording:
                    self.lateness.append(now - at)
                stream.send_frame()
                heapq.heappush(due, (at + stream.interval, order, stream))
            self.receiver.drain()
            # wake at the next frame due, or after one tick to read, whichever
            # comes first (the time this round took counts towards it), but not
            # within a millisecond: each round has its cost
            wake = min(due[0][0] if due else now + self.tick, now + self.tick)
            wake = max(wake, now + MIN_ROUND)
            await asyncio.sleep(max(0.0, wake - time.perf_counter()))
