"""HTTP details both processes share."""

from __future__ import annotations

from aiohttp import web

#: What the ``Server`` header says instead of aiohttp's ``Python/3.x aiohttp/3.x``.
SERVER = "Beeldbel"


async def hide_server_version(
    _request: web.Request, response: web.StreamResponse
) -> None:
    """``on_response_prepare`` hook: no Python or aiohttp version in ``Server``
    (aiohttp only fills it in when a response has none)."""
    response.headers["Server"] = SERVER
