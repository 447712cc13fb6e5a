"""What a citizen sees on a bad network (issue 14), from Chromium's own getStats.

Two headless Chromium pages (fake camera and microphone), employee and citizen,
call through the real SFU or, as the reference, peer to peer; the citizen's leg
runs through the user-space impairment relay (tests/impairment.py). Each
condition gets a fresh call, a clean warm-up, then the impairment at t = 0; one
table per condition and path: the figures second by second, then each of the
issue's targets with PASS or FAIL.

Run inside a loopback-only network namespace, from the repository root:

    unshare --net sh -c 'ip link set lo up && exec .venv/bin/python \\
        -m bench.network_quality --condition loss3'

``--condition`` is loss3, uplink400, downlink400, step, downstep or all (the default);
``--sfu`` or ``--p2p`` runs one path only (both by default). The cameras send
a busy clip that wants ~1.5-2 Mbit/s (tests/browser_call.py ``busy_camera``);
``--fake-camera`` uses Chromium's own pattern, which needs only ~500 kbit/s.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import socket
import struct
import sys

from tests.network_quality import CONDITIONS, measure, table, verdicts

IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913


def interfaces_up() -> list[str]:
    """The network interfaces of this namespace that are up, loopback aside
    (asked of the kernel: /sys/class/net shows the namespace sysfs was mounted in)."""
    up = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("16sH", name.encode()[:15], 0)
            answer = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, request)
            flags = struct.unpack_from("16sH", answer)[1]
            if name != "lo" and flags & IFF_UP:
                up.append(name)
    return up


async def run(
    conditions: list[str], paths: list[str], warmup: float, busy_video: bool
) -> None:
    summary = ["| condition | path | target | measured | limit | |", "|---" * 6 + "|"]
    for name in conditions:
        for path in paths:
            result = await measure(
                CONDITIONS[name], path, warmup=warmup, busy_video=busy_video
            )
            print(table(result), end="\n\n", flush=True)
            for v in verdicts(result)[1:]:
                outcome = "PASS" if v.passed else "FAIL"
                summary.append(
                    f"| {name} | {path} | {v.what} | {v.measured} | {v.target}"
                    f" | {outcome} |"
                )
    print("### Summary", "", *summary, sep="\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--condition", choices=[*CONDITIONS, "all"], default="all", help="default: all"
    )
    parser.add_argument("--sfu", action="store_true", help="through the SFU only")
    parser.add_argument("--p2p", action="store_true", help="peer to peer only")
    parser.add_argument(
        "--warmup", type=float, default=10, help="seconds of clean link first"
    )
    parser.add_argument(
        "--fake-camera",
        action="store_true",
        help="Chromium's own fake camera (~500 kbit/s) instead of the busy clip",
    )
    args = parser.parse_args()
    if up := interfaces_up():
        sys.exit(
            f"refusing to run with {', '.join(up)} up: this bench must run in a"
            " loopback-only network namespace:\n  unshare --net sh -c 'ip link set"
            " lo up && exec .venv/bin/python -m bench.network_quality ...'"
        )
    conditions = list(CONDITIONS) if args.condition == "all" else [args.condition]
    paths = [p for p, chosen in (("sfu", args.sfu), ("p2p", args.p2p)) if chosen]
    paths = paths or ["sfu", "p2p"]
    asyncio.run(run(conditions, paths, args.warmup, not args.fake_camera))


if __name__ == "__main__":
    main()
