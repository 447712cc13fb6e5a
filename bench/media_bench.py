"""Media server benchmark: aiortc clients sending pre-encoded VP8 640x480 + Opus.

Run inside a loopback-only network namespace (aioice would otherwise use the
machine's other addresses), from the repository root:

    unshare -n sh -c 'ip link set lo up; .venv/bin/python -m bench.media_bench \\
        --scenario 1to1 --rooms 20'

The server runs as its own process pinned to CPU 0 (``taskset``); the clients
(``bench.media_clients``) run in ``--clients`` processes, each with a share of
the rooms, spread over ``--client-cpus``. Printed:

- server CPU µs per forwarded packet (process CPU time / forwarded packets,
  over the measuring window: everything the server does, not only forwarding);
- loss: packets received by subscribers vs. sent by publishers x subscribers;
- latency p50/p99: publisher's send → subscriber's receive through the SFU
  (both kernel loopback hops are in it; with ``--sender replay`` the receive
  time is the kernel's timestamp, with ``--sender aiortc`` it is taken in the
  client's event loop, an upper bound);
- server memory (RSS) per participant.

Clients send with ``--sender replay`` (default: aiortc sets the calls up, one
timer loop per client process builds, protects and sends the packets, see
``bench.replay_sender``) or ``--sender aiortc`` (aiortc's own senders);
``--sender idle`` sets the calls up and sends nothing (``server_core_pct`` is then
what calls at rest cost).

``--ramp 20,40,60`` runs 1:1 calls at each count in turn until one breaks a
limit (loss ≥ 0.5 % or SFU-added p99 > 5 ms); ``--compare-fanout`` runs
``--rooms`` 1:1 calls and then 1 → ``--fanout`` rooms with as many legs, and
prints the ratio of their server CPU per forwarded packet.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import multiprocessing
import os
import ssl
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import aiohttp
import trustme
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from beeldbel.tokens import public_jwk
from bench.media_clients import (
    ISSUER,
    NODE,
    SECRET,
    Share,
    Tally,
    client_worker,
    encode_audio,
    encode_video,
)

#: a ramp step breaks the limit with more loss or SFU-added latency than this
MAX_LOSS_PCT = 0.5
MAX_SFU_P99_MS = 5.0

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

    async def counters(self, session: aiohttp.ClientSession) -> list[str]:
        """The packet and drop counters, as the server exports them."""
        async with session.get(self.base + "/metrics") as response:
            text = await response.text()
        names = ("beeldbel_media_dropped", "beeldbel_media_packets_in")
        return [line for line in text.splitlines() if line.startswith(names)]

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


@functools.cache
def media(video_bitrate: int) -> tuple[list[bytes], list[bytes]]:
    """The looped VP8 and Opus, encoded once per bench process."""
    return encode_video(640, 480, video_bitrate), encode_audio()


class Workers:
    """The client processes of one run, each with a share of the rooms, spread
    over the client CPUs (one process saturates its core at about 20 calls)."""

    def __init__(
        self, args: argparse.Namespace, key: bytes, layout: list[list[Any]]
    ) -> None:
        context = multiprocessing.get_context("spawn")
        video, audio = media(args.video_bitrate)
        count = max(1, min(args.clients, len(layout)))
        size = -(-len(layout) // count)
        self.pipes: list[Connection] = []
        self.processes: list[BaseProcess] = []
        for i, first in enumerate(range(0, len(layout), size)):
            share = Share(
                args.port,
                key,
                layout[first : first + size],
                first,
                args.client_cpus[i % len(args.client_cpus)],
                video,
                audio,
                args.sender,
                args.replay_tick_ms / 1000,
            )
            ours, theirs = context.Pipe()
            process = context.Process(target=client_worker, args=(share, theirs))
            process.start()
            self.pipes.append(ours)
            self.processes.append(process)

    async def _each(self) -> list[Any]:
        loop = asyncio.get_running_loop()
        return await asyncio.gather(
            *(loop.run_in_executor(None, pipe.recv) for pipe in self.pipes)
        )

    async def connected(self) -> int:
        """Participants, once every worker has connected its rooms."""
        return sum(await self._each())

    def record(self) -> None:
        for pipe in self.pipes:
            pipe.send("record")

    async def stop(self) -> list[Tally]:
        for pipe in self.pipes:
            pipe.send("stop")
        return await self._each()

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send("close")
        for process in self.processes:
            process.join(15)
            if process.is_alive():
                process.kill()


async def run(
    args: argparse.Namespace,
    during: contextlib.AbstractContextManager[Any] | None = None,
) -> dict[str, float]:
    """One scenario; ``during`` is entered once all clients are connected and
    left after the measuring window (e.g. CPU hogs on the server's core)."""
    key = Ed25519PrivateKey.generate()
    layout = plan(args.scenario, args.rooms, args.fanout)
    per_room = max(len(r) for r in layout)
    server = Server(
        args.server_cpu, args.port, args.udp_port, per_room, args.batch_window_us
    )
    async with contextlib.AsyncExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        jwks_url, ca_file, jwks_runner = await jwks_server(key, tmp)
        stack.push_async_callback(jwks_runner.cleanup)
        server.start(jwks_url, ca_file)
        stack.callback(server.stop)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        await wait_ready(session, server)
        rss_empty = server.rss_bytes()
        workers = Workers(args, key.private_bytes_raw(), layout)
        stack.callback(workers.close)
        participants = await workers.connected()
        with during or contextlib.nullcontext():
            await asyncio.sleep(args.warmup)
            rss_full = server.rss_bytes()
            workers.record()
            before = await snapshot(session, server)
            profiler = server.profile(args.profile, args.duration)
            await asyncio.sleep(args.duration)
            after = await snapshot(session, server)
            tallies = await workers.stop()
        if profiler is not None:
            profiler.wait()
        for line in await server.counters(session):
            print("  server:", line)
    results = summarise(before, after, tallies, len(layout))
    results["participants"] = participants
    results["rss_per_participant_mb"] = (rss_full - rss_empty) / participants / 2**20
    results["rss_total_mb"] = rss_full / 2**20
    return results


def summarise(
    before: Snapshot, after: Snapshot, tallies: list[Tally], rooms: int
) -> dict[str, float]:
    elapsed = after.at - before.at
    forwarded = after.forwarded - before.forwarded
    cpu = after.cpu - before.cpu
    latencies = sorted(t for tally in tallies for t in tally.latencies)
    expected = sum(tally.expected for tally in tallies)
    received = sum(tally.received for tally in tallies)
    handling, latency = (
        [(bound, c1 - c0) for (bound, c1), (_, c0) in zip(b, a, strict=True)]
        for b, a in ((after.handling, before.handling), (after.latency, before.latency))
    )
    return {
        "forwarded_pps": forwarded / elapsed,
        "server_cpu_us_per_fwd": cpu / max(forwarded, 1) * 1e6,
        "server_core_pct": cpu / elapsed * 100,
        # this run's rooms at its loss, scaled to a whole server core
        "rooms_per_core_projected": rooms * elapsed / max(cpu, 1e-9),
        # the hypervisor ran something else on our vCPUs this share of the time
        "steal_pct_both_cores": 100
        * (after.steal - before.steal)
        / max(after.total - before.total, 1),
        "client_processes": len(tallies),
        "client_cores_used": sum(t.cpu_seconds for t in tallies) / elapsed,
        "busiest_client_core_pct": 100 * max(t.cpu_seconds for t in tallies) / elapsed,
        # replay sender: the clients' own overload shows first as late frames
        "client_send_late_p99_ms": max(t.send_late_p99_ms for t in tallies),
        "client_send_errors": sum(t.send_errors for t in tallies),
        "client_unmatched_packets": sum(t.unmatched for t in tallies),
        "client_mistimed_packets": sum(t.mistimed for t in tallies),
        "server_socket_drops_pct": 100
        * (after.drops[0] - before.drops[0])
        / max(after.packets_in - before.packets_in, 1),
        "client_socket_drops": after.drops[1] - before.drops[1],
        "server_handling_p50_us_le": _bucket_quantile(handling, 0.5) * 1e6,
        "server_handling_p99_us_le": _bucket_quantile(handling, 0.99) * 1e6,
        "sfu_latency_p50_ms_le": _bucket_quantile(latency, 0.5) * 1000,
        "sfu_latency_p99_ms_le": _bucket_quantile(latency, 0.99) * 1000,
        "end_to_end_loss_pct": 100 * max(0.0, 1 - received / expected)
        if expected
        else float("nan"),
        "end_to_end_p50_ms": _quantile(latencies, 0.5) * 1000,
        "end_to_end_p99_ms": _quantile(latencies, 0.99) * 1000,
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


async def ramp(args: argparse.Namespace) -> None:
    """1:1 calls at each count until a step breaks a limit."""
    sustained, held = 0, True
    for rooms in args.ramp:
        args.scenario, args.rooms = "1to1", rooms
        results = await run(args)
        report(args, results)
        broken = (
            not results["end_to_end_loss_pct"] < MAX_LOSS_PCT
            or not results["sfu_latency_p99_ms_le"] <= MAX_SFU_P99_MS
        )
        held = held and not broken
        if held:
            sustained = rooms
        elif not args.all_steps:
            break
    print(f"sustained: {sustained} 1:1 calls (loss < {MAX_LOSS_PCT} %,", end="")
    print(f" SFU-added p99 <= {MAX_SFU_P99_MS} ms), load {os.getloadavg()[0]:.1f}")


async def compare_fanout(args: argparse.Namespace) -> None:
    """1:1 and 1 → N with as many legs (so as many forwarded packets), in turn."""
    args.scenario = "1to1"
    one = await run(args)
    report(args, one)
    args.scenario, args.rooms = "1toN", max(1, 2 * args.rooms // args.fanout)
    fan = await run(args)
    report(args, fan)
    ratio = fan["server_cpu_us_per_fwd"] / one["server_cpu_us_per_fwd"]
    print(f"fan-out / 1:1 server CPU per forwarded packet: {ratio:.2f}", end="")
    print(f", load {os.getloadavg()[0]:.1f}")


def report(args: argparse.Namespace, results: dict[str, float]) -> None:
    print(f"scenario={args.scenario} rooms={args.rooms}", end="")
    if args.scenario == "1toN":
        print(f" fanout={args.fanout}", end="")
    print(f" load={os.getloadavg()[0]:.1f}")
    for name, value in results.items():
        print(f"  {name:26} {value:10.2f}")


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
    parser.add_argument("--clients", type=int, default=1, help="client processes")
    parser.add_argument(
        "--sender",
        choices=["replay", "aiortc", "idle"],
        default="replay",
        help="replay: one timer loop per client process sends the packets itself "
        "(cheap); aiortc: aiortc's own RTP senders (about 20 calls per core); "
        "idle: the calls are set up and send no media (what calls cost at rest)",
    )
    parser.add_argument(
        "--replay-tick-ms", type=float, default=2.0, help="the replay loop's period"
    )
    parser.add_argument("--client-cpus", type=_cpus, default=[1])
    parser.add_argument("--port", type=int, default=18444)
    parser.add_argument("--udp-port", type=int, default=40000)
    parser.add_argument("--profile", default="", help="py-spy output (collapsed)")
    parser.add_argument(
        "--batch-window-us",
        type=int,
        default=None,
        help="the server's [mediaserver] batch_window_us (default: its default)",
    )
    parser.add_argument("--ramp", type=_cpus, default=[], help="1:1 call counts")
    parser.add_argument(
        "--all-steps", action="store_true", help="ramp on past a broken limit"
    )
    parser.add_argument("--compare-fanout", action="store_true")
    args = parser.parse_args()
    os.sched_setaffinity(0, set(args.client_cpus))
    if args.ramp:
        asyncio.run(ramp(args))
    elif args.compare_fanout:
        asyncio.run(compare_fanout(args))
    else:
        report(args, asyncio.run(run(args)))


def _cpus(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


if __name__ == "__main__":
    main()
