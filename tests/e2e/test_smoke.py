"""The real server over HTTPS in Debian Chromium: error pages are accessible."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import assert_accessible, new_page

pytestmark = pytest.mark.browser


async def test_not_found_page_is_accessible_in_both_languages(live_system, browser):
    page = await new_page(browser)
    response = await page.goto(live_system.base_url + "/bestaat-niet")
    assert response is not None
    assert response.status == 404
    assert await page.locator("html").get_attribute("lang") == "nl"
    await assert_accessible(page, "404 page (nl)")
    await page.click("text=English")
    assert await page.locator("html").get_attribute("lang") == "en"
    await assert_accessible(page, "404 page (en)")


async def test_the_accessibility_statement_is_accessible(live_system, browser):
    page = await new_page(browser)
    await page.goto(live_system.base_url + "/")
    await page.click("text=Toegankelijkheid")
    assert page.url.endswith("/toegankelijkheid")
    await assert_accessible(page, "accessibility statement (nl)")
    await page.click("text=English")
    await assert_accessible(page, "accessibility statement (en)")
