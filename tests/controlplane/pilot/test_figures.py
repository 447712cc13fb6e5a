"""The pilot's period figures over a seeded week (tests/controlplane/pilot/
seeded_figures.py), on SQLite and PostgreSQL: the numbers, the desk's days, and
every group under 5 suppressed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from controlplane.calls import record as records
from controlplane.pilot.cells import NO_DATA, Cell, percentile
from controlplane.pilot.figures import period_figures, pilot_start
from controlplane.pilot.periods import Period, PeriodError, choose_period
from tests.controlplane.pilot.seeded_figures import ZONE, seed_week
from tests.controlplane.sample_requests import add_request

WEEK = Period(date(2026, 11, 2), date(2026, 11, 8), ZONE)


def test_a_cell_from_fewer_than_five_shows_less_than_five():
    assert [Cell.count(n).text() for n in (0, 1, 4, 5, 12)] == [
        "0",
        "< 5",
        "< 5",
        "5",
        "12",
    ]
    assert Cell(4.2, 5).text(1) == "4.2"
    assert Cell(4.0, 3).text(1) == "< 5"
    assert Cell(4.0, 3).shown is None
    assert Cell(None, 0).text() == NO_DATA
    assert percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile([], 90) is None


def test_periods_follow_the_desk_days():
    now = datetime(2026, 11, 8, 23, 30, tzinfo=UTC)  # 9 November in Amsterdam
    assert choose_period({"period": "today"}, ZONE, None, now).first == date(
        2026, 11, 9
    )
    week = choose_period({}, ZONE, None, now)
    assert (week.first, week.last) == (date(2026, 11, 3), date(2026, 11, 9))
    pilot = choose_period({"period": "pilot"}, ZONE, date(2026, 10, 1), now)
    assert pilot.first == date(2026, 10, 1)
    chosen = choose_period(
        {"period": "range", "from": "2026-11-02", "to": "2026-11-08"}, ZONE, None, now
    )
    assert chosen.start == datetime(2026, 11, 1, 23, 0, tzinfo=UTC)
    assert chosen.end == datetime(2026, 11, 8, 23, 0, tzinfo=UTC)
    assert len(chosen.days) == 7


def _range(first: str, last: str) -> dict[str, str]:
    return {"period": "range", "from": first, "to": last}


@pytest.mark.parametrize(
    ("query", "field", "key"),
    [
        ({"period": "year"}, "period", "pilot_error_period"),
        ({"period": "range", "to": "2026-11-08"}, "from", "pilot_error_date_missing"),
        (_range("8-11-2026", "2026-11-08"), "from", "pilot_error_date_invalid"),
        (_range("2026-02-30", "2026-11-08"), "from", "pilot_error_date_invalid"),
        (_range("2026-11-09", "2026-11-08"), "to", "pilot_error_range_order"),
        (_range("0001-01-01", "0001-01-02"), "from", "pilot_error_date_years"),
        (_range("9999-12-30", "9999-12-31"), "from", "pilot_error_date_years"),
        (_range("2020-01-01", "2026-11-08"), "to", "pilot_error_range_long"),
    ],
)
def test_a_bad_period_names_its_field(query, field, key):
    with pytest.raises(PeriodError) as caught:
        choose_period(query, ZONE, None)
    assert (caught.value.field, caught.value.key) == (field, key)


async def test_requests_per_day_by_source_and_choice(db):
    await seed_week(db)
    figures = await period_figures(db, WEEK)
    requests = figures.requests
    assert requests.total.text() == "15"
    source = requests.by_source
    web = ["0", "6", "5", "< 5", "0", "0", "0"]  # 5 November: the one at 23:30 UTC
    assert [c.text() for c in source.series["web"]] == web
    assert source.series["phone"][1].text() == "< 5"
    assert source.series["api"][1].text() == "< 5"
    assert {k: c.text() for k, c in source.totals.items()} == {
        "web": "12",
        "phone": "< 5",
        "api": "< 5",
    }
    # the request switched to phone still counts as a video choice
    choice = requests.by_choice
    assert {k: c.text() for k, c in choice.totals.items()} == {
        "video": "8",
        "phone": "7",
    }
    video = ["0", "7", "0", "< 5", "0", "0", "0"]
    assert [c.text() for c in choice.series["video"]] == video
    waits = requests.to_first_attempt
    assert (waits["all"].p50.value, waits["all"].p90.value, waits["all"].n) == (
        240,
        600,
        8,
    )
    assert (waits["video"].p50.text(), waits["video"].p90.text()) == ("180", "360")
    assert waits["phone"].p50.text() == "< 5"
    assert requests.asked_sign_language.text() == "15"
    assert requests.asked_text_chat.text() == "0"
    assert await pilot_start(db, ZONE) == date(2026, 11, 1)


async def test_outcomes_by_channel(db):
    await seed_week(db)
    outcomes = (await period_figures(db, WEEK)).outcomes
    assert outcomes.by_channel["video"]["resolved"].text() == "5"
    assert outcomes.by_channel["phone"]["no_answer"].text() == "< 5"
    assert outcomes.by_channel["phone"]["resolved"].text() == "0"
    assert outcomes.totals["video"].text() == "5"


async def test_video_calls_quality_and_device_checks(db):
    await seed_week(db)
    figures = await period_figures(db, WEEK)
    video = figures.video
    shown = {
        name: getattr(video, name).text()
        for name in (
            "started",
            "admitted",
            "admitted_known",
            "first_picture",
            "ended_normally",
            "switched_to_phone",
            "failed",
            "not_ended",
            "with_reconnects",
            "with_interpreter",
            "link_opened",
        )
    }
    assert shown == {
        "started": "6",
        "admitted": "5",
        "admitted_known": "6",
        "first_picture": "5",
        "ended_normally": "< 5",
        "switched_to_phone": "< 5",
        "failed": "< 5",
        "not_ended": "0",
        "with_reconnects": "< 5",
        "with_interpreter": "< 5",
        "link_opened": "0",
    }
    assert video.switch_reasons["technical_problem"].text() == "< 5"
    assert video.switch_reasons["citizen_asked"].text() == "0"
    assert (
        video.join_to_first_picture.p50.text(),
        video.join_to_first_picture.p90.text(),
    ) == ("3000", "5000")
    assert {k: c.text() for k, c in video.connections.items()} == {
        "direct": "5",
        "relay": "< 5",
        "unknown": "0",
    }
    assert (video.rtt_ms.p50.text(), video.rtt_ms.p90.text()) == ("42", "45")
    assert video.loss_pct.p50.text(1) == "1.0"
    checks = figures.device_checks
    assert checks.failed.text() == "< 5"
    assert checks.by_part["camera"].text() == "< 5"
    assert checks.by_part["microphone"].text() == "0"


async def test_surveys_by_respondent_and_channel(db):
    await seed_week(db)
    surveys = (await period_figures(db, WEEK)).surveys
    citizen = surveys.group("citizen", "video")
    assert (citizen.calls.text(), citizen.answered.text()) == ("5", "5")
    ease = citizen.questions[0]
    assert ease.question == "ease"
    assert ease.mean is not None
    assert ease.mean.text(1) == "4.2"
    assert {a: c.text() for a, c in ease.counts.items()} == {
        "1": "0",
        "2": "0",
        "3": "< 5",
        "4": "< 5",
        "5": "< 5",
    }
    phone = surveys.group("citizen", "phone")
    assert phone.answered.text() == "< 5"
    assert phone.questions[0].mean is not None
    assert phone.questions[0].mean.text(1) == "< 5"
    employee = surveys.group("employee", "video")
    assert employee.answered.text() == "< 5"
    assert employee.questions[1].mean is None


async def test_an_empty_period_has_no_data(db):
    figures = await period_figures(db, WEEK)
    assert figures.requests.total.text() == "0"
    assert figures.video.join_to_first_picture.p50.text() == NO_DATA
    ease = figures.surveys.group("citizen", "video").questions[0].mean
    assert ease is not None
    assert ease.text() == NO_DATA
    assert await pilot_start(db, ZONE) is None


async def test_a_phone_callback_survey_counts_as_phone_not_as_a_video_call(db):
    """Phone callbacks have a call record for their surveys only (channel phone)."""
    await seed_week(db)
    request_id, _ = await add_request(db, channel="phone", source="phone")
    started = datetime(2026, 11, 4, 10, 0, tzinfo=UTC)
    record = await records.phone_call_record(
        db, request_id, started_at=started, ended_at=started + timedelta(minutes=4)
    )
    survey = records.CitizenSurvey(5, 5, "yes")
    await records.save_citizen_survey(db, record.id, survey)
    figures = await period_figures(db, WEEK)
    assert figures.video.started.n == 6, "not a video call"
    assert figures.video.not_ended.n == 0
    assert figures.surveys.group("citizen", "phone").answered.n == 2
    assert figures.surveys.group("citizen", "video").answered.n == 5
