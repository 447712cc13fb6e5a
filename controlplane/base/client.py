"""Who is calling: the client's address as the configured proxies report it."""

from __future__ import annotations

from aiohttp import web

from controlplane.base.settings import CONFIG


def client_ip(request: web.Request) -> str:
    """The caller's address for rate limits only (hashed there; never logged)."""
    hops = request.app[CONFIG].server.trusted_proxies
    if hops:
        forwarded = [
            p.strip() for p in request.headers.get("X-Forwarded-For", "").split(",")
        ]
        if len(forwarded) >= hops and forwarded[-hops]:
            return forwarded[-hops]
    return request.remote or "unknown"
