"""Readable text for the console's codes and times in the staff member's
language, and the ISO form of a time for ``<time datetime>``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from controlplane.base.i18n import CATALOG, request_language
from controlplane.requests import DESK, Request


class Labels:
    """Readable text for codes and times in the staff's language."""

    def __init__(self, request: web.Request) -> None:
        self.lang = request_language(request)
        self._catalog = request.app[CATALOG]
        self._desk = request.app[DESK]
        self._tz = ZoneInfo(self._desk.current.timezone)

    def t(self, key: str, **params: Any) -> str:
        return self._catalog.get(key, self.lang, **params)

    def topic(self, code: str) -> str:
        topic = self._desk.topic(code)
        return topic.label(self.lang) if topic is not None else code

    def needs(self, codes: tuple[str, ...]) -> list[str]:
        return [self.t(f"console_need_{code}") for code in codes]

    def local(self, moment: datetime) -> str:
        return moment.astimezone(self._tz).strftime("%d-%m-%Y %H:%M")

    def moment(self, item: Request) -> str:
        """When the citizen wants to be called."""
        if item.preferred == "slot" and item.slot_start is not None:
            return self.local(item.slot_start)
        return self.t("console_preferred_asap")

    def duration(self, seconds: float) -> str:
        minutes = int(seconds // 60)
        if minutes < 1:
            return self.t("console_duration_under_minute")
        if minutes < 60:
            return self.t("console_duration_minutes", m=minutes)
        if minutes < 24 * 60:
            return self.t("console_duration_hours", h=minutes // 60, m=minutes % 60)
        return self.t(
            "console_duration_days", d=minutes // 1440, h=minutes % 1440 // 60
        )

    def waiting(self, item: Request, now: datetime) -> str:
        """How long the request has been due, or how soon it will be."""
        seconds = (now - item.due_at).total_seconds()
        if seconds < 0:
            return self.t("console_due_in", time=self.duration(-seconds))
        return self.duration(seconds)
