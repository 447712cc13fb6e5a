"""The pilot dashboard in Chromium on the real system (control plane and media
server as processes): a supervisor watches the live counts change, without a
reload, when a request arrives, when a call starts and when the citizen waits in
the waiting room; chooses a period; an agent is refused. axe-core at each step.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, Locator, Page, expect

from controlplane.storage.database import Database
from tests.controlplane.pilot.seeded_figures import FIRST, LAST, seed_week
from tests.e2e.call_system import (  # noqa: F401 (the fixture)
    CallSystem,
    live_call_system,
    request_video_callback,
    staff_login,
)
from tests.e2e.conftest import SCREENSHOTS, assert_accessible, new_page

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CITIZEN_EMAIL = "burger.dashboard@example.nl"
LIVE = 15_000  # ms: a queue notice is at once, a waiting room within 5 s


async def start_call(agent: Page, reference: str) -> None:
    await agent.goto(agent.url.split("/staff")[0] + "/staff")
    row = agent.locator(f'#queue tr[data-reference="{reference}"]')
    await row.locator("form.claim button").click()
    await agent.locator("#start-video").click()
    await agent.wait_for_url(re.compile(r".*/staff/gesprekken/[A-Za-z0-9_-]+$"))


async def citizen_waits(system: CallSystem, browser: Browser) -> Page:
    link = await system.mailbox.link_for(CITIZEN_EMAIL)
    citizen = await new_page(browser)
    await citizen.goto(link)
    await citizen.wait_for_url("**/gesprek/apparaat")
    await citizen.click("#play-tone")
    await citizen.click("#heard-yes")
    await expect(citizen.locator("#camera-result")).to_have_attribute(
        "data-ok", "true", timeout=15_000
    )
    await citizen.click("#join")
    await citizen.wait_for_url("**/gesprek/bellen")
    return citizen


async def photograph_whole(page: Page, name: str) -> None:
    """With ``SCREENSHOTS_DIR``, the whole page (its charts are below the fold)
    at phone and laptop width, for a person to look at."""
    if not SCREENSHOTS:
        return
    for width, height in ((390, 844), (1366, 768)):
        await page.set_viewport_size({"width": width, "height": height})
        path = Path(SCREENSHOTS) / f"{name}-full-{width}.png"
        await page.screenshot(path=path, full_page=True)


def figure(page: Page, name: str) -> Locator:
    return page.locator(f'[data-figure="{name}"]')


async def test_live_counts_follow_the_desk(
    live_call_system: CallSystem,  # noqa: F811
    browser: Browser,
) -> None:
    system = live_call_system
    agent_secret = await system.add_staff("agent.dash")
    chief_secret = await system.add_staff("chef.dash", "supervisor")

    agent = await new_page(browser)
    await staff_login(agent, system.base_url, "agent.dash", agent_secret)
    refused = await agent.goto(system.base_url + "/staff/dashboard")
    assert refused is not None
    assert refused.status == 403
    assert await agent.locator("#live").count() == 0

    chief = await new_page(browser, viewport={"width": 1366, "height": 768})
    await staff_login(chief, system.base_url, "chef.dash", chief_secret)
    await chief.click('nav a[href="/staff/dashboard"]')
    await chief.wait_for_url("**/staff/dashboard")
    await expect(figure(chief, "live-waiting")).to_have_text("0")
    await expect(figure(chief, "live-video-calls")).to_have_text("0")
    await assert_accessible(chief, "dashboard, quiet desk")

    reference = await request_video_callback(
        system, browser, CITIZEN_EMAIL, name="Dashboard Testburger"
    )
    await expect(figure(chief, "live-waiting")).to_have_text("1", timeout=LIVE)
    await expect(figure(chief, "live-waiting-video-asap")).to_have_text("1")

    await start_call(agent, reference)
    await expect(figure(chief, "live-video-calls")).to_have_text("1", timeout=LIVE)
    await expect(figure(chief, "live-waiting")).to_have_text("0")
    await expect(figure(chief, "live-node-media-e2e-rooms")).to_contain_text("/")

    citizen = await citizen_waits(system, browser)
    await expect(figure(chief, "live-lobby")).to_have_text("1", timeout=LIVE)
    await assert_accessible(chief, "dashboard, a call with a citizen waiting")
    await citizen.context.close()
    await agent.context.close()


async def test_periods_and_a_bad_range(
    live_call_system: CallSystem,  # noqa: F811
    browser: Browser,
) -> None:
    system = live_call_system
    secret = await system.add_staff("beheer.dash", "admin")
    await request_video_callback(
        system, browser, CITIZEN_EMAIL, name="Dashboard Testburger"
    )
    page = await new_page(browser)
    await staff_login(page, system.base_url, "beheer.dash", secret)
    await page.goto(system.base_url + "/staff/dashboard?period=pilot")
    await expect(figure(page, "requests-total")).to_have_text("< 5")
    await expect(figure(page, "requests-source-web")).to_have_text("< 5")
    await assert_accessible(page, "dashboard, whole pilot")

    seeded = Database(system.db_url)
    await seed_week(seeded)
    await seeded.close()
    await page.goto(
        f"{system.base_url}/staff/dashboard?period=range&from={FIRST}&to={LAST}"
    )
    await expect(figure(page, "requests-total")).to_have_text("15")
    await expect(figure(page, "video-ended_normally")).to_have_text("< 5")
    await assert_accessible(page, "dashboard, a seeded week")
    await photograph_whole(page, "dashboard-seeded-week")

    # an own period, by keyboard: typing a date picks "own period"
    await page.locator("#period-from").fill("2026-03-02")
    await page.locator("#period-to").fill("2026-03-01")
    await expect(page.locator("#period-range")).to_be_checked()
    await page.locator("#period-show").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator(".error-summary")).to_contain_text(
        "De eerste dag ligt na de laatste dag"
    )
    await expect(page.locator("#period-to")).to_have_attribute("aria-invalid", "true")
    await assert_accessible(page, "dashboard, a bad period")
