"""The webhooks page of an API key (issue 13) in Chromium: by keyboard an admin
is refused a private address, adds an endpoint and copies its secret, rotates
it, replays a dead letter and removes the endpoint; axe finds nothing and
nothing scrolls sideways at 390 px, in every state."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import Page, expect

from controlplane.storage.database import Database
from tests.controlplane.staff.test_webhooks_page import dead_letter
from tests.e2e.conftest import assert_accessible
from tests.e2e.test_admin_pages import _admin, _tab_to, _whole_page
from tests.helpers import beeldbel_cli

pytestmark = pytest.mark.browser
_WHSEC = re.compile(r"^whsec_[A-Za-z0-9+/=]{40,}$")


async def _key_page(live_system) -> str:
    code, out = await beeldbel_cli(
        live_system.config_file,
        "admin",
        "apikey-create",
        "Zaaksysteem van de eenheid",
        "--scope",
        "callbacks:write",
    )
    assert code == 0, out
    return f"{live_system.base_url}/staff/admin/api-keys/1/webhooks"


async def _dead_letter(db_url: str) -> None:
    db = Database(db_url)
    try:
        async with db.write() as conn:
            await conn.execute(dead_letter(1, "msg_2Qx7dood", "callback.completed"))
    finally:
        await db.close()


async def _add(page: Page, url: str) -> None:
    await _tab_to(page, "#webhook-url")
    await page.keyboard.press("Control+A")
    await page.keyboard.type(url)
    await _tab_to(page, "#webhook-event-call\\.started")
    await page.keyboard.press("Space")  # all are ticked at first: untick one
    await _tab_to(page, "#add-webhook")
    await page.keyboard.press("Enter")


async def test_an_admin_manages_webhook_endpoints_by_keyboard(live_system, browser):
    page = await _admin(live_system, browser)
    webhooks = await _key_page(live_system)
    await page.goto(webhooks)
    await expect(page.locator("h1")).to_have_text(
        "Webhooks van \u2018Zaaksysteem van de eenheid\u2019"
    )
    await assert_accessible(page, "webhooks empty")

    await _add(page, "https://127.0.0.1/beeldbel")
    await expect(page.locator(".error-summary")).to_be_focused()
    await expect(page.locator("#webhook-url-error")).to_contain_text("niet openbaar")
    await assert_accessible(page, "webhooks private address refused")
    await _whole_page(page, "webhook-refused-full-390")

    await _add(page, "https://crm.example.org/koppelingen/beeldbel/meldingen")
    secret = page.locator("#webhook-secret")
    await expect(secret).to_have_text(_WHSEC)
    await _tab_to(page, "#copy-api-key")
    await page.keyboard.press("Enter")
    await expect(page.locator("#copy-api-key-status")).to_have_text(
        "Het geheim is gekopieerd."
    )
    assert await page.evaluate("navigator.clipboard.readText()") == (
        await secret.inner_text()
    )
    await assert_accessible(page, "webhook added")
    await _whole_page(page, "webhook-added-full-390")

    first = await secret.inner_text()
    await _tab_to(page, "#rotate-1")
    await page.keyboard.press("Enter")
    await expect(secret).to_have_text(_WHSEC)
    assert await secret.inner_text() != first
    await expect(page.locator("[data-rotation=overlap]")).to_have_count(1)

    await _dead_letter(live_system.db_url)
    await page.goto(webhooks)
    await expect(page.locator("#dead-letters-1 tbody tr")).to_have_count(1)
    await assert_accessible(page, "webhook dead letter")
    await _whole_page(page, "webhook-dead-letter-full-390")
    await _tab_to(page, "#replay-msg_2Qx7dood")
    await page.keyboard.press("Enter")
    await expect(page.locator(".notice.success")).to_contain_text("opnieuw")
    await expect(page.locator("#dead-letters-1")).to_have_count(0)

    await _tab_to(page, "details.revoke-key summary")
    await page.keyboard.press("Enter")
    await _tab_to(page, "#remove-submit-1")
    await page.keyboard.press("Enter")  # without ticking: asked to confirm
    await expect(page.locator(".error-summary")).to_be_focused()
    await assert_accessible(page, "webhook remove unconfirmed")
    await _tab_to(page, "#remove-1")
    await page.keyboard.press("Space")
    await _tab_to(page, "#remove-submit-1")
    await page.keyboard.press("Enter")
    await expect(page.locator(".webhook-endpoint")).to_have_count(0)
    await assert_accessible(page, "webhook removed")
