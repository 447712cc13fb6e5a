"""The SFU's estimate of one subscriber's downlink, from transport-cc feedback on
what the SFU sends it.

Why not the subscriber's own estimate (REMB)? A browser's receive-side estimator
may not rise above 1.5 times what it receives. After a dip, the publisher's
encoder sends less than its target, so the two hold each other down: measured
through our relay, a citizen's REMB stayed at about 250 kbit/s for 18 s after
its downlink came back from 300 kbit/s to 2 Mbit/s. The sender of a link can
test it; its receiver cannot. So, as a browser does for its own uplink, the SFU
numbers every packet it sends a subscriber, reads back when each arrived, and

- **backs off** to 85 % of what arrived (less while a long queue drains)
  when a queue stands (the least queueing delay over 300 ms of sending above
  30 ms) or more than a tenth is lost;
- **grows** by 8 % a second while the link is clean, up to 1.5 times what
  arrives;
- **probes**: while the link is clean and the estimate below ``MAX_BPS``, it
  sends padding for ``PROBE_SECONDS`` at twice the estimate, every
  ``PROBE_INTERVAL`` (sooner after a probe that raised it), and takes what
  arrived during the probe as the new floor of its estimate;
- **budgets retransmissions** to a share of the estimate.

The forwarder gives the estimate to the publisher, as it would a REMB. Per
feedback packet (10-20 a second), not per media packet.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import NamedTuple

#: Where a new subscriber's estimate starts: a call's start sends less.
START_BPS = 1_000_000
MIN_BPS = 100_000
#: Above what a publisher sends (a browser's 720p at about 2.5 Mbit/s).
MAX_BPS = 3_000_000
DECREASE = 0.85
#: A long queue drains faster: what arrives times 1 - queue / DRAIN_SECONDS,
#: at least DRAIN_FLOOR (a full 64 kB queue on a 300 kbit/s link holds 1.7 s).
DRAIN_SECONDS = 3.0
DRAIN_FLOOR = 0.5
INCREASE_PER_SECOND = 0.08
#: Growth stops at this many times what arrives (as a browser's own estimator).
GROWTH_CEILING = 1.5
#: A queue "stands" when the least queueing delay over this window is above…
QUEUE_WINDOW = 0.3
STANDING_QUEUE = 0.03
#: …against the least one-way delay over this long (clock drift is far less).
BASE_WINDOW = 10.0
#: What arrived, and what was lost, over this window.
RATE_WINDOW = 0.5
LOSS_HIGH = 0.1
LOSS_LOW = 0.02
#: One decrease per this long: its effect needs a round trip to show.
DECREASE_INTERVAL = 0.3
#: A probe is short, as a browser's (15 ms, 5 packets at least): what it adds
#: to a link's queue drains quickly.
PROBE_SECONDS = 0.03
PROBE_GAIN = 2.0
PROBE_INTERVAL = 3.0
#: After a probe that raised the estimate, the next one comes this soon.
PROBE_AGAIN = 1.0
#: No probe this soon after a decrease…
PROBE_AFTER_DECREASE = 1.0
#: …and a probe's own queue and losses are not taken for congestion this long.
PROBE_SETTLE = 0.5
#: A probe with no answer by then is given up.
PROBE_TIMEOUT = 1.5
#: Of a probe's estimate, this much is kept: a little under what arrived.
PROBE_KEEP = 0.9
#: Retransmissions may take this share of the estimate, in a bucket of
#: RETRANSMIT_BURST seconds of it: when a full queue drops most of what
#: arrives, answering every NACK would keep it full.
RETRANSMIT_SHARE = 0.2
RETRANSMIT_BURST = 0.5


class Reported(NamedTuple):
    """One of our packets as its feedback reports it."""

    seq: int
    sent_at: float
    size: int
    #: on the receiver's clock, seconds; None: lost
    arrived_at: float | None


@dataclass(slots=True)
class Probe:
    first_seq: int
    started_at: float
    last_seq: int | None = None


class DownlinkEstimate:
    """Bit/s one subscriber can take, in :attr:`bps`."""

    def __init__(self, now: float) -> None:
        self.bps = START_BPS
        #: feedback packets taken so far
        self.feedbacks = 0
        # The windows hold one entry per feedback packet, not per reported
        # packet: a feedback covers ~100 ms, and its packets are the costly part.
        #: (first arrival, last arrival, octets, the first's octets) of what
        #: arrived, over RATE_WINDOW
        self._arrivals: deque[tuple[float, float, int, int]] = deque()
        self._arrived_octets = 0
        #: (reported at, lost, reported) over RATE_WINDOW, probes left out
        self._outcomes: deque[tuple[float, int, int]] = deque()
        self._lost = 0
        self._reported = 0
        #: (last sent at, least one-way delay) over QUEUE_WINDOW of sending,
        #: probes left out: only those that may still be the window's least
        #: (delays rise left to right)
        self._delays: deque[tuple[float, float]] = deque()
        self._latest_sent = 0.0
        #: (second, least one-way delay in it) over BASE_WINDOW
        self._floor: deque[tuple[int, float]] = deque()
        self._updated_at = now
        self._decreased_at = -PROBE_AFTER_DECREASE
        self._feedback_at = -1.0
        self._probe: Probe | None = None
        self._probe_packets: list[Reported] = []
        self._probe_done_at = -PROBE_SETTLE
        self._next_probe_at = now + PROBE_AGAIN
        self._tokens = 0.0
        self._tokens_at = now

    def allow_retransmission(self, size: int, now: float) -> bool:
        """Whether a retransmission of ``size`` bytes fits the budget now."""
        rate = RETRANSMIT_SHARE * self.bps / 8
        elapsed = max(now - self._tokens_at, 0.0)
        self._tokens = min(rate * RETRANSMIT_BURST, self._tokens + rate * elapsed)
        self._tokens_at = now
        if self._tokens < size:
            return False
        self._tokens -= size
        return True

    # what the feedback says

    def on_feedback(self, packets: list[Reported], now: float) -> bool:
        """Take one feedback packet's report; True when :attr:`bps` changed."""
        before = self.bps
        self.feedbacks += 1
        self._feedback_at = now
        probing = self._probe is not None
        first_arrival = last_arrival = least_delay = None
        octets = first_size = lost = counted = 0
        last_sent = 0.0
        for packet in packets:
            seq, sent_at, size, arrived = packet
            if probing and self._in_probe(seq):
                # a probe is judged on its own, and neither lifts the growth
                # ceiling nor counts as congestion
                self._probe_packets.append(packet)
                continue
            counted += 1
            if arrived is None:
                lost += 1
                continue
            delay = arrived - sent_at
            if least_delay is None or delay < least_delay:
                least_delay = delay
            if first_arrival is None:
                first_arrival, first_size = arrived, size
            last_arrival = arrived
            octets += size
            last_sent = sent_at
        if first_arrival is not None and last_arrival is not None:
            self._arrivals.append((first_arrival, last_arrival, octets, first_size))
            self._arrived_octets += octets
        if least_delay is not None:
            self._note_floor(least_delay, int(last_sent))
        if now - self._probe_done_at >= PROBE_SETTLE and counted:
            self._outcomes.append((now, lost, counted))
            self._lost += lost
            self._reported += counted
            if least_delay is not None:
                delays = self._delays
                while delays and delays[-1][1] >= least_delay:
                    delays.pop()
                delays.append((last_sent, least_delay))
                self._latest_sent = max(self._latest_sent, last_sent)
        self._forget(now)
        self._finish_probe(now)
        self._adjust(now)
        return self.bps != before

    def _note_floor(self, delay: float, second: int) -> None:
        floor = self._floor
        if floor and floor[-1][0] == second:
            if delay < floor[-1][1]:
                floor[-1] = (second, delay)
        else:
            floor.append((second, delay))

    def _forget(self, now: float) -> None:
        arrivals = self._arrivals
        newest = arrivals[-1][1] if arrivals else 0.0
        while arrivals and arrivals[0][1] < newest - RATE_WINDOW:
            self._arrived_octets -= arrivals.popleft()[2]
        while self._outcomes and self._outcomes[0][0] < now - RATE_WINDOW:
            _, lost, counted = self._outcomes.popleft()
            self._lost -= lost
            self._reported -= counted
        # by when they were sent: a long queue delays all feedback
        start = self._latest_sent - QUEUE_WINDOW
        while self._delays and self._delays[0][0] < start:
            self._delays.popleft()
        while self._floor and self._floor[0][0] < now - BASE_WINDOW:
            self._floor.popleft()

    # the signals

    def delivered_bps(self) -> int | None:
        """What arrived over the last RATE_WINDOW, or None over too short a span."""
        if not self._arrivals:
            return None
        span = self._arrivals[-1][1] - self._arrivals[0][0]
        if span < RATE_WINDOW / 2:
            return None
        # what arrived after the first arrival, over the time since it
        return int((self._arrived_octets - self._arrivals[0][3]) * 8 / span)

    def loss(self) -> float:
        if not self._reported:
            return 0.0
        return self._lost / self._reported

    def standing_queue(self) -> float:
        """Seconds of queue that did not drain over the last QUEUE_WINDOW."""
        if not self._delays or not self._floor:
            return 0.0
        floor = min(delay for _, delay in self._floor)
        return self._delays[0][1] - floor

    def _adjust(self, now: float) -> None:
        elapsed = now - self._updated_at
        self._updated_at = now
        delivered = self.delivered_bps()
        loss = self.loss()
        queue = self.standing_queue()
        if queue > STANDING_QUEUE or loss > LOSS_HIGH:
            if delivered is not None and now - self._decreased_at >= DECREASE_INTERVAL:
                factor = max(DRAIN_FLOOR, min(DECREASE, 1 - queue / DRAIN_SECONDS))
                self.bps = max(MIN_BPS, min(self.bps, int(factor * delivered)))
                self._decreased_at = now
            return
        if loss > LOSS_LOW or delivered is None:
            return
        grown = self.bps * (1 + INCREASE_PER_SECOND * min(elapsed, 1.0))
        ceiling = GROWTH_CEILING * delivered + 10_000
        self.bps = int(min(MAX_BPS, max(self.bps, min(grown, ceiling))))

    # probing

    def probe_due(self, now: float) -> int | None:
        """Bit/s of padding to send for PROBE_SECONDS now, or None: only while
        feedback comes, the link is clean and the estimate below MAX_BPS."""
        if (
            self._probe is not None
            or self.bps >= MAX_BPS
            or now < self._next_probe_at
            or now - self._feedback_at > 0.5
            or now - self._decreased_at < PROBE_AFTER_DECREASE
            or self.loss() > LOSS_LOW
        ):
            return None
        return int(min(MAX_BPS, self.bps * PROBE_GAIN))

    def probe_started(self, seq: int, now: float) -> None:
        self._probe = Probe(first_seq=seq, started_at=now)
        self._probe_packets = []

    def probe_ended(self, seq: int) -> None:
        if self._probe is not None:
            self._probe.last_seq = seq

    def _in_probe(self, seq: int) -> bool:
        probe = self._probe
        if probe is None:
            return False
        last = probe.last_seq if probe.last_seq is not None else probe.first_seq + 4096
        return (seq - probe.first_seq) & 0xFFFF <= (last - probe.first_seq) & 0xFFFF

    def _finish_probe(self, now: float) -> None:
        probe = self._probe
        if probe is None:
            return
        reported = {p.seq for p in self._probe_packets}
        complete = probe.last_seq is not None and probe.last_seq in reported
        if not complete and now - probe.started_at < PROBE_TIMEOUT:
            return
        self._probe = None
        self._probe_done_at = now
        rate = probe_rate(self._probe_packets)
        self._probe_packets = []
        if rate is not None and PROBE_KEEP * rate > self.bps:
            self.bps = int(min(MAX_BPS, PROBE_KEEP * rate))
            self._next_probe_at = now + PROBE_AGAIN
        else:
            self._next_probe_at = now + PROBE_INTERVAL


def probe_rate(packets: list[Reported]) -> int | None:
    """What a probe shows the link can carry: the lesser of its send and arrival
    rates, or None when a tenth or more of it was lost or too little arrived."""
    received = sorted(
        (p for p in packets if p.arrived_at is not None),
        key=lambda p: p.arrived_at or 0.0,
    )
    if len(received) < 5 or len(received) < 0.9 * len(packets):
        return None
    by_send = sorted(received, key=lambda p: p.sent_at)
    arrival_span = (received[-1].arrived_at or 0.0) - (received[0].arrived_at or 0.0)
    send_span = by_send[-1].sent_at - by_send[0].sent_at
    if arrival_span <= 0.02 or send_span <= 0.02:
        return None
    received_bps = (sum(p.size for p in received) - received[0].size) * 8 / arrival_span
    sent_bps = (sum(p.size for p in by_send) - by_send[-1].size) * 8 / send_span
    return int(min(received_bps, sent_bps))
