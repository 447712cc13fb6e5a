"""The configuration the control plane was started with, as kept on its app."""

from __future__ import annotations

from aiohttp import web

from beeldbel.config import Config

CONFIG = web.AppKey("config", Config)
