"""A real webhook receiver for tests: an aiohttp server on loopback that answers
with scripted statuses and records every request it got."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from controlplane.security.api_keys import create_api_key_with_id
from controlplane.storage.database import Database
from controlplane.webhooks import EVENT_TYPES, Endpoint, add_endpoint

SECRET_KEY = b"k" * 32


@dataclass
class Receiver:
    """Answers the n-th request with ``statuses[n]`` (the last one after)."""

    statuses: Sequence[int] = (200,)
    got: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    server: TestServer | None = None

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        index = min(len(self.got), len(self.statuses) - 1)
        self.got.append((dict(request.headers), body))
        return web.Response(status=self.statuses[index])

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.handle)
        return app

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hook"))

    def types(self) -> list[str]:
        import json

        return [json.loads(body)["type"] for _headers, body in self.got]


async def start(aiohttp_server: Any, receiver: Receiver) -> Receiver:
    receiver.server = await aiohttp_server(receiver.app(), host="127.0.0.1")
    return receiver


async def integrator(
    db: Database,
    url: str,
    types: Sequence[str] = EVENT_TYPES,
    *,
    allow_private: bool = True,
) -> tuple[int, Endpoint, str]:
    """An API key with one endpoint at ``url``: (key id, endpoint, secret)."""
    _key, key_id, endpoint, secret = await integrator_with_key(
        db, url, types, allow_private=allow_private
    )
    return key_id, endpoint, secret


async def integrator_with_key(
    db: Database,
    url: str,
    types: Sequence[str] = EVENT_TYPES,
    *,
    allow_private: bool = True,
) -> tuple[str, int, Endpoint, str]:
    """:func:`integrator`, with the full API key first."""
    key, key_id = await create_api_key_with_id(db, "CRM", ("callbacks:write",))
    prefix = key.split("_")[1]
    endpoint, secret = await add_endpoint(
        db, SECRET_KEY, prefix, url, tuple(types), allow_private=allow_private
    )
    return key, key_id, endpoint, secret
