"""The replicated desk on one machine (issue 10, item 6): two control planes behind
a real HAProxy, on one PostgreSQL and one Redis, with two media nodes, all real
processes (:mod:`tests.deploy.replicas`). What one replica does, the other sees;
what a replica or a media node loses, the desk survives."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.deploy.replicas import Deployment, deployment, next_event

pytestmark = [pytest.mark.postgres, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def desk(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Deployment]:
    tmp: Path = tmp_path_factory.mktemp("replicas")
    async with deployment(tmp) as system:
        yield system


async def test_a_request_made_on_a_shows_live_on_a_console_of_b(desk: Deployment):
    """The console's event stream on replica B gets the request submitted through
    replica A, without a reload."""
    agent = desk.browser("b")
    await agent.sign_in("console.agent", await desk.add_staff("console.agent"))
    stream = await agent.get("/staff/queue/events", Accept="text/event-stream")
    assert stream.status == 200
    assert stream.headers["X-Served-By"] == "b"
    first = await asyncio.wait_for(next_event(stream), 10)
    assert first is not None
    assert first.name == "rows"

    citizen = desk.browser("a")
    reference = await citizen.submit_request()
    assert reference not in first.data["references"]

    async def rows_with_reference() -> None:
        while True:
            event = await next_event(stream)
            assert event is not None, "the console's stream ended"
            if event.name == "rows" and reference in event.data["references"]:
                assert reference in event.data["html"]
                return

    await asyncio.wait_for(rows_with_reference(), 10)
    stream.close()
