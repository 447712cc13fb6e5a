"""The shared UDP port's demultiplexer, without peers: real datagrams on loopback,
read by the C drain and by the Python one."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import AsyncIterator

import pytest
from aioice import Connection, stun

from mediaserver import udp_mux
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


def test_the_thread_that_binds_asks_the_kernel_for_short_slices():
    # on a contended core the fair scheduler then runs the loop sooner after a
    # wake-up (bench/busy_core.py); a thread of its own keeps the test's as is
    seen: list[int | None] = []

    async def bind() -> None:
        udp_mux.set_scheduler_slice(3_000_000)  # threads inherit it
        seen.append(udp_mux.scheduler_slice())
        mux = UdpMux("127.0.0.1")
        await mux.bind("127.0.0.1", 0)
        seen.append(udp_mux.scheduler_slice())
        mux.close()

    thread = threading.Thread(target=asyncio.run, args=(bind(),))
    thread.start()
    thread.join()
    before, after = seen
    if before is None:
        pytest.skip("no sched_getattr here")
    assert before == 3_000_000
    assert after == udp_mux.SCHEDULER_SLICE_NS
