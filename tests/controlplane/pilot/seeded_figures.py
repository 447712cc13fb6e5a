"""A seeded week of the pilot whose figures are known, with groups under 5.

The week is 2026-11-02 to 2026-11-08 on the desk's clock (Europe/Amsterdam,
UTC+1 then). :func:`seed_week` stores:

- 15 requests in the week: on 3 November 6 by the web form for video (one later
  switched to phone, its choice stays video), 2 phone-line requests for phone
  and 1 API request for video; on 4 November 5 web requests for phone; and one
  web video request at 23:30 UTC on 4 November, which is 5 November locally.
  One more, on 1 November, lies outside the week.
- First callback attempts of the 6 web video requests 1-6 minutes after they
  were due (p50 180 s, p90 360 s), and of 2 phone ones (n 2: suppressed).
- Closed: 5 video requests resolved, 2 phone requests not answered.
- 6 video calls on 3 November: 5 reach a first picture (1000-5000 ms: p50 3000,
  p90 5000), 5 direct and 1 relayed; 4 end normally, 1 switched to phone
  (technical problem), 1 lost its media node; 5 citizens were let in, 1 device
  check failed on the camera; an interpreter joined 1; the citizens of all 6
  answered the survey (video ease 5, 5, 4, 4, 3: mean 4.2), 2 employees did.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from controlplane.calls import record as records
from controlplane.requests import Actor
from controlplane.security import audit
from controlplane.storage.database import Database
from controlplane.storage.schema import call_events, callback_requests
from tests.controlplane.sample_requests import add_request

ZONE = "Europe/Amsterdam"
FIRST, LAST = "2026-11-02", "2026-11-08"
DAY3 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)
DAY4 = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)
EMPLOYEE = Actor(None, "seed.agent", "agent")


async def _request(db: Database, at: datetime, **values: Any) -> int:
    request_id, _ = await add_request(db, **values)
    await _set(db, request_id, created_at=at, due_at=at, updated_at=at)
    return request_id


async def _set(db: Database, request_id: int, **values: Any) -> None:
    async with db.write() as conn:
        await conn.execute(
            sa.update(callback_requests)
            .where(callback_requests.c.id == request_id)
            .values(**values)
        )


async def _event(db: Database, room: str, seq: int, at: datetime, **data: Any) -> None:
    async with db.write() as conn:
        await conn.execute(
            call_events.insert().values(
                channel=room,
                seq=seq,
                kind="progress",
                data=json.dumps(data, separators=(",", ":")),
                created_at=at,
            )
        )


async def seed_week(db: Database) -> None:
    video = [
        await _request(db, DAY3 + timedelta(minutes=i), source="web") for i in range(6)
    ]
    phone_line = [
        await _request(db, DAY3, source="phone", channel="phone") for _ in range(2)
    ]
    await _request(db, DAY3, source="api")
    for _ in range(5):
        await _request(db, DAY4, source="web", channel="phone")
    await _request(db, datetime(2026, 11, 4, 23, 30, tzinfo=UTC), source="web")
    await _request(db, datetime(2026, 11, 1, 9, 0, tzinfo=UTC), source="web")
    await _attempts_and_outcomes(db, video, phone_line)
    for n, request_id in enumerate(video):
        await _call(db, n, request_id)


async def _attempts_and_outcomes(
    db: Database, video: list[int], phone_line: list[int]
) -> None:
    for n, request_id in enumerate(video):
        due = DAY3 + timedelta(minutes=n)
        await _set(db, request_id, first_attempt_at=due + timedelta(minutes=n + 1))
        if n < 5:
            await _set(
                db,
                request_id,
                state="completed",
                outcome="resolved",
                closed_at=DAY3 + timedelta(hours=1),
            )
    for request_id in phone_line:
        await _set(
            db,
            request_id,
            first_attempt_at=DAY3 + timedelta(minutes=10),
            state="no_answer",
            closed_at=DAY3 + timedelta(hours=2),
        )
    # the sixth video request went on by phone
    await _set(db, video[5], channel="phone")
    async with db.write() as conn:
        await audit.record(
            conn,
            "channel_switched",
            request_id=video[5],
            from_channel="video",
            to_channel="phone",
            reason="technical_problem",
        )


_OUTCOMES = ("completed",) * 4 + ("media_lost", records.SWITCHED_TO_PHONE)
_EASE = (5, 5, 4, 4, 3, 2)


async def _call(db: Database, n: int, request_id: int) -> None:
    started = DAY3 + timedelta(minutes=n, seconds=30)
    room = f"seed-room-{n}"
    record_id = await records.create_call_record(
        db, room_id=room, request_id=request_id, started_at=started
    )
    quality = records.Quality(
        join_to_first_picture_ms=None if n == 5 else 1000 * (n + 1),
        connection_type="relay" if n == 5 else "direct",
        reconnects=1 if n == 0 else 0,
        rtt_ms_p50=40 + n,
        loss_pct=0.5 * n,
    )
    await records.update_quality(db, record_id, quality)
    end = started + timedelta(minutes=5)
    await records.finish_call(db, record_id, outcome=_OUTCOMES[n], ended_at=end)
    survey = records.CitizenSurvey(_EASE[n], 4, "yes" if n < 4 else "no")
    await records.save_citizen_survey(db, record_id, survey)
    if n < 2:
        record = await records.get_call_record(db, record_id)
        answers = records.EmployeeSurvey(4, "yes", "yes")
        await records.save_employee_survey(db, record, answers, by=EMPLOYEE)
    await _event(db, room, 1, started, step="device_check_passed", role="citizen")
    if n < 5:
        await _event(db, room, 2, started, step="in_call", role="citizen")
    if n == 0:
        await _event(
            db, room, 3, started, step="device_check_failed", failed=["camera"]
        )
        async with db.write() as conn:
            await audit.record(
                conn, "interpreter_invited", request_id=request_id, record_id=record_id
            )
