"""A tiny call page for real browsers in front of the SFU under test.

The page uses the call pages' client, web/static/js/protocol.js, with a token
endpoint of the test's own (``?role=&sub=`` go on to it); an agent admits whoever
waits in the lobby. ``window.beeldbel`` hands the test the connection and what
getStats says. Chromium (test_browser.py) and Firefox (test_firefox.py) load it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, async_playwright

SCRIPTS = Path(__file__).parents[2] / "web" / "static" / "js"
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
    .map((r) => ({ssrc: r.ssrc, framesDecoded: r.framesDecoded || 0,
      frameWidth: r.frameWidth || 0, frameHeight: r.frameHeight || 0})),
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
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]


@asynccontextmanager
async def chromium(*args: str) -> AsyncIterator[Browser]:
    """Debian's Chromium with fake media (``CHROMIUM_ARGS``, then ``args``),
    closed afterwards."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=[*CHROMIUM_ARGS, *args]
        )
        try:
            yield browser
        finally:
            await browser.close()


async def serve_sfu_page(
    aiohttp_server: AiohttpServer,
    server: TestClient[Any, Any],
    token: Callable[..., str],
    room_id: str = "r1",
) -> TestServer:
    """The page at /index.html, its scripts and a token endpoint that sends the
    browser to ``server``'s room ``room_id``."""
    ws_url = str(server.make_url("/ws")).replace("http", "ws", 1)

    async def serve_page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def join_token(request: web.Request) -> web.Response:
        role, sub = request.query["role"], request.query["sub"]
        return web.json_response(
            {
                "media_url": ws_url,
                "room_id": room_id,
                "token": token(room=room_id, role=role, sub=sub),
                "role": role,
                "ice_servers": [],
            }
        )

    site = web.Application()
    site.router.add_get("/index.html", serve_page)
    site.router.add_post("/token", join_token)
    site.router.add_static("/js", SCRIPTS)
    return await aiohttp_server(site)


def page_url(pages_server: TestServer, role: str, sub: str) -> str:
    """The page's address for one participant."""
    query = urlencode({"role": role, "sub": sub})
    return f"{pages_server.make_url('/index.html')}?{query}"
