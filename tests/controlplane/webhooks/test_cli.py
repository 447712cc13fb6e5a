"""``beeldbel admin webhook-*``: an admin registers, lists, rotates, replays and
removes webhook endpoints, as real processes on a real SQLite database."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from controlplane.storage.database import Database
from controlplane.storage.schema import audit_log, webhook_outbox
from tests.helpers import beeldbel_cli


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "beeldbel.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "b.sqlite3"}"\n'
        f'[server]\ndata_dir = "{tmp_path}"\n',
        encoding="utf-8",
    )
    return path


async def api_key_prefix(config: Path) -> str:
    code, out = await beeldbel_cli(
        config, "admin", "apikey-create", "CRM", "--scope", "callbacks:write"
    )
    assert code == 0, out
    found = re.search(r"bb_([A-Za-z0-9]+)_", out)
    assert found, out
    return found.group(1)


async def test_an_endpoint_from_registration_to_removal(config, tmp_path):
    prefix = await api_key_prefix(config)
    code, out = await beeldbel_cli(
        config,
        *("admin", "webhook-add", prefix, "https://hooks.example.org/beeldbel"),
        *("--event", "callback.claimed", "--event", "call.ended"),
    )
    assert code == 0, out
    assert re.search(r"whsec_[A-Za-z0-9+/=]{40,}", out), "the secret, shown once"
    endpoint = re.search(r"endpoint (\d+)", out)
    assert endpoint, out
    eid = endpoint.group(1)

    code, out = await beeldbel_cli(config, "admin", "webhook-list")
    assert code == 0
    assert "https://hooks.example.org/beeldbel" in out
    assert "callback.claimed,call.ended" in out
    assert "whsec_" not in out, "a secret is never listed"

    code, out = await beeldbel_cli(config, "admin", "webhook-rotate", eid)
    assert code == 0
    assert "whsec_" in out
    assert "24 h" in out

    # a dead letter, replayed
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}")
    try:
        async with db.write() as conn:
            await conn.execute(
                sa.insert(webhook_outbox).values(
                    message_id="msg_dead",
                    endpoint_id=int(eid),
                    request_id=1,
                    event_type="callback.claimed",
                    payload="{}",
                    state="dead",
                    attempts=9,
                    next_attempt_at=sa.func.now(),
                    created_at=sa.func.now(),
                    last_error="503",
                )
            )
    finally:
        await db.close()
    code, out = await beeldbel_cli(config, "admin", "webhook-list")
    assert "dead=1" in out
    code, out = await beeldbel_cli(config, "admin", "webhook-replay", eid)
    assert (code, out.strip()) == (0, f"endpoint {eid}: 1 event(s) pending again")

    code, out = await beeldbel_cli(config, "admin", "webhook-remove", eid)
    assert code == 0
    code, out = await beeldbel_cli(config, "admin", "webhook-list")
    assert "hooks.example.org" not in out

    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'b.sqlite3'}")
    try:
        async with db.read() as conn:
            actions = (await conn.execute(sa.select(audit_log.c.action))).scalars()
            assert {
                "webhook_endpoint_added",
                "webhook_secret_rotated",
                "webhook_events_replayed",
                "webhook_endpoint_removed",
            } <= set(actions)
    finally:
        await db.close()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["webhook-add", "PREFIX", "https://127.0.0.1/hook"], "not public"),
        (["webhook-add", "PREFIX", "http://hooks.example.org/"], "https://"),
        (["webhook-add", "PREFIX", "https://localhost/hook"], "non-public"),
        (["webhook-add", "nope", "https://example.org/h"], "prefix 'nope'"),
        (
            ["webhook-add", "PREFIX", "https://example.org/h", "--event", "x.y"],
            "unknown event type 'x.y'",
        ),
        (["webhook-rotate", "999"], "no webhook endpoint 999"),
        (["webhook-remove", "999"], "no webhook endpoint 999"),
        (["webhook-replay", "999"], "no webhook endpoint 999"),
    ],
)
async def test_mistakes_get_one_line_and_a_non_zero_exit(config, args, says):
    prefix = await api_key_prefix(config)
    args = [prefix if a == "PREFIX" else a for a in args]
    code, out = await beeldbel_cli(config, "admin", *args)
    assert code == 1, out
    assert "Traceback" not in out
    assert out.startswith("beeldbel: "), out
    assert out.count("\n") == 1, out
    assert says in out
