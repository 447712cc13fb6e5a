"""Slow clients cannot hold the control plane's connections: one that has not
sent a whole request within ``[server] header_timeout_seconds`` is closed, while
normal requests keep being answered (the real process, over HTTPS)."""

from __future__ import annotations

import asyncio
import ssl
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import wait_for
from tests.one_machine import beeldbel_run, run_config

pytestmark = pytest.mark.slow

TIMEOUT = 2
TRICKLERS = 30
PATIENCE = 12  # seconds a trickler keeps going before the test gives up on it


async def _trickle(port: int, tls: ssl.SSLContext) -> float | None:
    """Send a request's header lines one a second; when the server closes the
    connection, how long it was open (None if it never was closed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    opened = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        for line in range(PATIENCE):
            writer.write(f"X-Slow-{line}: a\r\n".encode())
            await writer.drain()
            try:
                # the trickle's pace: one header line a second
                if await asyncio.wait_for(reader.read(1024), 1.0) == b"":
                    return time.monotonic() - opened
            except TimeoutError:
                continue
    except (ConnectionError, OSError):
        return time.monotonic() - opened
    finally:
        writer.close()
    return None


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
            asyncio.create_task(_trickle(port, started.tls)) for _ in range(TRICKLERS)
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
