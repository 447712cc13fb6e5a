"""Retention: personal data of long-closed requests is erased; statistics stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from beeldbel.config import Config, DatabaseConfig, load_config
from controlplane.app.factory import create_app
from controlplane.base.metrics import Metrics
from controlplane.requests.callbacks import NewRequest, create_request
from controlplane.requests.retention import purge
from controlplane.security import audit
from controlplane.storage.database import Database
from controlplane.storage.schema import (
    audit_log,
    call_events,
    call_records,
    callback_requests,
    idempotency_keys,
    live_calls,
    request_notes,
    sessions,
    users,
)
from tests.helpers import beeldbel_cli, wait_for

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def _new(name: str) -> NewRequest:
    return NewRequest(
        name=name,
        phone="+31612345678",
        email="iemand@example.nl",
        channel="phone",
        topic="report_crime",
        language="nl",
        preferred="asap",
        source="web",
        accessibility=("sign_language",),
        accessibility_note="Doof, graag gebarentolk",
    )


async def _request(db: Database, name: str, closed_days_ago: float | None) -> int:
    created = await create_request(db, _new(name), None)
    values: dict[str, Any] = {"created_at": NOW - timedelta(days=60)}
    if closed_days_ago is not None:
        values |= {
            "state": "completed",
            "outcome": "reached",
            "closed_at": NOW - timedelta(days=closed_days_ago),
        }
    async with db.write() as conn:
        await conn.execute(
            sa.update(callback_requests)
            .where(callback_requests.c.id == created.id)
            .values(**values)
        )
        await conn.execute(
            sa.insert(request_notes).values(
                request_id=created.id, body=f"notitie over {name}", created_at=NOW
            )
        )
        await audit.record(
            conn, "request_closed", request_id=created.id, outcome="reached"
        )
        await conn.execute(
            sa.insert(call_records).values(
                request_id=created.id,
                room_id=f"room-{created.id}",
                started_at=NOW,
                citizen_ease=5,
                citizen_comment=f"{name} was erg geholpen",
            )
        )
    return created.id


async def _rows(db: Database) -> dict[int, Any]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(callback_requests))).all()
    return {row.id: row for row in rows}


async def _notes(db: Database) -> set[int]:
    async with db.read() as conn:
        rows = (await conn.execute(sa.select(request_notes.c.request_id))).all()
    return {row.request_id for row in rows}


async def test_personal_data_of_long_closed_requests_is_erased(db, db_url):
    old = await _request(db, "Oud Gesloten", closed_days_ago=31)
    recent = await _request(db, "Net Gesloten", closed_days_ago=29)
    still_open = await _request(db, "Nog Open", closed_days_ago=None)
    config = Config(database=DatabaseConfig(url=db_url))

    assert await purge(db, config, now=NOW) == 1

    rows = await _rows(db)
    erased = rows[old]
    for column in ("name", "phone", "email", "accessibility_note"):
        assert getattr(erased, column) is None
    assert erased.purged_at == NOW
    assert (erased.state, erased.outcome, erased.channel, erased.topic) == (
        "completed",
        "reached",
        "phone",
        "report_crime",
    )
    assert erased.accessibility == ["sign_language"]
    assert erased.closed_at is not None
    for kept in (recent, still_open):
        assert rows[kept].name is not None
        assert rows[kept].phone == "+31612345678"
        assert rows[kept].purged_at is None
    assert await _notes(db) == {recent, still_open}
    async with db.read() as conn:
        surveys = (await conn.execute(sa.select(call_records))).all()
    comments = {s.request_id: s.citizen_comment for s in surveys}
    assert comments[old] is None
    assert comments[recent] == "Net Gesloten was erg geholpen"
    assert {s.citizen_ease for s in surveys} == {5}
    async with db.read() as conn:
        actions = (await conn.execute(sa.select(audit_log))).all()
    assert sum(a.action == "request_closed" for a in actions) == 3
    summary = [a for a in actions if a.action == "personal_data_purged"]
    assert summary[0].details == {"requests": 1}
    assert await purge(db, config, now=NOW) == 0


async def test_old_audit_keys_sessions_and_call_state_go(db, db_url):
    config = Config(database=DatabaseConfig(url=db_url))
    async with db.write() as conn:
        # audit_days (730) apart from personal_data_days (30): an entry of 31 days
        # stays, one just past 730 goes
        for days, action in ((731, "ancient"), (729, "old"), (31, "month"), (1, "new")):
            await conn.execute(
                sa.insert(audit_log).values(
                    at=NOW - timedelta(days=days), action=action, details={}
                )
            )
        for hours, key in ((25, "stale"), (2, "fresh")):
            await conn.execute(
                sa.insert(idempotency_keys).values(
                    api_key_id=1,
                    key=key,
                    fingerprint="f",
                    status=201,
                    body="{}",
                    created_at=NOW - timedelta(hours=hours),
                )
            )
        user = await conn.execute(
            sa.insert(users)
            .values(username="agent", password_hash="x", role="agent", created_at=NOW)
            .returning(users.c.id)
        )
        user_id = user.scalar_one()
        for minutes, name in ((-5, "ended"), (5, "live")):
            await conn.execute(
                sa.insert(sessions).values(
                    id_hash=name,
                    user_id=user_id,
                    created_at=NOW - timedelta(hours=1),
                    last_seen_at=NOW,
                    expires_at=NOW + timedelta(minutes=minutes),
                    csrf_token="t",
                )
            )
        for hours, room in ((49, "left-behind"), (47, "running")):
            at = NOW - timedelta(hours=hours)
            await conn.execute(
                sa.insert(live_calls).values(
                    room_id=room, message="Even geduld", opened=False, updated_at=at
                )
            )
            await conn.execute(
                sa.insert(call_events).values(
                    channel=room, seq=1, kind="progress", data="{}", created_at=at
                )
            )
    await purge(db, config, now=NOW)
    async with db.read() as conn:
        rooms = (await conn.execute(sa.select(live_calls.c.room_id))).scalars().all()
        channels = (
            (await conn.execute(sa.select(call_events.c.channel))).scalars().all()
        )
        actions = (await conn.execute(sa.select(audit_log.c.action))).scalars().all()
        keys = (await conn.execute(sa.select(idempotency_keys.c.key))).scalars().all()
        live = (await conn.execute(sa.select(sessions.c.id_hash))).scalars().all()
    assert sorted(actions) == ["month", "new", "old"]
    assert list(keys) == ["fresh"]
    assert list(live) == ["live"]
    assert list(rooms) == ["running"]
    assert list(channels) == ["running"]


async def test_app_purges_at_start_and_counts_it(
    sqlite_db, sqlite_url, make_config, aiohttp_client
):
    await _request(sqlite_db, "Lang Geleden", closed_days_ago=400)
    metrics = Metrics()
    await aiohttp_client(create_app(make_config(sqlite_url), metrics=metrics))

    def purged() -> bool:
        value = metrics.registry.get_sample_value(
            "beeldbel_retention_purged_requests_total"
        )
        return value == 1

    await wait_for(purged, message="the purge at start")
    (row,) = (await _rows(sqlite_db)).values()
    assert (row.name, row.phone, row.email, row.accessibility_note) == (None,) * 4
    assert row.purged_at is not None


async def test_purged_data_is_gone_from_the_sqlite_files(tmp_path):
    """After a purge no byte of the erased data is left in the database file, its
    write-ahead log or its shared memory: SQLite overwrites freed content
    (secure_delete) and the purge checkpoints the log into the file."""
    canary = "Kanarie Zeldzaamnaam"
    url = f"sqlite+aiosqlite:///{tmp_path / 'retention.sqlite3'}"
    db = Database(url)
    try:
        await db.migrate()
        await _request(db, canary, closed_days_ago=400)
        files = sorted(tmp_path.glob("retention.sqlite3*"))
        assert any(canary.encode() in f.read_bytes() for f in files)
        assert await purge(db, Config(database=DatabaseConfig(url=url)), now=NOW) == 1
        for path in sorted(tmp_path.glob("retention.sqlite3*")):
            data = path.read_bytes()
            for trace in (canary, "+31612345678", "iemand@example.nl", "gebarentolk"):
                assert trace.encode() not in data, f"{trace} left in {path.name}"
    finally:
        await db.close()


async def test_purge_command(tmp_path, sqlite_db):
    """``beeldbel purge`` runs as its own process against the configured database."""
    url = sqlite_db.url
    toml = tmp_path / "beeldbel.toml"
    toml.write_text(
        f'[database]\nurl = "{url}"\n[retention]\npersonal_data_days = 30\n'
    )
    assert load_config(toml, {}).database.url == url
    old = await _request(sqlite_db, "Heel Oud", closed_days_ago=10_000)
    recent = await _request(sqlite_db, "Heel Nieuw", closed_days_ago=1)
    code, out = await beeldbel_cli(toml, "purge")
    assert code == 0, out
    assert "erased personal data of 1 callback requests" in out
    rows = await _rows(sqlite_db)
    assert rows[old].name is None
    assert rows[recent].name == "Heel Nieuw"
