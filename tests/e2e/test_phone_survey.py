"""The surveys after a phone callback in Chromium (issue 12): the employee
completes a phone callback, ticking the citizen's survey link, and answers their
own questions by keyboard; the citizen answers theirs from the link. axe finds
nothing and nothing scrolls sideways, in every state and size."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import Page, expect

from beeldbel.config import load_config
from controlplane.security.secrets_store import load_secret_key
from controlplane.security.survey_links import survey_token
from controlplane.storage.database import Database
from tests.controlplane.sample_requests import add_request
from tests.controlplane.staff_accounts import add_staff_to
from tests.e2e.call_system import PASSWORD, staff_login
from tests.e2e.conftest import assert_accessible, new_page

pytestmark = pytest.mark.browser


async def _answer(page: Page, choices: tuple[str, ...]) -> None:
    """Pick each answer with the keyboard (focus its radio, Space), then send."""
    for choice in choices:
        await page.locator(f"#{choice}").focus()
        await page.keyboard.press("Space")
        await expect(page.locator(f"#{choice}")).to_be_checked()
    await page.locator("#survey-submit").focus()
    await page.keyboard.press("Enter")


async def test_both_sides_answer_after_a_phone_callback(live_system, browser):
    db = Database(live_system.db_url)
    try:
        request_id, _reference = await add_request(db, channel="phone")
    finally:
        await db.close()
    secret = await add_staff_to(
        live_system.db_url, live_system.config_file, "agent.smit", "agent", PASSWORD
    )
    agent = await new_page(browser, viewport={"width": 1366, "height": 768})
    await staff_login(agent, live_system.base_url, "agent.smit", secret)
    await agent.goto(f"{live_system.base_url}/staff/requests/{request_id}")
    for step in ("#claim", "#start-call"):
        await agent.locator(step).focus()
        await agent.keyboard.press("Enter")
    await expect(agent.locator("#survey-link")).to_be_visible()
    await assert_accessible(agent, "phone callback to complete")
    await agent.select_option("#outcome", "resolved")
    await agent.locator("#survey-link").focus()
    await agent.keyboard.press("Space")
    await agent.locator("#complete").focus()
    await agent.keyboard.press("Enter")

    # no mail or SMS on this desk: the employee hears the link could not go
    await expect(agent.locator("#survey-link-result")).to_have_attribute(
        "data-result", "none"
    )
    await expect(agent.locator("h1")).to_have_text("Vragen over het telefoongesprek")
    await assert_accessible(agent, "employee phone survey")
    await _answer(agent, ("quality-4", "case_handled-yes", "would_use_again-yes"))
    await expect(agent.locator("#survey-thanks")).to_be_visible()
    await assert_accessible(agent, "employee phone survey answered")

    key = load_secret_key(load_config(live_system.config_file))
    token = survey_token(key, request_id, datetime.now(UTC) + timedelta(days=14))
    citizen = await new_page(browser, viewport={"width": 390, "height": 844})
    await citizen.goto(f"{live_system.base_url}/enquete/{token}")
    await expect(citizen.locator("h1")).to_have_text("Hoe ging het telefoongesprek?")
    await expect(citizen.locator("form")).not_to_contain_text("video")
    await assert_accessible(citizen, "citizen phone survey")
    await citizen.locator("#survey-submit").focus()
    await citizen.keyboard.press("Enter")  # nothing chosen: told what is missing
    await expect(citizen.locator(".error-summary")).to_be_visible()
    await expect(citizen.locator(".error-summary")).not_to_contain_text("video")
    await assert_accessible(citizen, "citizen phone survey incomplete")
    await _answer(citizen, ("ease-4", "av_quality-5", "would_use_again-yes"))
    await expect(citizen.locator("#survey-thanks")).to_be_visible()
    await assert_accessible(citizen, "citizen phone survey answered")
