"""The integrator REST API under ``/api/v1``: callback requests, join links and
media tokens, API keys, idempotency and the OpenAPI description.

Offers :func:`setup` for the routes, and to the error middleware
:func:`is_api` and :func:`problem_response` (RFC 9457 problem details).
"""

from aiohttp import web

from controlplane.api import call_tokens, callbacks, listing, openapi, slots, topics
from controlplane.api.problems import is_api, problem_response


def setup(app: web.Application) -> None:
    """The routes and background work of api."""
    openapi.setup(app)
    callbacks.setup(app)
    listing.setup(app)
    call_tokens.setup(app)
    topics.setup(app)
    slots.setup(app)


__all__ = ["is_api", "problem_response", "setup"]
