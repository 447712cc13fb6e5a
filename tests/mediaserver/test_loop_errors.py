"""A peer that closes while aiortc is connecting it is counted, not logged with a
traceback; other unretrieved task errors keep asyncio's own report."""

from __future__ import annotations

import asyncio
import gc
import logging

from aiortc import RTCPeerConnection

from tests.helpers import wait_for


def aborted_count(registry) -> float:
    value = registry.get_sample_value("beeldbel_media_peer_connect_aborted_total")
    return value or 0.0


async def connect_then_close_its_transport() -> None:
    """aiortc's connect task meets an ICE transport closed under it: the same
    failure as a browser leaving mid-negotiation (seen in a CI run)."""
    offerer, answerer = RTCPeerConnection(), RTCPeerConnection()
    offerer.addTransceiver("audio")
    await offerer.setLocalDescription(await offerer.createOffer())
    await answerer.setRemoteDescription(offerer.localDescription)
    await answerer.setLocalDescription(await answerer.createAnswer())
    # schedules the connect task; it has not run yet when this returns
    await offerer.setRemoteDescription(answerer.localDescription)
    await offerer.getTransceivers()[0].receiver.transport.transport.stop()
    await offerer.close()
    await answerer.close()


async def test_a_connect_aborted_by_close_is_counted_without_a_traceback(
    server, registry, caplog
):
    caplog.set_level(logging.ERROR)
    await connect_then_close_its_transport()

    def counted() -> bool:
        gc.collect()  # asyncio reports an unretrieved error when the task dies
        return aborted_count(registry) >= 1

    await wait_for(counted, 10, "the aborted connect was not counted")
    assert not [r for r in caplog.records if r.exc_info], caplog.text


async def test_other_unretrieved_errors_are_still_reported(server, caplog):
    caplog.set_level(logging.ERROR)

    async def fails() -> None:
        raise RuntimeError("not an aborted connect")

    task = asyncio.ensure_future(fails())
    await asyncio.sleep(0)  # let it fail
    del task

    def reported() -> bool:
        gc.collect()
        return any("never retrieved" in r.getMessage() for r in caplog.records)

    await wait_for(reported, 5, "asyncio's report of the error went missing")


async def test_the_handler_is_removed_when_the_worker_stops(make_server):
    loop = asyncio.get_running_loop()
    before = loop.get_exception_handler()
    server = await make_server()
    assert loop.get_exception_handler() is not before
    await server.close()
    assert loop.get_exception_handler() is before
