"""The integrator REST API under ``/api/v1``: callback requests, join links and
media tokens, API keys, idempotency and the OpenAPI description.

Offers :func:`setup` for the routes.
"""

from aiohttp import web

from controlplane.api import call_tokens, callbacks


def setup(app: web.Application) -> None:
    """The routes and background work of api."""
    callbacks.setup(app)
    call_tokens.setup(app)


__all__ = ["setup"]
