"""The test network impairment (tests/impairment.py) does what it says, through
real UDP sockets on loopback: the cap's throughput, its drop-tail queue, random
and bursty loss, delay with jitter that keeps order, and a rate change under way.
Packets are sent in one burst and timed as they arrive; nothing sleeps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator

import pytest

from tests.helpers import wait_for
from tests.impairment import ImpairedRelay, Impairment, deep_buffers

SIZE = 1000  # bytes per packet, like a video RTP packet


class Receiver(asyncio.DatagramProtocol):
    """The far end: when each packet (numbered in its first 4 bytes) arrived."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, float]] = []
        self.senders: set[tuple[str, int]] = set()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.senders.add(addr)
        loop = asyncio.get_running_loop()
        self.arrivals.append((int.from_bytes(data[:4], "big"), loop.time()))


@pytest.fixture
async def path() -> AsyncIterator[
    tuple[ImpairedRelay, asyncio.DatagramTransport, Receiver]
]:
    loop = asyncio.get_running_loop()
    receiver = Receiver()
    server, _ = await loop.create_datagram_endpoint(
        lambda: receiver, local_addr=("127.0.0.1", 0)
    )
    deep_buffers(server)
    relay = ImpairedRelay(server.get_extra_info("sockname"))
    port = await relay.start()
    sender, _ = await loop.create_datagram_endpoint(
        asyncio.DatagramProtocol, remote_addr=("127.0.0.1", port)
    )
    deep_buffers(sender)
    yield relay, sender, receiver
    sender.close()
    relay.close()
    server.close()


def burst(sender: asyncio.DatagramTransport, count: int) -> float:
    """Send ``count`` numbered packets at once; when they left."""
    for n in range(count):
        sender.sendto(n.to_bytes(4, "big") + bytes(SIZE - 4))
    return asyncio.get_running_loop().time()


async def settled(relay: ImpairedRelay, receiver: Receiver, count: int) -> None:
    """Every packet the uplink let through has arrived."""
    link = relay.uplink.counts

    def done() -> bool:
        handled = link.passed + link.lost + link.overflowed
        return handled == count and len(receiver.arrivals) == link.passed

    await wait_for(done, 15, "the burst to pass the link")


async def test_the_cap_paces_the_burst_and_drops_what_overflows(path) -> None:
    relay, sender, receiver = path
    relay.uplink.impairment = Impairment(rate_bps=800_000, queue_bytes=100_000)
    burst(sender, 200)
    await settled(relay, receiver, 200)
    counts = relay.uplink.counts
    # a 100 kB queue holds 100 packets of 1000 bytes: the rest overflow
    assert counts.passed == 100
    assert counts.overflowed == 100
    times = [t for _, t in receiver.arrivals]
    rate = (len(times) - 1) * SIZE * 8 / (times[-1] - times[0])
    print(f"capped at 800 kbit/s: measured {rate / 1000:.0f} kbit/s")
    assert 700_000 < rate < 900_000


async def test_random_loss_takes_its_share(path) -> None:
    relay, sender, receiver = path
    relay.uplink.impairment = Impairment(loss=0.1)
    burst(sender, 2000)
    await settled(relay, receiver, 2000)
    lost = relay.uplink.counts.lost / 2000
    print(f"10 % random loss: lost {lost:.1%}")
    assert 0.07 < lost < 0.13


async def test_bursty_loss_comes_in_runs(path) -> None:
    relay, sender, receiver = path
    relay.uplink.impairment = Impairment(burst_enter=0.02, burst_leave=0.25)
    burst(sender, 3000)
    await settled(relay, receiver, 3000)
    got = {n for n, _ in receiver.arrivals}
    runs = list(_runs(n not in got for n in range(3000)))
    mean_run = sum(runs) / len(runs)
    print(f"bursty loss: {len(runs)} runs, mean length {mean_run:.1f}")
    assert mean_run > 2.5  # random loss at the same rate gives runs of about 1


async def test_delay_and_jitter_keep_the_order(path) -> None:
    relay, sender, receiver = path
    relay.uplink.impairment = Impairment(delay=0.08, jitter=0.03)
    sent = burst(sender, 50)
    await settled(relay, receiver, 50)
    numbers = [n for n, _ in receiver.arrivals]
    assert numbers == sorted(numbers)
    first = receiver.arrivals[0][1] - sent
    print(f"80 ms ± 30 ms: the first packet after {first * 1000:.0f} ms")
    assert 0.045 < first < 0.2  # no less than the delay less the jitter


async def test_the_rate_can_drop_and_come_back_under_way(path) -> None:
    relay, sender, receiver = path
    relay.uplink.impairment = Impairment(rate_bps=2_000_000, queue_bytes=400_000)
    burst(sender, 100)
    await settled(relay, receiver, 100)
    fast = _rate(receiver.arrivals[-100:])
    relay.uplink.impairment.rate_bps = 300_000
    burst(sender, 40)
    await settled(relay, receiver, 140)
    slow = _rate(receiver.arrivals[-40:])
    print(f"2 Mbit/s then 300 kbit/s: {fast / 1000:.0f}, then {slow / 1000:.0f}")
    assert 1_700_000 < fast < 2_300_000
    assert 250_000 < slow < 350_000


async def test_the_server_sees_the_relays_upstream_port(path) -> None:
    """What a far end learns as the client's address (as behind a NAT)."""
    relay, sender, receiver = path
    burst(sender, 3)
    await settled(relay, receiver, 3)
    assert receiver.senders == {("127.0.0.1", relay.upstream_port)}


def _rate(arrivals: list[tuple[int, float]]) -> float:
    times = [t for _, t in arrivals]
    return (len(times) - 1) * SIZE * 8 / (times[-1] - times[0])


def _runs(lost: Iterable[bool]) -> Iterator[int]:
    """The lengths of the runs of True."""
    run = 0
    for gone in lost:
        if gone:
            run += 1
        elif run:
            yield run
            run = 0
    if run:
        yield run
