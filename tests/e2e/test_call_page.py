"""The call pages in Chromium against a real media server.

An employee page and a citizen page (two browser contexts, fake camera and
microphone) join one room: lobby until admitted, then both decode video; mute,
camera off, chat, audio-only fallback, reconnect and hang-up; axe-core on each
state. Run inside ``unshare -n`` (loopback only), like the other browser tests.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.conftest import assert_accessible, new_page
from tests.e2e.media_fixtures import (  # noqa: F401 (a fixture)
    CallHarness,
    make_call_harness,
    refuse,
    reported,
)
from tests.helpers import wait_for

pytestmark = pytest.mark.browser


async def page_stats(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("window.beeldbel.stats()")
    return result


def decodes_video(stats: dict[str, Any], frames: int = 20) -> bool:
    return any(
        v["framesDecoded"] > frames
        and v["frameWidth"] >= 320
        and v["frameHeight"] >= 240
        for v in stats.get("inboundVideo") or []
    )


async def decoded_fps(page: Page) -> float:
    """Frames decoded per second of the best inbound video, over 2 s."""

    def frames(stats: dict[str, Any]) -> int:
        return int(max(v["framesDecoded"] for v in stats["inboundVideo"]))

    before, started = frames(await page_stats(page)), time.monotonic()
    await page.wait_for_timeout(2000)
    return (frames(await page_stats(page)) - before) / (time.monotonic() - started)


async def outbound_bytes(page: Page, kind: str) -> int:
    stats = await page_stats(page)
    sent = [o["bytesSent"] for o in stats.get("outbound") or [] if o["kind"] == kind]
    return int(sum(sent))


async def grows(page: Page, kind: str) -> bool:
    before = await outbound_bytes(page, kind)
    await page.wait_for_timeout(1500)
    return await outbound_bytes(page, kind) > before


async def open_call(
    harness: CallHarness,
    browser: Browser,
    role: str,
    query: str = "",
    *,
    clock: bool = False,
) -> Page:
    """The call page of ``role``; with ``clock`` its timers run on Playwright's
    clock (time flows, and a test can jump it ahead)."""
    page = await new_page(browser, viewport={"width": 390, "height": 844})
    if clock:
        await page.clock.install()
    await page.goto(harness.url(f"/t/call/{role}{query}"))
    return page


async def test_device_check_passes_and_leads_to_the_call(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await new_page(browser, viewport={"width": 390, "height": 844})
    await page.goto(harness.url("/t/device/citizen"))
    await expect(page.locator("#camera-result")).to_have_attribute("data-ok", "true")
    await expect(page.locator("#microphone-result")).to_have_attribute(
        "data-ok", "true"
    )
    await expect(page.locator("#connection-result")).to_have_attribute(
        "data-ok", "true"
    )
    await page.keyboard.press("Tab")  # keyboard only from here
    await page.focus("#play-tone")
    await page.keyboard.press("Enter")
    await page.focus("#heard-yes")
    await page.keyboard.press("Enter")
    await expect(page.locator("#summary-failed li")).to_have_count(0)
    await assert_accessible(page, "device check, passed")
    await wait_for(lambda: bool(harness.progress), 5, "device check reported")
    assert harness.progress[0] == {"step": "device_check_passed", "failed": []}

    # "did you hear it?" no: the summary says what failed, still may join
    await page.focus("#heard-no")
    await page.keyboard.press("Enter")
    await expect(
        page.locator('#summary-failed li[data-failed="speaker"]')
    ).to_be_visible()
    await assert_accessible(page, "device check, speaker failed")
    await page.focus("#join")
    await page.keyboard.press("Enter")
    await page.wait_for_url("**/t/call/citizen")
    await expect(page.locator("#lobby")).to_be_visible(timeout=10000)


async def test_blocked_camera_shows_help_and_reports_what_failed(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    page = await new_page(browser, permissions=[])
    await page.add_init_script(
        "navigator.mediaDevices.getUserMedia = () =>"
        " Promise.reject(new DOMException('blocked', 'NotAllowedError'));"
    )
    await page.goto(harness.url("/t/device/citizen"))
    await expect(page.locator("#permission-help")).to_be_visible()
    await expect(page.locator("#permission-help")).to_be_focused()
    await expect(
        page.locator('#permission-help [data-browser="chrome"]')
    ).to_be_visible()
    await expect(
        page.locator('#summary-failed li[data-failed="camera"]')
    ).to_be_visible()
    await expect(
        page.locator('#summary-failed li[data-failed="microphone"]')
    ).to_be_visible()
    await assert_accessible(page, "device check, permission blocked")
    # joining anyway tells the employee what failed
    await page.click("#join")
    await wait_for(lambda: bool(harness.progress), 5, "device check reported")
    assert harness.progress[0]["step"] == "device_check_failed"
    assert {"camera", "microphone"} <= set(harness.progress[0]["failed"])
    # the call page has loaded its files before the test's server goes (a static
    # file cut off mid-send is left open, and its warning fails the test)
    await page.wait_for_url("**/t/call/citizen", wait_until="networkidle")


async def test_two_pages_call_through_the_media_server(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    agent = await open_call(harness, browser, "agent")
    await expect(agent.locator("#call-status")).to_have_text("U bent in het gesprek.")
    await assert_accessible(agent, "agent page, alone in the call")
    citizen = await open_call(harness, browser, "citizen")
    await expect(citizen.locator("#lobby")).to_be_visible(timeout=10000)
    await expect(citizen.locator("#call-status")).to_contain_text("wachtruimte")
    await expect(citizen.locator("#chat")).to_be_hidden()  # no chat in the lobby
    await assert_accessible(citizen, "citizen, waiting room")

    # a message from the employee shows in the waiting room
    await agent.fill("#lobby-message-input", "Ik kom er over twee minuten aan.")
    await agent.click("#lobby-message-send")
    await expect(citizen.locator("#lobby-message-text")).to_have_text(
        "Ik kom er over twee minuten aan."
    )
    await assert_accessible(citizen, "citizen, waiting room with a message")
    await wait_for(
        lambda: {"step": "waiting", "failed": []} in harness.progress, 5, "waiting"
    )

    # nothing is decoded in the lobby; the employee admits by keyboard
    assert not decodes_video(await page_stats(citizen), 0)
    admit = agent.locator("button.admit")
    await expect(admit).to_have_count(1)
    await assert_accessible(agent, "agent page, citizen in the lobby")
    await admit.focus()
    admitted_at = time.monotonic()
    await agent.keyboard.press("Enter")
    await expect(citizen.locator("#lobby")).to_be_hidden()

    async def both_decode() -> bool:
        return decodes_video(await page_stats(agent)) and decodes_video(
            await page_stats(citizen)
        )

    await wait_for(both_decode, 20, "both pages decode >= 320x240")
    citizen_stats = await page_stats(citizen)
    print(
        f"admit→decoding 20 frames: {time.monotonic() - admitted_at:.2f} s; "
        "admission→first picture (citizen): "
        f"{citizen_stats['joinToFirstPictureMs']} ms; "
        f"connection {citizen_stats['connectionType']}"
    )
    assert citizen_stats["connectionType"] == "direct"
    for page in (agent, citizen):
        fps = await decoded_fps(page)
        role = await page.evaluate("window.beeldbel.connection.role")
        print(f"{role} decodes {fps:.1f} fps")
        assert fps >= 20
    await expect(citizen.locator(".tile-remote .tile-name")).to_have_text("Medewerker")
    await expect(agent.locator(".tile-remote .tile-name")).to_have_text("Burger")
    await expect(citizen.locator("#quality")).not_to_have_attribute(
        "data-level", "unknown"
    )
    await assert_accessible(citizen, "citizen, in the call")
    await assert_accessible(agent, "agent, in the call")
    await wait_for(
        lambda: {"step": "in_call", "failed": []} in harness.progress, 5, "in_call"
    )

    # mute: the button says so ("Microfoon: uit", not pressed), the track is
    # disabled, and the employee's page shows the citizen muted
    mic = citizen.locator("#toggle-mic")
    remote = agent.locator(".tile-remote")
    await expect(mic).to_have_text("Microfoon: aan")
    await mic.focus()
    await citizen.keyboard.press("Enter")
    await expect(mic).to_have_attribute("aria-pressed", "false")
    await expect(mic).to_have_text("Microfoon: uit")
    await expect(citizen.locator("#call-status")).to_have_text(
        "Uw microfoon staat uit."
    )
    assert await citizen.evaluate(
        "window.beeldbel.connection.stream.getAudioTracks().every(t => !t.enabled)"
    )
    await expect(remote.locator(".tile-muted")).to_be_visible()
    await expect(agent.locator("#call-status")).to_have_text(
        "Burger heeft de microfoon uitgezet."
    )
    await assert_accessible(citizen, "citizen, muted")
    await assert_accessible(agent, "agent, the citizen muted")
    await citizen.keyboard.press("Enter")
    await expect(mic).to_have_attribute("aria-pressed", "true")
    await expect(remote.locator(".tile-muted")).to_be_hidden()

    # camera off: no video bytes sent until it is on again; the employee sees it
    camera = citizen.locator("#toggle-camera")
    await camera.click()
    await expect(camera).to_have_attribute("aria-pressed", "false")
    await expect(camera).to_have_text("Camera: uit")
    await expect(remote.locator(".tile-camera-off")).to_be_visible()
    await citizen.wait_for_timeout(500)
    assert not await grows(citizen, "video")
    await assert_accessible(citizen, "citizen, camera off")
    await assert_accessible(agent, "agent, the citizen's camera off")
    await camera.click()
    await expect(camera).to_have_attribute("aria-pressed", "true")
    await expect(remote.locator(".tile-camera-off")).to_be_hidden()
    await wait_for(lambda: grows(citizen, "video"), 10, "video flows again")

    # reconnect: the peer connection dies; back in the call within 10 s
    tokens = harness.tokens_issued
    await citizen.evaluate("window.beeldbel.connection.pc.close()")
    killed = time.monotonic()
    await expect(citizen.locator("#call-status")).to_have_text(
        "U bent in het gesprek.", timeout=10000
    )

    async def decoding_again() -> bool:
        # the citizen's new peer connection has fresh stats: decoded frames are new
        stats = await page_stats(citizen)
        return stats["reconnects"] == 1 and decodes_video(stats, 5)

    await wait_for(decoding_again, 10, "the citizen decodes again after reconnecting")
    frames = sum(v["framesDecoded"] for v in (await page_stats(agent))["inboundVideo"])

    async def agent_decodes_again() -> bool:
        stats = await page_stats(agent)
        return bool(sum(v["framesDecoded"] for v in stats["inboundVideo"]) > frames + 5)

    await wait_for(agent_decodes_again, 5, "the employee decodes the citizen again")
    back = time.monotonic() - killed
    print(f"reconnect: back in the call and decoding after {back:.2f} s")
    assert back < 10
    assert harness.tokens_issued == tokens + 1  # a fresh token, no new link

    # audio-only fallback when the connection is poor, with a notice
    await citizen.evaluate("window.beeldbel.simulateQuality('poor')")
    await expect(citizen.locator("#call-notice")).to_contain_text(
        "alleen geluid", timeout=10000
    )
    assert (await page_stats(citizen))["audioOnly"]
    await citizen.wait_for_timeout(500)
    assert not await grows(citizen, "video")
    await assert_accessible(citizen, "citizen, audio only")
    await citizen.evaluate("window.beeldbel.simulateQuality(null)")

    # the citizen hangs up: the survey opens; the quality record was reported
    await citizen.click("#hang-up")
    await citizen.wait_for_url("**/t/survey/citizen")
    await wait_for(
        lambda: any(
            q["role"] == "citizen" and q["reconnects"] == 1 for q in harness.quality
        ),
        5,
        "quality reported",
    )
    record = next(
        q for q in harness.quality if q["role"] == "citizen" and q["reconnects"]
    )
    assert record["connection_type"] == "direct"
    assert record["join_to_first_picture_ms"] is not None
    assert {"step": "left", "failed": []} in harness.progress

    # the employee ends the call, closes the request in one step, then the survey
    await agent.click("#hang-up")
    await expect(agent.locator("#close-panel")).to_be_visible()
    await expect(agent.locator("#close-panel")).to_be_focused()
    await assert_accessible(agent, "agent, call over: close the request")
    await agent.click("#close-request")
    await expect(agent.locator("#close-error")).to_be_visible()
    await agent.check("#close-handled")
    await agent.click("#close-request")
    await agent.wait_for_url("**/t/survey/agent")
    assert harness.closed_as == "handled"


async def open_chat(page: Page) -> None:
    """Open the chat panel (a phone starts with it closed) and see its input."""
    toggle = page.locator("#toggle-chat")
    if await toggle.get_attribute("aria-expanded") != "true":
        await toggle.click()
    await expect(page.locator("#chat-input")).to_be_visible()


async def chat_ready(page: Page) -> None:
    """The chat panel open and its data channel to the media server open."""
    await open_chat(page)

    async def channel_open() -> bool:
        return bool((await page_stats(page))["chatOpen"])

    await wait_for(channel_open, 10, "chat channel open")


async def admitted_pair(harness: CallHarness, browser: Browser) -> tuple[Page, Page]:
    """An employee and a citizen page, the citizen admitted and decoding video."""
    agent = await open_call(harness, browser, "agent")
    citizen = await open_call(harness, browser, "citizen")
    admit = agent.locator("button.admit")
    await admit.click()

    async def decoding() -> bool:
        return decodes_video(await page_stats(citizen), 0)

    await wait_for(decoding, 20, "the citizen decodes video")
    return agent, citizen


async def test_interpreter_joins_without_lobby_and_sees_both(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    agent, citizen = await admitted_pair(harness, browser)
    interpreter = await open_call(harness, browser, "interpreter", "?lang=en")
    await expect(interpreter.locator("#call-status")).to_have_text(
        "You are in the call."
    )

    async def sees_both() -> bool:
        stats = await page_stats(interpreter)
        return (
            sum(decodes_video({"inboundVideo": [v]}, 5) for v in stats["inboundVideo"])
            == 2
        )

    joined = time.monotonic()
    await wait_for(
        sees_both, 20, "the interpreter decodes the employee and the citizen"
    )
    print(f"interpreter decodes both after {time.monotonic() - joined:.2f} s")
    labels = interpreter.locator(".tile-remote .tile-name")
    await expect(labels).to_have_count(2)
    assert sorted(await labels.all_inner_texts()) == ["Citizen", "Employee"]
    await expect(citizen.locator(".tile-remote .tile-name")).to_have_count(2)
    await expect(citizen.locator(".tile-remote .tile-name").last).to_have_text("Tolk")
    await expect(interpreter.locator("#switch-camera")).to_be_hidden()  # one camera
    print(f"checks done after {time.monotonic() - joined:.2f} s")
    await assert_accessible(interpreter, "interpreter, in English, in the call")
    await assert_accessible(agent, "agent with two participants")
    print(f"axe done after {time.monotonic() - joined:.2f} s")


async def test_reconnects_when_the_signalling_socket_drops(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    agent, citizen = await admitted_pair(harness, browser)
    await citizen.evaluate("window.beeldbel.connection.ws.close()")
    dropped = time.monotonic()

    async def back() -> bool:
        stats = await page_stats(citizen)
        return stats["reconnects"] == 1 and decodes_video(stats, 5)

    await wait_for(back, 10, "the citizen is back in the call, decoding")
    print(f"socket dropped: back and decoding after {time.monotonic() - dropped:.2f} s")
    await expect(citizen.locator("#call-status")).to_have_text("U bent in het gesprek.")
    await expect(agent.locator("#participants li")).to_have_count(1)


async def test_chat_message_arrives_within_a_second(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    agent, citizen = await admitted_pair(harness, browser)
    for page in (agent, citizen):
        await chat_ready(page)
    await citizen.fill("#chat-input", "Hallo, ik hoor u niet goed.")
    sent = time.monotonic()
    await citizen.press("#chat-input", "Enter")
    await expect(citizen.locator("#chat-input")).to_have_value("")
    await expect(agent.locator("#chat-log")).to_contain_text(
        "Burger: Hallo, ik hoor u niet goed.", timeout=1000
    )
    print(f"chat delivered in {time.monotonic() - sent:.3f} s")
    await agent.fill("#chat-input", "Ik zet het geluid harder.")
    await agent.click("#chat-send")
    await expect(citizen.locator("#chat-log")).to_contain_text(
        "Medewerker: Ik zet het geluid harder.", timeout=1000
    )
    # text stays text: nothing a participant types becomes markup
    await agent.fill("#chat-input", "<img src=x id=injected>")
    await agent.press("#chat-input", "Enter")
    await expect(citizen.locator("#chat-log")).to_contain_text(
        "<img src=x id=injected>"
    )
    await expect(citizen.locator("#injected")).to_have_count(0)
    await assert_accessible(citizen, "citizen, chat")


async def test_real_time_text_shows_the_line_as_it_is_typed(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    """Deaf and hard-of-hearing citizens read the employee's words as they come
    (EN 301 549 §6.2), not only after Enter; the sender can switch it off."""
    harness = await make_call_harness()
    agent, citizen = await admitted_pair(harness, browser)
    for page in (agent, citizen):
        await chat_ready(page)
    draft = citizen.locator("#chat-drafts .chat-draft")
    await agent.locator("#chat-input").press_sequentially("Goedemiddag, u spreekt")
    typed = time.monotonic()
    await expect(draft).to_have_text(
        "Medewerker typt: Goedemiddag, u spreekt", timeout=500
    )
    print(f"real-time text shown {time.monotonic() - typed:.3f} s after the keystroke")
    await assert_accessible(citizen, "citizen, the employee typing")
    # sent: the line moves into the log and the draft goes
    await agent.press("#chat-input", "Enter")
    await expect(citizen.locator("#chat-log")).to_contain_text(
        "Medewerker: Goedemiddag, u spreekt"
    )
    await expect(draft).to_have_count(0)
    # switched off: nothing shows until the message is sent. The channel keeps
    # order, so once the mute that follows the typing arrives, any typing would
    # have arrived before it
    await agent.locator("#rtt-on").uncheck()
    await agent.locator("#chat-input").press_sequentially("Een moment")
    await agent.click("#toggle-mic")
    await expect(citizen.locator(".tile-remote .tile-muted")).to_be_visible()
    await expect(draft).to_have_count(0)
    await agent.press("#chat-input", "Enter")
    await expect(citizen.locator("#chat-log")).to_contain_text("Medewerker: Een moment")


async def test_switched_to_phone_the_citizen_is_told_we_ring_now(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    agent, citizen = await admitted_pair(harness, browser)
    await agent.select_option("#switch-reason", "technical_problem")
    await agent.click("#switch-to-phone")
    ended = citizen.locator("#call-ended")
    await expect(ended).to_be_visible()
    await expect(citizen.locator("#call-ended-title")).to_have_text("We bellen u nu")
    await expect(citizen.locator("#call-ended-text")).to_contain_text("op 06-…78")
    await expect(citizen.locator("#survey-link")).to_be_visible()
    await assert_accessible(citizen, "citizen, switched to phone")


async def test_the_test_hooks_are_not_published_without_the_switch(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    """window.beeldbel (the live connection, a quality simulator) exists for
    these tests only: with [calls] test_hooks off the page has none."""
    harness = await make_call_harness(test_hooks=False)
    citizen = await open_call(harness, browser, "citizen")
    await expect(citizen.locator("#lobby")).to_be_visible(timeout=10000)
    assert await citizen.evaluate("typeof window.beeldbel") == "undefined"


async def test_joins_as_chosen_on_the_device_check_and_reports_failures(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    """ "Join muted" and "join with the camera off" from the device check hold
    from the first moment; a failure the page gets past is counted."""
    harness = await make_call_harness()
    agent = await open_call(harness, browser, "agent")
    citizen = await new_page(browser, viewport={"width": 390, "height": 844})
    await citizen.add_init_script(
        "sessionStorage.setItem('beeldbel-devices',"
        " JSON.stringify({muted: true, cameraOff: true}))"
    )
    await refuse(citizen, "**/t/progress")
    await citizen.goto(harness.url("/t/call/citizen"))
    await expect(citizen.locator("#toggle-mic")).to_have_text("Microfoon: uit")
    await expect(citizen.locator("#toggle-camera")).to_have_text("Camera: uit")
    assert await citizen.evaluate(
        "window.beeldbel.connection.stream.getTracks().every(t => !t.enabled)"
    )
    await agent.locator("button.admit").click()
    remote = agent.locator(".tile-remote")
    await expect(remote.locator(".tile-muted")).to_be_visible(timeout=10000)
    await expect(remote.locator(".tile-camera-off")).to_be_visible()
    await assert_accessible(citizen, "citizen, joined muted with the camera off")
    await reported(harness, "call", "report", "the refused progress report")


async def test_a_failed_action_on_the_employees_page_is_counted(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    agent = await open_call(harness, browser, "agent")
    await refuse(agent, "**/t/message")
    await agent.fill("#lobby-message-input", "Ik kom er zo aan.")
    await agent.click("#lobby-message-send")
    await expect(agent.locator("#call-notice")).to_be_visible()
    await reported(harness, "staff_call", "action", "the refused message")


async def test_ended_by_the_employee_shows_the_ended_state(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    citizen = await open_call(harness, browser, "citizen", clock=True)
    await expect(citizen.locator("#lobby")).to_be_visible(timeout=10000)
    await harness.end_room()
    await expect(citizen.locator("#call-ended")).to_be_visible()
    await expect(citizen.locator("#call-ended")).to_be_focused()
    await assert_accessible(citizen, "citizen, call ended")
    # the end screen stays (WCAG 2.2.1: no time limit; a screen reader keeps its
    # place): a minute of the page's time passes and it is still there
    await wait_for(lambda: any(q["role"] == "citizen" for q in harness.quality), 10)
    call_page = citizen.url
    await citizen.clock.fast_forward(60_000)
    await expect(citizen.locator("#call-ended")).to_be_visible()
    await expect(citizen.locator("#call-ended-text")).to_have_text(
        "Dank u wel. Wilt u ons in een korte vragenlijst vertellen hoe het ging?"
    )
    assert citizen.url == call_page
    # the survey is one clear button away
    await citizen.click("#survey-link")
    await citizen.wait_for_url("**/t/survey/citizen", timeout=10000)


async def test_a_refused_token_shows_the_error_state(
    make_call_harness,  # noqa: F811 (a fixture)
    browser,
) -> None:
    harness = await make_call_harness()
    await harness.end_room()  # the media server refuses the join: room_not_found
    citizen = await open_call(harness, browser, "citizen")
    await expect(citizen.locator("#call-error")).to_be_visible(timeout=10000)
    await expect(citizen.locator("#call-error")).to_be_focused()
    await assert_accessible(citizen, "citizen, error")
