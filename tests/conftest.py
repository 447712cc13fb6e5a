"""Fixtures: a real database per test (SQLite and PostgreSQL), config, app client."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from beeldbel.config import (
    Config,
    DatabaseConfig,
    MetricsConfig,
    ServerConfig,
    TlsConfig,
)

# The suite runs in a loopback-only network namespace; the unix socket reaches
# the machine's PostgreSQL from there (and from outside it).
PG_URL = os.environ.get(
    "BEELDBEL_TEST_PG_URL", "postgresql+asyncpg://root@/test?host=/var/run/postgresql"
)


def _asyncpg_kwargs(url: str) -> dict[str, Any]:
    parsed = make_url(url)
    kwargs: dict[str, Any] = {
        "user": parsed.username,
        "database": parsed.database,
        "host": parsed.query.get("host") or parsed.host or "127.0.0.1",
    }
    if parsed.port:
        kwargs["port"] = parsed.port
    return kwargs


async def _fresh_pg_database() -> tuple[str, str]:
    name = f"bb_test_{uuid.uuid4().hex[:12]}"
    try:
        conn = await asyncpg.connect(**_asyncpg_kwargs(PG_URL), timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"!!! PostgreSQL NOT TESTED: cannot reach {PG_URL}: {exc}")
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = make_url(PG_URL).set(database=name)
    return url.render_as_string(hide_password=False), name


async def _drop_pg_database(name: str) -> None:
    conn = await asyncpg.connect(**_asyncpg_kwargs(PG_URL), timeout=5)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


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
def sqlite_url(tmp_path: Path) -> str:
    """For tests where the backend does not matter."""
    return f"sqlite+aiosqlite:///{tmp_path / 'beeldbel.sqlite3'}"


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
