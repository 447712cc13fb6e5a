"""Call records and the surveys after a call: storage, pages, and the purge."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from multidict import MultiDict

from beeldbel.config import Config, DatabaseConfig
from controlplane.app.factory import create_app
from controlplane.base.errors import Conflict, NotFound, ValidationFailed
from controlplane.calls import join_links
from controlplane.calls import record as records
from controlplane.pilot import surveys as survey
from controlplane.requests import Actor
from controlplane.requests.callbacks import NewRequest, create_request
from controlplane.requests.retention import purge
from controlplane.storage.database import DB
from controlplane.storage.schema import audit_log, callback_requests
from tests.controlplane import staff_accounts as staff
from tests.controlplane.sample_requests import add_request
from tests.controlplane.video_calls import JSON, call_config, claim, claimed, start
from tests.helpers import csrf_from

CITIZEN_ANSWERS = {"ease": "4", "av_quality": "5", "would_use_again": "yes"}
EMPLOYEE_ANSWERS = {"quality": "3", "case_handled": "partly", "would_use_again": "no"}
AGENT = Actor(7, "agent.seven", "agent")


async def test_record_quality_and_surveys_round_trip(db):
    record_id = await records.create_call_record(db, room_id="room-1", request_id=3)
    assert await records.create_call_record(db, room_id="room-1", request_id=3) == (
        record_id
    )
    quality = records.Quality(
        join_to_first_picture_ms=1800,
        connection_type="relay",
        reconnects=2,
        rtt_ms_p50=40,
        rtt_ms_p95=120,
        loss_pct=1.5,
    )
    await records.update_quality(db, record_id, quality)
    await records.finish_call(db, record_id, outcome="completed")
    answers = records.CitizenSurvey(4, 5, "yes", "Prima gesprek")
    await records.save_citizen_survey(db, record_id, answers)
    await records.save_employee_survey(
        db,
        await records.get_call_record(db, record_id),
        records.EmployeeSurvey(3, "partly", "no"),
        by=AGENT,
    )

    record = await records.get_call_record(db, record_id)
    assert record.quality == quality
    assert (record.outcome, record.request_id, record.room_id) == (
        "completed",
        3,
        "room-1",
    )
    assert record.ended_at is not None
    assert record.citizen == answers
    assert record.employee == records.EmployeeSurvey(3, "partly", "no")
    assert await records.find_by_room(db, "room-2") is None


async def test_surveys_are_answered_once_and_unknown_records_not_found(db):
    record_id = await records.create_call_record(db, room_id="r", request_id=None)
    await records.save_citizen_survey(db, record_id, records.CitizenSurvey(1, 1, "no"))
    with pytest.raises(Conflict):
        await records.save_citizen_survey(
            db, record_id, records.CitizenSurvey(5, 5, "yes")
        )
    assert (await records.get_call_record(db, record_id)).citizen == (
        records.CitizenSurvey(1, 1, "no")
    )
    unknown = dataclasses.replace(
        await records.get_call_record(db, record_id), id=record_id + 1
    )
    with pytest.raises(NotFound):
        await records.save_employee_survey(
            db, unknown, records.EmployeeSurvey(3, "yes", "yes"), by=AGENT
        )
    with pytest.raises(NotFound):
        await records.update_quality(db, record_id + 1, records.Quality())


async def test_call_records_survive_the_personal_data_purge(db):
    created = await create_request(
        db,
        NewRequest(
            name="Canary Naam",
            phone="+31612345678",
            email="canary@example.nl",
            channel="video",
            topic="report_crime",
            language="nl",
            preferred="asap",
            source="web",
        ),
        None,
    )
    record_id = await records.create_call_record(
        db, room_id="room-p", request_id=created.id
    )
    await records.finish_call(db, record_id, outcome="completed")
    await records.save_citizen_survey(db, record_id, records.CitizenSurvey(4, 4, "yes"))
    long_ago = datetime.now(UTC) - timedelta(days=400)
    async with db.write() as conn:
        await conn.execute(
            sa.update(callback_requests)
            .where(callback_requests.c.id == created.id)
            .values(state="completed", outcome="reached", closed_at=long_ago)
        )

    assert await purge(db, Config(database=DatabaseConfig(url=db.url))) == 1

    async with db.read() as conn:
        purged = (
            await conn.execute(
                sa.select(callback_requests.c.name, callback_requests.c.purged_at)
            )
        ).one()
    assert purged.name is None
    assert purged.purged_at is not None
    record = await records.get_call_record(db, record_id)
    assert (record.request_id, record.outcome) == (created.id, "completed")
    assert record.citizen == records.CitizenSurvey(4, 4, "yes")


def test_quality_validation():
    with pytest.raises(ValueError, match="connection_type"):
        records.Quality(connection_type="p2p")
    with pytest.raises(ValueError, match="loss_pct"):
        records.Quality(loss_pct=101)
    with pytest.raises(ValueError, match="reconnects"):
        records.Quality(reconnects=-1)


@given(
    ease=st.one_of(st.text(max_size=4), st.sampled_from(["1", "3", "5", " 2 "])),
    again=st.one_of(st.text(max_size=8), st.sampled_from(records.WOULD_USE_AGAIN)),
    comment=st.text(max_size=1200),
)
def test_citizen_form_accepts_exactly_the_allowed_answers(ease, again, comment):
    form = MultiDict(
        {"ease": ease, "av_quality": "3", "would_use_again": again, "comment": comment}
    )
    errors: dict[str, str] = {}
    parsed = None
    try:
        parsed = survey.parse_citizen_form(form)
    except ValidationFailed as exc:
        errors = exc.details
    assert ("ease" in errors) == (ease.strip() not in {"1", "2", "3", "4", "5"})
    assert ("would_use_again" in errors) == (
        again.strip() not in records.WOULD_USE_AGAIN
    )
    if "comment" in errors:
        assert len(comment) > records.COMMENT_MAX
    if parsed is not None:
        assert parsed.ease == int(ease.strip())
        assert parsed.would_use_again == again.strip()
        assert len(parsed.comment) <= records.COMMENT_MAX
        assert "\x00" not in parsed.comment


# pages


async def citizen_in_call(client, room_id: str = "room-1") -> int:
    """A call record and a citizen whose browser opened the call's link."""
    db = client.app[DB]
    record_id = await records.create_call_record(db, room_id=room_id, request_id=1)
    token = await join_links.create_link(
        db, request_id=1, room_id=room_id, role="citizen", ttl=timedelta(hours=1)
    )
    page = await client.get("/gesprek")
    csrf = re.search(r'data-csrf="([^"]+)"', await page.text())
    assert csrf
    opened = await client.post(
        "/gesprek/openen",
        json={"token": token},
        headers={"X-CSRF-Token": csrf.group(1)},
    )
    assert opened.status == 200
    return record_id


async def post_form(client, path: str, data: dict[str, str]) -> Any:
    page = await client.get(path)
    assert page.status == 200, await page.text()
    fields = {"csrf_token": csrf_from(await page.text()), **data}
    return await client.post(path, data=fields, allow_redirects=False)


async def test_citizen_survey_after_the_call_ended(client):
    record_id = await citizen_in_call(client)
    await join_links.void_room(client.app[DB], "room-1")

    page = await client.get("/gesprek/enquete")
    assert page.status == 200
    html = await page.text()
    for name in ("ease", "av_quality", "would_use_again"):
        assert f'<input type="radio" id="{name}-' in html
    assert html.count("<fieldset") == 3
    assert html.count("<legend>") == 3
    assert 'maxlength="1000"' in html
    assert "persoonsgegevens" in html or "gegevens over uzelf" in html

    response = await post_form(
        client, "/gesprek/enquete", {**CITIZEN_ANSWERS, "comment": "Goed\x00 geholpen"}
    )
    assert response.status == 303
    assert response.headers["Location"] == "/gesprek/enquete"
    thanks = await client.get("/gesprek/enquete")
    assert 'id="survey-thanks"' in await thanks.text()
    record = await records.get_call_record(client.app[DB], record_id)
    assert record.citizen == records.CitizenSurvey(4, 5, "yes", "Goed geholpen")


async def test_citizen_survey_errors_are_shown_next_to_fields(client):
    await citizen_in_call(client)
    response = await post_form(
        client,
        "/gesprek/enquete?lang=en",
        {"ease": "9", "comment": "x" * 1001},
    )
    assert response.status == 422
    html = await response.text()
    assert 'id="error-summary"' in html
    assert 'href="#ease-1"' in html
    assert 'id="ease-error"' in html
    assert 'aria-describedby="ease-error"' in html
    assert 'id="av_quality-error"' in html
    assert 'id="comment-error"' in html
    assert "Choose how easy the call was" in html
    assert "x" * 1001 in html  # the comment is kept for correction
    assert html.startswith('<!doctype html>\n<html lang="en">')


async def test_citizen_survey_needs_the_call_session(client):
    response = await client.get("/gesprek/enquete")
    assert response.status == 404
    assert "Open hem vanuit uw gesprek" in await response.text()
    page = await client.get("/gesprek")
    csrf = re.search(r'data-csrf="([^"]+)"', await page.text())
    assert csrf
    posted = await client.post(
        "/gesprek/enquete", data={"csrf_token": csrf.group(1), **CITIZEN_ANSWERS}
    )
    assert posted.status == 404


async def test_employee_survey(client):
    """The employee who holds the call's request answers (no audit of a start)."""
    db = client.app[DB]
    request_id, _reference = await add_request(db, channel="video")
    record_id = await records.create_call_record(
        db, room_id="room-e", request_id=request_id
    )
    path = f"/staff/gesprekken/{record_id}/enquete"
    anonymous = await client.get(path, allow_redirects=False)
    assert anonymous.status == 303
    assert anonymous.headers["Location"].startswith("/staff/login")

    await staff.sign_in(client)
    page = await client.get(f"/staff/requests/{request_id}")
    await claim(client, request_id, csrf_from(await page.text()))
    bad = await post_form(client, path, {"quality": "0"})
    assert bad.status == 422
    html = await bad.text()
    for name in ("quality", "case_handled", "would_use_again"):
        assert f'id="{name}-error"' in html

    saved = await post_form(client, path, EMPLOYEE_ANSWERS)
    assert saved.status == 303
    page = await client.get(path)
    thanks = await page.text()
    assert 'id="survey-thanks"' in thanks
    # the way on is the request, to record how it ended (then the queue)
    assert (
        f'<a class="button" id="to-request" href="/staff/requests/{request_id}">'
        in thanks
    )
    record = await records.get_call_record(db, record_id)
    assert record.employee == records.EmployeeSurvey(3, "partly", "no")

    missing = await client.get(f"/staff/gesprekken/{record_id + 99}/enquete")
    assert missing.status == 404
    not_a_number = await client.get("/staff/gesprekken/abc/enquete")
    assert not_a_number.status == 404


@pytest.fixture
async def call_client(aiohttp_client, make_config, sqlite_url, media):
    config = call_config(make_config, sqlite_url, str(media.make_url("")))
    return await aiohttp_client(create_app(config))


async def signed_in_again(client, username: str) -> None:
    """Sign ``username`` (who exists) in anew, in place of whoever was."""
    client.session.cookie_jar.clear()
    response = await staff.submit_password(client, username)
    assert response.status == 303
    # the code of the first sign-in is spent; the next step's is accepted
    assert (
        await staff.submit_code(client, staff.totp_code(offset_steps=1))
    ).status == 303


async def answer_as_json(client, path: str, page) -> Any:
    """POST the employee's answers with the CSRF token of ``page`` (a response)."""
    fields = {"csrf_token": csrf_from(await page.text()), **EMPLOYEE_ANSWERS}
    return await client.post(path, data=fields, headers=JSON, allow_redirects=False)


async def test_only_the_employee_who_handled_the_call_answers_its_survey(
    call_client, media
):
    """Another agent may neither read nor answer it, a supervisor only reads it,
    and the answer is in the audit log."""
    client = call_client
    db = client.app[DB]
    request_id, token = await claimed(client, name="Canary Handler")
    room_id = await start(client, request_id, token)
    record = await records.find_by_room(db, room_id)
    assert record is not None
    path = f"/staff/gesprekken/{record.id}/enquete"
    assert (await client.get(path)).status == 200

    client.session.cookie_jar.clear()
    await staff.sign_in(client, "agent", "other.agent")
    assert (await client.get(path, headers=JSON)).status == 403
    other = await answer_as_json(client, path, await client.get("/staff"))
    assert other.status == 403
    assert (await other.json())["error"]["code"] == "forbidden"

    client.session.cookie_jar.clear()
    await staff.sign_in(client, "supervisor")
    page = await client.get(path)
    assert page.status == 200
    assert (await answer_as_json(client, path, page)).status == 403
    assert (await records.get_call_record(db, record.id)).employee is None

    await signed_in_again(client, "test.agent")
    saved = await post_form(client, path, {**EMPLOYEE_ANSWERS, "quality": "5"})
    assert saved.status == 303
    answered = await records.get_call_record(db, record.id)
    assert answered.employee == records.EmployeeSurvey(5, "partly", "no")
    async with db.read() as conn:
        entries = (
            await conn.execute(
                sa.select(audit_log).where(audit_log.c.action == "survey_answered")
            )
        ).all()
    assert [(e.username, e.request_id, e.details) for e in entries] == [
        ("test.agent", request_id, {"record_id": record.id})
    ]
