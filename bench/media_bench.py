"""Media server benchmark: aiortc clients sending pre-encoded VP8 640x480 + Opus.

Run inside a loopback-only network namespace (aioice would otherwise use the
machine's other addresses), from the repository root:

    unshare -n sh -c 'ip link set lo up; .venv/bin/python -m bench.media_bench \\
        --scenario 1to1 --rooms 20'

The server runs as its own process pinned to CPU 0 (``taskset``); this process
(all clients) pins itself to CPU 1. Clients do no encoding (a few seconds of
VP8/Opus are encoded once and looped) and no decoding (their receive path is
taken over to count packets and time them). Printed:

- server CPU µs per forwarded packet (process CPU time / forwarded packets,
  over the measuring window: everything the server does, not only forwarding);
- loss: packets received by subscribers vs. sent by publishers x subscribers;
- latency p50/p99: client send hook → subscriber receive hook through the SFU
  (an upper bound of what the SFU adds: it includes both kernel loopback hops
  and the client process's event loop);
- server memory (RSS) per participant.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fractions
import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import av
import trustme
from aiohttp import web
from aiortc import MediaStreamTrack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from beeldbel.tokens import MediaClaims, public_jwk, sign_media_token
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

    def sequence_loss(self) -> float:
        expected = sum(s[1] - s[0] + 1 for s in self.streams.values())
        received = sum(s[2] for s in self.streams.values())
        return max(0.0, 1 - received / expected) if expected else float("nan")

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


# the server process


class Server:
    def __init__(
        self,
        cpu: int,
        port: int,
        udp_port: int,
        max_participants: int,
        batch_window_us: int | None = None,
    ):
        self.cpu = cpu
        self.batch_window_us = batch_window_us
        self.port = port
        self.udp_port = udp_port
        self.max_participants = max_participants
        self.process: subprocess.Popen[bytes] | None = None
        self.base = f"http://127.0.0.1:{port}"

    def start(self, jwks_url: str, ca_file: str) -> None:
        env = {
            **os.environ,
            "BEELDBEL_MEDIASERVER_PORT": str(self.port),
            "BEELDBEL_MEDIASERVER_UDP_PORT": str(self.udp_port),
            "BEELDBEL_MEDIASERVER_NODE_ID": NODE,
            "BEELDBEL_MEDIASERVER_JWKS_URL": jwks_url,
            "BEELDBEL_MEDIASERVER_JWKS_CA_FILE": ca_file,
            "BEELDBEL_MEDIASERVER_TOKEN_ISSUER": ISSUER,
            "BEELDBEL_MEDIASERVER_API_SECRET": SECRET,
            "BEELDBEL_MEDIASERVER_MAX_PARTICIPANTS": str(self.max_participants),
            "BEELDBEL_LOGGING_LEVEL": "warning",
        }
        if self.batch_window_us is not None:  # else the config's default
            env["BEELDBEL_MEDIASERVER_BATCH_WINDOW_US"] = str(self.batch_window_us)
        command = ["taskset", "-c", str(self.cpu), sys.executable, "-m", "mediaserver"]
        self.process = subprocess.Popen(command, env=env)  # noqa: S603

    def cpu_seconds(self) -> float:
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def socket_drops(self) -> tuple[int, int]:
        """Datagrams the kernel dropped (full buffer) on the server's UDP port and
        on all other UDP sockets of this network namespace (the clients')."""
        port = f"{self.udp_port:04X}"
        server = clients = 0
        with open("/proc/net/udp") as table:
            lines = table.readlines()[1:]
        for line in lines:
            fields = line.split()
            if fields[1].endswith(":" + port):
                server += int(fields[-1])
            else:
                clients += int(fields[-1])
        return server, clients

    async def histogram(
        self, session: aiohttp.ClientSession, name: str
    ) -> list[tuple[float, float]]:
        """Cumulative ``(upper bound, count)`` buckets of a histogram."""
        async with session.get(self.base + "/metrics") as response:
            text = await response.text()
        buckets = []
        for line in text.splitlines():
            if line.startswith(name + "_bucket{"):
                bound = line.split('le="', 1)[1].split('"', 1)[0]
                buckets.append((float(bound), float(line.rsplit(" ", 1)[1])))
        return buckets

    def profile(self, output: str, seconds: float) -> subprocess.Popen[bytes] | None:
        """py-spy (collapsed stacks) on the server during the window, if asked."""
        if not output or self.process is None:
            return None
        command = [
            os.path.join(os.path.dirname(sys.executable), "py-spy"),
            "record",
            "--pid",
            str(self.process.pid),
            "--duration",
            str(int(seconds)),
            "--format",
            "raw",
            "--output",
            output,
        ]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL)  # noqa: S603

    def rss_bytes(self) -> int:
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0

    async def metric(self, session: aiohttp.ClientSession, name: str) -> float:
        async with session.get(self.base + "/metrics") as response:
            text = await response.text()
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name + "{") or line.startswith(name + " ")
        )

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(10)
            if self.process.poll() is None:
                self.process.kill()


async def jwks_server(key: Ed25519PrivateKey, tmp: str) -> tuple[str, str, Any]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = os.path.join(tmp, "ca.pem")
    ca.cert_pem.write_to_path(ca_file)
    app = web.Application()
    jwks = {"keys": [public_jwk(key.public_key(), "k1")]}

    async def serve(request: web.Request) -> web.Response:
        return web.json_response(jwks)

    app.router.add_get("/jwks.json", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return f"https://127.0.0.1:{port}/jwks.json", ca_file, runner


def plan(scenario: str, rooms: int, fanout: int) -> list[list[tuple[str, bool]]]:
    """Per room: (role, publishes) of each participant."""
    if scenario == "1to1":
        return [[("agent", True), ("citizen", True)] for _ in range(rooms)]
    if scenario == "3party":
        return [
            [("agent", True), ("citizen", True), ("interpreter", True)]
            for _ in range(rooms)
        ]
    return [[("agent", True)] + [("interpreter", False)] * fanout for _ in range(rooms)]


async def run(
    args: argparse.Namespace,
    during: contextlib.AbstractContextManager[Any] | None = None,
) -> dict[str, float]:
    """One scenario; ``during`` is entered once all clients are connected and
    left after the measuring window (e.g. CPU hogs on the server's core)."""
    loopback_only_gathering()
    key = Ed25519PrivateKey.generate()
    video = encode_video(640, 480, args.video_bitrate)
    audio = encode_audio()
    layout = plan(args.scenario, args.rooms, args.fanout)
    per_room = max(len(r) for r in layout)
    server = Server(
        args.server_cpu, args.port, args.udp_port, per_room, args.batch_window_us
    )
    probe = Probe()
    clients: list[MediaClient] = []
    stack = contextlib.ExitStack()
    with tempfile.TemporaryDirectory() as tmp:
        jwks_url, ca_file, jwks_runner = await jwks_server(key, tmp)
        server.start(jwks_url, ca_file)
        try:
            async with aiohttp.ClientSession() as session:
                await wait_ready(session, server)
                rss_empty = server.rss_bytes()
                await connect_all(
                    session, server, key, layout, video, audio, probe, clients
                )
                participants = len(clients)
                stack.enter_context(during or contextlib.nullcontext())
                await asyncio.sleep(args.warmup)
                rss_full = server.rss_bytes()
                # measure
                probe.reset()
                probe.recording = True
                before = await snapshot(session, server)
                client_cpu0 = time.process_time()
                profiler = server.profile(args.profile, args.duration)
                for _ in range(int(args.duration)):
                    await asyncio.sleep(1)
                    probe.expire()
                probe.recording = False
                after = await snapshot(session, server)
                if profiler is not None:
                    profiler.wait()
                elapsed = after.at - before.at
                client_cpu = (time.process_time() - client_cpu0) / elapsed
                async with session.get(server.base + "/metrics") as response:
                    counters = [
                        line
                        for line in (await response.text()).splitlines()
                        if line.startswith(
                            ("beeldbel_media_dropped", "beeldbel_media_packets_in")
                        )
                    ]
                stack.close()
        finally:
            stack.close()
            for client in clients:
                with contextlib.suppress(Exception):
                    await client.close()
            server.stop()
            await jwks_runner.cleanup()
    forwarded = after.forwarded - before.forwarded
    latencies = sorted(probe.latencies)
    window = [
        (bound, c1 - c0)
        for (bound, c1), (_, c0) in zip(after.handling, before.handling, strict=True)
    ]
    latency = [
        (bound, c1 - c0)
        for (bound, c1), (_, c0) in zip(after.latency, before.latency, strict=True)
    ]
    cpu = after.cpu - before.cpu
    packets_in = after.packets_in - before.packets_in
    for line in counters:
        print("  server:", line)
    return {
        "participants": participants,
        "forwarded_pps": forwarded / elapsed,
        "server_cpu_us_per_fwd": cpu / max(forwarded, 1) * 1e6,
        "server_core_pct": cpu / elapsed * 100,
        # this run's rooms at its loss, scaled to a whole server core: one client
        # core cannot make enough load to measure the limit itself
        "rooms_per_core_projected": len(layout) * elapsed / max(cpu, 1e-9),
        # the hypervisor ran something else on our vCPUs this share of the time
        "steal_pct_both_cores": 100
        * (after.steal - before.steal)
        / max(after.total - before.total, 1),
        "client_core_pct": client_cpu * 100,
        "server_socket_drops_pct": 100
        * (after.drops[0] - before.drops[0])
        / packets_in,
        "client_socket_drops": after.drops[1] - before.drops[1],
        "server_handling_p50_us_le": _bucket_quantile(window, 0.5) * 1e6,
        "server_handling_p99_us_le": _bucket_quantile(window, 0.99) * 1e6,
        "sfu_latency_p50_ms_le": _bucket_quantile(latency, 0.5) * 1000,
        "sfu_latency_p99_ms_le": _bucket_quantile(latency, 0.99) * 1000,
        "end_to_end_loss_pct": 100 * probe.sequence_loss(),
        "end_to_end_p50_ms": _quantile(latencies, 0.5) * 1000,
        "end_to_end_p99_ms": _quantile(latencies, 0.99) * 1000,
        "rss_per_participant_mb": (rss_full - rss_empty) / participants / 2**20,
        "rss_total_mb": rss_full / 2**20,
    }


@dataclass
class Snapshot:
    at: float
    cpu: float
    forwarded: float
    packets_in: float
    drops: tuple[int, int]
    handling: list[tuple[float, float]]
    latency: list[tuple[float, float]]
    steal: int
    total: int


async def snapshot(session: aiohttp.ClientSession, server: Server) -> Snapshot:
    return Snapshot(
        at=time.monotonic(),
        cpu=server.cpu_seconds(),
        forwarded=await server.metric(
            session, "beeldbel_media_forwarded_packets_total"
        ),
        packets_in=await server.metric(session, "beeldbel_media_packets_in_total"),
        drops=server.socket_drops(),
        handling=await server.histogram(session, "beeldbel_media_forward_seconds"),
        latency=await server.histogram(session, "beeldbel_media_sfu_latency_seconds"),
        **_cpu_ticks(),
    )


def _cpu_ticks() -> dict[str, int]:
    """Steal and total ticks of all CPUs (/proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(f) for f in stat.readline().split()[1:]]
    return {"steal": fields[7] if len(fields) > 7 else 0, "total": sum(fields[:8])}


def _bucket_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Upper bound of the histogram bucket holding quantile ``q``."""
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return float("nan")


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(q * len(values)))]


async def wait_ready(session: aiohttp.ClientSession, server: Server) -> None:
    for _ in range(100):
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(server.base + "/readyz") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError("media server did not become ready")


async def connect_all(
    session: aiohttp.ClientSession,
    server: Server,
    key: Ed25519PrivateKey,
    layout: list[list[tuple[str, bool]]],
    video: list[bytes],
    audio: list[bytes],
    probe: Probe,
    clients: list[MediaClient],
) -> None:
    """Create the rooms and connect their participants, five rooms at a time."""
    auth = {"Authorization": f"Bearer {SECRET}"}

    async def fill(r: int, room: list[tuple[str, bool]]) -> None:
        room_id = f"bench-{r}"
        async with session.post(
            server.base + "/api/rooms", json={"room_id": room_id}, headers=auth
        ) as response:
            assert response.status == 201, await response.text()
        agent: MediaClient | None = None
        for p, (role, publishes) in enumerate(room):
            claims = MediaClaims.issue(
                issuer=ISSUER,
                audience=NODE,
                participant=f"{role}-{r}-{p}",
                room=room_id,
                role=role,
            )
            client = MediaClient(f"ws://127.0.0.1:{server.port}/ws")
            clients.append(client)
            reply = await client.connect(room_id, sign_media_token(claims, key, "k1"))
            assert reply["type"] == "joined", reply
            if role == "agent":
                agent = client
            elif role == "citizen" and agent is not None:
                await agent.send({"type": "admit", "participant_id": claims.sub})
            if publishes:
                await client.publish(
                    PreEncodedTrack("audio", audio, 48000, 960),
                    PreEncodedTrack("video", video, 90000, 90000 // FPS),
                )
            else:
                await subscribe_only(client)
            hook_client(client, probe)

    for batch in range(0, len(layout), 5):
        rooms = layout[batch : batch + 5]
        await asyncio.gather(*(fill(batch + i, room) for i, room in enumerate(rooms)))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--scenario", choices=["1to1", "3party", "1toN"], default="1to1"
    )
    parser.add_argument("--rooms", type=int, default=20)
    parser.add_argument("--fanout", type=int, default=10, help="subscribers in 1toN")
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=6)
    parser.add_argument("--video-bitrate", type=int, default=800_000)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--port", type=int, default=18444)
    parser.add_argument("--udp-port", type=int, default=40000)
    parser.add_argument("--profile", default="", help="py-spy output (collapsed)")
    parser.add_argument(
        "--batch-window-us",
        type=int,
        default=None,
        help="the server's [mediaserver] batch_window_us (default: its default)",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.client_cpu})
    results = asyncio.run(run(args))
    print(f"scenario={args.scenario} rooms={args.rooms}", end="")
    if args.scenario == "1toN":
        print(f" fanout={args.fanout}", end="")
    print()
    for name, value in results.items():
        print(f"  {name:26} {value:10.2f}")


if __name__ == "__main__":
    main()
