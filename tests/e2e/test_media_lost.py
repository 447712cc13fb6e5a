"""The employee's call page in Chromium when the call's media node is lost: the
node's heartbeats stop (its row is given a last heartbeat 30 s ago, as when the
node dies right after it), the control plane's own sweep ends the call as
``media_lost``, and the page says "media server lost, start the call again" in
the ended box and the progress list, and stops connecting. Real processes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, expect

from controlplane.calls import node_registry as registry
from controlplane.storage.database import Database
from tests.e2e.call_system import (  # noqa: F401 (a fixture)
    NODE,
    CallSystem,
    live_call_system,
    request_video_callback,
)
from tests.e2e.conftest import assert_accessible
from tests.e2e.test_video_story import CITIZEN_EMAIL, agent_starts_call

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LOST_TEXT = (
    "De mediaserver is weggevallen. Start het gesprek opnieuw vanuit het verzoek."
)


async def test_agent_is_told_when_the_media_node_is_lost(
    live_call_system: CallSystem,  # noqa: F811
    browser: Browser,
) -> None:
    system = live_call_system
    reference = await request_video_callback(system, browser, CITIZEN_EMAIL)
    agent = await agent_starts_call(system, browser, reference)
    await expect(agent.locator("#call-live")).to_be_visible(timeout=15_000)

    db = Database(system.db_url)
    try:
        silent_since = datetime.now(UTC) - timedelta(seconds=30)
        idle = registry.Load(200, 1, 1, 0.0, 0.01, False)
        await registry.record_heartbeat(db, NODE, idle, silent_since)
    finally:
        await db.close()

    await expect(agent.locator("#call-ended")).to_be_visible(timeout=10_000)
    await expect(agent.locator("#call-ended-text")).to_have_text(LOST_TEXT)
    await expect(agent.locator("#call-status")).to_have_text(LOST_TEXT)
    await expect(
        agent.locator('#progress-list li[data-step="media_lost"]')
    ).to_contain_text("Mediaserver weggevallen: start het gesprek opnieuw")
    await expect(agent.locator("#call-live")).to_be_hidden()
    # the step's time, added live by the page, is on the desk's clock
    shown = await agent.locator(
        '#progress-list li[data-step="media_lost"] time'
    ).text_content()
    now = datetime.now(ZoneInfo("Europe/Amsterdam"))
    minutes = {(now - timedelta(minutes=m)).strftime("%H:%M") for m in (0, 1)}
    assert shown in minutes, (shown, minutes)
    # the link to copy and the tools of the call are gone with it
    for panel in ("#link-panel", "#interpreter-panel", "#end-panel"):
        await expect(agent.locator(panel)).to_be_hidden()
    await assert_accessible(agent, "staff call page, media server lost")
    # the way on is the request, to start the call again (not the survey)
    back = agent.locator("#survey-link")
    await expect(back).to_have_text("Terug naar het verzoek")
    await expect(back).to_have_attribute("href", re.compile(r"^/staff/requests/\d+$"))
    await back.click()
    await expect(agent).to_have_url(re.compile(r"/staff/requests/\d+$"))
