"""Control-plane replicas that start at the same moment all migrate at start:
on PostgreSQL they take turns (an advisory lock), so none fails on a table
another one is creating."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from controlplane.storage.database import Database
from tests.conftest import _drop_pg_database, _fresh_pg_database


@pytest.mark.postgres
async def test_replicas_migrating_a_fresh_database_together_all_succeed():
    url, name = await _fresh_pg_database()
    replicas = [Database(url) for _ in range(4)]
    try:
        await asyncio.gather(*(db.migrate(b"k" * 32) for db in replicas))
        async with replicas[0].read() as conn:
            version = await conn.scalar(
                sa.text("SELECT version_num FROM alembic_version")
            )
        assert version is not None
    finally:
        for db in replicas:
            await db.close()
        await _drop_pg_database(name)
