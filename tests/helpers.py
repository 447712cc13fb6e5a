"""Helpers shared by the tests: polling waits and form tokens."""

from __future__ import annotations

import asyncio
import re
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trustme
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from beeldbel.tokens import public_jwk

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def wait_for(
    predicate: Callable[[], bool | Awaitable[bool]],
    timeout: float = 5.0,  # noqa: ASYNC109
    message: str = "condition",
    interval: float = 0.02,
) -> None:
    """Poll ``predicate`` until true; fail with ``message`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        await asyncio.sleep(interval)


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
