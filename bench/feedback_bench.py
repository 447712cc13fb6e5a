"""CPU cost of the SFU's own downlink estimate: one subscriber's transport-cc
feedback, from the RTCP packet to the estimate (parse, look up when each packet
left, update the windows, decide), with no event loop.

    .venv/bin/python -m bench.feedback_bench

A browser sends about ten feedback packets a second per subscriber; at 2 Mbit/s
each reports about 25 packets. Prints µs per feedback packet and per reported
packet, and what that makes of one core for 100 1:1 calls (200 subscribers).
"""

from __future__ import annotations

import struct
import time

from mediaserver.forwarder import ForwarderStats, PeerMedia
from mediaserver.transport import MediaTransport

TRANSPORT_CC = 3
PER_FEEDBACK = 25
FEEDBACKS = 4000
SUBSCRIBERS = 200
FEEDBACKS_PER_SECOND = 10


def numbered(block: bytes, seq: int) -> bytes:
    """A minimal RTP packet carrying our extension block."""
    header = struct.pack("!BBHII", 0x90, 96, seq & 0xFFFF, seq * 3000, 0x1234)
    return header + block + bytes(1100)


def main() -> None:
    subscriber = PeerMedia(MediaTransport(), ForwarderStats())
    subscriber.set_header_extensions(sent_transport_cc=TRANSPORT_CC)
    browser = PeerMedia(MediaTransport(), ForwarderStats())
    browser.set_header_extensions(transport_cc=TRANSPORT_CC)
    feedbacks = []
    start = time.monotonic()
    for i in range(FEEDBACKS):
        for j in range(PER_FEEDBACK):
            at = start + (i * PER_FEEDBACK + j) * 0.004  # 250 packets a second
            packet = numbered(subscriber.number_packet(at, 1120), j)
            if (i + j) % 50:  # 2 % lost
                browser.record_transport_cc(packet, at + 0.02)
        while (feedback := browser.transport_feedback(1, 2)) is not None:
            feedbacks.append(feedback)
    # the sent log holds the last 1024 numbers: time the feedback that covers them
    recent = feedbacks[-1024 // PER_FEEDBACK :]
    rounds = FEEDBACKS // len(recent)
    began = time.process_time()
    for _ in range(rounds):
        for feedback in recent:
            subscriber._handle_rtcp(feedback)
    spent = time.process_time() - began
    handled = rounds * len(recent)
    per_feedback = spent / handled * 1e6
    core = per_feedback * SUBSCRIBERS * FEEDBACKS_PER_SECOND / 1e6
    print(f"feedback packets handled: {handled} ({PER_FEEDBACK} packets each)")
    print(f"µs per feedback packet: {per_feedback:.1f}")
    print(f"µs per reported packet: {per_feedback / PER_FEEDBACK:.2f}")
    print(
        f"share of one core, {SUBSCRIBERS} subscribers at"
        f" {FEEDBACKS_PER_SECOND} feedbacks/s: {core:.1%}"
    )


if __name__ == "__main__":
    main()
