"""Prometheus metrics of a media worker. No room, token or person in any label.

Per-packet counters are plain integers in :class:`ForwarderStats` (a prometheus
``Counter.inc`` per packet would cost more than the forwarding); a collector reads
them at scrape time. Histograms are observed per RTCP report or, for forwarding
time, for one packet in ``TIMING_SAMPLE``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mediaserver.forwarder import ForwarderStats
from mediaserver.room import Rooms

NS = "beeldbel_media"


class _StatsCollector(Collector):
    def __init__(self, stats: ForwarderStats, rooms: Rooms) -> None:
        self._stats = stats
        self._rooms = rooms

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        s = self._stats
        yield _counter("packets_in", "RTP/RTCP packets received", "kind", s.packets_in)
        yield _counter("bytes_in", "bytes received", "kind", s.bytes_in)
        yield _counter("packets_out", "RTP/RTCP packets sent", "kind", s.packets_out)
        yield _counter("bytes_out", "bytes sent", "kind", s.bytes_out)
        yield _counter(
            "forwarded_packets", "RTP packets forwarded to a leg", "kind", s.forwarded
        )
        yield _counter("dropped_packets", "packets dropped", "reason", s.dropped)
        yield _counter("pli", "picture loss indications", "direction", s.pli)
        yield _counter("nack", "NACK packets", "direction", s.nack)
        yield _counter(
            "retransmitted_packets",
            "packets resent from a leg's history",
            "leg",
            {"subscriber": s.retransmitted},
        )
        yield _counter(
            "keyframes", "keyframes received", "kind", {"video": s.keyframes}
        )
        yield _counter(
            "fec_packets",
            "received packets that carry in-band FEC (the publisher protects them)",
            "codec",
            {"opus": s.opus_fec},
        )
        yield _counter(
            "transport_feedback",
            "transport-cc feedback packets sent to publishers or received from"
            " subscribers",
            "direction",
            {
                "to_publisher": s.transport_feedback,
                "from_subscriber": s.transport_feedback_in,
            },
        )
        yield _counter(
            "downlink_probes",
            "probes of subscribers' downlinks, and their padding packets",
            "sent",
            {"probes": s.probes, "padding_packets": s.probe_packets},
        )
        yield _counter(
            "chat_messages",
            "chat messages relayed or dropped (text never kept)",
            "result",
            self._rooms.chat_stats.messages,
        )
        yield _counter(
            "chat_signals",
            "typing (real-time text) and mute/camera signals relayed or dropped",
            "result",
            self._rooms.chat_stats.signals,
        )
        rooms = GaugeMetricFamily(f"{NS}_rooms", "rooms on this worker")
        rooms.add_metric([], len(self._rooms.rooms))
        yield rooms
        participants = GaugeMetricFamily(
            f"{NS}_participants", "participants on this worker", labels=["role"]
        )
        for role, count in self._rooms.participants_by_role().items():
            participants.add_metric([role], count)
        yield participants


def _counter(
    name: str, documentation: str, label: str, values: dict[str, int]
) -> CounterMetricFamily:
    family = CounterMetricFamily(f"{NS}_{name}", documentation, labels=[label])
    for value, count in values.items():
        family.add_metric([value], count)
    return family


class Metrics:
    """The worker's metrics on an injected registry (tests pass a fresh one)."""

    def __init__(
        self, registry: CollectorRegistry, stats: ForwarderStats, rooms: Rooms
    ) -> None:
        # a _created series per histogram only doubles what a dashboard has to
        # skip (a process-wide switch of prometheus_client)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry
        registry.register(_StatsCollector(stats, rooms))
        # CPU, memory, open files of this worker (process_*)
        ProcessCollector(registry=registry)
        self.forward_seconds = Histogram(
            f"{NS}_forward_seconds",
            "CPU time to handle one inbound RTP packet (sampled)",
            buckets=(5e-6, 1e-5, 2e-5, 4e-5, 8e-5, 1.6e-4, 3.2e-4, 1e-3, 5e-3),
            registry=registry,
        )
        self.latency_seconds = Histogram(
            f"{NS}_sfu_latency_seconds",
            "time from the kernel receiving an RTP/RTCP datagram to its forwarded"
            " copies being sent (sampled, C path)",
            buckets=(
                1e-4,
                2.5e-4,
                5e-4,
                7.5e-4,
                1e-3,
                1.25e-3,
                1.5e-3,
                1.75e-3,
                2e-3,
                3e-3,
                5e-3,
                1e-2,
                2.5e-2,
                0.1,
            ),
            registry=registry,
        )
        self.rtt_seconds = Histogram(
            f"{NS}_rtt_seconds",
            "round-trip time per leg from RTCP receiver reports",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 1.0),
            registry=registry,
        )
        self.jitter_seconds = Histogram(
            f"{NS}_jitter_seconds",
            "interarrival jitter per leg from RTCP receiver reports",
            buckets=(0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2),
            registry=registry,
        )
        self.loss_ratio = Histogram(
            f"{NS}_loss_ratio",
            "fraction lost per leg from RTCP receiver reports",
            buckets=(0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
            registry=registry,
        )
        self.loop_lag_seconds = Gauge(
            f"{NS}_event_loop_lag_seconds",
            "how late the event loop ran a timer, last sample",
            registry=registry,
        )
        self.connect_aborted = Counter(
            f"{NS}_peer_connect_aborted",
            "peer connections that closed while aiortc was still connecting them",
            registry=registry,
        )
        stats.on_forward_time = self.forward_seconds.observe
        stats.on_rtt = self.rtt_seconds.observe
        stats.on_jitter = self.jitter_seconds.observe
        stats.on_loss = self.loss_ratio.observe

    async def watch_loop_lag(self, interval: float = 1.0) -> None:
        while True:
            start = time.monotonic()
            await asyncio.sleep(interval)
            self.loop_lag_seconds.set(max(0.0, time.monotonic() - start - interval))
