"""Fixtures: a real database per test (SQLite and PostgreSQL), config, app client.

The PostgreSQL half of ``db_url`` needs the server ``TEST_PG_URL`` names
(default: the machine's, over its unix socket). If it is unreachable those tests
fail; ``TEST_SKIP_POSTGRES=1`` skips them instead, explicitly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from beeldbel.config import (
    Config,
    DatabaseConfig,
    MetricsConfig,
    ServerConfig,
    TlsConfig,
)
from controlplane.storage.database import Database
from tests.redis_server import redis_server

# The suite runs in a loopback-only network namespace; the unix socket reaches
# the machine's PostgreSQL from there (and from outside it).
PG_URL_VARIABLE = "TEST_PG_URL"
SKIP_POSTGRES_VARIABLE = "TEST_SKIP_POSTGRES"
PG_URL = os.environ.get(
    PG_URL_VARIABLE, "postgresql+asyncpg://root@/test?host=/var/run/postgresql"
)
SKIP_POSTGRES = os.environ.get(SKIP_POSTGRES_VARIABLE) == "1"


async def _on_pg_server(statement: str) -> None:
    """Run ``statement`` (outside a transaction) on the server ``PG_URL`` names."""
    engine = create_async_engine(
        PG_URL, isolation_level="AUTOCOMMIT", connect_args={"timeout": 5}
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    finally:
        await engine.dispose()


async def _fresh_pg_database() -> tuple[str, str]:
    if SKIP_POSTGRES:
        pytest.skip(f"PostgreSQL not tested: {SKIP_POSTGRES_VARIABLE}=1")
    name = f"bb_test_{uuid.uuid4().hex[:12]}"
    try:
        await _on_pg_server(f'CREATE DATABASE "{name}"')
    except (OSError, TimeoutError, DBAPIError) as exc:
        unreachable = str(exc) or type(exc).__name__
    else:
        unreachable = ""
    if unreachable:
        pytest.fail(
            f"PostgreSQL is unreachable at {PG_URL}: {unreachable}\n"
            f"Start it, point {PG_URL_VARIABLE} at one, or skip the PostgreSQL "
            f"tests explicitly with {SKIP_POSTGRES_VARIABLE}=1.",
            pytrace=False,
        )
    url = make_url(PG_URL).set(database=name)
    return url.render_as_string(hide_password=False), name


async def _drop_pg_database(name: str) -> None:
    await _on_pg_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'beeldbel.sqlite3'}"
        return
    url, name = await _fresh_pg_database()
    yield url
    await _drop_pg_database(name)


@pytest.fixture
def aiohttp_client_cls(request: pytest.FixtureRequest) -> type[TestClient[Any, Any]]:
    """pytest-aiohttp's client class, plus an ordering: a test's ``db_url`` is set
    up before the clients and so dropped after them. Otherwise a PostgreSQL test
    database could go while its app still runs (its purge loop then fails)."""
    if "db_url" in request.fixturenames:
        request.getfixturevalue("db_url")
    return TestClient


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """For tests where the backend does not matter."""
    return f"sqlite+aiosqlite:///{tmp_path / 'beeldbel.sqlite3'}"


@contextlib.asynccontextmanager
async def _migrated(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    await database.migrate()
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    """A migrated database on each backend (the one ``db_url`` names)."""
    async with _migrated(db_url) as database:
        yield database


@pytest.fixture
async def sqlite_db(sqlite_url: str) -> AsyncIterator[Database]:
    """A migrated SQLite database, for tests where the backend does not matter."""
    async with _migrated(sqlite_url) as database:
        yield database


@pytest.fixture
def make_config(tmp_path: Path) -> Callable[..., Config]:
    """Config for an in-process app: plain HTTP test server, data in tmp_path.

    Keyword arguments replace whole sections, e.g. ``security=SecurityConfig(...)``.
    """

    def make(db_url: str, **sections: Any) -> Config:
        base = Config(
            server=ServerConfig(
                public_url="http://127.0.0.1", data_dir=str(tmp_path / "data")
            ),
            tls=TlsConfig(enabled=False),
            database=DatabaseConfig(url=db_url),
            metrics=MetricsConfig(port=0),
        )
        return dataclasses.replace(base, **sections)

    return make


@pytest.fixture
def config(make_config: Callable[..., Config], db_url: str) -> Config:
    return make_config(db_url)


@pytest.fixture
async def client(aiohttp_client: Any, config: Config) -> Any:
    """A test client on the real control plane, on each database backend."""
    from controlplane.app.factory import create_app

    return await aiohttp_client(create_app(config))


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A private real Redis (redis-server inside the test's namespace)."""
    with redis_server(tmp_path) as url:
        yield url
