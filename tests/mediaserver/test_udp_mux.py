"""The shared UDP port's demultiplexer, without peers: real datagrams on loopback,
read by the C drain and by the Python one."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import pytest
from aioice import Connection, stun

from mediaserver import _fastpath, udp_mux
from mediaserver.udp_mux import UdpMux
from tests.helpers import wait_for


def binding_request(username: str, key: bytes) -> bytes:
    request = stun.Message(
        message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST
    )
    request.attributes["USERNAME"] = username
    request.attributes["PRIORITY"] = 1
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(key)
    request.add_fingerprint()
    return bytes(request)


@pytest.fixture(
    params=[(True, 0.0), (True, 0.001), (False, 0.0), (False, 0.001)],
    ids=["c-drain", "c-drain-window", "python-drain", "python-drain-window"],
)
async def mux(request: pytest.FixtureRequest) -> AsyncIterator[UdpMux]:
    fast, window = request.param
    mux = UdpMux("127.0.0.1", fast=fast, batch_window=window)
    await mux.bind("127.0.0.1", 0)
    yield mux
    mux.close()


def sender() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


async def test_new_address_is_remembered_only_after_message_integrity(mux: UdpMux):
    connection = Connection(ice_controlling=False)
    mux.adopt(connection)
    await connection.gather_candidates()
    (candidate,) = connection.local_candidates
    assert (candidate.host, candidate.port) == ("127.0.0.1", mux.port)
    username = f"{connection.local_username}:remote"
    target = ("127.0.0.1", mux.port)

    with sender() as forger, sender() as peer, sender() as stranger:
        forger.sendto(binding_request(username, b"not the password"), target)
        genuine = binding_request(username, connection.local_password.encode())
        peer.sendto(genuine, target)
        await wait_for(lambda: len(mux._by_address) == 1, 5, "the peer is known")
        assert list(mux._by_address) == [peer.getsockname()]

        stranger.sendto(b"\x80" + bytes(20), target)
        await wait_for(lambda: mux.unknown_datagrams == 1, 5, "unknown counted")
        # a burst: with a batch window the first wakes the loop, the rest wait
        # for the window's timer; none is lost either way
        for _ in range(50):
            stranger.sendto(b"\x80" + bytes(20), target)
        await wait_for(lambda: mux.unknown_datagrams == 51, 5, "the burst read")
    await connection.close()
    assert mux.peer_count == 0


class FrozenClock:
    """udp_mux's clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


async def test_a_late_window_timer_turns_the_window_off_for_a_while(monkeypatch):
    # on a contended core the loop gets the CPU back late; sleeping another
    # window then only adds a wait, so a late timer turns the window off
    clock = FrozenClock()
    monkeypatch.setattr(udp_mux, "time", clock)
    arms: list[int] = []
    arm = _fastpath.arm
    late_by = 0.0

    def arm_then_stall(fd: int, microseconds: int) -> None:
        arms.append(microseconds)
        arm(fd, microseconds)
        clock.now += late_by  # the loop gets the core back this much later

    monkeypatch.setattr(_fastpath, "arm", arm_then_stall)
    mux = UdpMux("127.0.0.1", batch_window=0.001)
    await mux.bind("127.0.0.1", 0)
    target = ("127.0.0.1", mux.port)

    async def send(count: int) -> None:
        stranger.sendto(b"\x80" + bytes(20), target)
        await wait_for(lambda: mux.unknown_datagrams == count, 5, f"{count} read")

    with sender() as stranger:
        await send(1)
        await send(2)
        assert arms == [1000, 1000]  # a punctual loop: a window after each read
        late_by = 0.05
        await send(3)  # its window's timer fires 50 ms late
        late_by = 0.0
        await send(4)
        await send(5)
        assert arms == [1000] * 3  # read as they come, no window
        clock.now += udp_mux.LATE_HOLD
        await send(6)
        assert arms == [1000] * 4  # punctual again: the window is back
    mux.close()
