"""The pilot's evidence: what citizens and staff think of a call (surveys).

Offers :func:`setup` for the survey pages.
"""

from aiohttp import web

from controlplane.pilot import exports, surveys


def setup(app: web.Application) -> None:
    """The routes and background work of pilot."""
    surveys.setup(app)
    exports.setup(app)


__all__ = ["setup"]
