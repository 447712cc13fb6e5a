"""Two headless Chromium pages (fake camera) call each other through the SFU.

The pages use the call pages' client, web/static/js/protocol.js, with a token
endpoint of this test's own. Each page decodes the other's 640x480 video. The
pages only talk to the SFU: the only remote ICE candidate either page ever sees
is the SFU's one UDP port.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from playwright.async_api import Page, async_playwright

from mediaserver.app import MUX
from tests.helpers import wait_for
from tests.mediaserver.conftest import create_room

SCRIPTS = Path(__file__).parents[2] / "web" / "static" / "js"
# ?role=&sub= go on to the token endpoint; the agent admits whoever waits
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>SFU test</title></head>
<body><script type="module">
import {Connection} from '/js/protocol.js';

const connection = new Connection({tokenUrl: `/token${location.search}`, csrf: ''});
connection.onparticipants = (participants) => {
  if (connection.role !== 'agent') return;
  for (const p of participants) {
    if (p.state === 'lobby') connection.admit(p.participant_id);
  }
};
connection.onerror = (error) => console.log(`error ${error.code}`);

async function reports(type) {
  const found = [];
  (await connection.pc?.getStats())?.forEach((r) => {
    if (r.type === type) found.push(r);
  });
  return found;
}

window.beeldbel = {
  connection,
  inboundVideo: async () => (await reports('inbound-rtp'))
    .filter((r) => r.kind === 'video')
    .map((r) => ({framesDecoded: r.framesDecoded || 0, frameWidth: r.frameWidth || 0,
      frameHeight: r.frameHeight || 0})),
  candidatePairs: async () => (await reports('remote-candidate'))
    .map((r) => `${r.address}:${r.port}`),
};

const stream = await navigator.mediaDevices.getUserMedia({
  audio: true, video: {width: 640, height: 480},
});
await connection.start(stream);
</script></body></html>
"""
CHROMIUM_ARGS = [
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.browser


async def inbound(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate("window.beeldbel.inboundVideo()")
    return result


async def test_two_chromium_pages_decode_each_other(
    server, token, aiohttp_server
) -> None:
    await create_room(server)
    ws_url = str(server.make_url("/ws")).replace("http", "ws", 1)

    async def serve_page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def join_token(request: web.Request) -> web.Response:
        role, sub = request.query["role"], request.query["sub"]
        return web.json_response(
            {
                "media_url": ws_url,
                "room_id": "r1",
                "token": token(role=role, sub=sub),
                "role": role,
                "ice_servers": [],
            }
        )

    site = web.Application()
    site.router.add_get("/index.html", serve_page)
    site.router.add_post("/token", join_token)
    site.router.add_static("/js", SCRIPTS)
    pages_server = await aiohttp_server(site)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            pages = []
            for role, sub in (("agent", "a1"), ("citizen", "c1")):
                page = await browser.new_page()
                page.on("pageerror", lambda e: print("pageerror:", e))
                query = urlencode({"role": role, "sub": sub})
                await page.goto(f"{pages_server.make_url('/index.html')}?{query}")
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
        finally:
            await browser.close()
