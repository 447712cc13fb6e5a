"""`beeldbel run` has its media server report to its control plane, so on one
machine too a media server that dies is noticed (its calls end, agents told)."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

from tests.helpers import wait_for
from tests.one_machine import beeldbel_run, run_config


def heartbeats_stored(database: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as conn:
        try:
            rows = conn.execute(
                "SELECT node_id, last_seen FROM media_nodes WHERE last_seen IS NOT NULL"
            ).fetchall()
        except sqlite3.OperationalError:  # not migrated yet
            return []
    return [(str(node), str(seen)) for node, seen in rows]


@pytest.mark.slow
async def test_the_media_server_of_beeldbel_run_sends_heartbeats(tmp_path: Path):
    config, _port, _media_port = run_config(tmp_path)
    command = Path(sys.executable).parent / "beeldbel"
    async with beeldbel_run(command, config, tmp_path):
        database = tmp_path / "var" / "beeldbel.sqlite3"
        await wait_for(
            lambda: heartbeats_stored(database), 30, "no heartbeat was stored"
        )
