"""Issue 2's story in a real browser: a citizen asks for a callback, an agent signs in
with TOTP, sees it arrive without reloading, claims it and closes it with an outcome.
axe-core checks every page on the way."""

from __future__ import annotations

import re

import pyotp
import pytest
from playwright.async_api import expect

from beeldbel.config import load_config
from controlplane.security.secrets_store import load_secret_key
from controlplane.staff.users import create_user
from controlplane.storage.database import Database
from tests.e2e.conftest import assert_accessible, new_page, notes, notifying_page
from tests.helpers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PASSWORD = "correct horse battery staple 42"
SECRET = pyotp.random_base32()


async def _add_agent(db_url: str, config_file: str) -> None:
    db = Database(db_url)
    key = load_secret_key(load_config(config_file, {}))
    try:
        await create_user(
            db,
            "agent.smit",
            "agent",
            password=PASSWORD,
            totp_secret=SECRET,
            secret_key=key,
        )
    finally:
        await db.close()


async def test_citizen_request_reaches_a_live_queue_and_is_closed(live_system, browser):
    await _add_agent(live_system.db_url, str(live_system.config_file))
    base = live_system.base_url

    # The agent signs in first and keeps the queue open.
    agent = await notifying_page(browser)
    await agent.goto(base + "/staff")
    await expect(agent.locator("#username")).to_be_visible()
    await assert_accessible(agent, "staff login")
    await agent.fill("#username", "agent.smit")
    await agent.fill("#password", PASSWORD)
    await agent.click("#login-submit")
    await expect(agent.locator("#totp-code")).to_be_visible()
    await assert_accessible(agent, "TOTP step")
    await agent.fill("#totp-code", pyotp.TOTP(SECRET).now())
    await agent.click("#totp-submit")
    await expect(agent.locator("#queue")).to_be_visible()
    await expect(agent).to_have_title(re.compile(r"^Wachtrij"))
    await assert_accessible(agent, "empty queue")

    # The citizen fills the form; first with a mistake, so the error state is checked.
    citizen = await new_page(browser)
    await citizen.goto(base + "/")
    await assert_accessible(citizen, "callback form")
    # radios and checkboxes are targets a finger can hit (40 px), none preset
    sizes = await citizen.eval_on_selector_all(
        "input[type=radio], input[type=checkbox]",
        "els => els.map(e => [e.id, e.getBoundingClientRect().width,"
        " e.getBoundingClientRect().height, e.checked])",
    )
    assert sizes
    for control, width, height, checked in sizes:
        assert min(width, height) >= 40, (control, width, height)
        assert not checked, control
    await citizen.fill("#name", "Fatima de Vries")
    await citizen.fill("#phone", "12")
    await citizen.check("#channel-phone")
    await citizen.check("#preferred-asap")
    await citizen.click("#submit-request")
    await expect(citizen.locator("#error-summary")).to_be_visible()
    await expect(citizen.locator("#name")).to_have_value("Fatima de Vries")
    await assert_accessible(citizen, "callback form with errors")
    await citizen.fill("#phone", "06-12345678")
    await citizen.select_option("#topic", "report_question")
    await citizen.check("#accessibility-text_chat")
    await citizen.check("#consent")
    await citizen.click("#submit-request")
    reference_box = citizen.locator("#reference")
    await expect(reference_box).to_have_text(re.compile(r"BB-[A-Z0-9]{4}-[A-Z0-9]{4}"))
    reference = (await reference_box.inner_text()).strip()
    await assert_accessible(citizen, "confirmation")

    # Without a reload, the agent's queue shows the new request.
    row = agent.locator(f'#queue tr[data-reference="{reference}"]')
    await expect(row).to_be_visible(timeout=10_000)
    await expect(agent.locator("#queue-status")).not_to_be_empty()
    # the tab title counts the requests nobody has picked up, for an employee
    # working in another window
    await expect(agent).to_have_title(re.compile(r"^\(1\) Wachtrij"), timeout=2_000)
    # and a notification, the permission being given (no button then)
    await wait_for(lambda: notes(agent), 2, "no notification of the new request")
    assert await notes(agent) == ["1 nieuw verzoek in de wachtrij"]
    await expect(agent.locator("#enable-notifications")).to_be_hidden()
    await assert_accessible(agent, "queue with a request")

    # Keyboard only: claim it, start the call, close it with an outcome.
    await row.locator("form.claim button").focus()
    await agent.keyboard.press("Enter")
    await expect(agent.locator("#start-call")).to_be_visible()
    await assert_accessible(agent, "claimed request")
    await agent.locator("#start-call").focus()
    await agent.keyboard.press("Enter")
    await expect(agent.locator("#request-state")).to_have_attribute(
        "data-state", "calling"
    )
    await agent.select_option("#outcome", "report_taken")
    await agent.click("#complete")
    await expect(row).to_have_count(0)

    db = Database(live_system.db_url)
    try:
        from controlplane.requests.callbacks import find_by_reference

        stored = await find_by_reference(db, reference)
    finally:
        await db.close()
    assert stored is not None
    assert (stored["state"], stored["outcome"]) == ("completed", "report_taken")
    assert stored["phone"] == "+31612345678"
