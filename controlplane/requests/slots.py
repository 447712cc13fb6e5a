"""Callback slots: the start times a citizen may pick, on the desk's grid.

Slots lie within the opening hours of the desk's own time zone, so they follow
daylight saving time; a wall-clock time that does not exist that day is skipped
and one that occurs twice is offered once (its first occurrence).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from beeldbel.config import WEEKDAYS, DeskConfig, parse_hours

#: Slots offered on the form start at least this far ahead.
OFFER_LEAD = timedelta(minutes=30)
#: A slot picked on the form is still accepted this close to its start, so a
#: citizen who takes a while to fill in the form is not turned away.
ACCEPT_LEAD = timedelta(minutes=5)


def available_slots(desk: DeskConfig, now: datetime) -> list[datetime]:
    """Slot starts (aware UTC, ascending) offered at ``now``."""
    earliest = now + OFFER_LEAD
    latest = now + timedelta(days=desk.booking_days)
    tz = ZoneInfo(desk.timezone)
    first_day = now.astimezone(tz).date()
    slots: list[datetime] = []
    for offset in range(desk.booking_days + 1):
        for start in _day_slots(first_day + timedelta(days=offset), desk, tz):
            if earliest <= start < latest:
                slots.append(start)
    return slots


def is_bookable(slot: datetime, desk: DeskConfig, now: datetime) -> bool:
    """Whether ``slot`` (aware) is a slot start on the grid that may still be picked."""
    if slot.tzinfo is None:
        return False
    slot = slot.astimezone(UTC)
    if not now + ACCEPT_LEAD <= slot < now + timedelta(days=desk.booking_days):
        return False
    local = slot.astimezone(ZoneInfo(desk.timezone))
    return slot in _day_slots(local.date(), desk, ZoneInfo(desk.timezone))


def is_open_at(desk: DeskConfig, now: datetime) -> bool:
    """Whether ``now`` (aware) lies within the desk's opening hours."""
    local = now.astimezone(ZoneInfo(desk.timezone))
    hours = parse_hours(desk.opening_hours.get(WEEKDAYS[local.weekday()], ""))
    minute = local.hour * 60 + local.minute
    return hours is not None and hours[0] <= minute < hours[1]


def local_day(slot: datetime, desk: DeskConfig) -> date:
    """The date of ``slot`` in the desk's time zone."""
    return slot.astimezone(ZoneInfo(desk.timezone)).date()


def local_time(slot: datetime, desk: DeskConfig) -> str:
    """``"08:30"``: the wall-clock time of ``slot`` at the desk."""
    return slot.astimezone(ZoneInfo(desk.timezone)).strftime("%H:%M")


def _day_slots(day: date, desk: DeskConfig, tz: ZoneInfo) -> Iterator[datetime]:
    hours = parse_hours(desk.opening_hours.get(WEEKDAYS[day.weekday()], ""))
    if hours is None:
        return
    opens, closes = hours
    midnight = datetime.combine(day, time())
    for minute in range(opens, closes - desk.slot_minutes + 1, desk.slot_minutes):
        wall = midnight + timedelta(minutes=minute)
        start = wall.replace(tzinfo=tz).astimezone(UTC)
        if start.astimezone(tz).replace(tzinfo=None) == wall:
            yield start
