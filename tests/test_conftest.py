"""The suite's own rule: PostgreSQL tests never turn into skips by accident."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

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
    """With nothing listening at BEELDBEL_TEST_PG_URL the PostgreSQL tests fail
    with a message that says what to do; BEELDBEL_TEST_SKIP_POSTGRES=1 makes them
    skips instead."""
    nowhere = f"postgresql+asyncpg://root@127.0.0.1:{free_port()}/test"
    env = {"BEELDBEL_TEST_PG_URL": nowhere, "BEELDBEL_TEST_SKIP_POSTGRES": ""}

    code, out = await _pytest(**env)
    assert code == 1, out
    assert "PostgreSQL is unreachable at" in out
    assert "BEELDBEL_TEST_SKIP_POSTGRES=1" in out
    assert "1 error" in out

    code, out = await _pytest(**{**env, "BEELDBEL_TEST_SKIP_POSTGRES": "1"})
    assert code == 0, out
    assert "1 skipped" in out
