"""Neither process tells a client its Python or aiohttp version (``Server``)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


def _process_env(**settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")}
    env["BEELDBEL_LOGGING_FORMAT"] = "json"
    env |= {f"BEELDBEL_{k.upper()}": v for k, v in settings.items()}
    return env


async def _raw(port: int, request: bytes) -> str:
    """The head of the answer to ``request`` (bytes as sent, maybe malformed)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    writer.close()
    return head.decode("latin-1")


def _server_of(head: str) -> str:
    for line in head.split("\r\n"):
        name, _, value = line.partition(":")
        if name.lower() == "server":
            return value.strip()
    return ""


@pytest.mark.parametrize("process", ["controlplane", "mediaserver"])
async def test_real_processes_do_not_disclose_their_versions(
    tmp_path: Path, process: str
) -> None:
    """Also not on the 400 aiohttp's parser gives to a malformed request, which
    no application hook sees."""
    port = free_port()
    env = _process_env(
        server_port=str(port),
        server_data_dir=str(tmp_path),
        tls_enabled="false",
        metrics_port="0",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}",
        mediaserver_port=str(port),
        mediaserver_udp_port="0",
        mediaserver_api_secret="a-media-api-secret-for-this-test",
    )
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", process),
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    seen: dict[str, str] = {}
    try:

        async def answered(name: str, request: bytes) -> bool:
            try:
                seen[name] = _server_of(await _raw(port, request))
            except OSError:
                return False
            return True

        path = "/healthz" if process == "mediaserver" else "/"
        get = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        await wait_for(lambda: answered("page", get), 30, f"{process} to answer")
        assert await answered("missing", b"GET /no-such HTTP/1.1\r\nHost: x\r\n\r\n")
        assert await answered("malformed", b"GARBAGE\r\n\r\n")
    finally:
        child.terminate()
        await asyncio.wait_for(child.wait(), 30)
    assert set(seen) == {"page", "missing", "malformed"}
    for server in seen.values():
        _no_version(server)
