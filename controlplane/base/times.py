"""Times as the pages, streams and API give them to browsers and programs."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(moment: datetime) -> str:
    """``moment`` in UTC as ``YYYY-MM-DDTHH:MM:SSZ`` (HTML ``datetime``, JSON)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
