"""Who may do what in /api/v1: the key, its rate limit and scopes, and the
requests it owns (another key's request does not exist for it)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.errors import Forbidden, NotFound
from controlplane.requests import parse_reference
from controlplane.security import api_keys as apikeys
from controlplane.security.api_keys import ApiKey
from controlplane.security.ratelimit import LIMITS
from controlplane.storage.database import DB
from controlplane.storage.schema import callback_requests

BASE = "/api/v1"


async def authorize(request: web.Request, *scopes: str) -> ApiKey:
    """The request's key, counted against its limit, with one of ``scopes``."""
    key = await apikeys.authenticate(
        request.app[DB], request.headers.get("Authorization")
    )
    await request.app[LIMITS].api_per_key.hit(str(key.id))
    if len(scopes) == 1:
        key.require(scopes[0])
    elif not set(scopes) & set(key.scopes):
        raise Forbidden(f"this API key lacks the scope {' or '.join(scopes)}")
    return key


def reference_of(request: web.Request) -> str:
    """The path's reference; :class:`NotFound` when it cannot be one."""
    reference = parse_reference(request.match_info["reference"])
    if reference is None:
        raise NotFound("no such callback request")
    return reference


async def own_request(request: web.Request, key: ApiKey) -> dict[str, Any]:
    """The path's request if ``key`` created it; otherwise :class:`NotFound`."""
    reference = reference_of(request)
    async with request.app[DB].read() as conn:
        return await select_own(conn, reference, key)


async def select_own(
    conn: AsyncConnection, reference: str, key: ApiKey
) -> dict[str, Any]:
    """The request if this key created it; otherwise :class:`NotFound`."""
    row = (
        await conn.execute(
            sa.select(callback_requests).where(
                callback_requests.c.reference == reference,
                callback_requests.c.api_key_id == key.id,
            )
        )
    ).first()
    if row is None:
        raise NotFound("no such callback request")
    return dict(row._mapping)


async def add_www_authenticate(
    request: web.Request, response: web.StreamResponse
) -> None:
    """``on_response_prepare``: a 401 says how to authenticate (RFC 6750)."""
    if response.status == 401 and request.path.startswith(f"{BASE}/"):
        challenge = 'Bearer realm="beeldbel"'
        if "Authorization" in request.headers:
            challenge += ', error="invalid_token"'
        response.headers.setdefault("WWW-Authenticate", challenge)
