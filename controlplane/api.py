"""The integrator REST API under /api/v1."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes and background tasks on ``app``."""
