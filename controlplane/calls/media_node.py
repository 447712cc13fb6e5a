"""One media node's server-to-server API, as the control plane uses it: create and
end rooms (``Authorization: Bearer <mediaserver.api_secret>``, see docs/protocol.md).
An ``https://`` API is checked against ``calls.media_api_ca_file``. Which node a
room goes on is :mod:`controlplane.calls.placement`'s business."""

from __future__ import annotations

import ssl
from typing import Any

import aiohttp
import structlog

from beeldbel.config import CallsConfig, MediaNodeConfig, Secret
from controlplane.base.errors import MediaUnavailable

log = structlog.get_logger()


class MediaNode:
    """One media node's server-to-server API (``Bearer api_secret``)."""

    def __init__(
        self, node: MediaNodeConfig, calls: CallsConfig, api_secret: Secret
    ) -> None:
        self.node_id = node.node_id
        #: Where browsers connect for this node's rooms.
        self.ws_url = node.ws_url
        self._base = node.api_url.rstrip("/")
        self._secret = api_secret
        self._timeout = aiohttp.ClientTimeout(total=calls.api_timeout_seconds)
        self._ssl: ssl.SSLContext | None = None
        if self._base.startswith("https://"):
            self._ssl = ssl.create_default_context()
            if calls.media_api_ca_file:
                self._ssl.load_verify_locations(calls.media_api_ca_file)
        self._session: aiohttp.ClientSession | None = None
        #: The node missed its heartbeats: it is not called (its rooms are gone
        #: with it, and a dead host would only make each call wait for the timeout).
        self.down = False

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _call(self, method: str, path: str, body: Any = None) -> int:
        if self.down:
            raise MediaUnavailable("calls_media_unavailable")
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        headers = {"Authorization": f"Bearer {self._secret.reveal()}"}
        try:
            async with self._session.request(
                method,
                self._base + path,
                json=body,
                headers=headers,
                ssl=self._ssl if self._ssl is not None else True,
                allow_redirects=False,
            ) as response:
                await response.read()
                return response.status
        except (aiohttp.ClientError, TimeoutError, ssl.SSLError) as exc:
            log.warning(
                "media_api_failed",
                node=self.node_id,
                method=method,
                error=type(exc).__name__,
            )
            raise MediaUnavailable("calls_media_unavailable") from None

    async def create_room(self, room_id: str, video_codec: str) -> None:
        status = await self._call(
            "POST", "/api/rooms", {"room_id": room_id, "video_codec": video_codec}
        )
        if status != 201:
            log.warning(
                "media_room_refused", node=self.node_id, room_id=room_id, status=status
            )
            raise MediaUnavailable("calls_media_unavailable")

    async def end_room(self, room_id: str) -> None:
        """End the room; one that is gone already counts as ended."""
        status = await self._call("DELETE", f"/api/rooms/{room_id}")
        if status not in (204, 404):
            log.warning(
                "media_room_end_failed",
                node=self.node_id,
                room_id=room_id,
                status=status,
            )
            raise MediaUnavailable("calls_media_unavailable")
