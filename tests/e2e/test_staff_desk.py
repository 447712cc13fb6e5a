"""The staff desk at the sizes employees use (issue 11): the queue without
sideways scrolling and with its claim button in view, "Start video call" above
the fold after claiming, at a phone's two orientations, a 1280x800 laptop and a
1366x768 laptop at 125 % (a 1093x614 CSS viewport at device scale factor 1.25).
axe-core checks each page at each size; with ``SCREENSHOTS_DIR`` each is saved.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, FloatRect, Page, expect

from controlplane.requests.callbacks import find_by_reference
from controlplane.storage.database import Database
from tests.controlplane.sample_requests import add_request
from tests.e2e.call_system import CallSystem, live_call_system, staff_login  # noqa: F401
from tests.e2e.conftest import SCREENSHOTS, _axe, new_page
from tests.e2e.test_video_story import device_check
from tests.helpers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

#: (width, height, device scale factor): CSS pixels, as the browser lays out
SIZES = ((390, 844, 1.0), (844, 390, 1.0), (1280, 800, 1.0), (1093, 614, 1.25))
#: the laptop sizes, where the desk's main buttons must show without scrolling
LAPTOPS = SIZES[2:]
_LINK = re.compile(r"https://\S+/gesprek#t=[A-Za-z0-9_-]+")


async def seed_queue(system: CallSystem) -> None:
    """Requests as a busy morning has them: long names, several needs, a slot."""
    db = Database(system.db_url)
    try:
        await add_request(
            db,
            name="Maria Anna Josephina van den Hoogenband-Schimmelpenninck",
            accessibility=("sign_language", "text_chat", "extra_time"),
            accessibility_note="Graag rustig praten",
            email="maria@example.org",
        )
        await add_request(db, channel="phone", topic="report_question")
        await add_request(db, name="Jan de Vries", accessibility=())
    finally:
        await db.close()


@pytest.fixture
async def agent_state(
    live_call_system: CallSystem,  # noqa: F811
    browser: Browser,
) -> dict[str, Any]:
    """A signed-in employee's cookies, for pages opened at any size."""
    secret = await live_call_system.add_staff("agent.smit")
    page = await new_page(browser)
    await staff_login(page, live_call_system.base_url, "agent.smit", secret)
    state = await page.context.storage_state()
    await page.context.close()
    return dict(state)


async def page_at(
    browser: Browser, state: dict[str, Any], size: tuple[int, int, float]
) -> Page:
    width, height, scale = size
    page = await new_page(
        browser,
        viewport={"width": width, "height": height},
        device_scale_factor=scale,
        storage_state=state,
    )
    return page


async def no_sideways_scroll(page: Page, what: str) -> None:
    """Neither the page nor any box in it scrolls sideways."""
    wide = await page.evaluate(
        """() => [document.documentElement, ...document.querySelectorAll('body *')]
          .filter((e) => e.scrollWidth > e.clientWidth + 1
                  && (e === document.documentElement
                      || !['visible', 'hidden', 'clip']
                          .includes(getComputedStyle(e).overflowX)))
          .map((e) => `${e.tagName.toLowerCase()}#${e.id}.${e.className}`
                      + ` ${e.scrollWidth}>${e.clientWidth}`)"""
    )
    assert not wide, f"{what} scrolls sideways: {wide}"


async def in_view(page: Page, selector: str) -> FloatRect:
    """The element's box, asserted to lie wholly inside the viewport."""
    box = await page.locator(selector).first.bounding_box()
    assert box is not None, f"{selector} is not shown"
    size = page.viewport_size
    assert size is not None
    inside = (
        box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= size["width"]
        and box["y"] + box["height"] <= size["height"]
    )
    assert inside, f"{selector} at {box} is outside {size}"
    return box


async def checked(page: Page, what: str, size: tuple[int, int, float]) -> None:
    """axe and no sideways scroll; saved as a screenshot with SCREENSHOTS_DIR."""
    width, height, scale = size
    label = f"{what} at {width}x{height}@{scale}"
    await no_sideways_scroll(page, label)
    await _axe(page, label)
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
        name = "".join(c if c.isalnum() else "-" for c in what.lower()).strip("-")
        shot = folder / f"{name}-{width}x{height}@{scale}.png"
        await page.screenshot(path=shot)


async def at_each_size(page: Page, what: str) -> None:
    """:func:`checked` at each of :data:`SIZES`' CSS sizes (the page keeps its
    context's scale factor), then back to the first laptop size."""
    for width, height, _scale in SIZES:
        await page.set_viewport_size({"width": width, "height": height})
        await checked(page, what, (width, height, 1.0))
    await page.set_viewport_size({"width": LAPTOPS[0][0], "height": LAPTOPS[0][1]})


async def close_all(*pages: Page) -> None:
    for page in pages:
        await page.context.close()


async def test_queue_fits_and_start_video_call_is_above_the_fold(
    live_call_system: CallSystem,  # noqa: F811
    browser: Browser,
    agent_state: dict[str, Any],
) -> None:
    await seed_queue(live_call_system)
    claim = "#queue tr[data-state='new'] form.claim button"
    for size in SIZES:
        page = await page_at(browser, agent_state, size)
        await page.goto(live_call_system.base_url + "/staff")
        await expect(page.locator("#queue tr[data-state='new']")).to_have_count(3)
        await checked(page, "queue", size)
        await page.locator(claim).first.scroll_into_view_if_needed()
        await in_view(page, claim)
        if size in LAPTOPS:
            # the first request's claim button shows without any scrolling
            await page.evaluate("window.scrollTo(0, 0)")
            await in_view(page, claim)

        # claimed: "Start video call" without scrolling on a laptop
        await page.locator(claim).first.click()
        await expect(page.locator("#start-video")).to_be_visible()
        await checked(page, "claimed request", size)
        if size in LAPTOPS:
            await in_view(page, "#start-video")
        # give it back, for the next size
        await page.click("#release")
        await expect(page.locator("#queue")).to_be_visible()
        await close_all(page)


CITIZEN_EMAIL = "fatima.devries@example.org"
INTERPRETER_EMAIL = "tolk.jansen@example.org"


def links_to(system: CallSystem, address: str) -> list[str]:
    """Every join link e-mailed to ``address``, oldest first."""
    found = []
    for to, message in system.mailbox.messages:
        body = message.get_body(("plain",))
        if address in to and body is not None:
            found += _LINK.findall(body.get_content())
    return found


async def test_new_link_replaces_the_old_and_the_call_closes_in_one_step(
    live_call_system: CallSystem,  # noqa: F811
    browser: Browser,
    agent_state: dict[str, Any],
) -> None:
    system = live_call_system
    db = Database(system.db_url)
    try:
        _id, reference = await add_request(db, email=CITIZEN_EMAIL)
    finally:
        await db.close()
    agent = await page_at(browser, agent_state, LAPTOPS[0])
    await agent.goto(system.base_url + "/staff")
    await agent.locator(f'tr[data-reference="{reference}"] form.claim button').click()
    await agent.click("#start-video")
    await agent.wait_for_url(re.compile(r".*/staff/gesprekken/[A-Za-z0-9_-]+$"))
    await wait_for(lambda: links_to(system, CITIZEN_EMAIL), 10, "the first e-mail")
    (old,) = links_to(system, CITIZEN_EMAIL)

    # a new link by e-mail: the old one is refused, the new one opens. First the
    # page's own connection is in the call, so its announcement of that cannot
    # come after the new link's (a slow connect on a busy machine did)
    await expect(agent.locator("#call-status")).to_have_text(
        "U bent in het gesprek.", timeout=15000
    )
    await expect(agent.locator("#new-link-email")).to_be_checked()
    await agent.click("#new-link")
    await wait_for(lambda: len(links_to(system, CITIZEN_EMAIL)) == 2, 10, "e-mail 2")
    new = links_to(system, CITIZEN_EMAIL)[1]
    await expect(agent.locator("#join-link")).to_have_value(new)
    await expect(agent.locator("#call-status")).to_have_text(
        "Nieuwe link gemaakt. De vorige link werkt niet meer."
    )
    stranger = await new_page(browser)
    await stranger.goto(old)
    await expect(stranger.locator("#join-error")).to_contain_text(
        "vervangen door een nieuwe link"
    )
    await _axe(stranger, "replaced link refused")
    citizen = await new_page(browser)
    await citizen.goto(new)
    await citizen.wait_for_url("**/gesprek/apparaat")

    # the interpreter's invitation by e-mail
    await agent.fill("#interpreter-email", INTERPRETER_EMAIL)
    await agent.click("#invite-interpreter")
    await wait_for(lambda: links_to(system, INTERPRETER_EMAIL), 10, "the invitation")
    await expect(agent.locator("#interpreter-link")).to_have_value(
        links_to(system, INTERPRETER_EMAIL)[0]
    )
    await at_each_size(agent, "staff call page, new link and interpreter")

    # e-mails and texts from one call are limited (10 an hour; 3 went so far):
    # over it the page says so, and the citizen's link stays the one they have
    for to_citizen in range(3, 10):
        await agent.click("#new-link")
        await wait_for(
            lambda: len(links_to(system, CITIZEN_EMAIL)) >= to_citizen,  # noqa: B023
            10,
            f"e-mail {to_citizen} to the citizen",
        )
    current = links_to(system, CITIZEN_EMAIL)[-1]
    await expect(agent.locator("#join-link")).to_have_value(current)
    await agent.click("#new-link")
    await expect(agent.locator("#call-notice")).to_contain_text("veel berichten")
    await expect(agent.locator("#join-link")).to_have_value(current)
    assert len(links_to(system, CITIZEN_EMAIL)) == 9
    await at_each_size(agent, "staff call page, messages limited")

    # one way to end it for everyone; then the request is closed in one step
    await expect(agent.locator("#end-call")).to_have_count(0)
    await agent.click("#hang-up")
    await expect(agent.locator("#close-panel")).to_be_focused()
    await at_each_size(agent, "staff call page, call over")
    await agent.check("#close-follow_up")
    await agent.click("#close-request")
    await agent.wait_for_url(re.compile(r".*/staff/gesprekken/\d+/enquete$"))
    db = Database(system.db_url)
    try:
        stored = await find_by_reference(db, reference)
    finally:
        await db.close()
    assert stored is not None
    assert (stored["state"], stored["outcome"]) == ("completed", "follow_up")
    await close_all(agent, stranger, citizen)


#: Test-only: counts the tones a page starts, by wrapping the browser's own
#: OscillatorNode.start (each alert is a two-note chime: two starts).
COUNT_TONES = """
window.beeldbelTones = 0;
const realStart = OscillatorNode.prototype.start;
OscillatorNode.prototype.start = function (...args) {
  window.beeldbelTones += 1;
  return realStart.apply(this, args);
};
"""


async def tones(page: Page) -> int:
    counted: int = await page.evaluate("window.beeldbelTones")
    return counted


async def citizen_asks(system: CallSystem, browser: Browser, email: str) -> str:
    """A citizen asks for a video callback through the form; its reference."""
    citizen = await new_page(browser)
    await citizen.goto(system.base_url + "/")
    await citizen.fill("#name", "Fatima de Vries")
    await citizen.fill("#phone", "06-12345678")
    await citizen.fill("#email", email)
    await citizen.select_option("#topic", "report_crime")
    await citizen.check("#channel-video")
    await citizen.check("#preferred-asap")
    await citizen.check("#consent")
    await citizen.click("#submit-request")
    box = citizen.locator("#reference")
    await expect(box).to_have_text(re.compile(r"BB-[A-Z0-9]{4}-[A-Z0-9]{4}"))
    reference = (await box.inner_text()).strip()
    await citizen.context.close()
    return reference


async def test_the_alert_sound_is_off_until_switched_on_then_kept_and_played(
    live_call_system: CallSystem,  # noqa: F811
    browser: Browser,
    agent_state: dict[str, Any],
) -> None:
    system = live_call_system
    agent = await page_at(browser, agent_state, LAPTOPS[1])
    await agent.add_init_script(COUNT_TONES)
    await agent.goto(system.base_url + "/staff")
    toggle = agent.locator("#alert-sound")
    await expect(toggle).to_be_visible()
    await expect(toggle).not_to_be_checked()

    # off by default: a new request makes no sound
    first = await citizen_asks(system, browser, "eerste@example.org")
    await expect(agent.locator(f'tr[data-reference="{first}"]')).to_be_visible()
    assert await tones(agent) == 0

    # switched on: a sample of the tone, and the choice is kept in this browser
    await toggle.check()
    await wait_for(lambda: _equals(tones(agent), 2), 2, "the sample tone")
    await agent.reload()
    await expect(toggle).to_be_checked()
    await checked(agent, "queue, sound on", LAPTOPS[1])
    second = await citizen_asks(system, browser, CITIZEN_EMAIL)
    await expect(agent.locator(f'tr[data-reference="{second}"]')).to_be_visible()
    await wait_for(lambda: _equals(tones(agent), 2), 2, "a tone for the request")

    # and for a citizen who waits in the lobby
    await agent.locator(f'tr[data-reference="{second}"] form.claim button').click()
    await agent.click("#start-video")
    await agent.wait_for_url(re.compile(r".*/staff/gesprekken/[A-Za-z0-9_-]+$"))
    assert await tones(agent) == 0
    link = await system.mailbox.link_for(CITIZEN_EMAIL)
    citizen = await new_page(browser)
    await citizen.goto(link)
    await citizen.wait_for_url("**/gesprek/apparaat")
    await device_check(citizen, "citizen")
    await citizen.click("#join")
    await expect(agent.locator("#participants button.admit")).to_be_visible(
        timeout=15_000
    )
    await wait_for(lambda: _equals(tones(agent), 2), 2, "a tone for the lobby")
    await close_all(agent, citizen)


async def _equals(count: Any, wanted: int) -> bool:
    return bool(await count == wanted)
