"""The control plane's probes on a real database (SQLite and PostgreSQL): /healthz
answers while the process runs; /readyz only while the database answers and has
the schema of the shipped migrations, else 503 with the reason, never a 500."""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from controlplane.storage.database import DB
from controlplane.storage.readiness import shipped_heads
from tests.conftest import _on_pg_server


async def _probe(client: Any, path: str) -> tuple[int, dict[str, Any]]:
    response = await client.get(path)
    return response.status, await response.json()


async def test_healthz_and_readyz_answer_without_login(client):
    assert await _probe(client, "/healthz") == (200, {"status": "ok"})
    assert await _probe(client, "/readyz") == (200, {"status": "ready"})


async def test_readyz_stays_ready_on_a_newer_schema(client):
    """The first replica of the next release migrated: this (older) replica goes
    on serving until it is replaced, as a rolling upgrade needs."""
    async with client.app[DB].write() as conn:
        await conn.execute(
            sa.text("UPDATE alembic_version SET version_num = :v"),
            {"v": "0099_from_the_next_release"},
        )
    assert await _probe(client, "/readyz") == (200, {"status": "ready"})


async def test_readyz_says_migrations_pending_on_an_older_schema(client):
    """A database stamped at the revision before the newest one is not ready: this
    process expects tables the database does not have yet."""
    db = client.app[DB]
    (head,) = shipped_heads()
    older = _down_revision(head)
    async with db.write() as conn:
        await conn.execute(
            sa.text("UPDATE alembic_version SET version_num = :v"), {"v": older}
        )
    assert await _probe(client, "/readyz") == (
        503,
        {"status": "not_ready", "reason": "migrations_pending"},
    )
    async with db.write() as conn:
        await conn.execute(sa.text("DROP TABLE alembic_version"))
    status, body = await _probe(client, "/readyz")
    assert (status, body["reason"]) == (503, "migrations_pending")
    async with db.write() as conn:
        await conn.execute(sa.text("CREATE TABLE alembic_version (version_num text)"))
        await conn.execute(
            sa.text("INSERT INTO alembic_version VALUES (:v)"), {"v": head}
        )
    assert await _probe(client, "/readyz") == (200, {"status": "ready"})


async def test_readyz_says_database_unreachable_while_it_is_gone(client, db_url):
    """PostgreSQL: the database is renamed away (its connections ended); SQLite: the
    file is moved out of its place. 503 while gone, ready again once back."""
    back = await _take_away(db_url)
    try:
        for _ in range(2):  # the pool's stale connection, then a new attempt
            assert await _probe(client, "/readyz") == (
                503,
                {"status": "not_ready", "reason": "database_unreachable"},
            )
        assert await _probe(client, "/healthz") == (200, {"status": "ok"})
    finally:
        await back()
    assert (await client.get("/readyz")).status == 200


async def test_probes_write_no_info_log_line(client, log_stream):
    """Probed every few seconds: a line each would drown the log."""
    assert (await client.get("/readyz")).status == 200
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/")).status == 200
    events = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    routes = [e.get("route") for e in events if e["event"] == "http_request_handled"]
    assert routes == ["/"]


def _down_revision(revision: str) -> str:
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    from controlplane.storage.database import MIGRATIONS

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    down = ScriptDirectory.from_config(config).get_revision(revision).down_revision
    assert isinstance(down, str)
    return down


async def _take_away(db_url: str) -> Callable[[], Awaitable[None]]:
    """Make the database unreachable; returns how to bring it back."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        assert url.database is not None
        path = Path(url.database)
        moved = path.with_name(path.name + ".away")
        os.rename(path, moved)

        async def put_back_file() -> None:
            os.rename(moved, path)

        return put_back_file
    name = url.database
    assert name is not None
    away = f"{name}_away"
    # no new sessions first: the app's background loops (webhook drainer, purge)
    # would otherwise reconnect between the terminate and the rename
    await _on_pg_server(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await _end_connections(name)
    await _on_pg_server(f'ALTER DATABASE "{name}" RENAME TO "{away}"')

    async def rename_back() -> None:
        await _on_pg_server(f'ALTER DATABASE "{away}" RENAME TO "{name}"')
        await _on_pg_server(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')

    return rename_back


async def _end_connections(name: str) -> None:
    """End every session on database ``name`` (the fixture's bb_test_<hex>)."""
    await _on_pg_server(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "  # noqa: S608
        f"WHERE datname = '{name}' AND pid <> pg_backend_pid()"
    )
