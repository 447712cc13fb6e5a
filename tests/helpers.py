"""Helpers shared by the tests: polling waits, free ports, server-sent events, form
tokens, a JWKS."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import random
import re
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from beeldbel.tokens import public_jwk

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def wait_for(
    predicate: Callable[[], object],
    timeout: float = 5.0,  # noqa: ASYNC109 (a polling helper: the timeout is the point)
    message: str | Callable[[], str] = "condition",
    interval: float = 0.05,
) -> None:
    """Poll ``predicate`` (plain or async; any truthy result counts) until it holds;
    fail with ``message`` after ``timeout`` s. ``message`` may be a callable, for a
    failure text built from what the predicate saw last."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout}s waiting for {text}")
        await asyncio.sleep(interval)


def free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing is bound to right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# Ports handed out in this process, so two calls never give the same one.
_HANDED_OUT: set[int] = set()


def free_port(count: int = 1) -> int:
    """The first of ``count`` consecutive TCP ports on 127.0.0.1 that nothing uses
    right now, for a server that binds them a moment later.

    Chosen outside the kernel's ephemeral range: an outgoing connection takes its
    local port from that range (even ports; ``bind`` to port 0 hands out odd ones),
    so a port from it could be taken by any connection before the server binds it,
    such as a media server's second worker on ``port + 1``. A start test with two
    workers failed once in CI that way, as far as can be told (nothing was logged)."""
    low, high = _ephemeral_range()
    # below the range (as on this machine: 32768-60999), else above it
    first, last = (
        (10_000, low - count) if low - count > 10_000 else (high + 1, 65_536 - count)
    )
    if first >= last:
        raise RuntimeError(f"no ports outside the ephemeral range {low}-{high}")
    while True:
        port = random.randrange(first, last)
        ports = range(port, port + count)
        if _HANDED_OUT.isdisjoint(ports) and all(map(_bindable, ports)):
            _HANDED_OUT.update(ports)
            return port


def _ephemeral_range() -> tuple[int, int]:
    """This network namespace's ephemeral port range."""
    text = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text(encoding="ascii")
    low, high = text.split()
    return int(low), int(high)


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def read_event(response: Any, name: str) -> dict[str, Any]:
    """The next ``name`` event on an event stream (other events are skipped)."""
    event, data = "", []
    while True:
        line = (await response.content.readline()).decode()
        assert line, "the event stream ended"
        line = line.rstrip("\n")
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line:
            if event == name:
                parsed: dict[str, Any] = json.loads("\n".join(data))
                return parsed
            event, data = "", []


def csrf_from(html: str) -> str:
    """The CSRF token in a rendered form."""
    match = _CSRF.search(html)
    assert match, "page has no csrf_token field"
    return match.group(1)


async def serve_jwks(
    aiohttp_server: Any, public_key: Ed25519PublicKey, directory: Path
) -> tuple[str, str]:
    """The control plane's JWKS (one key, ``kid`` k1) on a real HTTPS server with a
    trustme CA; returns the JWKS URL and the CA file a verifier must trust."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = directory / "jwks-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    jwks = {"keys": [public_jwk(public_key, "k1")]}

    async def serve(_request: web.Request) -> web.Response:
        return web.json_response(jwks)

    app = web.Application()
    app.router.add_get("/jwks.json", serve)
    server = await aiohttp_server(app, ssl=server_ctx)
    return f"https://127.0.0.1:{server.port}/jwks.json", str(ca_file)


async def beeldbel_cli(config: Path, *args: str) -> tuple[int, str]:
    """``python -m beeldbel.cli --config CONFIG ARGS`` as a real process: its exit
    code and what it printed (stdout and stderr together). Only the config file
    configures it: ``BEELDBEL_*`` variables of the test run (such as
    a developer's, unknown to the config) are not passed on."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "beeldbel.cli", "--config", str(config), *args),
        env={k: v for k, v in os.environ.items() if not k.startswith("BEELDBEL_")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), 60)
    except TimeoutError:
        # a command that should have stopped must not outlive the test, nor
        # must the processes it started (a media server's workers)
        os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, out.decode()


async def trickle_headers(
    port: int, tls: ssl.SSLContext | None, patience: int
) -> float | None:
    """A slow client: send a request's header lines to 127.0.0.1:``port``, one a
    second for ``patience`` seconds; how long the connection was open when the
    server closed it (None if it never did)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
    opened = time.monotonic()
    writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    try:
        for line in range(patience):
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
