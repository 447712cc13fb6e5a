"""Two headless Chromium pages (fake camera) call each other through the SFU.

The pages use the call pages' client, web/static/js/protocol.js, with a token
endpoint of this test's own. Each page decodes the other's 640x480 video. The
pages only talk to the SFU: the only remote ICE candidate either page ever sees
is the SFU's one UDP port.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.async_api import Page

from mediaserver.app import MUX
from tests.helpers import wait_for
from tests.mediaserver.conftest import create_room
from tests.mediaserver.sfu_page import chromium, page_url, serve_sfu_page

pytestmark = pytest.mark.browser


async def inbound(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate("window.beeldbel.inboundVideo()")
    return result


async def test_two_chromium_pages_decode_each_other(
    server, token, aiohttp_server
) -> None:
    await create_room(server)
    pages_server = await serve_sfu_page(aiohttp_server, server, token)

    async with chromium() as browser:
        pages = []
        for role, sub in (("agent", "a1"), ("citizen", "c1")):
            page = await browser.new_page()
            page.on("pageerror", lambda e: print("pageerror:", e))
            await page.goto(page_url(pages_server, role, sub))
            pages.append(page)

        stats: list[list[dict[str, Any]]] = []

        async def both_decode_640x480() -> bool:
            stats[:] = [await inbound(page) for page in pages]
            return all(
                any(
                    s["framesDecoded"] > 20
                    and (s["frameWidth"], s["frameHeight"]) == (640, 480)
                    for s in page_stats
                )
                for page_stats in stats
            )

        await wait_for(
            both_decode_640x480, 30, lambda: f"both pages decode 640x480: {stats}"
        )
        decoded = [s["framesDecoded"] for s in stats[0]]

        async def still_decoding() -> bool:
            now = [s["framesDecoded"] for s in await inbound(pages[0])]
            return bool(max(now) > max(decoded) + 10)

        await wait_for(still_decoding, 10, lambda: "framesDecoded keeps growing")
        # the SFU asked Chromium for Opus in-band FEC
        answer = await pages[0].evaluate(
            "window.beeldbel.connection.pc.remoteDescription.sdp"
        )
        assert "useinbandfec=1" in answer
        # the pages never see each other's candidates: only the SFU's port
        sfu = f"127.0.0.1:{server.app[MUX].port}"
        for page in pages:
            remote = await page.evaluate("window.beeldbel.candidatePairs()")
            assert set(remote) == {sfu}
