"""HTTP details both processes share."""

from __future__ import annotations

from aiohttp import web, web_response

#: What the ``Server`` header says instead of aiohttp's ``Python/3.x aiohttp/3.x``.
SERVER = "Beeldbel"


async def hide_server_version(
    _request: web.Request, response: web.StreamResponse
) -> None:
    """``on_response_prepare`` hook: no Python or aiohttp version in ``Server``
    (aiohttp only fills it in when a response has none)."""
    response.headers["Server"] = SERVER


def quiet_server_header() -> None:
    """The same for the answers aiohttp gives by itself (a 400 to a request its
    parser refuses), which no application hook sees: they take ``Server`` from
    this module's global. Each process calls it once at start."""
    web_response.SERVER_SOFTWARE = SERVER  # type: ignore[attr-defined]
