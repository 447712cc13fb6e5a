"""Firefox ESR and Chromium call each other through the SFU; a third joins.

Firefox (Debian's, through Marionette: tests/firefox.py) is the citizen, Chromium
the agent; both load sfu_page.py's page with a fake camera and microphone. The
third participant is an aiortc interpreter: its arrival makes the SFU offer
Firefox new m-sections, which Firefox must answer and then decode. Videos are
told apart by SSRC, not size: each browser scales what it sends to its CPU.

Firefox answers the SFU's first re-offer (the agent's tracks) while its DTLS
handshake may still run, with ``a=setup:active`` on the new m-sections and
``a=setup:passive`` on the BUNDLE tag's: only the tag's section may set the
role of the one DTLS transport they share (RFC 8843), or the call carries
nothing either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page

from mediaserver.api import ROOMS
from mediaserver.app import MUX
from tests.firefox import Firefox, firefox
from tests.helpers import wait_for
from tests.mediaserver.client import join
from tests.mediaserver.conftest import create_room
from tests.mediaserver.sfu_page import chromium, page_url, serve_sfu_page

pytestmark = [pytest.mark.browser, pytest.mark.firefox, pytest.mark.timeout(60)]
INBOUND = "window.beeldbel.inboundVideo()"
PC = "window.beeldbel.connection.pc"
# connection and ICE state, and each transport's DTLS state and role
CONNECTION = f"""(async () => {{
  const dtls = [];
  (await {PC}.getStats()).forEach((r) => {{
    if (r.type === 'transport') dtls.push(`DTLS ${{r.dtlsState}} as ${{r.dtlsRole}}`);
  }});
  return [{PC}.connectionState, {PC}.iceConnectionState, ...dtls];
}})()"""
Reports = list[dict[str, Any]]
# SSRC -> frames decoded, of each video a browser decodes
Decoded = dict[int, int]


@dataclass
class Call:
    """A call between Firefox (the citizen) and Chromium (the agent)."""

    firefox: Firefox
    chromium: Page

    async def inbound(self) -> tuple[Reports, Reports]:
        """Firefox's and Chromium's inbound video reports."""
        seen_by_firefox: Reports = await self.firefox.evaluate(INBOUND)
        seen_by_chromium: Reports = await self.chromium.evaluate(INBOUND)
        return seen_by_firefox, seen_by_chromium

    async def wait(
        self, check: Callable[[Decoded, Decoded], object], what: str
    ) -> tuple[Decoded, Decoded]:
        """Poll both browsers' stats until ``check(firefox's, chromium's)`` holds."""
        seen: list[Reports] = [[], []]

        async def holds() -> object:
            seen[:] = await self.inbound()
            return check(decoded(seen[0]), decoded(seen[1]))

        try:
            await wait_for(
                holds, 20, lambda: f"{what} (Firefox, Chromium): {seen}", interval=0.2
            )
        except AssertionError as error:
            states = await self.firefox.evaluate(CONNECTION)
            raise AssertionError(f"{error}\nFirefox's connection: {states}") from None
        return decoded(seen[0]), decoded(seen[1])


def decoded(reports: Reports, frames: int = 20) -> Decoded:
    """The videos in ``reports`` decoded past ``frames`` frames, with a size."""
    return {
        r["ssrc"]: r["framesDecoded"]
        for r in reports
        if r["framesDecoded"] > frames and r["frameWidth"] > 0
    }


def grew(now: Decoded, before: Decoded, frames: int = 20) -> bool:
    """Each video of ``before`` decoded another ``frames`` frames since."""
    return all(now.get(ssrc, 0) > count + frames for ssrc, count in before.items())


@pytest.fixture
async def call(server, token, aiohttp_server, tmp_path: Path) -> AsyncIterator[Call]:
    await create_room(server)
    pages = await serve_sfu_page(aiohttp_server, server, token)
    origin = f"http://127.0.0.1:{pages.port}"
    async with (
        firefox(tmp_path / "firefox", [origin]) as citizen,
        chromium() as browser,
    ):
        try:
            agent = await browser.new_page()
            agent.on("pageerror", lambda e: print("chromium pageerror:", e))
            await agent.goto(page_url(pages, "agent", "a1"))
            await citizen.goto(page_url(pages, "citizen", "c1"))
            yield Call(citizen, agent)
        finally:
            print("Firefox's output:\n", citizen.output())


async def test_firefox_and_chromium_decode_each_other(call: Call, server) -> None:
    first = await call.wait(lambda f, c: f and c, "each decodes the other's video")
    await call.wait(
        lambda f, c: grew(f, first[0]) and grew(c, first[1]), "both keep decoding"
    )
    # Firefox only ever sees the SFU's one port (a host candidate on loopback)
    sfu = f"127.0.0.1:{server.app[MUX].port}"
    assert set(await call.firefox.evaluate("window.beeldbel.candidatePairs()")) == {sfu}
    # both browsers tell the SFU when its packets arrived: it sizes their
    # downlinks itself (mediaserver/estimator.py)
    room = server.app[ROOMS].get("r1")

    def feedback_from_both() -> bool:
        estimates = [p.peer.media.downlink for p in room.participants.values()]
        return len(estimates) == 2 and all(e and e.feedbacks > 5 for e in estimates)

    await wait_for(feedback_from_both, 10, "transport-cc feedback from both")


async def test_firefox_answers_the_offer_for_a_third(
    call: Call, server, token, clients
) -> None:
    firefox_got, _ = await call.wait(lambda f, c: f and c, "each decodes the other")
    transceivers = await call.firefox.evaluate(f"{PC}.getTransceivers().length")
    await join(clients, server, token, role="interpreter", sub="i1")

    def third_decoded(f: Decoded, _c: Decoded) -> bool:
        return bool(f.keys() - firefox_got.keys())

    now = await call.wait(third_decoded, "Firefox decodes the interpreter's video")
    # the SFU offered Firefox the interpreter's m-sections and Firefox answered
    assert await call.firefox.evaluate(f"{PC}.getTransceivers().length") > transceivers
    assert await call.firefox.evaluate(f"{PC}.signalingState") == "stable"
    # and the first call goes on both ways, beside the interpreter's video
    await call.wait(
        lambda f, c: grew(f, now[0]) and grew(c, now[1]), "all three videos go on"
    )
