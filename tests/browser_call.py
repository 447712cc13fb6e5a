"""Two headless Chromium pages in a call, one of them (the citizen) behind an
:class:`~tests.impairment.ImpairedRelay`: through the real SFU, or peer to peer
with no server (the reference an SFU should not make worse). For issue 14's
network-quality measurements; everything stays on loopback.

The relay sits in the citizen's leg only: the citizen's page sees the far end's
one candidate rewritten to the relay's port, and the far end never sees the
citizen's candidates, so it learns the relay's address from the ICE checks, as
behind a NAT, and cannot find the direct loopback path around the relay.
"""

from __future__ import annotations

import json
import random
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Browser, Page
from prometheus_client import CollectorRegistry

from beeldbel.tokens import MediaClaims, sign_media_token
from mediaserver.app import MUX, STATS, create_app
from mediaserver.forwarder import ForwarderStats
from tests.helpers import serve_jwks, wait_for
from tests.impairment import ImpairedRelay
from tests.mediaserver.conftest import API_SECRET, ISSUER, NODE, media_server_config
from tests.mediaserver.sfu_page import chromium, page_url, serve_sfu_page
from tests.voice import voice_wav

# getStats of one peer connection, summed per kind: the counters issue 14 asks for
SAMPLER = """
const played = new Set();
// remote audio is only played out (and counted) when something plays it
function playAudio(pc) {
  for (const receiver of pc.getReceivers()) {
    const track = receiver.track;
    if (track.kind !== 'audio' || played.has(track)) continue;
    played.add(track);
    const element = new Audio();
    element.srcObject = new MediaStream([track]);
    element.play().catch((error) => console.log(`audio ${error}`));
  }
}
window.beeldbelSample = async (pc) => {
  const s = {sent: 0, videoSent: 0, framesEncoded: 0, outFps: 0, limitation: '',
    height: 0, framesDecoded: 0, inFps: 0, freezeCount: 0, freezesDuration: 0,
    concealed: 0, samples: 0, rtt: null, available: null, remote: 0};
  if (!pc) return s;
  playAudio(pc);
  const stats = await pc.getStats();
  stats.forEach((r) => {
    if (r.type === 'outbound-rtp') {
      const bytes = (r.bytesSent || 0) + (r.headerBytesSent || 0);
      s.sent += bytes;
      if (r.kind !== 'video') return;
      s.videoSent += bytes;
      s.framesEncoded += r.framesEncoded || 0;
      s.outFps = Math.max(s.outFps, r.framesPerSecond || 0);
      s.limitation = r.qualityLimitationReason || '';
      s.height = r.frameHeight || 0;
    } else if (r.type === 'inbound-rtp' && r.kind === 'video') {
      s.framesDecoded += r.framesDecoded || 0;
      s.inFps = Math.max(s.inFps, r.framesPerSecond || 0);
      s.freezeCount += r.freezeCount || 0;
      s.freezesDuration += r.totalFreezesDuration || 0;
    } else if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      s.concealed += r.concealedSamples || 0;
      s.samples += r.totalSamplesReceived || 0;
    } else if (r.type === 'transport' && r.selectedCandidatePairId) {
      const pair = stats.get(r.selectedCandidatePairId);
      const remote = pair && stats.get(pair.remoteCandidateId);
      s.rtt = pair?.currentRoundTripTime ?? null;
      s.available = pair?.availableOutgoingBitrate ?? null;
      s.remote = remote ? remote.port : 0;  // a prflx candidate's address is hidden
    }
  });
  return s;
};
"""

# The citizen's page only: the far end's candidate becomes the relay's port, and
# the far end is told none of the citizen's own candidates.
BEHIND_RELAY = """
(([far, relay]) => {
  const swap = (text) =>
    text.split(` 127.0.0.1 ${far} typ`).join(` 127.0.0.1 ${relay} typ`);
  const proto = RTCPeerConnection.prototype;
  const setRemote = proto.setRemoteDescription;
  proto.setRemoteDescription = function (d) {
    return setRemote.call(this, d && d.sdp ? {type: d.type, sdp: swap(d.sdp)} : d);
  };
  const addCandidate = proto.addIceCandidate;
  proto.addIceCandidate = function (c) {
    if (!c || !c.candidate) return addCandidate.call(this, c);
    return addCandidate.call(this, {candidate: swap(c.candidate), sdpMid: c.sdpMid,
      sdpMLineIndex: c.sdpMLineIndex, usernameFragment: c.usernameFragment});
  };
  const local = Object.getOwnPropertyDescriptor(proto, 'localDescription');
  Object.defineProperty(proto, 'localDescription', {configurable: true, get() {
    const d = local.get.call(this);
    return d && {type: d.type, sdp: d.sdp.replace(/a=candidate:[^\\r\\n]*\\r\\n/g, '')};
  }});
})(%s);
"""

# Peer to peer: offer/answer are carried by the harness (page.evaluate), with
# every candidate gathered first.
P2P_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>P2P reference</title></head>
<body><script type="module">
const pc = new RTCPeerConnection({bundlePolicy: 'max-bundle'});
const gathered = () => new Promise((resolve) => {
  if (pc.iceGatheringState === 'complete') return resolve();
  pc.addEventListener('icegatheringstatechange',
    () => pc.iceGatheringState === 'complete' && resolve());
});
const stream = await navigator.mediaDevices.getUserMedia({
  audio: true, video: {width: 640, height: 480},
});
for (const track of stream.getTracks()) pc.addTrack(track, stream);
window.beeldbel = {
  pc,
  offer: async () => {
    await pc.setLocalDescription(await pc.createOffer());
    await gathered();
    return pc.localDescription.sdp;
  },
  answer: async (sdp) => {
    await pc.setRemoteDescription({type: 'offer', sdp});
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered();
    return pc.localDescription.sdp;
  },
  accept: (sdp) => pc.setRemoteDescription({type: 'answer', sdp}),
};
</script></body></html>
"""

_HOST_CANDIDATE = re.compile(r"a=candidate:\S+ 1 udp \d+ 127\.0\.0\.1 (\d+) typ host")


@dataclass(slots=True)
class Call:
    """Two pages in a call, the citizen's leg through ``relay``."""

    employee: Page
    citizen: Page
    relay: ImpairedRelay
    #: The (loopback) port the employee's media goes to, and the citizen's.
    employee_remote: int
    citizen_remote: int
    #: The JavaScript expression for each page's peer connection.
    pc: str
    #: The SFU's counters (None peer to peer).
    sfu: ForwarderStats | None = None

    async def sample(self, page: Page) -> dict[str, Any]:
        result: dict[str, Any] = await page.evaluate(
            f"window.beeldbelSample({self.pc})"
        )
        return result

    async def legs(self) -> tuple[int, int]:
        """The remote port each page's media goes to: (employee, citizen)."""
        employee, citizen = [
            (await self.sample(page))["remote"]
            for page in (self.employee, self.citizen)
        ]
        return employee, citizen


def _servers(stack: AsyncExitStack) -> Callable[..., Awaitable[TestServer]]:
    """Start aiohttp apps on loopback (as pytest-aiohttp's ``aiohttp_server``),
    each closed when ``stack`` closes."""

    async def serve(app: web.Application, **kwargs: Any) -> TestServer:
        server = TestServer(app, host="127.0.0.1")
        await server.start_server(**kwargs)
        stack.push_async_callback(server.close)
        return server

    return serve


def busy_camera(path: Path, frames: int = 40) -> Path:
    """A 640x480, 20 fps Y4M clip (looped by Chromium) that, like a real camera,
    asks for more than a thin link carries: a blocky scene that scrolls (motion
    the encoder follows) under fresh sensor-like noise in every frame (detail a
    low rate may quantize away). Chromium's own fake camera needs only ~500
    kbit/s, so a 2 Mbit/s link would not be used and a 400 kbit/s cap hardly felt."""
    width, height, margin = 640, 480, 64
    stride = width + margin
    noise = random.Random(14)
    blocks = [
        noise.randrange(40, 216) for _ in range((stride // 8) * (height // 8 + 9))
    ]
    scene = [
        blocks[(i // stride // 8) * (stride // 8) + i % stride // 8]
        for i in range(stride * (height + margin))
    ]
    grains = [
        bytes(min(255, max(0, v + noise.randint(-6, 6))) for v in scene)
        for _ in range(4)
    ]
    gray = bytes([128]) * (width * height // 2)
    with path.open("wb") as clip:
        clip.write(f"YUV4MPEG2 W{width} H{height} F20:1 Ip A1:1 C420jpeg\n".encode())
        for n in range(frames):
            dx, dy, grain = 3 * n % margin, 2 * n % margin, grains[n % 4]
            starts = [(y + dy) * stride + dx for y in range(height)]
            clip.write(
                b"FRAME\n" + b"".join(grain[i : i + width] for i in starts) + gray
            )
    return path


@asynccontextmanager
async def _chromium(busy_video: bool) -> AsyncIterator[Browser]:
    """Chromium with a talker as its microphone (its own fake one plays a tone,
    which Opus codes as music, without FEC), and the busy clip as its camera
    (or, with ``busy_video`` false, Chromium's own fake camera)."""
    with tempfile.TemporaryDirectory() as directory:
        talker = voice_wav(Path(directory) / "voice.wav")
        args = [
            "--autoplay-policy=no-user-gesture-required",
            f"--use-file-for-fake-audio-capture={talker}",
        ]
        if busy_video:
            clip = busy_camera(Path(directory) / "busy.y4m")
            args.append(f"--use-file-for-fake-video-capture={clip}")
        async with chromium(*args) as browser:
            yield browser


async def _open(browser: Browser, url: str, *scripts: str) -> Page:
    page = await browser.new_page()
    page.on("pageerror", lambda error: print("pageerror:", error))
    for script in (SAMPLER, *scripts):
        await page.add_init_script(script=script)
    await page.goto(url)
    await page.wait_for_function("window.beeldbel !== undefined")
    return page


async def _decoding(call: Call) -> Call:
    """``call`` once both pages decode the other's video."""

    async def both_decode() -> bool:
        frames = [
            (await call.sample(p))["framesDecoded"]
            for p in (call.employee, call.citizen)
        ]
        return bool(min(frames) > 20)

    await wait_for(both_decode, 30, "both pages decode video", interval=0.5)
    return call


async def _media_server(
    serve: Callable[..., Awaitable[TestServer]], directory: Path
) -> tuple[TestServer, Ed25519PrivateKey]:
    """The real SFU, with the control plane's JWKS on HTTPS beside it."""
    key = Ed25519PrivateKey.generate()
    url, ca_file = await serve_jwks(serve, key.public_key(), directory)
    config = media_server_config(url, ca_file)
    media = await serve(create_app(config, CollectorRegistry()))
    return media, key


def _signer(key: Ed25519PrivateKey) -> Callable[..., str]:
    def token(room: str, role: str, sub: str) -> str:
        claims = MediaClaims.issue(
            issuer=ISSUER, audience=NODE, participant=sub, room=room, role=role
        )
        return sign_media_token(claims, key, "k1")

    return token


@asynccontextmanager
async def sfu_call(busy_video: bool = True) -> AsyncIterator[Call]:
    """Employee (agent) and citizen call through the real SFU."""
    async with AsyncExitStack() as stack:
        directory = stack.enter_context(tempfile.TemporaryDirectory())
        serve = _servers(stack)
        media, key = await _media_server(serve, Path(directory))
        pages = await serve_sfu_page(serve, media, _signer(key))  # type: ignore[arg-type]
        port = media.app[MUX].port
        await _create_room(media)
        relay = ImpairedRelay(("127.0.0.1", port))
        stack.callback(relay.close)
        relay_port = await relay.start()
        browser = await stack.enter_async_context(_chromium(busy_video))
        employee = await _open(browser, page_url(pages, "agent", "a1"))
        citizen = await _open(
            browser,
            page_url(pages, "citizen", "c1"),
            BEHIND_RELAY % json.dumps([port, relay_port]),
        )
        yield await _decoding(
            Call(
                employee,
                citizen,
                relay,
                employee_remote=port,
                citizen_remote=relay_port,
                pc="window.beeldbel.connection.pc",
                sfu=media.app[STATS],
            )
        )


async def _create_room(media: TestServer) -> None:
    async with aiohttp.ClientSession() as session:
        response = await session.post(
            media.make_url("/api/rooms"),
            json={"room_id": "r1"},
            headers={"Authorization": f"Bearer {API_SECRET}"},
        )
        assert response.status == 201, await response.text()


def _only_candidate(sdp: str, port: int, relay_port: int) -> str:
    """``sdp`` with one candidate left: the loopback host one, moved to the relay."""
    lines = []
    for line in sdp.split("\r\n"):
        if line.startswith("a=candidate:"):
            match = _HOST_CANDIDATE.match(line)
            if not match or int(match.group(1)) != port:
                continue
            line = line.replace(f" {port} typ", f" {relay_port} typ")
        lines.append(line)
    return "\r\n".join(lines)


def _without_candidates(sdp: str) -> str:
    lines = sdp.split("\r\n")
    return "\r\n".join(x for x in lines if not x.startswith("a=candidate:"))


@asynccontextmanager
async def p2p_call(busy_video: bool = True) -> AsyncIterator[Call]:
    """Employee and citizen connect directly (no SFU): the reference."""
    site = web.Application()

    async def serve_page(_request: web.Request) -> web.Response:
        return web.Response(text=P2P_PAGE, content_type="text/html")

    site.router.add_get("/p2p.html", serve_page)
    async with AsyncExitStack() as stack:
        url = str((await _servers(stack)(site)).make_url("/p2p.html"))
        browser = await stack.enter_async_context(_chromium(busy_video))
        employee, citizen = await _open(browser, url), await _open(browser, url)
        offer: str = await employee.evaluate("window.beeldbel.offer()")
        match = _HOST_CANDIDATE.search(offer)
        assert match, f"the employee offers no loopback host candidate:\n{offer}"
        port = int(match.group(1))
        relay = ImpairedRelay(("127.0.0.1", port))
        stack.callback(relay.close)
        relay_port = await relay.start()
        answer: str = await citizen.evaluate(
            "(sdp) => window.beeldbel.answer(sdp)",
            _only_candidate(offer, port, relay_port),
        )
        await employee.evaluate(
            "(sdp) => window.beeldbel.accept(sdp)", _without_candidates(answer)
        )
        yield await _decoding(
            Call(
                employee,
                citizen,
                relay,
                employee_remote=relay.upstream_port,
                citizen_remote=relay_port,
                pc="window.beeldbel.pc",
            )
        )
