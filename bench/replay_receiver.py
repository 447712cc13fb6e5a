"""The replay clients' receive side: every peer's socket in one epoll, read
without decrypting.

A forwarded packet's RTP header is in clear: the subscriber's loss comes from
its sequence numbers, and its latency from the kernel's receive timestamp
(``SO_TIMESTAMPNS``) less the time the publisher's copy was sent. The SFU gives
each leg its own SSRC and shifts sequence numbers by a constant, so the first
packet of a leg is decrypted once, found by its payload among what the peers of
its room sent of that kind (at once, before its sequence numbers can wrap:
the receiving SRTP session guesses the rollover counter from the first packet it
sees), and from then on the leg's SSRC and sequence number name the
publisher's packet. STUN and DTLS go on to aioice; RTCP and RTX
(retransmissions, padding) from the SFU are counted and dropped.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import pylibsrtp

from mediaserver.packet import MalformedPacket, parse_rtp

if TYPE_CHECKING:
    from bench.replay_peer import ReplayPeer
    from bench.replay_sender import ReplayStream

_CMSG_SPACE = socket.CMSG_SPACE(16)
_TIMESPEC = struct.Struct("@qq")
_SEQ_SSRC = struct.Struct("!2xH4xI")
#: a leg whose first packets match nothing sent is not decrypted after this many
MAX_TRIES = 16
#: epoll rounds per drain (each reads one datagram per ready socket)
MAX_ROUNDS = 64


class Counts(Protocol):
    """What the receiver tallies into (``bench.media_clients.Probe``)."""

    received: int
    recording: bool
    latencies: list[float]

    def on_sequence(self, client: int, ssrc: int, seq: int) -> None: ...


@dataclass(slots=True)
class Leg:
    """A stream as one subscriber gets it: the publisher's stream, and what the
    SFU added to its sequence numbers."""

    stream: ReplayStream
    offset: int


class ReplayReceiver:
    """Reads every peer's socket; times forwarded packets into ``probe``."""

    def __init__(self, probe: Counts) -> None:
        self.probe = probe
        self._epoll = select.epoll()
        self._peers: dict[int, ReplayPeer] = {}
        self._legs: dict[tuple[int, int], Leg] = {}
        self._room_streams: dict[int, list[ReplayStream]] = {}
        #: decryptions tried per leg not learnt yet
        self._tries: dict[tuple[int, int], int] = {}
        self._buffer = bytearray(2048)  # every datagram is read into this
        #: packets of legs not (yet) matched to a publisher's packet
        self.unmatched = 0
        #: latencies outside 0..2 s (a wrongly learnt leg would show here)
        self.mistimed = 0

    def add_room(self, peers: list[ReplayPeer], streams: list[ReplayStream]) -> None:
        for peer in peers:
            fd = peer.sock.fileno()
            self._peers[fd] = peer
            self._room_streams[peer.number] = streams
            self._epoll.register(fd, select.EPOLLIN)

    def close(self) -> None:
        for fd, peer in self._peers.items():
            self._epoll.unregister(fd)
            peer.close()
        self._peers.clear()
        self._epoll.close()

    def drain(self) -> None:
        """Read until no socket has anything (or MAX_ROUNDS)."""
        poll, peers, buffer = self._epoll.poll, self._peers, self._buffer
        buffers = [buffer]
        probe, legs = self.probe, self._legs
        on_sequence, latencies = probe.on_sequence, probe.latencies
        unpack_rtp, unpack_time = _SEQ_SSRC.unpack_from, _TIMESPEC.unpack_from
        received = 0
        for _ in range(MAX_ROUNDS):
            events = poll(0)
            if not events:
                break
            for fd, _ in events:
                peer = peers[fd]
                try:
                    size, ancillary, _, addr = peer.sock.recvmsg_into(
                        buffers, _CMSG_SPACE
                    )
                except OSError:  # nothing after all, or ICMP from a closed port
                    continue
                first = buffer[0] if size else 0
                if not 127 < first < 192:
                    peer.datagram_for_aioice(bytes(buffer[:size]), addr)
                    continue
                if 192 <= buffer[1] <= 223:
                    peer.rtcp_received += 1
                    continue
                if size < 12:
                    continue
                if buffer[1] & 0x7F in peer.rtx_types:
                    peer.rtx_received += 1
                    continue
                received += 1
                # RTP, read in clear: loss from the sequence numbers, latency from
                # the kernel's receive time less the publisher's send time
                seq, ssrc = unpack_rtp(buffer)
                leg = legs.get((peer.number, ssrc))
                if leg is None:
                    # at a leg's first packet, warm-up or not: decrypting it later,
                    # after its sequence numbers wrapped, would guess the wrong
                    # rollover counter and fail for good
                    tries = self._tries.get((peer.number, ssrc), 0)
                    if tries < MAX_TRIES:
                        self._tries[(peer.number, ssrc)] = tries + 1
                        leg = self._learn(peer, bytes(buffer[:size]), ssrc, seq)
                if not probe.recording:
                    continue
                on_sequence(peer.number, ssrc, seq)
                if leg is None:
                    self.unmatched += 1
                    continue
                stream = leg.stream
                sent = (seq - leg.offset) & 0xFFFF
                slot = sent & (len(stream.sent_seq) - 1)
                if stream.sent_seq[slot] != sent:
                    self.unmatched += 1
                    continue
                if ancillary:
                    sec, nsec = unpack_time(ancillary[0][2])
                    arrived = sec + nsec * 1e-9
                else:
                    arrived = time.time()
                latency = arrived - stream.sent_at[slot]
                if 0 <= latency < 2:
                    latencies.append(latency)
                else:
                    self.mistimed += 1
        probe.received += received

    def _learn(self, peer: ReplayPeer, data: bytes, ssrc: int, seq: int) -> Leg | None:
        """Decrypt a leg's packet once and find the publisher's packet with its
        payload, newest first (the looped audio repeats every few seconds)."""
        try:
            plain = peer.rx_srtp.unprotect(data)
            header = parse_rtp(plain)
        except (pylibsrtp.Error, MalformedPacket):
            return None
        payload = plain[header.payload_offset : header.payload_end]
        kind = peer.kinds.get(header.payload_type)
        for stream in self._room_streams.get(peer.number, []):
            if stream.peer is peer or stream.kind != kind:
                continue
            ring = len(stream.sent_seq)
            newest = (stream.seq - 1) & 0xFFFF
            for back in range(ring):
                sent = (newest - back) & 0xFFFF
                slot = sent & (ring - 1)
                if stream.sent_seq[slot] != sent:
                    break
                if stream.sent_payload[slot] == payload:
                    leg = Leg(stream, (seq - sent) & 0xFFFF)
                    self._legs[(peer.number, ssrc)] = leg
                    return leg
        return None
