"""The call page's layout at the sizes people use, in Chromium.

Phone portrait (390x844), phone landscape (844x390), a 1280x800 laptop and a
1366x768 laptop at 125 % (its CSS viewport is 1093x614 at device scale factor
1.25). In the waiting room, in the call and at the end: every call control is
on screen without scrolling, nothing scrolls sideways, axe finds nothing; in the
call the other side's video covers at least half the screen (the citizen's phone
on its side: 70 %). Both sides: the citizen's page and the employee's, whose
panel (admitting, links, switching to phone) always shares the screen.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import assert_accessible, new_page
from tests.e2e.media_fixtures import CallHarness, make_call_harness  # noqa: F401
from tests.e2e.test_call_page import decodes_video, page_stats
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

#: (name, width, height, share of the screen the other side's video covers)
SIZES = (
    ("phone portrait", 390, 844, 0.5),
    ("phone landscape", 844, 390, 0.7),
    ("laptop 1280", 1280, 800, 0.5),
    ("laptop 1366 at 125%", 1093, 614, 0.5),
)

#: every visible control of the call: the bar, and what a state offers
CONTROLS = """() => [...document.querySelectorAll(
    '#call-app button, #call-app a.button, #call-app input, #call-app select')]
  .filter((e) => e.offsetParent !== null && !e.closest('.agent-side'))
  .map((e) => {
    const r = e.getBoundingClientRect();
    return {id: e.id || e.className, left: r.left, top: r.top,
            right: r.right, bottom: r.bottom};
  })"""

#: the largest share of the viewport one remote video covers
REMOTE_SHARE = """() => {
  const w = window.innerWidth, h = window.innerHeight;
  const shares = [...document.querySelectorAll('.tile-remote video')].map((v) => {
    const r = v.getBoundingClientRect();
    const x = Math.max(0, Math.min(r.right, w) - Math.max(r.left, 0));
    const y = Math.max(0, Math.min(r.bottom, h) - Math.max(r.top, 0));
    return (x * y) / (w * h);
  });
  return Math.max(0, ...shares);
}"""


#: panels whose content runs out of their own box (and so off their light
#: background, onto the dark call: unreadable) instead of scrolling in it
SPILLING = """() => [...document.querySelectorAll('#chat, .agent-side')]
  .filter((e) => e.offsetParent !== null
    && getComputedStyle(e).overflowY === 'visible'
    && e.scrollHeight > e.clientHeight + 1)
  .map((e) => `${e.id || e.className}: ${e.scrollHeight} in ${e.clientHeight}`)"""


async def laptop_page(browser: Browser) -> Page:
    return await new_page(
        browser, viewport={"width": 1093, "height": 614}, device_scale_factor=1.25
    )


async def controls_on_screen(page: Page, what: str) -> None:
    """Each visible control lies inside the viewport, the page unscrolled."""
    size = page.viewport_size
    assert size is not None
    assert await page.evaluate("window.scrollY") == 0, what
    boxes: list[dict[str, Any]] = await page.evaluate(CONTROLS)
    assert boxes, f"{what}: no controls"
    off = [
        b
        for b in boxes
        if b["left"] < -1
        or b["top"] < -1
        or b["right"] > size["width"] + 1
        or b["bottom"] > size["height"] + 1
    ]
    assert not off, f"{what}: controls off screen: {off}"


async def check_sizes(
    page: Page, state: str, *, video: bool = False, beside: bool = False
) -> None:
    """At each size; ``beside``: a panel (the chat, the employee's panel) shares
    the screen, so the video needs half of it everywhere."""
    for name, width, height, least in SIZES:
        share = min(least, 0.5) if beside else least
        what = f"{state}, {name}"
        await page.set_viewport_size({"width": width, "height": height})
        await controls_on_screen(page, what)
        assert await page.evaluate(SPILLING) == [], what
        if video:
            covered = await page.evaluate(REMOTE_SHARE)
            print(f"{what}: remote video covers {covered:.0%}")
            assert covered >= share, f"{what}: remote video covers {covered:.0%}"
        await assert_accessible(page, what)


async def test_the_call_fits_every_screen_on_both_sides(
    make_call_harness: Any,  # noqa: F811 (a fixture)
    browser: Browser,
) -> None:
    harness: CallHarness = await make_call_harness()
    agent = await laptop_page(browser)
    await agent.goto(harness.url("/t/call/agent"))
    citizen = await laptop_page(browser)
    await citizen.goto(harness.url("/t/call/citizen"))
    await expect(citizen.locator("#lobby")).to_be_visible(timeout=10000)
    await check_sizes(citizen, "citizen, waiting room")

    await agent.locator("button.admit").click()

    async def both_decode() -> bool:
        return decodes_video(await page_stats(citizen)) and decodes_video(
            await page_stats(agent)
        )

    await wait_for(both_decode, 15, "both pages decode video")
    # a laptop opens the chat beside the video at the start; first the video alone
    for page in (citizen, agent):
        await expect(page.locator("#toggle-chat")).to_have_attribute(
            "aria-expanded", "true"
        )
        await page.click("#toggle-chat")
    await check_sizes(citizen, "citizen, in the call", video=True)
    # the employee's panel (admit, links, switching) always shares the screen
    await check_sizes(agent, "employee, in the call", video=True, beside=True)

    # the chat stays open beside the video
    await citizen.click("#toggle-chat")
    await expect(citizen.locator("#chat-input")).to_be_visible()
    await check_sizes(
        citizen, "citizen, in the call with the chat open", video=True, beside=True
    )

    await agent.click("#toggle-chat")
    await expect(agent.locator("#rtt-on")).to_be_visible()
    await check_sizes(
        agent, "employee, in the call with the chat open", video=True, beside=True
    )

    await agent.click("#hang-up")
    await expect(citizen.locator("#call-ended")).to_be_visible(timeout=10000)
    await check_sizes(citizen, "citizen, the call ended")
