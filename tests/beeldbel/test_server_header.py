"""Neither process tells a client its Python or aiohttp version (``Server``)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import aiohttp

from beeldbel.config import Config
from tests.helpers import free_port, wait_for


def _no_version(server: str) -> None:
    assert "Python" not in server, server
    assert "aiohttp" not in server.lower(), server


async def test_control_plane_does_not_disclose_its_versions(
    aiohttp_client: Any, make_config: Callable[..., Config], sqlite_url: str
) -> None:
    from controlplane.app.factory import create_app

    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    for path in ("/", "/no-such-page", "/staff"):
        response = await client.get(path, allow_redirects=False)
        _no_version(response.headers.get("Server", ""))


async def test_media_server_does_not_disclose_its_versions() -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")}
    env |= {
        "BEELDBEL_MEDIASERVER_PORT": str(port),
        "BEELDBEL_MEDIASERVER_UDP_PORT": "0",
        "BEELDBEL_MEDIASERVER_API_SECRET": "a-media-api-secret-for-this-test",
        "BEELDBEL_LOGGING_FORMAT": "json",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "mediaserver"),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    seen: dict[str, str] = {}
    try:
        async with aiohttp.ClientSession() as session:

            async def answered(path: str) -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}{path}") as r:
                        seen[path] = r.headers.get("Server", "")
                        return True
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(lambda: answered("/healthz"), 30, "the media server")
            for path in ("/no-such-path", "/api/rooms/x"):
                assert await answered(path)
    finally:
        process.terminate()
        await asyncio.wait_for(process.wait(), 30)
    for server in seen.values():
        _no_version(server)
