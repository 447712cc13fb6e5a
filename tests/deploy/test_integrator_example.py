"""The integrator example (``examples/integrator``) against a real control plane
(issue 13): the example runs as its own process, creates a phone callback over
``/api/v1`` and listens for webhooks on a local HTTPS receiver (a trustme
certificate the control plane trusts through ``SSL_CERT_FILE``), registered as
an admin does with ``beeldbel admin apikey-create`` and ``webhook-add``. A staff member
signs in over HTTP and claims, calls and completes the request in the console;
the example verifies every webhook's signature with ``standardwebhooks`` and
stops once the request is closed."""

from __future__ import annotations

import ast
import asyncio
import json
import re
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme

from controlplane.storage.schema import webhook_outbox
from tests.controlplane.staff_accounts import add_staff_to
from tests.controlplane.storage.test_durability import ControlPlane, _free_ports
from tests.deploy.desk_clients import PASSWORD, Browser
from tests.deploy.test_webhook_outbox import _config
from tests.helpers import beeldbel_cli, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "integrator"
#: What a phone callback tells its integrator, in this order (no call.* events:
#: those are for video calls).
PHONE_STORY = [
    "callback.created",
    "callback.claimed",
    "callback.attempted",
    "callback.completed",
]


class Example:
    """``python -m examples.integrator`` as a process; its stdout, one JSON line
    per fact (created, each verified event, the final state)."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []

    async def next_line(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), 30)
        assert raw, "the example ended early"
        line: dict[str, Any] = json.loads(raw)
        self.lines.append(line)
        return line

    async def finished(self) -> int:
        return await asyncio.wait_for(self.process.wait(), 30)


async def _run_example(
    api_url: str, key: str, secret: str, port: int, cert_file: Path
) -> Example:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "examples.integrator", "--api-url", api_url),
        *("--listen", f"127.0.0.1:{port}", "--tls-cert", str(cert_file)),
        *("--channel", "phone"),
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "BB_API_KEY": key,
            "BB_WEBHOOK_SECRET": secret,
        },
        stdout=asyncio.subprocess.PIPE,
    )
    return Example(process)


async def _admin_registers(toml: Path, hook_url: str) -> tuple[str, str]:
    """What an admin does for the integrator, as docs/api.md says: an API key,
    and the receiver's URL as its webhook endpoint; (key, signing secret)."""
    code, out = await beeldbel_cli(
        toml, "admin", "apikey-create", "CRM", "--scope", "callbacks:write"
    )
    assert code == 0, out
    key = out.split()[-1]
    prefix = key.split("_")[1]
    code, out = await beeldbel_cli(toml, "admin", "webhook-add", prefix, hook_url)
    assert code == 0, out
    return key, out.split()[-1]


async def _work_the_request(browser: Browser, reference: str) -> None:
    """Claim, call and complete ``reference`` through the console's forms."""
    queue = await browser.page("/staff")
    found = re.search(rf'href="/staff/requests/(\d+)">{reference}<', queue)
    assert found, f"{reference} is not in the queue"
    base = f"/staff/requests/{found.group(1)}"
    for action, form in (
        ("claim", {}),
        ("start", {}),
        ("complete", {"outcome": "resolved"}),
    ):
        response = await browser.post(f"{base}/{action}", form)
        assert response.status == 303, f"{action}: {await response.text()}"


async def test_the_example_follows_a_phone_callback_to_its_end(
    sqlite_db, sqlite_url, tmp_path: Path
):
    ca = trustme.CA()
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / "receiver.pem"
    ca.cert_pem.write_to_path(ca_file)
    ca.issue_cert("127.0.0.1").private_key_and_cert_chain_pem.write_to_path(cert_file)
    api_port, hook_port = _free_ports(2)
    hook_url = f"https://127.0.0.1:{hook_port}/beeldbel"
    base_url = f"http://127.0.0.1:{api_port}"
    toml = _config(tmp_path, base_url)
    with toml.open("a") as config:  # the CLI reads only the config file
        config.write(f'[database]\nurl = "{sqlite_url}"\n')
    key, secret = await _admin_registers(toml, hook_url)
    env = {
        "PATH": "/usr/bin:/bin",
        "BEELDBEL_DATABASE_URL": sqlite_url,
        "SSL_CERT_FILE": str(ca_file),  # the webhook sender trusts the test CA
    }
    plane = ControlPlane(toml, env, tmp_path / "controlplane.log")
    browser = Browser(base_url, ssl.create_default_context(), "127.0.0.1", None)
    example: Example | None = None
    try:
        await plane.start(base_url)
        example = await _run_example(base_url, key, secret, hook_port, cert_file)
        created = await example.next_line()
        reference = created["created"]
        totp = await add_staff_to(sqlite_url, toml, "agent.example", "agent", PASSWORD)
        await browser.sign_in("agent.example", totp)
        await _work_the_request(browser, reference)
        while "closed" not in (await example.next_line()):
            pass
        assert await example.finished() == 0
    finally:
        await browser.close()
        if example is not None and example.process.returncode is None:
            example.process.kill()
            await example.process.wait()
        await plane.stop()
    events = [line["event"] for line in example.lines if "event" in line]
    assert [e["type"] for e in events] == PHONE_STORY
    assert all(e["verified"] for e in events)
    assert all(e["reference"] == reference for e in events)
    assert len({e["webhook_id"] for e in events}) == len(PHONE_STORY), "each once"
    assert events[-1]["state"] == "completed"
    assert example.lines[-1] == {"closed": reference, "state": "completed"}

    async def all_delivered() -> bool:
        async with sqlite_db.read() as conn:
            rows = await conn.execute(webhook_outbox.select())
            return {row.state for row in rows} == {"delivered"}

    await wait_for(all_delivered, 5, "every outbox row delivered")


def test_the_example_imports_nothing_of_beeldbel():
    """It is what an integrator writes: the standard library, aiohttp and
    standardwebhooks, never Beeldbel's own packages."""
    ours = {"beeldbel", "controlplane", "mediaserver", "tests"}
    for source in EXAMPLE.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            else:
                continue
            assert not {n.split(".")[0] for n in names} & ours, (source, names)
