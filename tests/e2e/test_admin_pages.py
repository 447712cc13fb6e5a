"""The admin pages of issue 12 in Chromium: an admin creates an API key, copies
its secret and revokes the key, and filters the audit log, all by keyboard;
axe finds nothing and nothing scrolls sideways at 390 px, in every state."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from tests.controlplane.staff_accounts import add_staff_to
from tests.e2e.call_system import PASSWORD, staff_login
from tests.e2e.conftest import SCREENSHOTS, assert_accessible, new_page

pytestmark = pytest.mark.browser


async def _admin(live_system, browser) -> Page:
    secret = await add_staff_to(
        live_system.db_url, live_system.config_file, "beheer", "admin", PASSWORD
    )
    page = await new_page(
        browser,
        viewport={"width": 1366, "height": 768},
        permissions=["clipboard-read", "clipboard-write"],
    )
    await staff_login(page, live_system.base_url, "beheer", secret)
    return page


async def _whole_page(page: Page, name: str) -> None:
    """With ``SCREENSHOTS_DIR``, the whole page at phone width, for a person."""
    if SCREENSHOTS:
        await page.set_viewport_size({"width": 390, "height": 844})
        await page.screenshot(path=f"{SCREENSHOTS}/{name}.png", full_page=True)
        await page.set_viewport_size({"width": 1366, "height": 768})


async def _tab_to(page: Page, selector: str, presses: int = 40) -> None:
    """Press Tab until ``selector`` has the focus, as a keyboard user would."""
    for _ in range(presses):
        await page.keyboard.press("Tab")
        if await page.evaluate(
            "(s) => document.activeElement === document.querySelector(s)", selector
        ):
            return
    raise AssertionError(f"Tab never reached {selector}")


async def test_an_admin_manages_api_keys_by_keyboard(live_system, browser):
    page = await _admin(live_system, browser)
    await page.goto(live_system.base_url + "/staff/admin/api-keys")
    await expect(page.locator("h1")).to_have_text("API-sleutels")
    await assert_accessible(page, "api keys empty")

    await _tab_to(page, "#api-key-name")
    await page.keyboard.type("Zaaksysteem van de eenheid")
    await _tab_to(page, "#api-key-scope-callbacks\\:read")
    await page.keyboard.press("Space")
    await _tab_to(page, "#create-api-key")
    await page.keyboard.press("Enter")
    secret = page.locator("#api-key-secret")
    await expect(secret).to_have_text(re.compile(r"^bb_[0-9a-f]{8}_\S+$"))
    await _tab_to(page, "#copy-api-key")
    await page.keyboard.press("Enter")
    await expect(page.locator("#copy-api-key-status")).to_have_text(
        "De sleutel is gekopieerd."
    )
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == await secret.inner_text()
    await assert_accessible(page, "api key created")
    await _whole_page(page, "api-key-created-full-390")

    await page.goto(live_system.base_url + "/staff/admin/api-keys")
    await _tab_to(page, "details.revoke-key summary")
    await page.keyboard.press("Enter")
    await _tab_to(page, "#revoke-submit-1")
    await page.keyboard.press("Enter")  # without ticking: asked to confirm
    await expect(page.locator(".error-summary")).to_be_focused()
    await assert_accessible(page, "api key revoke unconfirmed")
    await _tab_to(page, "#revoke-1")
    await page.keyboard.press("Space")
    await _tab_to(page, "#revoke-submit-1")
    await page.keyboard.press("Enter")
    await expect(page.locator("tr[data-state=revoked]")).to_have_count(1)
    await assert_accessible(page, "api key revoked")


async def test_an_admin_filters_and_exports_the_audit_log(live_system, browser):
    page = await _admin(live_system, browser)
    await page.goto(live_system.base_url + "/staff/admin/audit")
    await expect(page.locator("#audit-entries")).to_be_visible()
    await assert_accessible(page, "audit log")

    await _tab_to(page, "#audit-employee")
    await page.keyboard.press("ArrowDown")  # the first employee: beheer
    await _tab_to(page, "#audit-filter")
    await page.keyboard.press("Enter")
    await expect(page).to_have_url(re.compile(r"employee=beheer"))
    await expect(page.locator("#audit-entries tbody tr").first).to_contain_text(
        "beheer"
    )
    await assert_accessible(page, "audit log filtered")
    await _whole_page(page, "audit-log-filtered-full-390")
    href = await page.locator("#audit-export").get_attribute("href")
    assert href is not None
    assert "employee=beheer" in href
    export = await page.request.get(live_system.base_url + href)
    assert export.status == 200
    assert (await export.text()).startswith("tijd,medewerker,actie")

    await page.goto(live_system.base_url + "/staff/admin/audit?from=2026-02-30")
    await expect(page.locator(".error-summary")).to_be_focused()
    await assert_accessible(page, "audit log bad date")
