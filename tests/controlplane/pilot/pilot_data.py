"""A seeded pilot: requests with canary personal data, their calls and surveys.

Every personal value is a canary (:data:`CANARIES`): an export or report that
holds one of them leaks personal data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from controlplane.calls import record as records
from controlplane.requests import Actor, add_note, claim
from controlplane.staff import users
from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests
from tests.controlplane.sample_requests import add_request

CANARY_NAME = "Canarie Vogelaar-Geelborst"
CANARY_PHONE = "+31687654321"
CANARY_EMAIL = "canarie.geelborst@example.nl"
CANARY_NOTE = "CanarieNotitie rolstoel achterdeur"
CANARY_STAFF_NOTE = "CanarieDossier woont naast bakker"
CANARY_COMMENT = "CanarieOpmerking mijn buurman Piet"
CANARY_EMPLOYEE = "canarie.medewerker"
CANARIES = (
    CANARY_NAME,
    CANARY_PHONE,
    "687654321",  # the number without its country code, as it may be shown
    CANARY_EMAIL,
    CANARY_NOTE,
    CANARY_STAFF_NOTE,
    CANARY_COMMENT,
    CANARY_EMPLOYEE,
)


@dataclass(frozen=True, slots=True)
class Seeded:
    references: list[str]
    request_ids: list[int]
    record_ids: list[int]
    old_reference: str
    #: The record of the phone request's callback, with both surveys.
    phone_record_id: int


async def seed_pilot(db: Database, *, calls: int = 6) -> Seeded:
    """``calls`` video requests of a canary citizen, each handled by a canary
    employee in a call with quality and both surveys; one phone request; and one
    request from 40 days ago (outside a period of today)."""
    await users.create_user(db, CANARY_EMPLOYEE, "agent", password="x" * 16)
    found = [u for u in await users.list_users(db) if u["username"] == CANARY_EMPLOYEE]
    employee = Actor(found[0]["id"], CANARY_EMPLOYEE, "agent")
    references, ids, record_ids = [], [], []
    for n in range(calls):
        request_id, reference = await _canary_request(db, employee)
        record_ids.append(await _call(db, request_id, n, employee))
        references.append(reference)
        ids.append(request_id)
    phone_id, phone_ref = await _canary_request(db, employee, channel="phone")
    references.append(phone_ref)
    ids.append(phone_id)
    phone_record = await _phone_call(db, phone_id, employee)
    _old_id, old_reference = await _canary_request(db, employee, days_ago=40)
    return Seeded(references, ids, record_ids, old_reference, phone_record)


async def _canary_request(
    db: Database, employee: Actor, *, channel: str = "video", days_ago: int = 0
) -> tuple[int, str]:
    request_id, reference = await add_request(
        db,
        name=CANARY_NAME,
        phone=CANARY_PHONE,
        email=CANARY_EMAIL,
        accessibility_note=CANARY_NOTE,
        channel=channel,
    )
    await claim(db, request_id, employee)
    await add_note(db, request_id, employee, CANARY_STAFF_NOTE)
    if days_ago:
        then = datetime.now(UTC) - timedelta(days=days_ago)
        async with db.write() as conn:
            await conn.execute(
                sa.update(callback_requests)
                .where(callback_requests.c.id == request_id)
                .values(created_at=then)
            )
    return request_id, reference


async def _phone_call(db: Database, request_id: int, employee: Actor) -> int:
    """The phone callback of ``request_id``, answered by both sides."""
    ended = datetime.now(UTC) - timedelta(minutes=5)
    record = await records.phone_call_record(
        db, request_id, started_at=ended - timedelta(seconds=240), ended_at=ended
    )
    answers = records.CitizenSurvey(4, 4, "yes", CANARY_COMMENT)
    await records.save_citizen_survey(db, record.id, answers)
    employee_answers = records.EmployeeSurvey(4, "partly", "yes")
    await records.save_employee_survey(db, record, employee_answers, by=employee)
    return record.id


async def _call(db: Database, request_id: int, n: int, employee: Actor) -> int:
    """One finished call of ``request_id`` with quality and both surveys;
    ``n`` varies the figures."""
    started = datetime.now(UTC) - timedelta(minutes=30)
    record_id = await records.create_call_record(
        db, room_id=f"room-{request_id}", request_id=request_id, started_at=started
    )
    quality = records.Quality(
        join_to_first_picture_ms=1000 + 200 * n,
        connection_type="relay" if n % 3 == 0 else "direct",
        reconnects=n % 2,
        rtt_ms_p50=40 + n,
        rtt_ms_p95=90 + n,
        loss_pct=0.5 * n,
    )
    await records.update_quality(db, record_id, quality)
    await records.finish_call(
        db, record_id, outcome="completed", ended_at=started + timedelta(seconds=300)
    )
    answers = records.CitizenSurvey(1 + n % 5, 5 - n % 5, "yes", CANARY_COMMENT)
    await records.save_citizen_survey(db, record_id, answers)
    record = await records.get_call_record(db, record_id)
    employee_answers = records.EmployeeSurvey(3 + n % 3, "yes", "unsure")
    await records.save_employee_survey(db, record, employee_answers, by=employee)
    return record_id
