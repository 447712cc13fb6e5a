"""Latency on a contended core: the shared UDP socket's reading while CPU hogs
share its core.

Run inside a loopback-only network namespace, from the repository root:

    unshare -n sh -c 'ip link set lo up; .venv/bin/python -m bench.busy_core'
    unshare -n sh -c 'ip link set lo up; .venv/bin/python -m bench.busy_core --calls'

``--hogs`` busy-looping processes at ``--hog-nice`` (0: the server's own
priority; 19: the lowest) run on CPU 0 with the reader.

By default (synthetic, an A/B in one run): one ``UdpMux`` per reading policy,
each in a process of its own on CPU 0 and all at the same time (so they share
its load as it drifts), reads 2 calls' worth of datagrams (500/s in bursts of
5), each costing ``--work-us`` of CPU like a forwarded packet, sent from CPU 1
with their send time (CLOCK_MONOTONIC) in them; it prints the p50/p90/p99 of
send → handled for each policy: no window and the 1 ms window, each with the
kernel's default time slice and with the short one ``UdpMux.bind`` asks for
(the others put the default back).

With ``--calls``: the real media server and 2 aiortc calls
(``bench.media_bench``), the clients on CPU 1; printed are the server's
SFU-added latency (kernel receive → sent, histogram bucket bounds) and the end
to end latency client → SFU → client.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import uvloop

from bench.media_bench import _quantile, run
from mediaserver import _fastpath, udp_mux
from tests.helpers import wait_for

HOG = "while True:\n    pass\n"
#: reading policies: (batch window µs, the short scheduler slice UdpMux.bind
#: asks for)
POLICIES: dict[str, tuple[int, bool]] = {
    "no window": (0, False),
    "no window, 0.1 ms slice": (0, True),
    "1 ms window (before)": (1000, False),
    "1 ms window, 0.1 ms slice (now)": (1000, True),
}
BURST = 5  # datagrams every BURST_INTERVAL: 500/s, about 2 calls' inbound
BURST_INTERVAL = 0.01


@contextlib.contextmanager
def hogs(count: int, cpu: int, nice: int) -> Iterator[None]:
    """``count`` busy loops on ``cpu`` (started once the calls are up: a server
    starting on a contended core takes longer than the bench waits)."""
    command = ["taskset", "-c", str(cpu), "nice", "-n", str(nice)]
    processes = [
        subprocess.Popen([*command, sys.executable, "-c", HOG])  # noqa: S603
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)


def reader(policy: str, work_us: float, cpu: int, pipe: Connection) -> None:
    """Reads with ``UdpMux`` until told to stop; sends back each datagram's
    send → handled latency."""
    os.sched_setaffinity(0, {cpu})
    window_us, short_slice = POLICIES[policy]
    default_slice = udp_mux.scheduler_slice()
    latencies: list[float] = []

    def handle(data: bytes, addr: Any) -> None:
        latencies.append(time.monotonic() - struct.unpack_from("!d", data, 1)[0])
        end = time.perf_counter() + work_us * 1e-6
        while time.perf_counter() < end:  # the cost of forwarding it
            pass

    async def serve() -> None:
        mux = udp_mux.UdpMux("127.0.0.1", batch_window=window_us * 1e-6)
        mux._dispatch = handle  # type: ignore[method-assign]
        await mux.bind("127.0.0.1", 0)
        if not short_slice and default_slice is not None:
            udp_mux.set_scheduler_slice(default_slice)
        pipe.send(mux.port)
        loop = asyncio.get_running_loop()
        sent = await loop.run_in_executor(None, pipe.recv)
        # the backlog, if any, is part of the result
        with contextlib.suppress(AssertionError):
            await wait_for(lambda: len(latencies) >= sent, 10, "all read", 0.01)
        mux.close()

    uvloop.run(serve())
    pipe.send(latencies)


def send_for(ports: list[int], seconds: float) -> int:
    """BURST datagrams to each port every BURST_INTERVAL, each carrying its
    send time; returns how many each port got."""
    padding = bytes(900)
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        start = tick = time.monotonic()
        while tick < start + seconds:
            for _ in range(BURST):
                for port in ports[sent % len(ports) :] + ports[: sent % len(ports)]:
                    stamp = struct.pack("!d", time.monotonic())
                    sock.sendto(b"\x80" + stamp + padding, ("127.0.0.1", port))
                sent += 1
            tick += BURST_INTERVAL
            time.sleep(max(0.0, tick - time.monotonic()))
    return sent


def synthetic(args: argparse.Namespace) -> dict[str, list[float]]:
    """All policies at once, one reader process each on the busy core: they
    share its load as it drifts (taking turns would not)."""
    pipes, children = {}, []
    for policy in POLICIES:
        ours, theirs = multiprocessing.Pipe()
        child = multiprocessing.Process(
            target=reader, args=(policy, args.work_us, args.server_cpu, theirs)
        )
        child.start()
        pipes[policy] = ours
        children.append(child)
    ports = [pipe.recv() for pipe in pipes.values()]
    sent = send_for(ports, args.duration)
    for pipe in pipes.values():
        pipe.send(sent)
    results = {policy: pipe.recv() for policy, pipe in pipes.items()}
    for child in children:
        child.join()
    return results


def run_synthetic(args: argparse.Namespace) -> None:
    with hogs(args.hogs, args.server_cpu, args.hog_nice):
        results = synthetic(args)
        load = os.getloadavg()[0]
    print(
        f"busy core, synthetic: hogs={args.hogs} nice={args.hog_nice}"
        f" work={args.work_us} µs/datagram load={load:.1f}"
    )
    for policy, latencies in results.items():
        latencies.sort()
        p50, p90, p99 = (_quantile(latencies, q) * 1000 for q in (0.5, 0.9, 0.99))
        print(
            f"  {policy:28} n={len(latencies):6}  send → handled ms"
            f"  p50 {p50:7.2f}  p90 {p90:7.2f}  p99 {p99:7.2f}"
        )


def timer_lateness(work_us: float, cpu: int, count: int, pipe: Connection) -> None:
    """How late the window's timer (1 ms, re-armed after ``work_us`` of CPU
    each time) wakes the loop: the kernel's wait for the core."""
    os.sched_setaffinity(0, {cpu})
    late: list[float] = []

    async def measure() -> None:
        loop = asyncio.get_running_loop()
        timer, done, due = _fastpath.timer(), asyncio.Event(), [0.0]

        def on_timer() -> None:
            if not _fastpath.expired(timer):
                return
            late.append(time.monotonic() - due[0])
            end = time.perf_counter() + work_us * 1e-6
            while time.perf_counter() < end:
                pass
            if len(late) == count:
                done.set()
                return
            due[0] = time.monotonic() + 0.001
            _fastpath.arm(timer, 1000)

        loop.add_reader(timer, on_timer)
        due[0] = time.monotonic() + 0.001
        _fastpath.arm(timer, 1000)
        await done.wait()
        loop.remove_reader(timer)
        os.close(timer)

    uvloop.run(measure())
    pipe.send(late)


def run_timer(args: argparse.Namespace) -> None:
    """Both CPU costs per wake-up at once, on the busy core."""
    costs = (50.0, 1000.0)
    with hogs(args.hogs, args.server_cpu, args.hog_nice):
        results = {}
        for cost, (ours, theirs) in [(c, multiprocessing.Pipe()) for c in costs]:
            child = multiprocessing.Process(
                target=timer_lateness, args=(cost, args.server_cpu, 3000, theirs)
            )
            child.start()
            results[cost] = (ours, child)
        lateness = {cost: sorted(ours.recv()) for cost, (ours, _) in results.items()}
        for _, child in results.values():
            child.join()
        load = os.getloadavg()[0]
    print(f"busy core, timer: hogs={args.hogs} nice={args.hog_nice} load={load:.1f}")
    for cost, late in lateness.items():
        p50, p90, p99 = (_quantile(late, q) * 1000 for q in (0.5, 0.9, 0.99))
        print(
            f"  {cost:6.0f} µs of CPU per 1 ms wake-up: timer late ms"
            f"  p50 {p50:7.2f}  p90 {p90:7.2f}  p99 {p99:7.2f}"
            f"  max {late[-1] * 1000:7.1f}"
        )


def run_calls(args: argparse.Namespace) -> None:
    # what bench.media_bench.run reads besides these
    args.scenario, args.fanout = "1to1", 0
    args.video_bitrate, args.profile = 800_000, ""
    args.clients, args.client_cpus = 1, [args.client_cpu]
    results = asyncio.run(run(args, hogs(args.hogs, args.server_cpu, args.hog_nice)))
    print(
        f"busy core, calls: rooms={args.rooms} hogs={args.hogs} nice={args.hog_nice}"
        f" window_us={args.batch_window_us} load={os.getloadavg()[0]:.1f}"
    )
    for name in (
        "sfu_latency_p50_ms_le",
        "sfu_latency_p99_ms_le",
        "end_to_end_p50_ms",
        "end_to_end_p99_ms",
        "end_to_end_loss_pct",
        "server_core_pct",
        "steal_pct_both_cores",
    ):
        print(f"  {name:26} {results[name]:10.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", action="store_true", help="the real server")
    parser.add_argument("--timer", action="store_true", help="the timer's lateness")
    parser.add_argument("--rooms", type=int, default=2, help="calls with --calls")
    parser.add_argument("--hogs", type=int, default=14)
    parser.add_argument("--hog-nice", type=int, default=0)
    parser.add_argument("--work-us", type=float, default=25)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=4)
    parser.add_argument("--server-cpu", type=int, default=0)
    parser.add_argument("--client-cpu", type=int, default=1)
    parser.add_argument("--port", type=int, default=18445)
    parser.add_argument("--udp-port", type=int, default=40001)
    parser.add_argument(
        "--batch-window-us",
        type=int,
        default=None,
        help="with --calls: the server's batch_window_us (default: its default)",
    )
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.client_cpu})
    if args.calls:
        run_calls(args)
    elif args.timer:
        run_timer(args)
    else:
        run_synthetic(args)


if __name__ == "__main__":
    main()
