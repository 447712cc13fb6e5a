"""A citizen's call link and survey in Chromium over HTTPS: the token leaves the
address bar at once, a second browser is refused accessibly, the survey works."""

from __future__ import annotations

from datetime import timedelta

import pytest

from controlplane.calls import join_links
from controlplane.calls import record as records
from controlplane.storage.database import Database
from tests.e2e.conftest import assert_accessible, new_page

pytestmark = pytest.mark.browser


async def test_link_opens_once_and_survey_after_the_call(live_system, browser):
    db = Database(live_system.db_url)
    try:
        record_id = await records.create_call_record(db, room_id="e2e", request_id=1)
        token = await join_links.create_link(
            db, request_id=1, room_id="e2e", role="citizen", ttl=timedelta(hours=1)
        )
    finally:
        await db.close()
    link = join_links.link_url(live_system.base_url, token)

    first = await new_page(browser)
    async with first.expect_request(lambda r: r.url.endswith("/gesprek/apparaat")):
        await first.goto(link)
    await first.wait_for_url("**/gesprek/apparaat")
    assert token not in first.url

    second = await new_page(browser)
    await second.goto(link)
    alert = second.locator("#join-error")
    await alert.wait_for(state="visible")
    assert "al geopend" in await alert.inner_text()
    assert token not in await second.evaluate("location.href")
    await assert_accessible(second, "used link (nl)")

    db = Database(live_system.db_url)
    try:
        await join_links.void_room(db, "e2e")
    finally:
        await db.close()
    await first.goto(live_system.base_url + "/gesprek/enquete")
    await assert_accessible(first, "citizen survey")
    await first.click("#survey-submit")
    await first.locator("#error-summary").wait_for()
    await assert_accessible(first, "citizen survey with errors")
    await first.check("#ease-4")
    await first.check("#av_quality-5")
    await first.check("#would_use_again-unsure")
    await first.fill("#comment", "Het beeld viel even weg.")
    await first.click("#survey-submit")
    await first.locator("#survey-thanks").wait_for()
    await assert_accessible(first, "survey thanks")

    db = Database(live_system.db_url)
    try:
        record = await records.get_call_record(db, record_id)
    finally:
        await db.close()
    assert record.citizen == records.CitizenSurvey(
        4, 5, "unsure", "Het beeld viel even weg."
    )


async def test_landing_without_javascript_explains_and_gives_a_number(
    live_system, browser
):
    page = await new_page(browser, java_script_enabled=False)
    await page.goto(live_system.base_url + "/gesprek#t=whatever-token-value-123")
    text = await page.locator("main").inner_text()
    assert "JavaScript" in text
    assert "0900-8844" in text
    await page.context.close()


async def test_landing_without_token_says_what_to_do(live_system, browser):
    page = await new_page(browser)
    await page.goto(live_system.base_url + "/gesprek?lang=en")
    alert = page.locator("#join-error")
    await alert.wait_for(state="visible")
    assert "Open the link from your e-mail" in await alert.inner_text()
    await assert_accessible(page, "landing without a token (en)")
