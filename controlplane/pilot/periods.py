"""The period a page of figures covers: today, the last 7 days, the whole pilot or
a chosen range of the desk's days (its time zone), read from a query string.

The dashboard, the exports and the report choose their period here, so the same
query string gives the same figures on each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

#: The choices of ``?period=``; ``range`` takes ``from`` and ``to`` (YYYY-MM-DD).
KINDS = ("today", "7d", "pilot", "range")
#: A range longer than this is refused (its per-day tables would be unreadable).
MAX_DAYS = 731
#: Days outside these are refused: at the ends of the calendar a day's midnight
#: in the desk's zone is no longer a datetime.
FIRST_DAY, LAST_DAY = date(2000, 1, 1), date(2099, 12, 31)


class PeriodError(ValueError):
    """A query string that names no period; ``field`` is the form field at fault
    and ``key`` the translation key of the message."""

    def __init__(self, field: str, key: str) -> None:
        super().__init__(f"{field}: {key}")
        self.field = field
        self.key = key


@dataclass(frozen=True, slots=True)
class Period:
    """The desk's days ``first`` to ``last`` (both included) in time zone ``zone``."""

    first: date
    last: date
    zone: str
    kind: str = "range"

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise PeriodError("to", "pilot_error_range_order")
        if (self.last - self.first).days >= MAX_DAYS:
            raise PeriodError("to", "pilot_error_range_long")

    @property
    def start(self) -> datetime:
        """The first moment of the period (UTC)."""
        return _midnight(self.first, self.zone)

    @property
    def end(self) -> datetime:
        """The first moment after the period (UTC)."""
        return _midnight(self.last + timedelta(days=1), self.zone)

    @property
    def days(self) -> tuple[date, ...]:
        count = (self.last - self.first).days + 1
        return tuple(self.first + timedelta(days=i) for i in range(count))

    @property
    def query(self) -> str:
        """The query string that names this period again (for links to the
        report and exports of the same period)."""
        if self.kind in ("today", "7d", "pilot"):
            return urlencode({"period": self.kind})
        return urlencode({"period": "range", "from": self.first, "to": self.last})

    def day_of(self, moment: datetime) -> date:
        """The desk's day ``moment`` falls on."""
        return moment.astimezone(ZoneInfo(self.zone)).date()


def _midnight(day: date, zone: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(zone)).astimezone(UTC)


def today_in(zone: str, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(ZoneInfo(zone)).date()


def _day(query: Mapping[str, str], field: str) -> date:
    raw = query.get(field, "").strip()
    if not raw:
        raise PeriodError(field, "pilot_error_date_missing")
    try:
        if len(raw) != 10 or not raw.isascii():
            raise ValueError(raw)
        day = date.fromisoformat(raw)
    except ValueError:
        raise PeriodError(field, "pilot_error_date_invalid") from None
    if not FIRST_DAY <= day <= LAST_DAY:
        raise PeriodError(field, "pilot_error_date_years")
    return day


def choose_period(
    query: Mapping[str, str],
    zone: str,
    pilot_start: date | None,
    now: datetime | None = None,
) -> Period:
    """The period ``?period=`` (and ``from``/``to``) names; 7 days when none is
    named. The whole pilot runs from ``pilot_start`` (its first request; today
    when there is none). :class:`PeriodError` for anything else."""
    today = today_in(zone, now)
    kind = query.get("period", "7d")
    if kind == "today":
        return Period(today, today, zone, kind)
    if kind == "7d":
        return Period(today - timedelta(days=6), today, zone, kind)
    if kind == "pilot":
        first = min(pilot_start or today, today)
        return Period(
            max(first, today - timedelta(days=MAX_DAYS - 1)), today, zone, kind
        )
    if kind == "range":
        first, last = _day(query, "from"), _day(query, "to")
        return Period(first, last, zone, kind)
    raise PeriodError("period", "pilot_error_period")
