"""``GET /.well-known/jwks.json``: the public keys media nodes check join tokens with.

At start the control plane makes sure a signing key exists. The document is cached
briefly by clients, so a rotation reaches every media node within a minute; media
nodes also refetch when a token names a ``kid`` they do not know.
"""

from __future__ import annotations

from aiohttp import web

from controlplane.security import signing_keys
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB

#: Seconds a media node or proxy may cache the JWKS.
MAX_AGE = 60


def setup(app: web.Application) -> None:
    """Register the JWKS route and the first-key check at start-up."""
    app.router.add_get("/.well-known/jwks.json", serve_jwks, name="jwks")
    app.on_startup.append(_ensure_key)


async def _ensure_key(app: web.Application) -> None:
    await signing_keys.ensure_signing_key(app[DB], app[SECRET_KEY])


async def serve_jwks(request: web.Request) -> web.Response:
    document = await signing_keys.jwks(request.app[DB])
    return web.json_response(
        document,
        headers={"Cache-Control": f"public, max-age={MAX_AGE}"},
    )
