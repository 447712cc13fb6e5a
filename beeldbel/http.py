"""HTTP details both processes share."""

from __future__ import annotations

import errno
import re
from collections.abc import Mapping

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


#: How asyncio (and uvloop) word a listener that could not bind.
_BIND_FAILED = re.compile(r"bind on (UDP )?address \('([^']*)', (\d+)\): (.+)$")
_CANNOT_BIND = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)


def listen_failure(
    exc: OSError, keys: Mapping[int, str], udp_keys: Mapping[int, str] | None = None
) -> str | None:
    """The one line a start ends with when a listener could not bind: its address,
    the config key of its port (``keys`` for TCP, ``udp_keys`` for UDP) and why.
    None for any other OSError, which is no config problem and keeps its
    traceback."""
    found = _BIND_FAILED.search(str(exc))
    if exc.errno not in _CANNOT_BIND or found is None:
        return None
    udp, host, port, reason = found.groups()
    if udp:
        key = (udp_keys or {}).get(int(port), "UDP port")
        return f"cannot listen on {host}:{port}/udp ({key}): {reason}"
    key = keys.get(int(port), "port")
    return f"cannot listen on {host}:{port} ({key}): {reason}"
