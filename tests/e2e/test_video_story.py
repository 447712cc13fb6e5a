"""Issue 4's story in Chromium against the real processes: a citizen asks for a
video callback; an agent signs in with TOTP, claims it and starts the call with
e-mail; the link from the real SMTP server opens in a second browser; the device
check passes; the agent admits; both decode each other's video (≥ 320x240 at
≥ 20 fps) and receive audio; an interpreter joins and sees both; hang-up ends the
room and the surveys appear; the link is refused afterwards. axe-core checks every
page and state. The time from the citizen's "join" to the first decoded remote
frame is printed."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from tests.e2e.call_system import (  # noqa: F401 (a fixture)
    CallSystem,
    live_call_system,
    request_video_callback,
    staff_login,
)
from tests.e2e.conftest import assert_accessible, new_page, notes, notifying_page
from tests.e2e.test_call_page import open_chat
from tests.helpers import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(240)]

CITIZEN_EMAIL = "fatima.devries@example.org"
FPS_WINDOW_SECONDS = 3.0

_INBOUND = """async () => {
  const pc = window.beeldbel && window.beeldbel.connection.pc;
  const out = {audio: [], video: []};
  if (!pc) return out;
  (await pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'audio') {
      out.audio.push({packets: s.packetsReceived || 0,
                      samples: s.totalSamplesReceived || 0});
    } else {
      out.video.push({id: s.id, frames: s.framesDecoded || 0,
                      width: s.frameWidth || 0, height: s.frameHeight || 0});
    }
  });
  return out;
}"""


async def inbound(page: Page) -> dict[str, list[dict[str, Any]]]:
    result: dict[str, list[dict[str, Any]]] = await page.evaluate(_INBOUND)
    return result


async def decoding(page: Page, streams: int = 1) -> bool:
    """At least ``streams`` remote videos have decoded frames."""
    video = (await inbound(page))["video"]
    return sum(1 for v in video if v["frames"] > 0) >= streams


async def video_quality(page: Page) -> list[tuple[float, int, int]]:
    """(fps, width, height) of each decoding remote video over a window."""
    before = {v["id"]: v["frames"] for v in (await inbound(page))["video"]}
    started = time.monotonic()
    await page.wait_for_timeout(FPS_WINDOW_SECONDS * 1000)
    after = (await inbound(page))["video"]
    elapsed = time.monotonic() - started
    return [
        ((v["frames"] - before.get(v["id"], 0)) / elapsed, v["width"], v["height"])
        for v in after
        if v["frames"] > 0
    ]


async def assert_video_and_audio(page: Page, who: str, streams: int = 1) -> None:
    """≥ ``streams`` remote videos at ≥ 320x240 and ≥ 20 fps over one window (of
    up to three: a load spike on a shared test machine is not the system's
    fault), and audio packets and samples arriving."""
    seen = []
    for _ in range(3):
        quality = await video_quality(page)
        seen.append(quality)
        good = [q for q in quality if q[0] >= 20 and q[1] >= 320 and q[2] >= 240]
        if len(good) >= streams:
            break
    else:
        raise AssertionError(f"{who} decodes {seen} (fps, width, height)")
    audio_before = (await inbound(page))["audio"]
    await page.wait_for_timeout(500)
    audio_after = (await inbound(page))["audio"]
    packets = [a["packets"] for a in audio_after]
    samples = [a["samples"] for a in audio_after]
    assert sum(packets) > sum(a["packets"] for a in audio_before), f"{who}: no audio"
    assert sum(samples) > sum(a["samples"] for a in audio_before), f"{who}: no audio"


@dataclass
class InCall:
    agent: Page
    citizen: Page
    link: str
    join_to_first_frame_ms: float


async def _has(page: Page, note: str) -> bool:
    return note in await notes(page)


async def agent_starts_call(
    system: CallSystem, browser: Browser, reference: str
) -> Page:
    secret = await system.add_staff("agent.smit")
    agent = await notifying_page(browser)
    await staff_login(agent, system.base_url, "agent.smit", secret, check=True)
    row = agent.locator(f'#queue tr[data-reference="{reference}"]')
    await row.locator("form.claim button").click()
    start = agent.locator("#start-video")
    await expect(start).to_be_visible()
    await expect(agent.locator("#video-send-email")).to_be_checked()
    await assert_accessible(agent, "claimed video request")
    await start.click()
    await agent.wait_for_url(re.compile(r".*/staff/gesprekken/[A-Za-z0-9_-]+$"))
    await expect(agent.locator("#call-app")).to_have_attribute("data-role", "agent")
    return agent


async def device_check(page: Page, who: str) -> None:
    """Wait for the checks, answer the speaker question; all must pass."""
    await expect(page.locator("#call-app")).to_be_visible()
    await page.click("#play-tone")
    await page.click("#heard-yes")
    for check in ("camera", "microphone", "speaker", "connection"):
        await expect(page.locator(f"#{check}-result")).to_have_attribute(
            "data-ok", "true", timeout=15_000
        )
    await assert_accessible(page, f"device check passed ({who})")


async def citizen_joins(system: CallSystem, browser: Browser) -> InCall:
    """The story up to both sides in the call; returns the pages and the timing."""
    reference = await request_video_callback(
        system, browser, CITIZEN_EMAIL, check_pages=True
    )
    agent = await agent_starts_call(system, browser, reference)
    link = await system.mailbox.link_for(CITIZEN_EMAIL)
    await expect(agent.locator("#join-link")).to_have_value(link)
    await expect(
        agent.locator('#progress-list li[data-step="link_sent"]')
    ).to_have_count(1)
    await assert_accessible(agent, "staff call page, link sent")

    citizen = await new_page(browser)
    await citizen.goto(link)
    await citizen.wait_for_url("**/gesprek/apparaat")
    assert "#t=" not in citizen.url
    await device_check(citizen, "citizen")
    await expect(
        agent.locator('#progress-list li[data-step="link_opened"]')
    ).to_have_count(1)
    await expect(
        agent.locator('#progress-list li[data-step="device_check_passed"]')
    ).to_have_count(1)

    clicked = time.monotonic()
    await citizen.click("#join")
    await citizen.wait_for_url("**/gesprek/bellen")
    admit = agent.locator("#participants button.admit")
    await expect(admit).to_be_visible(timeout=15_000)
    # the waiting citizen shows in the employee's tab title and as a notification
    await expect(agent).to_have_title(re.compile(r"^\(1\) Videogesprek"), timeout=2_000)
    lobby_note = "Een burger wacht in de wachtruimte van uw videogesprek."
    await wait_for(
        lambda: _has(agent, lobby_note), 2, "no notification of the waiting citizen"
    )
    checking = time.monotonic()
    await assert_accessible(citizen, "waiting room")
    await assert_accessible(agent, "staff call page, citizen waiting")
    checked = time.monotonic() - checking
    await admit.click()
    await wait_for(
        lambda: decoding(citizen),
        timeout=15,
        message="citizen decodes the agent",
        interval=0.005,
    )
    # the test's own axe checks of the waiting room are not the system's time
    first_frame_ms = (time.monotonic() - clicked - checked) * 1000
    await wait_for(lambda: decoding(agent), timeout=15, message="agent decodes")
    # nobody waits any more: the count leaves the title
    await expect(agent).to_have_title(re.compile(r"^Videogesprek"))
    return InCall(agent, citizen, link, first_frame_ms)


async def test_video_call_story(live_call_system: CallSystem, browser: Browser) -> None:  # noqa: F811
    system = live_call_system
    call = await citizen_joins(system, browser)
    agent, citizen = call.agent, call.citizen
    measured = (await citizen.evaluate("window.beeldbel.stats()"))[
        "joinToFirstPictureMs"
    ]
    print(
        f"\njoin → first decoded remote frame: {call.join_to_first_frame_ms:.0f} ms "
        "(test clock: click on join, page load, lobby, the test's admit click, "
        f"first frame; without the axe checks); the page's own measure: {measured} ms"
    )

    await assert_video_and_audio(citizen, "citizen")
    await assert_video_and_audio(agent, "agent")
    await assert_accessible(citizen, "citizen in call")
    await assert_accessible(agent, "agent in call")

    # muted and camera off are states too
    await citizen.click("#toggle-mic")
    await expect(citizen.locator("#toggle-mic")).to_have_attribute(
        "aria-pressed", "false"
    )
    await citizen.click("#toggle-camera")
    await expect(citizen.locator("#toggle-camera")).to_have_attribute(
        "aria-pressed", "false"
    )
    await assert_accessible(citizen, "citizen muted, camera off")
    await citizen.click("#toggle-mic")
    await citizen.click("#toggle-camera")

    # an interpreter joins with their own link and sees both
    await agent.click("#invite-interpreter")
    interpreter_link = agent.locator("#interpreter-link")
    await expect(interpreter_link).to_have_value(re.compile(r"/gesprek#t="))
    await assert_accessible(agent, "interpreter link shown")
    interpreter = await new_page(browser)
    await interpreter.goto(await interpreter_link.input_value())
    await interpreter.wait_for_url("**/gesprek/apparaat")
    await device_check(interpreter, "interpreter")
    await interpreter.click("#join")
    await interpreter.wait_for_url("**/gesprek/bellen")
    await wait_for(
        lambda: decoding(interpreter, streams=2),
        timeout=20,
        message="the interpreter decodes the agent and the citizen",
    )
    # (three parties on a two-core test machine: moving pictures, not 20 fps)
    sees = await video_quality(interpreter)
    assert len([q for q in sees if q[0] > 1]) >= 2, f"interpreter decodes {sees}"
    await assert_accessible(interpreter, "interpreter in call")

    # hang up: the room ends, both surveys appear
    await agent.click("#hang-up")
    # the citizen's "call ended" stays until they go on to the survey
    await expect(citizen.locator("#call-ended")).to_be_visible(timeout=10_000)
    await assert_accessible(citizen, "citizen: call ended")
    # the employee closes the request in one step, then the survey
    await expect(agent.locator("#close-panel")).to_be_visible()
    await assert_accessible(agent, "employee: call over, close the request")
    await agent.check("#close-handled")
    await agent.click("#close-request")
    await agent.wait_for_url(re.compile(r".*/staff/gesprekken/\d+/enquete$"))
    await citizen.click("#survey-link")
    await citizen.wait_for_url("**/gesprek/enquete", timeout=15_000)
    await assert_accessible(citizen, "citizen survey")
    await assert_accessible(agent, "employee survey")
    # the employee answers; the thanks page leads on to the request, to close it
    for answer in ("#quality-4", "#case_handled-yes", "#would_use_again-yes"):
        await agent.check(answer)
    await agent.click("#survey-submit")
    await expect(agent.locator("#survey-thanks")).to_be_visible()
    await assert_accessible(agent, "employee survey thanks")
    await agent.click("#to-request")
    await agent.wait_for_url(re.compile(r".*/staff/requests/\d+$"))
    # the outcome the end step recorded
    await expect(agent.locator("#request-state")).to_have_attribute(
        "data-state", "completed"
    )

    # the link does not open the call again, anywhere
    again = await new_page(browser)
    await again.goto(call.link)
    alert = again.locator("#join-error")
    await alert.wait_for(state="visible")
    await assert_accessible(again, "used link refused")


#: Turn on once the media server relays the ``chat`` data channel (docs/protocol.md).
SFU_RELAYS_CHAT = True


@pytest.mark.skipif(
    not SFU_RELAYS_CHAT, reason="the media server does not relay chat yet"
)
async def test_chat_arrives_within_a_second(
    live_call_system: CallSystem,  # noqa: F811
    browser: Browser,
) -> None:
    """Text chat over the SFU's ``chat`` data channel, citizen → agent, < 1 s."""
    call = await citizen_joins(live_call_system, browser)
    agent, citizen = call.agent, call.citizen
    await wait_for(
        lambda: citizen.evaluate("window.beeldbel.stats().then((s) => s.chatOpen)"),
        timeout=10,
        message="the citizen's chat channel opens",
    )
    await open_chat(citizen)
    await open_chat(agent)
    await citizen.fill("#chat-input", "Ik hoor u goed.")
    await citizen.press("#chat-input", "Enter")
    sent = time.monotonic()
    await expect(agent.locator("#chat-log")).to_contain_text(
        "Ik hoor u goed.", timeout=1000
    )
    print(f"\nchat citizen → agent: {(time.monotonic() - sent) * 1000:.0f} ms")
    await assert_accessible(agent, "agent with a chat message")
