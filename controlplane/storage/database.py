"""The control plane's database: one engine, durable writes, migrations at start."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from aiohttp import web
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
#: PostgreSQL advisory lock held while migrating: replicas that start together
#: migrate one after the other (the later ones find nothing left to do).
MIGRATION_LOCK = 0x6265656C  # "beel"


class Database:
    """Wraps the engine. ``write()`` gives a transaction that is committed (and on
    SQLite fsynced) when the block ends; ``read()`` a connection for queries."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: AsyncEngine = _create_engine(url)
        # SQLite has one writer; queueing writers here avoids SQLITE_BUSY retries.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._write_lock is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        async with self._write_lock, self.engine.connect() as conn:
            await conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                await conn.rollback()
                raise
            await conn.commit()

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            yield conn

    async def migrate(
        self, secret_key: bytes | None = None, *, revision: str = "head"
    ) -> None:
        """Upgrade the schema to ``revision`` (the newest by default).
        ``secret_key`` lets data migrations encrypt secrets; one that needs it
        and has none refuses with a message."""
        async with self.engine.begin() as conn:
            if not self.is_sqlite:
                await conn.execute(
                    sa.text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": MIGRATION_LOCK},
                )
            await conn.run_sync(_run, command.upgrade, revision, secret_key)

    async def downgrade(self, revision: str, secret_key: bytes | None = None) -> None:
        """Back to ``revision``; decrypting data migrations need ``secret_key``."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_run, command.downgrade, revision, secret_key)

    async def checkpoint(self) -> None:
        """On SQLite, move the write-ahead log into the database file and empty it,
        so data just erased (overwritten there: ``secure_delete``) leaves no copy
        in the log. PostgreSQL needs nothing here."""
        if not self.is_sqlite:
            return
        async with self.engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        await self.engine.dispose()


def _create_engine(url: str) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(url, pool_pre_ping=True, pool_size=10)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        connect_args={"timeout": 30},
        # we issue BEGIN ourselves (IMMEDIATE for writes)
        isolation_level="AUTOCOMMIT",
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is on disk before we acknowledge it to a citizen
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # erased personal data is overwritten on disk, not merely unlinked
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


def _run(
    sync_conn: sa.Connection,
    action: Callable[[AlembicConfig, str], None],
    revision: str,
    secret_key: bytes | None,
) -> None:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = sync_conn
    cfg.attributes["secret_key"] = secret_key
    action(cfg, revision)


DB = web.AppKey("db", Database)
