"""Slow clients cannot hold the control plane's connections: one that has not
sent a whole request within ``[server] header_timeout_seconds`` is closed, while
normal requests keep being answered (the real process, over HTTPS)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import trickle_headers, wait_for
from tests.one_machine import beeldbel_run, run_config

pytestmark = pytest.mark.slow

TIMEOUT = 2
TRICKLERS = 30
PATIENCE = 12  # seconds a trickler keeps going before the test gives up on it


async def test_connections_that_trickle_headers_are_closed(tmp_path: Path):
    config, port, _media = run_config(
        tmp_path, server=f"header_timeout_seconds = {TIMEOUT}"
    )
    command = Path(sys.executable).parent / "beeldbel"
    async with (
        beeldbel_run(command, config, tmp_path) as started,
        aiohttp.ClientSession() as session,
    ):
        url = f"https://127.0.0.1:{port}/privacy"

        async def answered() -> int:
            async with session.get(url, ssl=started.tls) as response:
                return response.status

        async def up() -> bool:
            try:
                return await answered() == 200
            except aiohttp.ClientConnectionError:
                return False

        await wait_for(up, 30, "the control plane to answer")
        tricklers = [
            asyncio.create_task(trickle_headers(port, started.tls, PATIENCE))
            for _ in range(TRICKLERS)
        ]
        statuses = []
        while not all(t.done() for t in tricklers):
            statuses.append(await answered())
            await asyncio.wait(tricklers, timeout=0.5)
        open_for = [t.result() for t in tricklers]
    assert None not in open_for, f"still open after {PATIENCE} s: {open_for}"
    assert max(t for t in open_for if t is not None) < TIMEOUT + 3, open_for
    assert statuses, "no normal request was made"
    assert set(statuses) == {200}, statuses
