"""The pilot report in Chromium: a supervisor reads it, picks a period by keyboard
and downloads the PDF; axe finds nothing, nothing scrolls sideways."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import expect

from controlplane.storage.database import Database
from tests.controlplane.pilot.pilot_data import CANARIES, seed_pilot
from tests.controlplane.staff_accounts import add_staff_to
from tests.e2e.call_system import PASSWORD, staff_login
from tests.e2e.conftest import SCREENSHOTS, assert_accessible, new_page

pytestmark = pytest.mark.browser
DESK_ZONE = "Europe/Amsterdam"


async def test_a_supervisor_reads_the_report_and_downloads_its_pdf(
    live_system, browser
):
    db = Database(live_system.db_url)
    try:
        await seed_pilot(db)
    finally:
        await db.close()
    secret = await add_staff_to(
        live_system.db_url, live_system.config_file, "chef", "supervisor", PASSWORD
    )
    page = await new_page(browser, viewport={"width": 1366, "height": 768})
    await staff_login(page, live_system.base_url, "chef", secret)

    await page.get_by_role("link", name="Rapport", exact=True).click()

    await expect(page.locator("h1")).to_have_text("Pilotrapport")
    nav_link = page.locator('.staff-nav a[aria-current="page"]')
    await expect(nav_link).to_have_attribute("href", "/staff/report")
    content = await page.content()
    assert all(canary not in content for canary in CANARIES)
    await assert_accessible(page, "pilot report")
    today = datetime.now(ZoneInfo(DESK_ZONE)).date().isoformat()
    await page.fill("#report-from", today)
    await page.fill("#report-to", today)
    await page.locator("#report-show").focus()
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(
        f"{live_system.base_url}/staff/report?period=range&from={today}&to={today}"
    )
    await assert_accessible(page, "pilot report of today")
    if SCREENSHOTS:  # the whole page, charts and tables, for a person
        for width, height in ((1366, 768), (390, 844)):
            await page.set_viewport_size({"width": width, "height": height})
            path = f"{SCREENSHOTS}/pilot-report-full-{width}.png"
            await page.screenshot(path=path, full_page=True)
    href = await page.locator("#report-pdf").get_attribute("href")
    assert href == f"/staff/report.pdf?period=range&from={today}&to={today}"
    pdf = await page.request.get(live_system.base_url + href)
    assert pdf.status == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert (await pdf.body()).startswith(b"%PDF-")
    await page.goto(live_system.base_url + "/staff/report?lang=en")
    await assert_accessible(page, "pilot report (en)")
