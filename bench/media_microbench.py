"""CPU cost of the short media path alone: SRTP unprotect → route → rewrite →
SRTP protect → send, with real libsrtp sessions and no event loop.

    .venv/bin/python -m bench.media_microbench

Prints µs per forwarded packet for 1, 2 and 4 subscribers of one publisher, for
the Python path (``PeerMedia.handle_datagram``, sends replaced by a counter) and
the C path (``PeerMedia.fast_handle``, which really sends each packet on a UDP
socket to a loopback port nobody reads), and the ratio of the two in one run.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Callable

from pylibsrtp import Policy, Session

from mediaserver.forwarder import ForwarderStats, PeerMedia
from mediaserver.leg import LegInfo
from mediaserver.stream import StreamInfo
from mediaserver.transport import DirectSrtp, MediaTransport

SSRC = 0x11223344
PACKETS = 20000


def session(key: bytes, direction: int) -> Session:
    return Session(Policy(key=key, ssrc_type=direction))


def vp8_packets(count: int) -> list[bytes]:
    """Plain RTP: VP8 descriptor + ~1100 bytes, keyframe start first."""
    packets = []
    body = os.urandom(1100)
    for i in range(count):
        descriptor = bytes([0x90, 0x80, 0x80 | (i >> 8) & 0x7F, i & 0xFF])
        vp8 = bytes([0x00 if i == 0 else 0x01])
        header = struct.pack("!BBHII", 0x80, 96, i & 0xFFFF, 3000 * (i // 3), SSRC)
        packets.append(header + descriptor + vp8 + body)
    return packets


class CountingTransport(MediaTransport):
    def __init__(self, rx: Session | None, tx: Session | None) -> None:
        super().__init__()
        self._rx = None if rx is None else DirectSrtp(rx)
        self._tx = None if tx is None else DirectSrtp(tx)
        self.sent = 0

        def sendto(data: bytes, addr: object) -> None:
            self.sent += 1

        self._sendto = sendto


def run(subscribers: int, fast: bool = False, extension: str = "") -> float:
    """µs of CPU per forwarded packet; ``extension`` is what each subscriber's
    packets carry: "" none, "abs-send-time", or "transport-cc" (our own
    numbers, noted in the subscriber's sent log)."""
    client_key = os.urandom(30)
    stats = ForwarderStats()
    publisher = PeerMedia(
        CountingTransport(session(client_key, Policy.SSRC_ANY_INBOUND), None), stats
    )
    publisher.forwarding = True
    stream = publisher.add_stream(
        StreamInfo("video", SSRC, None, {96: "video/vp8"}, {}, 90000)
    )
    subs = []
    for n in range(subscribers):
        tx = session(os.urandom(30), Policy.SSRC_ANY_OUTBOUND)
        sub = PeerMedia(CountingTransport(None, tx), stats)
        sub.add_leg(stream, LegInfo(1000 + n, 2000 + n, {"video/vp8": 97}, {97: 98}))
        if extension == "abs-send-time":
            sub.set_header_extensions(abs_send_time=2)
        elif extension == "transport-cc":
            sub.set_header_extensions(sent_transport_cc=3)
        subs.append(sub)
    client = session(client_key, Policy.SSRC_ANY_OUTBOUND)
    datagrams = [client.protect(p) for p in vp8_packets(PACKETS)]
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as out,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink,
    ):
        out.bind(("127.0.0.1", 0))
        sink.bind(("127.0.0.1", 0))
        handle: Callable[[bytes], None] = publisher.handle_datagram
        if fast:
            inbound = publisher.transport._rx
            assert inbound is not None
            publisher.attach(
                inbound.address, inbound.address, inbound, out.fileno(), "127.0.0.1", 9
            )
            for sub in subs:
                outbound = sub.transport._tx
                assert outbound is not None
                sub.attach(
                    outbound.address,
                    outbound.address,
                    outbound,
                    out.fileno(),
                    *sink.getsockname(),
                )
            handle = publisher.fast_handle
        start = time.process_time()
        for datagram in datagrams:
            handle(datagram)
        elapsed = time.process_time() - start
    forwarded = stats.forwarded["video"]
    assert forwarded == PACKETS * subscribers, (forwarded, stats.dropped)
    return elapsed / forwarded * 1e6


def main() -> None:
    for subscribers in (1, 2, 4):
        python = run(subscribers)
        c = run(subscribers, fast=True)
        print(
            f"subscribers={subscribers}  python {python:6.2f} µs  C {c:6.2f} µs"
            f" (with sendto)  per forwarded packet; C/python {c / python:.2f}"
        )
    # what the subscriber's header extension costs the C path, interleaved
    rounds: dict[str, list[float]] = {"abs-send-time": [], "transport-cc": []}
    for _ in range(3):
        for extension, costs in rounds.items():
            costs.append(run(2, fast=True, extension=extension))
    best = {extension: min(costs) for extension, costs in rounds.items()}
    print(
        f"C path, 2 subscribers: abs-send-time {best['abs-send-time']:.2f} µs,"
        f" transport-cc (numbered and noted) {best['transport-cc']:.2f} µs;"
        f" ratio {best['transport-cc'] / best['abs-send-time']:.2f}"
        " (best of three, interleaved)"
    )


if __name__ == "__main__":
    main()
