"""The suite's own rule: PostgreSQL tests never turn into skips by accident."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import sqlalchemy as sa
from aiohttp import web

from beeldbel.config import load_config
from controlplane.storage.database import Database
from tests.conftest import PG_URL_VARIABLE, SKIP_POSTGRES_VARIABLE
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parents[1]
# one small test on the PostgreSQL half of ``db_url``
PG_TEST = (
    "tests/controlplane/security/test_signing_keys.py"
    "::test_concurrent_first_start_leaves_a_usable_key[postgresql]"
)


async def _pytest(**env: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        PG_TEST,
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_unreachable_postgresql_fails_unless_skipped_explicitly():
    """With nothing listening at the URL the PostgreSQL tests fail with a message
    that says what to do; the explicit opt-out makes them skips instead."""
    nowhere = f"postgresql+asyncpg://root@127.0.0.1:{free_port()}/test"
    env = {PG_URL_VARIABLE: nowhere, SKIP_POSTGRES_VARIABLE: ""}

    code, out = await _pytest(**env)
    assert code == 1, out
    assert "PostgreSQL is unreachable at" in out
    assert f"{SKIP_POSTGRES_VARIABLE}=1" in out
    assert "1 error" in out

    code, out = await _pytest(**{**env, SKIP_POSTGRES_VARIABLE: "1"})
    assert code == 0, out
    assert "1 skipped" in out


def test_the_suites_own_variables_are_not_taken_for_config():
    """Processes the tests start (``beeldbel run``, the control plane) inherit the
    environment, and the config refuses unknown ``BEELDBEL_*`` variables: the
    suite's own variables must not look like config, or setting them as the
    README says would break those tests."""
    for name in (PG_URL_VARIABLE, SKIP_POSTGRES_VARIABLE):
        load_config(None, {name: "1"})


async def test_a_tests_database_outlives_its_apps(aiohttp_client, db_url):
    """The fixtures named first are set up first, and dropped last: here the
    client comes first, yet its app must still reach the test's database when
    it shuts down (background loops, such as the purge, run until then)."""
    app = web.Application()

    async def database_still_there(_app: web.Application) -> None:
        db = Database(db_url)
        try:
            async with db.read() as conn:
                await conn.execute(sa.text("SELECT 1"))
        finally:
            await db.close()

    app.on_cleanup.append(database_still_there)
    await aiohttp_client(app)
