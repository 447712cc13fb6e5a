"""The SFU's own estimate of a subscriber's downlink (mediaserver/estimator.py),
fed the feedback a link of known rate and queue would give.

The link here is a model (a drop-tail FIFO of a fixed rate), so that each rule
is seen on its own; the same estimator through Chromium and the impairment relay
is in test_network_quality.py and bench/network_quality.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mediaserver.estimator import (
    MAX_BPS,
    PROBE_KEEP,
    DownlinkEstimate,
    Reported,
    probe_rate,
)

PACKET = 1000  # bytes
FEEDBACK_EVERY = 0.1  # s, as Chrome sends it


@dataclass
class Link:
    """A FIFO of ``bps`` with a drop-tail queue and a fixed propagation delay."""

    bps: int
    queue_bytes: int = 64_000
    delay: float = 0.02
    free_at: float = 0.0
    seq: int = 0
    #: what the receiver will report, in order
    pending: list[Reported] = field(default_factory=list)

    def send(self, now: float, size: int = PACKET) -> int:
        seq = self.seq
        self.seq = (self.seq + 1) & 0xFFFF
        start = max(now, self.free_at)
        queued = (start - now) * self.bps / 8
        if queued + size > self.queue_bytes:
            self.pending.append(Reported(seq, now, size, None))
            return seq
        self.free_at = start + size * 8 / self.bps
        arrival = self.free_at + self.delay + 100.0  # the receiver's own clock
        self.pending.append(Reported(seq, now, size, arrival))
        return seq

    def feedback(self, now: float) -> list[Reported]:
        """What the receiver's feedback tells us at ``now``: every packet up to
        the last that reached it (and its feedback us) by then, those lost
        among them as lost."""
        last = max(
            (
                i
                for i, p in enumerate(self.pending)
                if p.arrived_at is not None and p.arrived_at - 100.0 + self.delay <= now
            ),
            default=-1,
        )
        ready = self.pending[: last + 1]
        del self.pending[: last + 1]
        return ready


def run(
    estimate: DownlinkEstimate,
    link: Link,
    start: float,
    seconds: float,
    send_bps: float | None = None,
    probes: bool = False,
) -> float:
    """Send at ``send_bps`` (None: at the estimate) for ``seconds``, feedback
    every FEEDBACK_EVERY, probes when the estimate asks; returns the end."""
    now, owed, next_feedback = start, 0.0, start + FEEDBACK_EVERY
    step = 0.005
    while now < start + seconds:
        rate = send_bps if send_bps is not None else estimate.bps
        owed += rate * step / 8
        while owed >= PACKET:
            link.send(now)
            owed -= PACKET
        if now >= next_feedback:
            estimate.on_feedback(link.feedback(now), now)
            next_feedback += FEEDBACK_EVERY
            if probes and (bps := estimate.probe_due(now)) is not None:
                probe(estimate, link, now, bps)
        now += step
    return now


def probe(estimate: DownlinkEstimate, link: Link, now: float, bps: int) -> None:
    """A probe's padding, paced as ProbeSender paces it (5 ms ticks, 30 ms)."""
    size = 275
    sent, t = 0, 0.0
    while t <= 0.03 + 1e-9:
        owed = int(bps * t / 8 / size) + 1 - sent
        for _ in range(owed):
            seq = link.send(now + t, size)
            if sent == 0:
                estimate.probe_started(seq, now + t)
            sent += 1
        t += 0.005
    estimate.probe_ended((link.seq - 1) & 0xFFFF)


def test_a_standing_queue_brings_the_estimate_under_the_link():
    """Sending at 2 Mbit/s into 300 kbit/s: the estimate falls under 300k."""
    estimate = DownlinkEstimate(0.0)
    link = Link(300_000)
    run(estimate, link, 0.0, 3.0, send_bps=2_000_000)
    assert estimate.bps < 300_000


def test_a_queue_longer_than_the_window_is_still_seen():
    """Regression: the queue's window once counted from the feedback's arrival,
    so a queue of more than 300 ms (feedback as late) emptied it and looked
    like none. 1.7 s of queue (64 kB at 300 kbit/s) must read as a queue."""
    estimate = DownlinkEstimate(0.0)
    link = Link(300_000, delay=0.02)
    end = run(estimate, link, 0.0, 4.0, send_bps=600_000)
    assert estimate.standing_queue() > 1.0
    # and sending at the estimate drains it
    run(estimate, link, end, 8.0)
    assert estimate.standing_queue() < 0.05
    assert estimate.bps < 300_000


def test_on_a_clean_link_the_estimate_grows_only_with_what_arrives():
    """A sender held at 250 kbit/s (an encoder under its target): without
    probes the estimate may not pass 1.5 times what arrives (as measured over
    half a second, give or take a packet at its edges)."""
    estimate = DownlinkEstimate(0.0)
    estimate.bps = 260_000
    link = Link(2_000_000)
    run(estimate, link, 0.0, 10.0, send_bps=250_000)
    assert estimate.bps <= (1.5 * 250_000 + 10_000) * 1.02  # the window's edges


def test_probes_find_a_link_that_came_back():
    """The same held-back sender, with probes: the estimate climbs to most of a
    2 Mbit/s link within a few seconds, and not above it."""
    estimate = DownlinkEstimate(0.0)
    estimate.bps = 260_000
    link = Link(2_000_000)
    now, reached = 0.0, None
    while now < 10.0:
        now = run(estimate, link, now, 0.5, send_bps=250_000, probes=True)
        if reached is None and estimate.bps >= 1_400_000:
            reached = now
    assert reached is not None, estimate.bps
    assert reached < 6.0
    assert estimate.bps <= 2_000_000 * PROBE_KEEP * 1.05


def test_a_probe_into_a_slow_link_raises_nothing():
    """Probing at twice the estimate into a link at the estimate: what arrives
    is the link's rate, so the probes lift the estimate no higher than growth
    alone does (to about 1.5 times what arrives), unlike on the 2 Mbit/s link
    above."""
    ends = []
    for probes in (False, True):
        estimate = DownlinkEstimate(0.0)
        estimate.bps = 300_000
        run(estimate, Link(300_000), 0.0, 8.0, send_bps=250_000, probes=probes)
        ends.append(estimate.bps)
    without, with_probes = ends
    assert with_probes <= without * 1.05, ends
    assert with_probes < 450_000, ends


def test_heavy_loss_brings_the_estimate_down():
    estimate = DownlinkEstimate(0.0)
    link = Link(10_000_000)
    lost = 0
    now = 0.0
    for i in range(200):
        now = i * 0.01
        seq = link.send(now)
        if i % 4 == 0:  # a quarter lost on the way
            link.pending[-1] = Reported(seq, now, PACKET, None)
            lost += 1
        if i % 10 == 9:
            estimate.on_feedback(link.feedback(now + 0.05), now + 0.05)
    assert estimate.loss() > 0.1
    assert estimate.bps < 1_000_000


def test_a_probe_rate_is_the_lesser_of_sent_and_received():
    sent = [Reported(i, i * 0.001, 1000, 100 + i * 0.002) for i in range(40)]
    # sent at 8 Mbit/s, received at 4
    assert 3_900_000 < (probe_rate(sent) or 0) < 4_100_000
    slow_sender = [Reported(i, i * 0.004, 1000, 100 + i * 0.002) for i in range(40)]
    assert 1_900_000 < (probe_rate(slow_sender) or 0) < 2_100_000
    lossy = [*sent[:30], *(Reported(i, 0.0, 1000, None) for i in range(30, 40))]
    assert probe_rate(lossy) is None
    assert probe_rate(sent[:3]) is None


def test_retransmissions_keep_to_their_share_of_the_estimate():
    """20 % of 1 Mbit/s is 25 kB/s: over 2 s at most about 50 kB (plus the
    half-second bucket) of 1 kB retransmissions go, however many are asked."""
    estimate = DownlinkEstimate(0.0)
    estimate.bps = 1_000_000
    allowed = sum(estimate.allow_retransmission(1000, i * 0.001) for i in range(2000))
    assert 40 <= allowed <= 65
    assert estimate.bps <= MAX_BPS
