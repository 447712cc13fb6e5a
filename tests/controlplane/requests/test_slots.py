"""Slots lie inside the opening hours in the desk's zone, on the grid, ahead of now."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from beeldbel.config import WEEKDAYS, DeskConfig, parse_hours
from controlplane.requests.slots import (
    ACCEPT_LEAD,
    OFFER_LEAD,
    available_slots,
    is_bookable,
    local_time,
)

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
ALWAYS_OPEN = dict.fromkeys(WEEKDAYS, "00:00-24:00")


def _at(text: str) -> datetime:
    """A wall-clock time in Amsterdam as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=AMSTERDAM).astimezone(UTC)


@st.composite
def hours(draw: st.DrawFn) -> str:
    if draw(st.booleans()) and draw(st.booleans()):
        return ""
    start = draw(st.integers(0, 24 * 12 - 1)) * 5
    end = draw(st.integers(start // 5 + 1, 24 * 12)) * 5
    return f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}"


desks = st.builds(
    DeskConfig,
    timezone=st.sampled_from(
        ["Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "UTC"]
    ),
    opening_hours=st.fixed_dictionaries({day: hours() for day in WEEKDAYS}),
    slot_minutes=st.sampled_from([5, 10, 15, 20, 30, 45, 60, 90]),
    booking_days=st.integers(1, 10),
)
# around the DST changes of 2026 as well as any other moment
moments = st.one_of(
    st.datetimes(datetime(2026, 3, 25), datetime(2026, 4, 2), timezones=st.just(UTC)),
    st.datetimes(
        datetime(2026, 10, 21), datetime(2026, 10, 29), timezones=st.just(UTC)
    ),
    st.datetimes(datetime(2020, 1, 1), datetime(2040, 1, 1), timezones=st.just(UTC)),
)


@settings(max_examples=150, deadline=None)
@given(desk=desks, now=moments)
def test_every_offered_slot_is_open_on_the_grid_and_ahead(desk, now):
    slots = available_slots(desk, now)
    tz = ZoneInfo(desk.timezone)
    assert slots == sorted(set(slots)), "slots are unique and ascending"
    for slot in slots:
        assert slot.tzinfo is UTC
        assert now + OFFER_LEAD <= slot < now + timedelta(days=desk.booking_days)
        local = slot.astimezone(tz)
        opening = parse_hours(desk.opening_hours[WEEKDAYS[local.weekday()]])
        assert opening is not None, f"{local} is on a closed day"
        minute = local.hour * 60 + local.minute
        assert opening[0] <= minute
        assert minute + desk.slot_minutes <= opening[1]
        assert (minute - opening[0]) % desk.slot_minutes == 0
        assert local.second == 0
        assert local.microsecond == 0
        assert is_bookable(slot, desk, now)


@settings(max_examples=150, deadline=None)
@given(desk=desks, now=moments, offset=st.integers(-3000, 20000))
def test_a_bookable_time_is_an_offered_slot_or_just_inside_the_lead(desk, now, offset):
    candidate = (now + timedelta(minutes=offset)).replace(second=0, microsecond=0)
    if is_bookable(candidate, desk, now):
        assert candidate >= now + ACCEPT_LEAD
        later = available_slots(desk, candidate - OFFER_LEAD)
        assert candidate in later


def test_first_slot_leaves_lead_time_and_follows_the_grid():
    desk = DeskConfig()
    now = _at("2026-11-27T12:10")  # a Friday; the desk is open 08:00-20:00
    slots = available_slots(desk, now)
    assert slots[0] == _at("2026-11-27T13:00")
    assert slots[-1] == _at("2026-12-04T12:00"), "the last one inside booking_days"
    assert local_time(slots[1], desk) == "13:30"


def test_closed_days_get_no_slots():
    desk = DeskConfig()
    now = _at("2026-11-27T12:00")
    sundays = [
        s for s in available_slots(desk, now) if s.astimezone(AMSTERDAM).weekday() == 6
    ]
    assert sundays == []
    assert not is_bookable(_at("2026-11-29T10:00"), desk, now)


def _always_open_day(day: str) -> tuple[DeskConfig, list[datetime]]:
    """A desk open round the clock, and its slots on ``day`` seen the evening before."""
    desk = DeskConfig(opening_hours=ALWAYS_OPEN, booking_days=2)
    evening = datetime.fromisoformat(day) - timedelta(hours=1)
    slots = available_slots(desk, evening.replace(tzinfo=AMSTERDAM).astimezone(UTC))
    return desk, [s for s in slots if s.astimezone(AMSTERDAM).date().isoformat() == day]


def test_spring_forward_skips_the_missing_hour():
    """On 29 March 2026 Amsterdam jumps from 02:00 to 03:00: no 02:00 or 02:30 slot."""
    desk, day = _always_open_day("2026-03-29")
    times = [local_time(s, desk) for s in day]
    assert "02:00" not in times
    assert "02:30" not in times
    assert len(day) == 46
    assert (day[4] - day[3]) == timedelta(minutes=30)


def test_fall_back_offers_the_repeated_hour_once():
    """On 25 October 2026 02:00-03:00 happens twice; each slot is offered once."""
    desk, day = _always_open_day("2026-10-25")
    times = [local_time(s, desk) for s in day]
    assert len(times) == len(set(times)) == 48
    second_half_past_two = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert second_half_past_two.astimezone(AMSTERDAM).strftime("%H:%M") == "02:30"
    assert second_half_past_two not in day
    assert not is_bookable(second_half_past_two, desk, _at("2026-10-24T23:00"))


def test_is_bookable_refuses_what_the_form_would_not_offer():
    desk = DeskConfig()
    now = _at("2026-11-27T12:10")
    assert is_bookable(_at("2026-11-27T13:00"), desk, now)
    assert is_bookable(_at("2026-11-27T12:30"), desk, now), "inside the accept lead"
    assert not is_bookable(_at("2026-11-27T12:00"), desk, now), "in the past"
    assert not is_bookable(_at("2026-11-27T12:10") + timedelta(minutes=2), desk, now)
    assert not is_bookable(_at("2026-11-27T13:10"), desk, now), "off the grid"
    assert not is_bookable(_at("2026-11-27T13:00:30"), desk, now), "seconds"
    assert not is_bookable(_at("2026-11-27T20:00"), desk, now), "at closing time"
    assert not is_bookable(_at("2026-11-27T19:30"), desk, now + timedelta(days=7))
    assert not is_bookable(_at("2026-12-05T10:00"), desk, now), "beyond booking_days"
    assert not is_bookable(datetime(2026, 11, 27, 14, 0), desk, now), "naive"
