"""The Firefox harness (tests/firefox.py): a page on 127.0.0.1 gets the fake
camera and offers host candidates on loopback (without the stored permission
Firefox gathers none: the gathering never starts); Firefox and its content
processes are gone after a test, even a failed one."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from tests.firefox import firefox, running_in_group

pytestmark = [pytest.mark.firefox, pytest.mark.timeout(60)]
# the page's camera, and the candidates of an offer once gathering is complete
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Firefox harness</title></head>
<body><script type="module">
const stream = await navigator.mediaDevices.getUserMedia({audio: true, video: true});
const pc = new RTCPeerConnection({iceServers: []});
for (const track of stream.getTracks()) pc.addTrack(track, stream);
const gathered = new Promise((resolve) => {
  pc.onicegatheringstatechange = () => {
    if (pc.iceGatheringState === 'complete') resolve();
  };
});
await pc.setLocalDescription(await pc.createOffer());
await gathered;
window.harness = {
  camera: stream.getVideoTracks()[0].getSettings().width,
  candidates: pc.localDescription.sdp.split('\\r\\n')
    .filter((line) => line.startsWith('a=candidate:') && line.includes(' UDP '))
    .map((line) => line.split(' ')[4]),
};
</script></body></html>
"""


async def serve_page(aiohttp_server) -> str:
    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    server = await aiohttp_server(app)
    return f"http://127.0.0.1:{server.port}"


async def test_a_granted_page_offers_host_candidates_on_loopback(
    aiohttp_server, tmp_path: Path
) -> None:
    origin = await serve_page(aiohttp_server)
    async with firefox(tmp_path, [origin]) as browser:
        await browser.goto(f"{origin}/")
        harness = await browser.wait_for("window.harness", 10)
    assert harness["camera"] > 0  # the fake camera, without a prompt
    found = set(harness["candidates"])
    assert "127.0.0.1" in found
    assert found <= {"127.0.0.1", "::1"}


async def test_firefox_is_gone_after_a_failing_test(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="the test failed"):  # noqa: PT012
        async with firefox(tmp_path, []) as browser:
            assert await browser.evaluate("1 + 1") == 2
            raise RuntimeError("the test failed")
    # nor any of its content processes (they share its process group)
    assert browser.process.returncode is not None
    assert running_in_group(browser.process.pid) == []
