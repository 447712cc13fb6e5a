"""Video calls over HTTP, for the call tests: the config that points the control
plane at an in-process media node, and the staff steps that start a call."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestClient, TestServer

from beeldbel.config import CallsConfig, Config, MailConfig, MediaServerConfig, Secret
from controlplane.calls import record as records
from controlplane.storage.database import DB
from tests.controlplane.sample_requests import add_request
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import csrf_from

Client = TestClient[web.Request, web.Application]
# the media_server fixture: starts a media node with the given node id
MediaServer = Callable[[str], Awaitable[TestServer]]

API_SECRET = "shared-api-secret-for-tests"
NODE = "media-test"
ADDRESS = "burger.canary@example.org"
JSON = {"Accept": "application/json"}
_DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')


def call_config(
    make_config: Callable[..., Config], db_url: str, media_url: str, smtp_port: int = 9
) -> Config:
    """A control plane with one media node (``NODE`` at ``media_url``) and e-mail
    through an SMTP server on ``smtp_port``."""
    return make_config(
        db_url,
        calls=CallsConfig(
            media_api_url=media_url, media_ws_url="wss://media.test:8444/ws"
        ),
        mediaserver=MediaServerConfig(
            node_id=NODE,
            api_secret=Secret(API_SECRET),
            token_issuer="http://127.0.0.1",
            turn_urls=("turn:127.0.0.1:3478?transport=udp",),
            turn_secret=Secret("turn-secret"),
        ),
        mail=MailConfig(
            enabled=True,
            host="127.0.0.1",
            port=smtp_port,
            security="none",
            sender="desk@beeldbel.example",
            timeout_seconds=5,
        ),
    )


async def video_request(client: Client, **overrides: Any) -> int:
    """A new video request from a citizen with e-mail ``ADDRESS``; returns its id."""
    values: dict[str, Any] = {
        "name": "Canary Burger",
        "email": ADDRESS,
        "accessibility": (),
        **overrides,
    }
    request_id, _reference = await add_request(client.app[DB], **values)
    return request_id


async def claim(client: Client, request_id: int, token: str) -> None:
    """Claim a request as the signed-in staff member (``token``: their CSRF token)."""
    response = await client.post(
        f"/staff/requests/{request_id}/claim",
        data={"csrf_token": token},
        allow_redirects=False,
    )
    assert response.status == 303


async def claimed(client: Client, **overrides: Any) -> tuple[int, str]:
    """Sign in, make a video request and claim it; returns (id, csrf token)."""
    await sign_in(client)
    request_id = await video_request(client, **overrides)
    page = await client.get(f"/staff/requests/{request_id}")
    token = csrf_from(await page.text())
    await claim(client, request_id, token)
    return request_id, token


async def start(client: Client, request_id: int, token: str, **form: str) -> str:
    """Start the video call of a claimed request; returns the room id."""
    response = await client.post(
        f"/staff/requests/{request_id}/video",
        data={"csrf_token": token, **form},
        allow_redirects=False,
    )
    assert response.status == 303, await response.text()
    location = str(response.headers["Location"])
    assert location.startswith("/staff/gesprekken/")
    return location.rsplit("/", 1)[1]


async def start_call(client: Client, token: str | None = None) -> tuple[str, str]:
    """Claim a new video request and start its call: (room id, csrf token). Without
    ``token`` it signs in first."""
    if token is None:
        request_id, token = await claimed(client)
    else:
        request_id = await video_request(client)
        await claim(client, request_id, token)
    return await start(client, request_id, token), token


async def staff_json(
    client: Client, path: str, token: str, body: Any = None
) -> aiohttp.ClientResponse:
    return await client.post(
        path, json=body or {}, headers={"X-CSRF-Token": token, **JSON}
    )


async def media_room(media: BaseTestServer, room_id: str) -> int:
    """The status the media node's API answers for ``room_id`` (200 or 404)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            media.make_url(f"/api/rooms/{room_id}"),
            headers={"Authorization": f"Bearer {API_SECRET}"},
        ) as response,
    ):
        return response.status


async def record_of(client: Client, room_id: str) -> records.CallRecord:
    record = await records.find_by_room(client.app[DB], room_id)
    assert record is not None, "no call record"
    return record


def claims(token: str) -> dict[str, Any]:
    """A media token's claims (unverified)."""
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


class Guest:
    """A citizen's or interpreter's browser: its own cookie jar."""

    def __init__(self, client: Client) -> None:
        self.session = aiohttp.ClientSession(
            base_url=client.make_url("/"), cookie_jar=aiohttp.CookieJar(unsafe=True)
        )
        self.csrf = ""

    async def land(self) -> None:
        """Load the landing page, as the browser does before it opens a link."""
        page = await self.session.get("/gesprek")
        match = _DATA_CSRF.search(await page.text())
        assert match
        self.csrf = match.group(1)

    async def open(self, link: str) -> aiohttp.ClientResponse:
        await self.land()
        return await self.post("/gesprek/openen", {"token": link.split("#t=")[1]})

    async def post(self, path: str, body: Any) -> aiohttp.ClientResponse:
        return await self.session.post(
            path, json=body, headers={"X-CSRF-Token": self.csrf, **JSON}
        )

    async def get(self, path: str) -> aiohttp.ClientResponse:
        return await self.session.get(path, headers=JSON, allow_redirects=False)

    async def close(self) -> None:
        await self.session.close()
