"""A real aiortc participant for tests and the benchmark.

Keeping test traffic on loopback: aioice gathers every interface address except
127.0.0.1, so :func:`loopback_only_gathering` makes it offer 127.0.0.1 only. The
tests also run in a loopback-only network namespace (see tests/mediaserver/README).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import aioice.ice
from aiohttp import ClientSession, ClientWebSocketResponse, WSMsgType
from aiortc import (
    AudioStreamTrack,
    MediaStreamTrack,
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
    VideoStreamTrack,
)
from av import VideoFrame

# test_browser.py still imports the one polling helper under this name


def without_candidates(sdp: str) -> str:
    """The SDP without our candidates: the SFU then learns our address only from
    the ICE checks it receives (e.g. through a relay in the test)."""
    lines = sdp.split("\r\n")
    return "\r\n".join(
        line
        for line in lines
        if not line.startswith(("a=candidate:", "a=end-of-candidates"))
    )


def loopback_only_gathering() -> None:
    """Make aioice (test clients) offer a host candidate on 127.0.0.1 only."""
    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]


async def join(
    clients: Callable[..., MediaClient],
    server: Any,
    token: Callable[..., str],
    role: str,
    sub: str,
    room: str = "r1",
    **kwargs: Any,
) -> MediaClient:
    """A client that joined ``room`` with a fresh token and published."""
    client = clients(**kwargs)
    reply = await client.connect(room, token(room=room, role=role, sub=sub))
    assert reply["type"] == "joined", reply
    await client.publish()
    return client


def decodes(
    client: MediaClient, width: int = 320, height: int = 240, publishers: int = 1
) -> bool:
    """Whether ``client`` decodes video of that size and audio from enough peers."""
    videos = [
        r for r in client.got("video") if r.frames > 3 and r.size == (width, height)
    ]
    audios = [r for r in client.got("audio") if r.frames > 3]
    return len(videos) >= publishers and len(audios) >= publishers


class PatternTrack(VideoStreamTrack):
    """Video of a given size (a moving gradient, so frames differ)."""

    def __init__(self, width: int = 320, height: int = 240) -> None:
        super().__init__()
        self.width = width
        self.height = height
        self._frame = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self._frame += 1
        frame = VideoFrame(self.width, self.height, "yuv420p")
        for i, plane in enumerate(frame.planes):
            plane.update(bytes([(self._frame * (i + 1)) % 256]) * plane.buffer_size)
        frame.pts = pts
        frame.time_base = time_base
        return frame


class Received:
    """What a client got on one incoming track."""

    def __init__(self, track: MediaStreamTrack) -> None:
        self.track = track
        self.kind = track.kind
        self.frames = 0
        self.size: tuple[int, int] | None = None
        self.task = asyncio.create_task(self._consume())

    async def _consume(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                frame: Any = await self.track.recv()
                self.frames += 1
                if self.kind == "video":
                    self.size = (frame.width, frame.height)


class MediaClient:
    """One participant: a WebSocket to the SFU and an aiortc peer connection."""

    def __init__(self, ws_url: str, *, width: int = 320, height: int = 240) -> None:
        self.ws_url = ws_url
        self.width = width
        self.height = height
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        self.messages: list[dict[str, Any]] = []
        self.received: list[Received] = []
        self.tracks: dict[str, dict[str, str]] = {}
        self.session: ClientSession | None = None
        self.ws: ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.rewrite_remote_sdp: Callable[[str], str] = lambda sdp: sdp
        self.rewrite_local_sdp: Callable[[str], str] = lambda sdp: sdp
        self.pc.on("track", lambda track: self.received.append(Received(track)))

    async def connect(self, room_id: str, token: str) -> dict[str, Any]:
        """Join; returns the server's first reply (``joined`` or ``error``)."""
        self.session = ClientSession()
        self.ws = await self.session.ws_connect(self.ws_url)
        await self.ws.send_json({"type": "join", "room_id": room_id, "token": token})
        reply: dict[str, Any] = await self.ws.receive_json(timeout=10)
        self.messages.append(reply)
        if reply["type"] == "joined":
            self._reader = asyncio.create_task(self._read())
        return reply

    async def publish(
        self,
        audio: MediaStreamTrack | None = None,
        video: MediaStreamTrack | None = None,
    ) -> None:
        self.pc.addTrack(audio or AudioStreamTrack())
        self.pc.addTrack(video or PatternTrack(self.width, self.height))
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = self.rewrite_local_sdp(self.pc.localDescription.sdp)
        await self.send({"type": "offer", "sdp": sdp})

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_json(message)

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type != WSMsgType.TEXT:
                break
            message = msg.json()
            self.messages.append(message)
            if message["type"] == "answer":
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(
                        self.rewrite_remote_sdp(message["sdp"]), "answer"
                    )
                )
            elif message["type"] == "offer":
                for track in message.get("tracks", []):
                    self.tracks[track["mid"]] = track
                await self.pc.setRemoteDescription(
                    RTCSessionDescription(
                        self.rewrite_remote_sdp(message["sdp"]), "offer"
                    )
                )
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                sdp = self.rewrite_local_sdp(self.pc.localDescription.sdp)
                await self.send({"type": "answer", "sdp": sdp})

    def got(self, kind: str) -> list[Received]:
        return [r for r in self.received if r.kind == kind]

    def frames_from(self, kind: str) -> list[int]:
        return [r.frames for r in self.got(kind)]

    def has_message(self, type_: str) -> bool:
        return any(m["type"] == type_ for m in self.messages)

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        for received in self.received:
            received.task.cancel()
        await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
        if self.session is not None:
            await self.session.close()
