"""Crash durability: a control plane killed mid-intake loses and doubles nothing.

A real ``python -m controlplane`` process takes API requests with idempotency
keys from concurrent clients and is SIGKILLed at a random moment, three times.
Clients retry what was not acknowledged with the same key. In the end every
acknowledged reference exists once and there is one request per key sent.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa

from controlplane.security.api_keys import create_api_key
from controlplane.storage.schema import callback_requests
from tests.helpers import wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
NAME = "Zyxwvu Duurzaam"
CLIENTS = 6
KILLS = 3


def _free_ports(count: int) -> list[int]:
    """Distinct loopback ports that were free a moment ago."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Ledger:
    """What the clients sent and what the server acknowledged."""

    pending: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sent: set[str] = field(default_factory=set)
    acked: dict[str, str] = field(default_factory=dict)
    unexpected: list[str] = field(default_factory=list)
    #: requests in flight when the process died, sent again
    retried: int = 0
    next_id: int = 0

    def new(self) -> tuple[str, dict[str, Any]]:
        self.next_id += 1
        body = {
            "name": NAME,
            "phone": "06-12345678",
            "topic": "report_crime",
            "channel": random.choice(("video", "phone")),
            "preferred": "asap",
            "language": "nl",
            "consent": True,
        }
        return f"durable-{self.next_id}", body


class ControlPlane:
    """One ``python -m controlplane`` process on a fixed port."""

    def __init__(self, toml: Path, env: dict[str, str], log: Path) -> None:
        self.toml, self.env, self.log = toml, env, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, base_url: str) -> None:
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "controlplane",
                "--config",
                str(self.toml),
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=log,
            )
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool:
                assert self.process is not None
                assert self.process.returncode is None, self.log.read_text()
                try:
                    async with session.get(f"{base_url}/api/v1/openapi.json") as r:
                        return r.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(ready, timeout=30, message="the control plane to start")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 20)


async def _client(
    session: aiohttp.ClientSession, url: str, key: str, ledger: Ledger, fresh: bool
) -> None:
    """Send pending requests, then new ones; return when the server is gone."""
    while True:
        if ledger.pending:
            idem, body = ledger.pending.pop(0)
        elif fresh:
            idem, body = ledger.new()
        else:
            return
        ledger.sent.add(idem)
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idem}
        try:
            async with session.post(url, json=body, headers=headers) as response:
                payload = await response.json()
        except (TimeoutError, aiohttp.ClientError):
            ledger.pending.append((idem, body))
            ledger.retried += 1
            return
        if response.status != 201:
            ledger.unexpected.append(f"{response.status} {payload}")
            return
        reference = payload["reference"]
        if ledger.acked.setdefault(idem, reference) != reference:
            ledger.unexpected.append(f"{idem} got two references")


async def _drive(
    plane: ControlPlane, base_url: str, key: str, ledger: Ledger, fresh: bool
) -> None:
    """Clients run until a random number of acks, then the process is killed."""
    url = f"{base_url}/api/v1/callbacks"
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        tasks = [
            asyncio.create_task(_client(session, url, key, ledger, fresh))
            for _ in range(CLIENTS)
        ]
        if fresh:
            target = len(ledger.acked) + random.randint(10, 40)
            await wait_for(
                lambda: len(ledger.acked) >= target or bool(ledger.unexpected),
                timeout=20,
                message=f"{target} acknowledgements",
            )
            await plane.kill()
        await asyncio.gather(*tasks)


async def _scrape(url: str) -> str:
    """The real process's metrics listener (queue depth is read at the scrape)."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.text()


async def test_killed_control_plane_loses_and_doubles_nothing(db, db_url, tmp_path):
    port, metrics_port = _free_ports(2)
    base_url = f"http://127.0.0.1:{port}"
    toml = tmp_path / "beeldbel.toml"
    toml.write_text(
        f'[server]\nport = {port}\npublic_url = "{base_url}"\n'
        f'data_dir = "{tmp_path / "data"}"\n'
        f"[tls]\nenabled = false\n[metrics]\nport = {metrics_port}\n"
        '[logging]\nformat = "json"\n'
        "[security]\napi_per_key_per_minute = 1000000\n"
    )
    env = {"PATH": "/usr/bin:/bin", "BEELDBEL_DATABASE_URL": db_url}
    key = await create_api_key(db, "durability", ("callbacks:write",))
    plane = ControlPlane(toml, env, tmp_path / "controlplane.log")
    ledger = Ledger()
    try:
        for _ in range(KILLS):
            await plane.start(base_url)
            await _drive(plane, base_url, key, ledger, fresh=True)
            assert not ledger.unexpected, ledger.unexpected
        await plane.start(base_url)
        await _drive(plane, base_url, key, ledger, fresh=False)
        scraped = await _scrape(f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        await plane.stop()
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    callback_requests.c.reference,
                    callback_requests.c.submission_key,
                )
            )
        ).all()

    assert not ledger.unexpected, ledger.unexpected
    assert not ledger.pending, "some requests were never acknowledged"
    assert ledger.retried > 0, "no kill hit a request in flight"
    assert set(ledger.acked) == ledger.sent
    references = [row.reference for row in rows]
    assert len(rows) == len(ledger.sent), "a request was lost or stored twice"
    assert len({row.submission_key for row in rows}) == len(rows)
    assert sorted(references) == sorted(ledger.acked.values())
    assert NAME not in (tmp_path / "controlplane.log").read_text()
    assert f'beeldbel_callback_queue_depth{{state="new"}} {len(rows)}.0' in scraped
    assert NAME not in scraped
