"""The citizen behind a firewall: relay-only ICE through a real coturn.

coturn (Debian's ``turnserver``) runs on loopback with the TURN REST secret the
media server hands out credentials for. The citizen's page forces
``iceTransportPolicy: "relay"`` (``?relay=1``); the call must still work, over a
relay candidate pair. Run inside ``unshare -n`` like the other browser tests.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from beeldbel.config import Secret
from tests.e2e.conftest import assert_accessible, new_page
from tests.e2e.media_fixtures import make_call_harness  # noqa: F401
from tests.helpers import free_port, wait_for

pytestmark = pytest.mark.browser

TURN_SECRET = "turn-secret-for-tests"
TURNSERVER = shutil.which("turnserver") or "/usr/bin/turnserver"
HAVE_TURNSERVER = Path(TURNSERVER).exists()


@pytest.fixture
async def coturn(tmp_path: Path) -> AsyncIterator[str]:
    """A real coturn on 127.0.0.1; yields its ``turn:`` URL."""
    if not HAVE_TURNSERVER:
        pytest.fail("turnserver is missing: `make system-deps` installs coturn")
    port = free_port()
    log_file = (tmp_path / "turnserver.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        TURNSERVER,
        "-n",
        "--listening-ip=127.0.0.1",
        "--relay-ip=127.0.0.1",
        f"--listening-port={port}",
        "--min-port=50000",
        "--max-port=50999",
        "--use-auth-secret",
        f"--static-auth-secret={TURN_SECRET}",
        "--realm=beeldbel",
        "--no-tls",
        "--no-dtls",
        "--allow-loopback-peers",
        "--no-cli",
        f"--pidfile={tmp_path / 'turnserver.pid'}",
        f"--userdb={tmp_path / 'turndb'}",
        "--log-file=stdout",
        "--simple-log",
        stdout=log_file,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:

        async def listening() -> bool:  # TCP listener up means the UDP one is too
            assert process.returncode is None, "turnserver exited"
            try:
                _reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                return False
            writer.close()
            await writer.wait_closed()
            return True

        await wait_for(listening, 10, "turnserver to come up")
        yield f"turn:127.0.0.1:{port}?transport=udp"
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 5)
        except TimeoutError:
            process.kill()
            await process.wait()
        log_file.close()


async def page_stats(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.beeldbel.stats()")
    return result


def decodes(stats: dict[str, Any]) -> bool:
    return any(
        v["framesDecoded"] > 20 and v["frameWidth"] >= 320 and v["frameHeight"] >= 240
        for v in stats.get("inboundVideo") or []
    )


async def test_relay_only_citizen_calls_through_coturn(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
    coturn: str,
) -> None:
    harness = await make_call_harness(
        turn_urls=(coturn,), turn_secret=Secret(TURN_SECRET)
    )
    # the device check finds the TURN server: a relay candidate is gathered
    check = await new_page(browser)
    await check.goto(harness.url("/t/device/citizen"))
    await expect(check.locator("#connection-result")).to_have_attribute(
        "data-ok", "true", timeout=15000
    )
    await check.context.close()

    agent = await new_page(browser)
    await agent.goto(harness.url("/t/call/agent"))
    citizen = await new_page(browser)
    await citizen.goto(harness.url("/t/call/citizen?relay=1"))
    await agent.locator("button.admit").click()

    async def both_decode() -> bool:
        return decodes(await page_stats(citizen)) and decodes(await page_stats(agent))

    await wait_for(both_decode, 30, "both pages decode video with relay-only ICE")
    stats = await page_stats(citizen)
    assert stats["connectionType"] == "relay"
    # every candidate the citizen's browser offered is a relayed one
    types = await citizen.evaluate(
        """async () => {
            const types = [];
            (await window.beeldbel.connection.pc.getStats()).forEach((s) => {
                if (s.type === 'local-candidate') types.push(s.candidateType);
            });
            return types;
        }"""
    )
    assert types
    assert set(types) == {"relay"}
    assert (await page_stats(agent))["connectionType"] == "direct"
    print(
        f"relay-only: citizen decodes {stats['inboundVideo']}, "
        f"first picture {stats['joinToFirstPictureMs']} ms after admission"
    )
    await assert_accessible(citizen, "citizen in a relayed call")
    await citizen.click("#hang-up")
    await citizen.wait_for_url("**/t/survey/citizen")
    await wait_for(
        lambda: any(
            q["role"] == "citizen" and q["connection_type"] == "relay"
            for q in harness.quality
        ),
        5,
        "the quality record says relay",
    )
