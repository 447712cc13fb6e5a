"""The staff console: the live queue and working a callback request."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes and background tasks on ``app``."""
