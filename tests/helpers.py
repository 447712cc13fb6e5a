"""Helpers shared by the tests: polling waits and form tokens."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

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
