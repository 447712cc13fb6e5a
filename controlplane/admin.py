"""Admin pages: users and roles, topics, opening hours, the audit log."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Register this module's routes and background tasks on ``app``."""
