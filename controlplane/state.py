"""Typed keys for what the control plane keeps on its ``web.Application``."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from common.config import Config
from controlplane.desk import Desk
from controlplane.i18n import Catalog
from controlplane.live import QueueEvents
from controlplane.metrics import Metrics
from controlplane.ratelimit import RateLimit
from controlplane.storage.database import Database


@dataclass(slots=True)
class Limits:
    intake_per_ip: RateLimit
    intake_global: RateLimit
    login_per_ip: RateLimit
    api_per_key: RateLimit


CONFIG = web.AppKey("config", Config)
DB = web.AppKey("db", Database)
METRICS = web.AppKey("metrics", Metrics)
CATALOG = web.AppKey("catalog", Catalog)
LIMITS = web.AppKey("limits", Limits)
DESK = web.AppKey("desk", Desk)
QUEUE_EVENTS = web.AppKey("queue_events", QueueEvents)
SECRET_KEY = web.AppKey("secret_key", bytes)
