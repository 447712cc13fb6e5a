"""A real Prometheus (Debian's ``prometheus``, ``make system-deps``) scrapes a
running control plane and media server (real ``beeldbel`` processes:
tests/e2e/call_system.py) every second while a short call runs: an employee and
an interpreter as real aiortc peers, a citizen whose browser reports a failed
device check, the waiting room and the first picture, then a switch to phone.
Afterwards every PromQL expression of deploy/grafana/beeldbel.json returns data
(polled, within a time limit), and the alert rules are loaded. Run inside
``unshare --net`` (loopback only)."""

from __future__ import annotations

import json
import math
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import sqlalchemy as sa
import yaml

from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests
from tests.deploy.desk_clients import Browser, Call, grant, join_media
from tests.e2e.call_system import CallSystem, live_call_system
from tests.helpers import free_port, wait_for
from tests.mediaserver.client import loopback_only_gathering

__all__ = ["live_call_system"]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "beeldbel.json"
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query in the dashboard."""
    panels = json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]
    return [
        (panel["title"], target["expr"])
        for panel in panels
        for target in panel.get("targets", [])
    ]


def _config(system: CallSystem) -> dict[str, Any]:
    media = system.media_url.removeprefix("http://")
    control = system.metrics_url.removeprefix("http://").removesuffix("/metrics")
    return {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        # the job names of deploy/compose/prometheus/prometheus.yml
        "scrape_configs": [
            {
                "job_name": "beeldbel-controlplane",
                "static_configs": [{"targets": [control]}],
            },
            {"job_name": "beeldbel-media", "static_configs": [{"targets": [media]}]},
        ],
    }


def _start(config: Path, tmp_path: Path, address: str) -> subprocess.Popen[bytes]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: make system-deps installs it")
    with (tmp_path / "prometheus.log").open("wb") as log:
        return subprocess.Popen(  # noqa: S603
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address={address}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
async def prometheus(
    live_call_system: CallSystem, tmp_path: Path
) -> AsyncIterator[str]:
    """Prometheus on loopback, once it scrapes both processes; its base URL."""
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(_config(live_call_system)), encoding="utf-8")
    address = f"127.0.0.1:{free_port()}"
    process = _start(config, tmp_path, address)
    try:
        await _both_scraped(f"http://{address}", process)
        yield f"http://{address}"
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _both_scraped(base: str, process: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:

        async def up() -> bool:
            assert process.poll() is None, "prometheus exited"
            try:
                result = await query(session, base, "up == 1")
            except aiohttp.ClientError:
                return False
            return len(result) == 2

        await wait_for(up, 20, "prometheus to scrape both processes", 0.2)


async def query(session: aiohttp.ClientSession, base: str, expr: str) -> list[Any]:
    """The instant vector (or scalar) ``expr`` gives now."""
    async with session.get(f"{base}/api/v1/query", params={"query": expr}) as response:
        body = await response.json()
    assert body["status"] == "success", (expr, body)
    result: list[Any] = body["data"]["result"]
    return result


def has_data(result: list[Any]) -> bool:
    """At least one series with a number (NaN: a quantile of nothing observed)."""
    return any(not math.isnan(float(series["value"][1])) for series in result)


async def _request_id(system: CallSystem, reference: str) -> int:
    db = Database(system.db_url)
    try:
        async with db.read() as conn:
            found = await conn.scalar(
                sa.select(callback_requests.c.id).where(
                    callback_requests.c.reference == reference
                )
            )
    finally:
        await db.close()
    assert found is not None, reference
    return int(found)


async def _citizen_steps(citizen: Browser) -> None:
    """What the citizen's browser reports: a camera that failed the device check,
    the waiting room, the call, its first picture, and a swallowed failure."""
    for body in (
        {"step": "device_check_failed", "failed": ["camera"]},
        {"step": "waiting", "failed": []},
        {"step": "in_call", "failed": []},
    ):
        sent = await citizen.post_json("/gesprek/voortgang", body)
        assert sent.status == 204, await sent.text()
    quality = {"join_to_first_picture_ms": 900, "connection_type": "direct"}
    sent = await citizen.post_json("/gesprek/kwaliteit", quality)
    assert sent.status == 204, await sent.text()
    error = {"page": "call", "kind": "media", "code": "play_failed"}
    sent = await citizen.post_json("/gesprek/fout", error)
    assert sent.status == 204, await sent.text()


async def _media_reports(system: CallSystem) -> bool:
    """Whether the media server has RTCP receiver reports (RTT, loss) counted."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(system.media_url + "/metrics") as response,
    ):
        text = await response.text()
    return any(
        line.startswith("beeldbel_media_rtt_seconds_count")
        and float(line.split()[-1]) > 0
        for line in text.splitlines()
    )


@pytest.fixture
async def people(live_call_system: CallSystem) -> AsyncIterator[list[Browser]]:
    """The employee, the interpreter and the citizen: three browsers."""
    loopback_only_gathering()
    tls = ssl.create_default_context(cafile=str(live_call_system.ca_file))
    browsers = [
        Browser(live_call_system.base_url, tls, "127.0.0.1", None) for _ in range(3)
    ]
    yield browsers
    for browser in browsers:
        await browser.close()


async def run_call(system: CallSystem, people: list[Browser]) -> None:
    """A request from the form, its video call with media, then a switch to phone
    and the request closed."""
    agent, interpreter, citizen = people
    secret = await system.add_staff("agent1")
    request_id = await _request_id(system, await citizen.submit_request())
    await agent.sign_in("agent1", secret)
    claimed = await agent.post(f"/staff/requests/{request_id}/claim", {})
    assert claimed.status == 303, await claimed.text()
    started = await agent.post(f"/staff/requests/{request_id}/video", {})
    assert started.status == 303, await started.text()
    call = Call(started.headers["Location"].rsplit("/", 1)[1], agent, interpreter)
    try:
        for path, browser in (
            (call.base + "/tolk", interpreter),
            (call.base + "/link", citizen),
        ):
            invited = await agent.post_json(path, {})
            assert invited.status == 200, await invited.text()
            await browser.open_link((await invited.json())["link"])
        await _citizen_steps(citizen)
        for browser, path in (
            (agent, call.base + "/token"),
            (interpreter, "/gesprek/token"),
        ):
            call.peers.append(await join_media(await grant(browser, path)))
        await call.media_flows()
        await wait_for(lambda: _media_reports(system), 20, "RTCP reports at the SFU")
        switched = await agent.post_json(
            call.base + "/naar-telefoon", {"reason": "technical_problem"}
        )
        assert switched.status == 200, await switched.text()
    finally:
        await call.close()
    survey = {"ease": "4", "av_quality": "5", "would_use_again": "yes"}
    answered = await citizen.post("/gesprek/enquete", survey)
    assert answered.status == 303, await answered.text()
    closed = await agent.post(
        f"/staff/requests/{request_id}/complete", {"outcome": "resolved"}
    )
    assert closed.status == 303, await closed.text()


@pytest.mark.timeout(90)
async def test_every_dashboard_query_returns_data(
    live_call_system: CallSystem, prometheus: str, people: list[Browser]
) -> None:
    await run_call(live_call_system, people)
    queries = dashboard_queries()
    assert len(queries) >= 30
    missing: list[str] = []
    async with aiohttp.ClientSession() as session:

        async def all_answer() -> bool:
            # the desk's pages go on being used: a rate needs a second request
            assert (await people[2].get("/privacy")).status == 200
            missing[:] = [
                f"{title}: {expr}"
                for title, expr in queries
                if not has_data(await query(session, prometheus, expr))
            ]
            return not missing

        await wait_for(all_answer, 30, lambda: "no data:\n" + "\n".join(missing), 1.0)
        async with session.get(f"{prometheus}/api/v1/rules") as response:
            groups = (await response.json())["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert "BeeldbelQueueWaitTooLong" in loaded
