"""The citizen's status page in a real browser: the link from the confirmation
e-mail opens it, the citizen picks another time and cancels by keyboard alone, a
tampered link is refused. axe-core checks every state; at 390 px nothing scrolls
sideways."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from playwright.async_api import Page, expect

from controlplane.storage.database import Database
from controlplane.storage.schema import callback_requests
from tests.e2e.call_system import CallSystem, live_call_system
from tests.e2e.conftest import assert_accessible, new_page
from tests.helpers import wait_for

__all__ = ["live_call_system"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ADDRESS = "status.canary@example.org"
_STATUS_LINK = re.compile(r"https://\S+/verzoek/[A-Z0-9-]+\.[A-Za-z0-9_-]+")


async def _status_link(system: CallSystem) -> str:
    """The status link in the confirmation e-mail to :data:`ADDRESS`."""

    def found() -> str | None:
        for to, message in system.mailbox.messages:
            body = message.get_body(("plain",))
            match = _STATUS_LINK.search(body.get_content()) if body else None
            if ADDRESS in to and match:
                return match.group(0)
        return None

    await wait_for(found, 10, "the confirmation e-mail with its status link")
    link = found()
    assert link is not None
    return link


async def _set_state(system: CallSystem, reference: str, state: str) -> None:
    db = Database(system.db_url)
    try:
        async with db.write() as conn:
            await conn.execute(
                sa.update(callback_requests)
                .where(callback_requests.c.reference == reference)
                .values(state=state)
            )
    finally:
        await db.close()


async def _tab_to(page: Page, element_id: str) -> None:
    """Press Tab until ``element_id`` has the focus, as a keyboard user does."""
    for _ in range(40):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(
            "document.activeElement && document.activeElement.id"
        )
        if focused == element_id:
            return
    raise AssertionError(f"Tab never reached #{element_id}")


async def test_status_page_from_the_mail_link(live_call_system, browser):
    system = live_call_system
    citizen = await new_page(browser, viewport={"width": 390, "height": 844})
    await citizen.goto(system.base_url + "/")
    await citizen.fill("#name", "Fatima de Vries")
    await citizen.fill("#phone", "06-12345678")
    await citizen.fill("#email", ADDRESS)
    await citizen.select_option("#topic", "report_question")
    await citizen.check("#channel-video")
    await citizen.check("#preferred-asap")
    await citizen.check("#consent")
    await citizen.click("#submit-request")
    reference = (await citizen.locator("#reference").inner_text()).strip()
    await expect(citizen.locator("#status-link")).to_be_visible()
    await assert_accessible(citizen, "confirmation with status link")

    # the link from the e-mail, opened in another browser (a mail app's)
    link = await _status_link(system)
    page = await new_page(browser, viewport={"width": 390, "height": 844})
    await page.goto(link)
    await expect(page.locator("#reference")).to_have_text(reference)
    await expect(page.locator("#request-state")).to_have_attribute("data-state", "new")
    await expect(page.locator("#request-state")).to_have_text("Ontvangen")
    await assert_accessible(page, "status page")

    # another time: the same one is refused with a message, a free one is kept
    await page.click("#move-request")
    await expect(page.locator("#error-summary")).to_be_visible()
    await expect(page.locator("#slot-error")).to_contain_text("al uw moment")
    await assert_accessible(page, "status page with an error")
    second = page.locator("#slot option").nth(2)
    await page.select_option("#slot", await second.get_attribute("value"))
    await page.click("#move-request")
    await expect(page.locator("#done")).to_contain_text("nieuwe moment")
    await assert_accessible(page, "status page after a new time")

    # an employee picks it up: the time is fixed now, a failed link can be told
    await _set_state(system, reference, "claimed")
    await page.reload()
    await expect(page.locator("#slot")).to_have_count(0)
    await page.click("#ask-link")
    await expect(page.locator("#done")).to_contain_text("medewerker")
    await assert_accessible(page, "status page after asking for a new link")

    # cancel by keyboard alone, through the confirmation page
    await page.locator("h1").focus()
    await _tab_to(page, "cancel-request")
    await page.keyboard.press("Enter")
    await expect(page.locator("#confirm-cancel")).to_be_visible()
    await assert_accessible(page, "cancel confirmation")
    await _tab_to(page, "confirm-cancel")
    await page.keyboard.press("Enter")
    await expect(page.locator("#request-state")).to_have_attribute(
        "data-state", "cancelled"
    )
    await expect(page.locator("#done")).to_contain_text("geannuleerd")
    await expect(page.locator("#cancel-request")).to_have_count(0)
    await assert_accessible(page, "cancelled status page")

    # opened again later, in English: still there
    await page.goto(link + "?lang=en")
    await expect(page.locator("#request-state")).to_have_text("Cancelled")
    await assert_accessible(page, "cancelled status page in English")

    # a link with one character changed is refused, in the page's language
    token = link.rsplit("/", 1)[1]
    tampered = link.replace(token, token[:-1] + ("A" if token[-1] != "A" else "B"))
    response = await page.goto(tampered + "?lang=nl")
    assert response is not None
    assert response.status == 404
    await expect(page.locator("main")).to_contain_text("Deze link klopt niet")
    await assert_accessible(page, "tampered status link")
