"""The few ``/api/v1`` calls the example needs: the desk's topics and a new
callback request (see docs/api.md)."""

from __future__ import annotations

import uuid
from typing import Any

import aiohttp


class BeeldbelApi:
    """``/api/v1`` at ``base_url`` with one API key (``bb_<prefix>_<secret>``)."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, key: str):
        self._session = session
        self._base = base_url.rstrip("/") + "/api/v1"
        self._auth = {"Authorization": f"Bearer {key}"}

    async def topics(self) -> list[str]:
        """The desk's topic codes, so that none has to be hard-coded."""
        async with self._session.get(f"{self._base}/topics", headers=self._auth) as r:
            body = await _json(r, 200)
        return [str(topic["code"]) for topic in body["items"]]

    async def create_callback(self, request: dict[str, Any]) -> str:
        """Create a callback request; its reference (``BB-XXXX-XXXX``). The
        Idempotency-Key makes a retry after a time-out safe: send it again as is."""
        headers = {**self._auth, "Idempotency-Key": f"example-{uuid.uuid4()}"}
        url = f"{self._base}/callbacks"
        async with self._session.post(url, json=request, headers=headers) as r:
            body = await _json(r, 201)
        return str(body["reference"])


async def _json(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """The body of an expected answer; an RFC 9457 problem raises with its title."""
    body: dict[str, Any] = await response.json(content_type=None)
    if response.status != status:
        raise RuntimeError(f"{response.url}: {response.status} {body.get('title')}")
    return body
