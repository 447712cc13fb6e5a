"""Citizen pages: the callback form, its confirmation and the privacy statement."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes and background tasks on ``app``."""
