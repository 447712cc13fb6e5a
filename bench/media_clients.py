"""The media benchmark's clients: aiortc peers sending pre-encoded VP8 640x480 +
Opus, with their send and receive paths timed; and a worker process that runs a
share of a scenario's rooms (``bench.media_bench`` starts several, so one
client process is not what limits the load).

Clients do no encoding (a few seconds of VP8/Opus are encoded once and looped)
and no decoding. Two senders (``Share.sender``):

- ``aiortc``: aiortc's own RTP senders packetize the pre-encoded media; the
  receive path is hooked after SRTP unprotect to count and time packets. One
  client core drives about 20 calls this way.
- ``replay`` (default): aiortc sets the calls up, then one timer loop per process
  sends the same packets itself and reads every socket without decrypting
  (``bench.replay_sender``, ``bench.replay_receiver``); several times cheaper.

``idle`` sets the calls up as ``replay`` does and sends no media: what calls at
rest (ICE consent, RTCP, the server's timers) cost the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import gc
import os
import random
import socket
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import aiohttp
import av
from aiortc import MediaStreamTrack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from beeldbel.tokens import MediaClaims, sign_media_token
from bench.replay_media import cut
from bench.replay_peer import ReplayPeer, SilentTrack
from bench.replay_receiver import ReplayReceiver
from bench.replay_sender import ReplayLoop
from mediaserver.packet import is_rtcp, parse_rtp
from tests.helpers import wait_for
from tests.mediaserver.client import MediaClient, loopback_only_gathering

ISSUER = "https://bench.invalid"
NODE = "media-bench"
SECRET = "bench-secret-of-this-run"  # noqa: S105 (a throwaway secret of this run)
FPS = 30
SO_RCVBUFFORCE = 33  # Linux; the socket module does not name it
LOOP_SECONDS = 4


# pre-encoded media


def encode_video(width: int, height: int, bitrate: int) -> list[bytes]:
    """LOOP_SECONDS of VP8 (keyframe every 2 s) from moving bars and noise."""
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height = width, height
    codec.pix_fmt = "yuv420p"
    codec.bit_rate = bitrate
    codec.time_base = fractions.Fraction(1, FPS)
    codec.framerate = fractions.Fraction(FPS, 1)
    codec.options = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0"}
    codec.gop_size = 2 * FPS
    rng = random.Random(1)
    packets: list[bytes] = []
    for i in range(LOOP_SECONDS * FPS):
        frame = av.VideoFrame(width, height, "yuv420p")
        row = bytes((x + 4 * i) % 256 for x in range(frame.planes[0].line_size))
        noise = rng.randbytes(frame.planes[0].line_size * 40)
        luma = row * (height - 40) + noise
        frame.planes[0].update(luma[: frame.planes[0].buffer_size])
        for plane in frame.planes[1:]:
            plane.update(bytes([128]) * plane.buffer_size)
        frame.pts = i
        frame.pict_type = av.video.frame.PictureType.I if i == 0 else 0
        packets += [bytes(p) for p in codec.encode(frame)]
    packets += [bytes(p) for p in codec.encode(None)]
    return packets[: LOOP_SECONDS * FPS]


def encode_audio() -> list[bytes]:
    """LOOP_SECONDS of Opus 48 kHz stereo, 20 ms packets, of a quiet noise."""
    codec = av.CodecContext.create("libopus", "w")
    codec.sample_rate = 48000
    codec.layout = "stereo"
    codec.format = "s16"
    codec.bit_rate = 32000
    rng = random.Random(2)
    packets: list[bytes] = []
    for i in range(LOOP_SECONDS * 50):
        frame = av.AudioFrame(format="s16", layout="stereo", samples=960)
        frame.planes[0].update(rng.randbytes(960 * 4))
        frame.sample_rate = 48000
        frame.pts = i * 960
        packets += [bytes(p) for p in codec.encode(frame)]
    return packets


class PreEncodedTrack(MediaStreamTrack):
    """Loops pre-encoded packets in real time; aiortc only packetizes them."""

    def __init__(self, kind: str, packets: list[bytes], rate: int, step: int) -> None:
        super().__init__()
        self.kind = kind
        self._packets = packets
        self._rate = rate
        self._step = step
        self._index = 0
        self._start: float | None = None

    async def recv(self) -> av.Packet:  # type: ignore[type-arg]
        if self._start is None:
            self._start = time.monotonic()
        pts = self._index * self._step
        delay = self._start + pts / self._rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(self._packets[self._index % len(self._packets)])
        packet.pts = pts
        packet.time_base = fractions.Fraction(1, self._rate)
        self._index += 1
        return packet


# measuring hooks in the clients


@dataclass
class Probe:
    """Send and receive counters and latencies of all clients in this process."""

    sent: int = 0
    received: int = 0
    send_times: dict[int, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    recording: bool = False
    #: per received stream (client, SSRC): [first, highest extended seq, count]
    #: while recording; RTCP-style loss, blind to packets in flight at the edges
    streams: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def reset(self) -> None:
        self.sent = self.received = 0
        self.latencies = []
        self.streams = {}

    def on_sequence(self, client: int, ssrc: int, seq: int) -> None:
        stream = self.streams.get((client, ssrc))
        if stream is None:
            self.streams[(client, ssrc)] = [seq, seq, 1]
            return
        highest = stream[1]
        delta = (seq - highest) & 0xFFFF
        if delta < 0x8000:
            stream[1] = highest + delta
        stream[2] += 1

    def tally(
        self, clients: int, cpu_seconds: float, replay: ReplayLoop | None = None
    ) -> Tally:
        late = sorted(replay.lateness) if replay else []
        return Tally(
            clients=clients,
            sent=self.sent,
            received=sum(s[2] for s in self.streams.values()),
            expected=sum(s[1] - s[0] + 1 for s in self.streams.values()),
            latencies=self.latencies,
            cpu_seconds=cpu_seconds,
            send_late_p99_ms=1000 * late[int(0.99 * len(late))]
            if late
            else float("nan"),
            send_errors=replay.counters[1] if replay else 0,
            unmatched=replay.receiver.unmatched if replay else 0,
            mistimed=replay.receiver.mistimed if replay else 0,
        )

    def expire(self) -> None:
        horizon = time.perf_counter() - 2
        self.send_times = {k: t for k, t in self.send_times.items() if t > horizon}


def hook_client(client: MediaClient, probe: Probe) -> None:
    """Time RTP on the client's send path; count and time it on the receive path
    without aiortc's jitter buffer or decoder (the clients share one core)."""
    dtls = client.pc.getTransceivers()[0].sender.transport
    original_send = dtls._send_rtp

    async def send_rtp(data: bytes) -> None:
        if not is_rtcp(data):
            header = parse_rtp(data)
            probe.send_times[hash(data[header.payload_offset :])] = time.perf_counter()
            probe.sent += 1
        await original_send(data)

    dtls._send_rtp = send_rtp  # type: ignore[method-assign]

    def on_state() -> None:
        if client.pc.connectionState != "connected":
            return
        connection = dtls.transport._connection
        for protocol in connection._protocols:
            sock = protocol.transport.get_extra_info("socket")
            if sock is not None:  # room for bursts while this loop is busy
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
        original = connection.data_received
        rx = dtls._rx_srtp

        def data_received(data: bytes, component: int) -> None:
            if not 127 < data[0] < 192:
                original(data, component)
            elif not is_rtcp(data):
                now = time.perf_counter()
                plain = rx.unprotect(data)
                header = parse_rtp(plain)
                probe.received += 1
                sent = probe.send_times.get(hash(plain[header.payload_offset :]))
                if probe.recording:
                    probe.on_sequence(id(client), header.ssrc, header.sequence_number)
                    if sent is not None:
                        probe.latencies.append(now - sent)

        connection.data_received = data_received  # type: ignore[method-assign]

    client.pc.on("connectionstatechange", on_state)


async def connect_all(
    session: aiohttp.ClientSession,
    share: Share,
    key: Ed25519PrivateKey,
    probe: Probe,
    clients: list[MediaClient],
    rooms: list[list[MediaClient]],
) -> None:
    """Create the rooms and connect their participants, five rooms at a time
    (``rooms``: each room's clients, in order)."""
    auth = {"Authorization": f"Bearer {SECRET}"}
    base = f"http://127.0.0.1:{share.port}"

    async def fill(r: int, room: list[tuple[str, bool]]) -> None:
        room_id = f"bench-{r}"
        async with session.post(
            base + "/api/rooms", json={"room_id": room_id}, headers=auth
        ) as response:
            assert response.status == 201, await response.text()
        agent: MediaClient | None = None
        members: list[MediaClient] = []
        rooms.append(members)
        for p, (role, publishes) in enumerate(room):
            claims = MediaClaims.issue(
                issuer=ISSUER,
                audience=NODE,
                participant=f"{role}-{r}-{p}",
                room=room_id,
                role=role,
            )
            client = MediaClient(f"ws://127.0.0.1:{share.port}/ws")
            clients.append(client)
            members.append(client)
            reply = await client.connect(room_id, sign_media_token(claims, key, "k1"))
            assert reply["type"] == "joined", reply
            if role == "agent":
                agent = client
            elif role == "citizen" and agent is not None:
                await agent.send({"type": "admit", "participant_id": claims.sub})
            if publishes and share.sender in ("replay", "idle"):
                await client.publish(SilentTrack("audio"), SilentTrack("video"))
            elif publishes:
                await client.publish(
                    PreEncodedTrack("audio", share.audio, 48000, 960),
                    PreEncodedTrack("video", share.video, 90000, 90000 // FPS),
                )
            else:
                await subscribe_only(client)
            if share.sender == "aiortc":
                hook_client(client, probe)

    layout = share.rooms
    for batch in range(0, len(layout), 5):
        chunk = layout[batch : batch + 5]
        first = share.first_room + batch
        await asyncio.gather(*(fill(first + i, room) for i, room in enumerate(chunk)))
        # let this batch settle before loading the (shared) client core further
        await wait_for(
            lambda: all(c.pc.connectionState == "connected" for c in clients),
            60,
            "batch connected",
        )
    await wait_for(
        lambda: all(c.pc.connectionState == "connected" for c in clients),
        60,
        lambda: (
            "all clients connected: "
            + str(sorted(c.pc.connectionState for c in clients))
        ),
    )


async def subscribe_only(client: MediaClient) -> None:
    client.pc.addTransceiver("audio", direction="recvonly")
    client.pc.addTransceiver("video", direction="recvonly")
    await client.pc.setLocalDescription(await client.pc.createOffer())
    await client.send({"type": "offer", "sdp": client.pc.localDescription.sdp})


# a worker process: its share of the rooms


@dataclass
class Share:
    """What one client process runs: rooms ``first_room`` on, on ``cpu``."""

    port: int
    key: bytes  # the raw Ed25519 private key that signs join tokens
    rooms: list[list[tuple[str, bool]]]
    first_room: int
    cpu: int
    video: list[bytes]
    audio: list[bytes]
    sender: str = "replay"  # or "aiortc", or "idle" (the calls send no media)
    tick: float = 0.002  # the replay loop's period, seconds


@dataclass
class Tally:
    """A worker's counts over the measuring window, sent to the bench."""

    clients: int
    sent: int
    received: int  # by subscribers, over the streams they saw
    expected: int  # by the RTP sequence numbers subscribers saw
    latencies: list[float]
    cpu_seconds: float
    #: replay sender only: frames sent late by the client's loop (its overload
    #: shows here first), send errors, forwarded packets not matched to a sent
    #: one, and latencies outside 0..2 s (neither is timed)
    send_late_p99_ms: float = float("nan")
    send_errors: int = 0
    unmatched: int = 0
    mistimed: int = 0


def client_worker(share: Share, pipe: Connection) -> None:
    """Connects its rooms, says so, then follows the bench's commands:
    "record", "stop" (answered with a Tally), "close"."""
    os.sched_setaffinity(0, {share.cpu})
    loopback_only_gathering()
    asyncio.run(_work(share, pipe))


async def _work(share: Share, pipe: Connection) -> None:
    loop = asyncio.get_running_loop()
    key = Ed25519PrivateKey.from_private_bytes(share.key)
    probe = Probe()
    clients: list[MediaClient] = []
    rooms: list[list[MediaClient]] = []
    replay: ReplayLoop | None = None
    try:
        async with aiohttp.ClientSession() as session:
            await connect_all(session, share, key, probe, clients, rooms)
        # the calls' objects stay for the run: out of the collector's way, so a
        # full collection does not stall the send loop for milliseconds
        gc.collect()
        gc.freeze()
        if share.sender == "replay":
            media = cut(share.video, share.audio, FPS)
            replay = ReplayLoop(media, ReplayReceiver(probe), share.tick)
            number = 0
            for members in rooms:
                peers = []
                for client in members:
                    peers.append(ReplayPeer(client, number))
                    number += 1
                replay.add_room(peers)
            replay.start()
        pipe.send(len(clients))
        await loop.run_in_executor(None, pipe.recv)  # "record"
        probe.reset()
        probe.recording = True
        sent = replay.counters[0] if replay else 0
        cpu = time.process_time()
        stop = loop.run_in_executor(None, pipe.recv)
        if replay is not None:
            replay.lateness = []
            replay.recording = True
        while not stop.done():
            await asyncio.wait([stop], timeout=1)
            probe.expire()
        probe.recording = False
        cpu = time.process_time() - cpu
        if replay is not None:
            replay.recording = False
            probe.sent = replay.counters[0] - sent
        pipe.send(probe.tally(len(clients), cpu, replay))
        await loop.run_in_executor(None, pipe.recv)  # "close"
    finally:
        if replay is not None:
            await replay.stop()
            replay.receiver.close()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
