"""The pilot's evidence: what citizens and staff think of a call (surveys).

Offers :func:`setup` for the survey pages.
"""

from aiohttp import web

from controlplane.pilot import exports, phone_surveys, surveys


def setup(app: web.Application) -> None:
    """The routes and background work of pilot."""
    surveys.setup(app)
    phone_surveys.setup(app)
    exports.setup(app)


__all__ = ["setup"]
