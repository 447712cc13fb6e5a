"""The queue's domain rules on both databases: transitions, retries, expiry,
reassignment, stale claims and racing claims."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from beeldbel.config import DeskConfig
from controlplane.base.errors import Conflict, Forbidden, NotFound, ValidationFailed
from controlplane.base.metrics import Metrics
from controlplane.requests import queue, queue_items
from controlplane.requests.callbacks import State
from controlplane.requests.queue_items import Actor, QueueFilter, list_open
from controlplane.storage.database import Database
from controlplane.storage.schema import audit_log, callback_requests, users
from tests.controlplane.sample_requests import add_request

DESK = DeskConfig(
    max_attempts=2,
    retry_delay_minutes=15,
    expire_after_hours=24,
    stale_claim_minutes=30,
)


@pytest.fixture
def metrics():
    return Metrics()


async def add_user(db, username, role="agent", active=True) -> Actor:
    async with db.write() as conn:
        result = await conn.execute(
            sa.insert(users)
            .values(
                username=username,
                password_hash="x",
                role=role,
                totp_confirmed=False,
                totp_last_step=0,
                must_change_password=False,
                failed_logins=0,
                active=active,
                created_at=datetime.now(UTC),
            )
            .returning(users.c.id)
        )
        user_id = result.scalar_one()
    return Actor(user_id, username, role)


def user_id(actor: Actor) -> int:
    assert actor.id is not None
    return actor.id


async def audit_actions(db: Database, request_id: int) -> Sequence[Any]:
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(audit_log.c.action, audit_log.c.details, audit_log.c.username)
                .where(audit_log.c.request_id == request_id)
                .order_by(audit_log.c.id)
            )
        ).all()
    return rows


async def set_due(db: Database, request_id: int, due_at: datetime) -> None:
    async with db.write() as conn:
        await conn.execute(
            sa.update(callback_requests)
            .where(callback_requests.c.id == request_id)
            .values(due_at=due_at)
        )


async def test_claim_call_and_complete(db, metrics):
    """The happy path writes an audit row per step, counts the outcome and times
    the first attempt from when the request was due."""
    agent = await add_user(db, "agent1")
    rid, _ = await add_request(db)

    claimed = await queue.claim(db, rid, agent)
    assert claimed.state is State.CLAIMED
    assert claimed.claimed_by == agent.id
    assert claimed.claimed_by_username == "agent1"

    calling = await queue.start_attempt(db, metrics, rid, agent)
    assert calling.state is State.CALLING
    assert calling.attempts == 1
    assert calling.first_attempt_at is not None

    done = await queue.complete(db, metrics, rid, agent, "report_taken")
    assert done.state is State.COMPLETED
    assert done.outcome == "report_taken"
    assert done.closed_at is not None

    actions = [row.action for row in await audit_actions(db, rid)]
    assert actions == ["request_claimed", "call_started", "request_closed"]
    assert (
        metrics.registry.get_sample_value(
            "beeldbel_callback_outcomes_total",
            {"state": "completed", "outcome": "report_taken", "channel": "video"},
        )
        == 1
    )
    assert (
        metrics.registry.get_sample_value(
            "beeldbel_callback_time_to_first_attempt_seconds_count"
        )
        == 1
    )


async def test_no_answer_retries_until_max_attempts_then_closes(db, metrics):
    agent = await add_user(db, "agent1")
    rid, _ = await add_request(db)
    now = datetime.now(UTC)

    await queue.claim(db, rid, agent, now=now)
    await queue.start_attempt(db, metrics, rid, agent, now=now)
    retry = await queue.no_answer(db, metrics, DESK, rid, agent, now=now)
    assert retry.state is State.NEW
    assert retry.claimed_by is None
    assert retry.is_retry
    assert retry.due_at == now + timedelta(minutes=15)

    await queue.claim(db, rid, agent)
    await queue.start_attempt(db, metrics, rid, agent)
    closed = await queue.no_answer(db, metrics, DESK, rid, agent)
    assert closed.state is State.NO_ANSWER
    assert closed.attempts == 2
    assert closed.closed_at is not None
    assert (
        metrics.registry.get_sample_value(
            "beeldbel_callback_time_to_first_attempt_seconds_count"
        )
        == 1
    ), "only the first attempt is timed"
    actions = [row.action for row in await audit_actions(db, rid)]
    assert actions.count("retry_scheduled") == 1
    assert actions[-1] == "request_closed"


async def test_invalid_transitions_conflict(db, metrics):
    agent = await add_user(db, "agent1")
    rid, _ = await add_request(db)
    with pytest.raises(Conflict):
        await queue.start_attempt(db, metrics, rid, agent)
    await queue.claim(db, rid, agent)
    with pytest.raises(Conflict):
        await queue.complete(db, metrics, rid, agent, "resolved")
    await queue.cancel(db, metrics, rid, agent, "duplicate")
    with pytest.raises(Conflict) as closed:
        await queue.claim(db, rid, agent)
    assert closed.value.message == "console_conflict_closed"
    with pytest.raises(NotFound):
        await queue.claim(db, rid + 999, agent)


async def test_other_agents_cannot_work_a_claim(db, metrics):
    owner = await add_user(db, "owner")
    other = await add_user(db, "other")
    supervisor = await add_user(db, "boss", "supervisor")
    rid, _ = await add_request(db)
    await queue.claim(db, rid, owner)
    with pytest.raises(Forbidden):
        await queue.start_attempt(db, metrics, rid, other)
    with pytest.raises(Forbidden):
        await queue.release(db, rid, other)
    with pytest.raises(Forbidden):
        await queue.add_note(db, rid, other, "hello")
    calling = await queue.start_attempt(db, metrics, rid, supervisor)
    assert calling.state is State.CALLING
    assert calling.claimed_by == owner.id


async def test_bad_codes_are_field_errors(db, metrics):
    agent = await add_user(db, "agent1")
    rid, _ = await add_request(db)
    await queue.claim(db, rid, agent)
    with pytest.raises(ValidationFailed) as bad_outcome:
        await queue.complete(db, metrics, rid, agent, "made_up")
    assert bad_outcome.value.details == {"outcome": "console_field_outcome_invalid"}
    with pytest.raises(ValidationFailed) as bad_switch:
        await queue.switch_channel(db, rid, agent, "fax", "")
    assert set(bad_switch.value.details) == {"channel", "reason"}
    with pytest.raises(ValidationFailed):
        await queue.add_note(db, rid, agent, "   ")


async def test_switch_channel_audits_the_code_and_keeps_the_note_apart(db):
    agent = await add_user(db, "agent1")
    rid, _ = await add_request(db)
    await queue.claim(db, rid, agent)
    switched = await queue.switch_channel(
        db, rid, agent, "phone", "technical_problem", "Camera van Anna doet het niet"
    )
    assert switched.channel == "phone"
    rows = await audit_actions(db, rid)
    assert rows[-1].action == "channel_switched"
    assert rows[-1].details == {
        "from_channel": "video",
        "to_channel": "phone",
        "reason": "technical_problem",
    }
    notes = await queue_items.list_notes(db, rid)
    assert [n.body for n in notes] == ["Camera van Anna doet het niet"]
    assert all("Anna" not in str(row.details) for row in rows)


async def test_release_puts_the_request_back(db):
    agent = await add_user(db, "agent1")
    rid, _ = await add_request(db)
    await queue.claim(db, rid, agent)
    released = await queue.release(db, rid, agent)
    assert released.state is State.NEW
    assert released.claimed_by is None


async def test_reassign_is_for_supervisors_and_active_staff(db, metrics):
    owner = await add_user(db, "owner")
    other = await add_user(db, "other")
    gone = await add_user(db, "gone", active=False)
    supervisor = await add_user(db, "boss", "supervisor")
    rid, _ = await add_request(db)
    await queue.claim(db, rid, owner)
    with pytest.raises(Forbidden):
        await queue.reassign(db, rid, owner, user_id(other))
    with pytest.raises(ValidationFailed):
        await queue.reassign(db, rid, supervisor, user_id(gone))
    moved = await queue.reassign(db, rid, supervisor, user_id(other))
    assert moved.claimed_by == other.id
    assert moved.state is State.CLAIMED
    # the new holder can work it, the old one no longer
    await queue.start_attempt(db, metrics, rid, other)
    with pytest.raises(Forbidden):
        await queue.complete(db, metrics, rid, owner, "resolved")
    rows = await audit_actions(db, rid)
    assert rows[-2].action == "request_reassigned"
    assert rows[-2].details == {"from_user_id": owner.id, "to_user_id": other.id}
    assert [m.username for m in await queue_items.active_staff(db)] == [
        "boss",
        "other",
        "owner",
    ]


async def test_stale_claims_are_released_by_supervisors(db):
    agent = await add_user(db, "agent1")
    supervisor = await add_user(db, "boss", "supervisor")
    now = datetime.now(UTC)
    old, _ = await add_request(db)
    fresh, _ = await add_request(db)
    other_old, _ = await add_request(db)
    await queue.claim(db, old, agent, now=now - timedelta(minutes=45))
    await queue.claim(db, other_old, agent, now=now - timedelta(minutes=31))
    await queue.claim(db, fresh, agent, now=now - timedelta(minutes=5))

    with pytest.raises(Forbidden):
        await queue.release_stale(db, DESK, agent, now=now)
    with pytest.raises(Conflict):
        await queue.release_stale(db, DESK, supervisor, request_id=fresh, now=now)
    assert await queue.release_stale(db, DESK, supervisor, request_id=old, now=now) == [
        old
    ]
    assert await queue.release_stale(db, DESK, supervisor, now=now) == [other_old]
    states = {r.id: r.state for r in await list_open(db)}
    assert states == {old: State.NEW, other_old: State.NEW, fresh: State.CLAIMED}
    actions = [row.action for row in await audit_actions(db, old)]
    assert actions[-1] == "stale_claim_released"


async def test_expiry_closes_only_overdue_unclaimed_requests(db, metrics):
    agent = await add_user(db, "agent1")
    now = datetime.now(UTC)
    overdue, _ = await add_request(db)
    held, _ = await add_request(db)
    recent, _ = await add_request(db)
    await set_due(db, overdue, now - timedelta(hours=25))
    await set_due(db, held, now - timedelta(hours=25))
    await set_due(db, recent, now - timedelta(hours=23))
    await queue.claim(db, held, agent)

    assert await queue.expire_overdue(db, metrics, DESK, now=now) == [overdue]
    assert await queue.expire_overdue(db, metrics, DESK, now=now) == []
    expired = await queue_items.get_request(db, overdue)
    assert expired.state is State.EXPIRED
    assert expired.closed_at is not None
    rows = await audit_actions(db, overdue)
    assert [(r.action, r.username) for r in rows] == [("request_expired", "system")]
    assert (
        metrics.registry.get_sample_value(
            "beeldbel_callback_outcomes_total",
            {"state": "expired", "outcome": "expired", "channel": "video"},
        )
        == 1
    )


async def test_list_is_sorted_by_due_time_and_filters(db):
    agent = await add_user(db, "agent1")
    now = datetime.now(UTC)
    later_slot, _ = await add_request(
        db, preferred="slot", slot_start=now + timedelta(hours=2), channel="phone"
    )
    first, _ = await add_request(db, topic="other")
    second, _ = await add_request(db)
    await set_due(db, first, now - timedelta(minutes=10))
    await queue.claim(db, second, agent)

    assert [r.id for r in await list_open(db)] == [
        first,
        second,
        later_slot,
    ]
    assert [r.id for r in await list_open(db, QueueFilter(channel="phone"))] == [
        later_slot
    ]
    assert [r.id for r in await list_open(db, QueueFilter(topic="other"))] == [first]
    assert [r.id for r in await list_open(db, QueueFilter(state="claimed"))] == [second]
    assert [r.id for r in await list_open(db, QueueFilter(claimed_by=agent.id))] == [
        second
    ]
    assert await list_open(db, QueueFilter(state="completed")) == []


async def test_twenty_concurrent_claims_have_one_winner(db):
    """Racing claims on one request: exactly one wins, the rest get Conflict."""
    agents = [await add_user(db, f"agent{i}") for i in range(20)]
    rid, _ = await add_request(db)
    results = await asyncio.gather(
        *(queue.claim(db, rid, agent) for agent in agents), return_exceptions=True
    )
    winners = [r for r in results if isinstance(r, queue_items.Request)]
    conflicts = [r for r in results if isinstance(r, Conflict)]
    assert len(winners) == 1, results
    assert len(conflicts) == 19, results
    stored = await queue_items.get_request(db, rid)
    assert stored.claimed_by == winners[0].claimed_by
    actions = [row.action for row in await audit_actions(db, rid)]
    assert actions == ["request_claimed"]
