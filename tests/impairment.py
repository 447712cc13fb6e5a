"""A user-space network impairment for one direction of a UDP leg, for tests
(``tc netem`` is not available on these machines; issue 14's bad networks).

:class:`Link` shapes what passes through it, in this order: loss (random, or
bursty after Gilbert-Elliott), a bandwidth cap with a drop-tail queue, then delay
with jitter that keeps the packets' order (a slow link, not a reordering one).
:class:`ImpairedRelay` puts one link on each direction between a client and a
server address. The rate can change while traffic flows (2 Mbit/s → 300 kbit/s
and back), as on a train.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

Address = tuple[str, int]
#: Socket buffers as deep as a router's, so what is lost is what the link loses,
#: not what the kernel drops when a test sends a burst.
BUFFER_BYTES = 8 << 20


def deep_buffers(transport: asyncio.BaseTransport) -> None:
    """Give a datagram socket deep send and receive buffers (forced as root)."""
    sock = transport.get_extra_info("socket")
    for forced, plain in (
        (getattr(socket, "SO_RCVBUFFORCE", None), socket.SO_RCVBUF),
        (getattr(socket, "SO_SNDBUFFORCE", None), socket.SO_SNDBUF),
    ):
        try:
            sock.setsockopt(socket.SOL_SOCKET, forced or plain, BUFFER_BYTES)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, plain, BUFFER_BYTES)


@dataclass(slots=True)
class Impairment:
    """What a link does to its packets; every field may change while it runs."""

    #: Bits per second; 0 = no cap.
    rate_bps: int = 0
    #: Bytes the bottleneck queue holds before it drops what arrives (drop-tail).
    queue_bytes: int = 64_000
    #: Chance that a packet is lost in the good state (random loss).
    loss: float = 0.0
    #: Gilbert-Elliott bursts: the chance to enter the bad state per packet, to
    #: leave it, and the loss while in it. 0 = no bursts.
    burst_enter: float = 0.0
    burst_leave: float = 0.5
    burst_loss: float = 1.0
    #: One-way delay and the most it varies by, in seconds.
    delay: float = 0.0
    jitter: float = 0.0


@dataclass(slots=True)
class LinkCounts:
    passed: int = 0
    lost: int = 0
    #: Dropped by the full queue (the cap), apart from random or bursty loss.
    overflowed: int = 0


@dataclass
class Link:
    """One direction: ``send(data)`` delivers it later through ``deliver``."""

    deliver: Callable[[bytes], None]
    impairment: Impairment = field(default_factory=Impairment)
    seed: int = 14
    counts: LinkCounts = field(default_factory=LinkCounts)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._bad = False
        self._link_free_at = 0.0
        self._last_delivery = 0.0
        self._queued: list[tuple[float, int]] = []  # (leaves the queue at, size)
        # (delivered at, packet), in order: one timer for the head keeps them so
        # (timers due at the same moment fire in no set order)
        self._due: deque[tuple[float, bytes]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    def send(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self._lost():
            self.counts.lost += 1
            return
        leaves = self._through_bottleneck(now, len(data))
        if leaves is None:
            self.counts.overflowed += 1
            return
        self._due.append((self._after_delay(leaves), data))
        self.counts.passed += 1
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        self._timer = asyncio.get_running_loop().call_at(self._due[0][0], self._release)

    def _release(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        while self._due and self._due[0][0] <= now:
            self.deliver(self._due.popleft()[1])
        if self._due:
            self._arm()

    def _lost(self) -> bool:
        shaping = self.impairment
        if shaping.burst_enter:
            change = shaping.burst_leave if self._bad else shaping.burst_enter
            if self._random.random() < change:
                self._bad = not self._bad
            if self._bad:
                return self._random.random() < shaping.burst_loss
        return self._random.random() < shaping.loss

    def _through_bottleneck(self, now: float, size: int) -> float | None:
        """When the packet has crossed the capped link; None when the queue is full."""
        rate = self.impairment.rate_bps
        if not rate:
            return now
        self._queued = [(t, s) for t, s in self._queued if t > now]
        if sum(s for _, s in self._queued) + size > self.impairment.queue_bytes:
            return None
        leaves = max(now, self._link_free_at) + size * 8 / rate
        self._link_free_at = leaves
        self._queued.append((leaves, size))
        return leaves

    def _after_delay(self, leaves: float) -> float:
        shaping = self.impairment
        spread = self._random.uniform(-shaping.jitter, shaping.jitter)
        at = max(leaves + max(0.0, shaping.delay + spread), self._last_delivery)
        self._last_delivery = at  # jitter never reorders
        return at


class DatagramSide(asyncio.DatagramProtocol):
    """One socket of a relay: hands each datagram to ``on_datagram``."""

    def __init__(self, on_datagram: Callable[[bytes, Address], None]) -> None:
        self.on_datagram = on_datagram
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast("asyncio.DatagramTransport", transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.on_datagram(data, addr)


class ImpairedRelay:
    """Client ↔ relay ↔ server over loopback, each direction through a link:
    ``uplink`` (client → server) and ``downlink`` (server → client)."""

    def __init__(self, server: Address, *, seed: int = 14) -> None:
        self.server = server
        self.client: Address | None = None
        #: The port the relay sends to the server from: the client's address as
        #: the server sees it (set by :meth:`start`).
        self.upstream_port = 0
        self._client_side = DatagramSide(self._from_client)
        self._server_side = DatagramSide(self._from_server)
        self.uplink = Link(self._to_server, seed=seed)
        self.downlink = Link(self._to_client, seed=seed + 1)

    async def start(self) -> int:
        """Bind both sides on loopback; the port clients send to."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: self._client_side, local_addr=("127.0.0.1", 0)
        )
        towards, _ = await loop.create_datagram_endpoint(
            lambda: self._server_side, local_addr=("127.0.0.1", 0)
        )
        deep_buffers(transport)
        deep_buffers(towards)
        self.upstream_port = int(towards.get_extra_info("sockname")[1])
        return int(transport.get_extra_info("sockname")[1])

    def _from_client(self, data: bytes, addr: Address) -> None:
        self.client = addr
        self.uplink.send(data)

    def _from_server(self, data: bytes, addr: Address) -> None:
        if self.client is not None:
            self.downlink.send(data)

    def _to_server(self, data: bytes) -> None:
        transport = self._server_side.transport
        if transport is not None and not transport.is_closing():
            transport.sendto(data, self.server)

    def _to_client(self, data: bytes) -> None:
        transport = self._client_side.transport
        if transport is not None and not transport.is_closing() and self.client:
            transport.sendto(data, self.client)

    def close(self) -> None:
        for side in (self._client_side, self._server_side):
            if side.transport is not None:
                side.transport.close()
