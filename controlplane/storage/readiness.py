"""Whether the database can serve this process: it answers, and its schema is the
one the shipped migrations make, or a newer one. Read by the control plane's
``/readyz``.

Newer counts as ready because of rolling upgrades: the first replica of a new
release migrates at start, and the replicas of the release before keep serving
until they are replaced. That holds because a release's migrations only add
(expand); what the release before still uses is removed a release later
(docs/deployment.md). An older schema is never ready: this process would use
tables the database does not have yet."""

from __future__ import annotations

import asyncio
import functools
from pathlib import Path

import sqlalchemy as sa
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from controlplane.storage.database import MIGRATIONS, Database

#: A probe must answer before the orchestrator's own timeout (Kubernetes: 1 s by
#: default, usually raised to a few); a database that hangs is not ready.
CHECK_TIMEOUT_SECONDS = 2.0

DATABASE_UNREACHABLE = "database_unreachable"
MIGRATIONS_PENDING = "migrations_pending"


@functools.cache
def _scripts() -> ScriptDirectory:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


@functools.cache
def shipped_heads() -> frozenset[str]:
    """The head revisions of the migrations in this package (read once)."""
    return frozenset(_scripts().get_heads())


@functools.cache
def shipped_revisions() -> frozenset[str]:
    """Every revision this package ships."""
    return frozenset(s.revision for s in _scripts().walk_revisions())


async def not_ready_reason(db: Database) -> str | None:
    """``None`` when ready, else :data:`DATABASE_UNREACHABLE` or
    :data:`MIGRATIONS_PENDING`."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_SECONDS):
            if not await _file_in_place(db):
                return DATABASE_UNREACHABLE
            current = await _read_heads(db)
    except (SQLAlchemyError, OSError, TimeoutError):
        return DATABASE_UNREACHABLE
    if current == shipped_heads():
        return None
    newer = bool(current) and not current & shipped_revisions()
    return None if newer else MIGRATIONS_PENDING


async def _read_heads(db: Database) -> frozenset[str]:
    try:
        async with db.read() as conn:
            return await conn.run_sync(_current_heads)
    except SQLAlchemyError:
        # once more: after a migration by another process PostgreSQL refuses the
        # connection's cached statement plans once (asyncpg then drops them)
        async with db.read() as conn:
            return await conn.run_sync(_current_heads)


def _current_heads(sync_conn: sa.Connection) -> frozenset[str]:
    # no alembic_version table (an empty database) gives no heads: pending
    return frozenset(MigrationContext.configure(sync_conn).get_current_heads())


async def _file_in_place(db: Database) -> bool:
    """An SQLite file removed under a running process still answers through the
    open connection, but what is written there is lost: not ready."""
    if not db.is_sqlite:
        return True
    name = make_url(db.url).database
    if not name or name == ":memory:":
        return True
    return await asyncio.to_thread(Path(name).is_file)
