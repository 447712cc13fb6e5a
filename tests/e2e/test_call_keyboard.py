"""A whole call from the citizen's side by keyboard alone, in Chromium: the
device check, the waiting room, the call (microphone, chat, hang-up) and the
survey, each control reached with Tab and used with Enter or Space, its focus
visible every time (WCAG 2.1.1, 2.4.7)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import new_page
from tests.e2e.media_fixtures import CallHarness, make_call_harness  # noqa: F401

pytestmark = pytest.mark.browser

#: the focused element's id and whether a focus indicator shows around it
FOCUSED = """() => {
  const e = document.activeElement;
  if (!e || e === document.body) return {id: '', visible: false};
  const style = getComputedStyle(e);
  const outline = style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) >= 2;
  const ring = style.boxShadow !== 'none';
  return {id: e.id, visible: outline || ring};
}"""


async def tab_to(page: Page, element_id: str, *, limit: int = 40) -> None:
    """Press Tab until ``element_id`` has the focus; its focus must show."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        focused: dict[str, Any] = await page.evaluate(FOCUSED)
        if focused["id"] == element_id:
            assert focused["visible"], f"#{element_id} has focus but shows none"
            return
    raise AssertionError(f"Tab never reached #{element_id}")


async def test_a_citizen_makes_the_whole_call_by_keyboard(
    make_call_harness: Any,  # noqa: F811 (a fixture)
    browser: Browser,
) -> None:
    harness: CallHarness = await make_call_harness()
    citizen = await new_page(browser, viewport={"width": 390, "height": 844})
    await citizen.goto(harness.url("/t/device/citizen"))
    await expect(citizen.locator("#play-tone")).to_be_enabled()
    await tab_to(citizen, "play-tone")
    await citizen.keyboard.press("Enter")
    await tab_to(citizen, "heard-yes")
    await citizen.keyboard.press("Space")
    await tab_to(citizen, "join")
    await citizen.keyboard.press("Enter")
    await citizen.wait_for_url("**/t/call/citizen")
    await expect(citizen.locator("#lobby")).to_be_visible(timeout=10000)

    # the employee lets the citizen in (the employee's own page is not the test)
    agent = await new_page(browser, viewport={"width": 1280, "height": 800})
    await agent.goto(harness.url("/t/call/agent"))
    await agent.locator("button.admit").click()
    await expect(citizen.locator(".tile-remote")).to_have_count(1, timeout=10000)

    await tab_to(citizen, "toggle-mic")
    await citizen.keyboard.press("Enter")
    await expect(citizen.locator("#toggle-mic")).to_have_attribute(
        "aria-pressed", "false"
    )
    await citizen.keyboard.press("Space")
    await expect(citizen.locator("#toggle-mic")).to_have_attribute(
        "aria-pressed", "true"
    )
    await tab_to(citizen, "toggle-chat")
    await citizen.keyboard.press("Enter")
    # the chat opens with its input focused, ready to type
    await expect(citizen.locator("#chat-input")).to_be_focused()
    assert (await citizen.evaluate(FOCUSED))["visible"]
    await citizen.keyboard.type("Ik hoor u goed.")
    await citizen.keyboard.press("Enter")
    await expect(agent.locator("#chat-log")).to_contain_text("Ik hoor u goed.")

    await tab_to(citizen, "hang-up")
    await citizen.keyboard.press("Enter")
    await citizen.wait_for_url("**/t/survey/citizen")
