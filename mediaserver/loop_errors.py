"""Peers that close while aiortc is still connecting them.

aiortc starts ``RTCPeerConnection.__connect`` as a task nobody awaits. When a
peer leaves (or is removed) while that task is between two transports, the task
ends with ``InvalidStateError: RTCIceTransport is closed`` and asyncio logs
"Task exception was never retrieved" with a traceback. For the media server this
is an ordinary event (a browser closed mid-negotiation), so it is counted, not
logged one by one; every other unretrieved exception keeps asyncio's handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiortc.exceptions import InvalidStateError

#: The qualified name of aiortc's connect coroutine (name-mangled method).
_CONNECT = "RTCPeerConnection.__connect"


def is_connect_aborted(context: dict[str, Any]) -> bool:
    """True for the unretrieved failure of a connect task whose peer closed."""
    future = context.get("future")
    if not isinstance(future, asyncio.Task):
        return False
    coro = future.get_coro()
    name = getattr(coro, "__qualname__", "")
    return name == _CONNECT and isinstance(context.get("exception"), InvalidStateError)


def count_connect_aborts(
    loop: asyncio.AbstractEventLoop, count: Callable[[], None]
) -> Callable[[], None]:
    """Route aborted connects on ``loop`` to ``count``; returns the undo."""
    previous = loop.get_exception_handler()

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if is_connect_aborted(context):
            count()
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handle)
    return lambda: loop.set_exception_handler(previous)
