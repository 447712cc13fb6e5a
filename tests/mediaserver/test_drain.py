"""SIGTERM drains: no new rooms, readiness 503, calls go on until they end."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import aiohttp

from mediaserver.api import ROOMS
from mediaserver.app import drain
from tests.helpers import free_port, trickle_headers, wait_for
from tests.mediaserver.client import decodes, join
from tests.mediaserver.conftest import API_SECRET, create_room

AUTH = {"Authorization": f"Bearer {API_SECRET}"}


async def test_drain_keeps_calls_until_they_end(server, clients, token):
    await create_room(server)
    await join(clients, server, token, "agent", "a1")
    interpreter = await join(clients, server, token, "interpreter", "i1")
    await wait_for(lambda: decodes(interpreter), 20, "media flows")

    draining = asyncio.create_task(drain(server.app, timeout=30))
    await wait_for(lambda: server.app[ROOMS].draining, 1, "draining starts")
    assert (await server.get("/readyz")).status == 503
    refused = await server.post("/api/rooms", json={"room_id": "r2"}, headers=AUTH)
    assert refused.status == 503
    frames = interpreter.got("video")[0].frames
    await wait_for(
        lambda: interpreter.got("video")[0].frames > frames + 10, 10, "call goes on"
    )
    assert not draining.done()
    assert (await server.delete("/api/rooms/r1", headers=AUTH)).status == 204
    assert await asyncio.wait_for(draining, 5) is True


async def test_drain_gives_up_after_the_timeout(server, clients, token):
    await create_room(server)
    await join(clients, server, token, "agent", "a1")
    assert await drain(server.app, timeout=0.3) is False


async def test_sigterm_drains_the_process(tmp_path):
    """The real process: SIGTERM drains it and it exits 0 (readiness 503 while a
    call is still in progress is covered in-process above)."""
    port = free_port()
    env = {
        **os.environ,
        "BEELDBEL_MEDIASERVER_PORT": str(port),
        "BEELDBEL_MEDIASERVER_UDP_PORT": "0",
        "BEELDBEL_MEDIASERVER_API_SECRET": API_SECRET,
        "BEELDBEL_LOGGING_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediaserver",
        env=env,
        cwd=os.getcwd(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def status(path: str) -> int:
                try:
                    async with session.get(base + path) as response:
                        return response.status
                except aiohttp.ClientConnectionError:
                    return 0

            async def ready() -> bool:
                return await status("/readyz") == 200

            await wait_for(ready, 30, "the media server to be ready")
            async with session.post(
                base + "/api/rooms", json={"room_id": "r1"}, headers=AUTH
            ) as response:
                assert response.status == 201
            process.send_signal(signal.SIGTERM)
            # an empty room is no call in progress: the worker drains at once
            assert await asyncio.wait_for(process.wait(), 10) == 0
        assert process.stdout is not None
        log = (await process.stdout.read()).decode()
        assert "media_worker_draining" in log
        assert '"drained": true' in log
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_workers_are_separate_processes_that_drain_on_sigterm():
    """workers = 2: two processes on port and port + 1; SIGTERM stops both."""
    port = free_port(2)
    env = {
        **os.environ,
        "BEELDBEL_MEDIASERVER_PORT": str(port),
        "BEELDBEL_MEDIASERVER_UDP_PORT": str(free_port(2)),
        "BEELDBEL_MEDIASERVER_WORKERS": "2",
        "BEELDBEL_MEDIASERVER_API_SECRET": API_SECRET,
        "BEELDBEL_LOGGING_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mediaserver",
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:

            async def ready(p: int) -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{p}/readyz") as reply:
                        return reply.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            async def both_ready() -> bool:
                return await ready(port) and await ready(port + 1)

            # two processes importing aiortc on a busy machine
            await wait_for(both_ready, 30, "both worker processes to be ready")
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_connections_that_trickle_headers_are_closed():
    """The media server's listener closes a connection that has not sent a whole
    request within ``[mediaserver] header_timeout_seconds``; others are served."""
    port = free_port()
    env = {
        **os.environ,
        "BEELDBEL_MEDIASERVER_PORT": str(port),
        "BEELDBEL_MEDIASERVER_UDP_PORT": "0",
        "BEELDBEL_MEDIASERVER_API_SECRET": API_SECRET,
        "BEELDBEL_MEDIASERVER_HEADER_TIMEOUT_SECONDS": "2",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "mediaserver"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/readyz") as r:
                        return r.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(ready, 30, "the media server to be ready")
            slow = [
                asyncio.create_task(trickle_headers(port, None, 12)) for _ in range(10)
            ]
            answered = []
            while not all(t.done() for t in slow):
                answered.append(await ready())
                await asyncio.wait(slow, timeout=0.5)
        open_for = [t.result() for t in slow]
        assert None not in open_for, f"still open after 12 s: {open_for}"
        assert max(t for t in open_for if t is not None) < 5, open_for
        assert answered, "no normal request was made"
        assert all(answered), answered
    finally:
        process.kill()
        await process.wait()
