"""The device check in Chromium (fake camera and microphone) on the real pages app:
nothing looks ready before its script works, camera/microphone/speaker pickers
remembered for the tab, "camera off" and "muted" handed to the call page, a
mirrored preview, and a failure the script would swallow reported and counted.
Run inside ``unshare -n`` (loopback only), like the other browser tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from tests.e2e.conftest import assert_accessible, new_page
from tests.e2e.media_fixtures import (  # noqa: F401 (a fixture)
    CallHarness,
    client_errors,
    make_call_harness,
    refuse,
    reported,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.browser

#: Every control the script makes work.
CONTROLS = (
    "#play-tone",
    "#camera-select",
    "#microphone-select",
    "#camera-off",
    "#join-muted",
)


async def open_device_check(harness: CallHarness, browser: Any, **options: Any) -> Page:
    options.setdefault("viewport", {"width": 390, "height": 844})
    page = await new_page(browser, **options)
    await page.goto(harness.url("/t/device/citizen"))
    return page


async def test_controls_are_disabled_until_the_script_works(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await new_page(browser, viewport={"width": 390, "height": 844})
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        await release.wait()
        await route.continue_()

    # the static URL carries ?v=<hash>: match the path, whatever follows
    await page.route(lambda url: "/js/device_check.js" in url, hold)
    # a module script runs before DOMContentLoaded: wait for the HTML only
    await page.goto(harness.url("/t/device/citizen"), wait_until="commit")
    await page.locator("#join-options").wait_for(state="attached")
    for control in CONTROLS:
        await expect(page.locator(control)).to_be_disabled()
    await expect(page.locator("#call-app")).to_have_attribute("aria-busy", "true")
    release.set()
    for control in CONTROLS:
        await expect(page.locator(control)).to_be_enabled()
    await expect(page.locator("#call-app")).not_to_have_attribute("aria-busy", "true")


async def test_pickers_switch_the_device_and_are_remembered(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await open_device_check(harness, browser)
    microphones = page.locator("#microphone-select option")
    await expect(page.locator("#microphone-select")).to_be_enabled()
    assert await page.locator("#camera-select option").count() >= 1
    assert await microphones.count() >= 2, "Chromium's fake audio has several inputs"
    second = await microphones.nth(1).get_attribute("value")
    assert second

    # keyboard only: a select and the two checkboxes
    await page.focus("#microphone-select")
    await page.keyboard.press("ArrowDown")
    live_mic = "document.getElementById('preview').srcObject.getAudioTracks()[0]"
    await wait_for(
        lambda: page.evaluate(f"{live_mic}?.getSettings().deviceId === {second!r}"),
        5,
        "the meter to use the chosen microphone",
    )
    await page.focus("#camera-off")
    await page.keyboard.press("Space")
    await page.focus("#join-muted")
    await page.keyboard.press("Space")
    stored = await page.evaluate(
        "import('/static/js/device_choice.js').then((m) => m.loadChoice())"
    )
    assert stored["audioInput"] == second
    assert stored["cameraOff"] is True
    assert stored["muted"] is True
    await assert_accessible(page, "device check with pickers")

    await page.reload()
    await expect(page.locator("#microphone-select")).to_have_value(second)
    await expect(page.locator("#camera-off")).to_be_checked()
    await expect(page.locator("#join-muted")).to_be_checked()
    assert await page.evaluate(f"{live_mic}?.getSettings().deviceId") == second


async def test_speaker_picker_or_a_hint_without_set_sink_id(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await open_device_check(harness, browser)
    await expect(page.locator("#speaker-select")).to_be_enabled()
    await expect(page.locator("#speaker-hint")).to_be_hidden()

    other = await new_page(browser, viewport={"width": 390, "height": 844})
    await other.add_init_script("delete HTMLMediaElement.prototype.setSinkId;")
    await other.goto(harness.url("/t/device/citizen"))
    await expect(other.locator("#play-tone")).to_be_enabled()
    await expect(other.locator("#speaker-hint")).to_be_visible()
    await expect(other.locator("#speaker-select")).to_be_hidden()
    await assert_accessible(other, "device check without speaker choice")


async def test_the_preview_is_mirrored_like_the_self_view(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await open_device_check(harness, browser)
    transform = await page.evaluate(
        "getComputedStyle(document.getElementById('preview')).transform"
    )
    assert transform == "matrix(-1, 0, 0, 1, 0, 0)"


async def test_device_choice_parses_and_defaults(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await open_device_check(harness, browser)
    results = await page.evaluate(
        """async () => {
          const m = await import('/static/js/device_choice.js');
          const parse = (raw) => m.parseChoice(raw);
          sessionStorage.removeItem(m.DEVICE_CHOICE_KEY);
          const absent = m.loadChoice();
          sessionStorage.setItem(m.DEVICE_CHOICE_KEY, '{not json');
          const malformed = m.loadChoice();
          m.saveChoice({videoInput: 'cam-2'});
          m.saveChoice({muted: true});
          return {
            key: m.DEVICE_CHOICE_KEY,
            absent, malformed,
            saved: m.loadChoice(),
            wrongTypes: parse(JSON.stringify(
              {videoInput: 7, audioInput: '', audioOutput: ['x'], cameraOff: 'yes',
               muted: 1})),
            array: parse('[1, 2]'),
            nullJson: parse('null'),
            good: parse(JSON.stringify({videoInput: 'v', audioInput: 'a',
              audioOutput: 'o', cameraOff: true, muted: false, extra: 1})),
          };
        }"""
    )
    defaults = {
        "videoInput": None,
        "audioInput": None,
        "audioOutput": None,
        "cameraOff": False,
        "muted": False,
    }
    assert results["key"] == "beeldbel-devices"
    for name in ("absent", "malformed", "wrongTypes", "array", "nullJson"):
        assert results[name] == defaults, name
    assert results["saved"] == defaults | {"videoInput": "cam-2", "muted": True}
    assert results["good"] == {
        "videoInput": "v",
        "audioInput": "a",
        "audioOutput": "o",
        "cameraOff": True,
        "muted": False,
    }


async def test_a_failed_progress_report_is_reported_and_counted(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await new_page(browser, viewport={"width": 390, "height": 844})
    await refuse(page, "**/t/progress")
    await page.goto(harness.url("/t/device/citizen"))
    await expect(page.locator("#connection-result")).to_have_attribute(
        "data-ok", "true"
    )
    await page.click("#play-tone")
    await page.click("#heard-yes")
    await reported(harness, "device_check", "report", "the failed progress report")


async def test_a_join_link_that_cannot_be_opened_is_reported(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await new_page(browser)

    async def cut(route: Route) -> None:
        await route.abort("connectionreset")

    await page.route("**/gesprek/openen", cut)
    await page.goto(harness.url("/gesprek#t=" + "x" * 32))
    await expect(page.locator("#join-error")).to_be_visible()
    await reported(harness, "join", "report", "the link that could not be opened")


async def test_an_uncaught_error_is_reported_once(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await open_device_check(harness, browser)
    await expect(page.locator("#play-tone")).to_be_enabled()
    for _ in range(3):
        await page.evaluate("setTimeout(() => { throw new Error('broken'); })")
        await page.evaluate("() => { Promise.reject(new Error('unhandled')); }")
    await wait_for(
        lambda: client_errors(harness, "device_check", "script") == 1,
        5,
        "the uncaught error to be counted",
    )
    await page.wait_for_timeout(300)  # and no more than once
    assert client_errors(harness, "device_check", "script") == 1
