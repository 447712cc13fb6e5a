"""The people at a replicated desk (:mod:`tests.deploy.replicas`), as HTTP clients
through its HAProxy: a :class:`Browser` per person (own cookies, own loopback
source address, optionally pinned to one replica with ``X-Replica``), video
:class:`Call` s with real aiortc peers, and an event-stream reader that keeps
the event ids."""

from __future__ import annotations

import contextlib
import json
import re
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import pyotp
from aiortc.exceptions import InvalidStateError

from tests.helpers import csrf_from, wait_for
from tests.mediaserver.client import MediaClient, decodes

if TYPE_CHECKING:
    from tests.deploy.replicas import Deployment

PASSWORD = "correct horse battery staple 42"
#: The citizen form's answers for a video request.
ANSWERS = {
    "name": "Canary Burger",
    "phone": "06-12345678",
    "email": "burger.canary@example.org",
    "topic": "report_question",
    "channel": "video",
    "preferred": "asap",
    "language": "nl",
    "accessibility_note": "",
    "consent": "yes",
}
_SUBMISSION = re.compile(r'name="submission_id" value="([^"]+)"')
_REFERENCE = re.compile(r'id="reference">(BB-[0-9A-Z]{4}-[0-9A-Z]{4})<')
_DATA_CSRF = re.compile(r'data-csrf="([^"]+)"')


class Browser:
    """One person's browser: own cookies, own source address; requests go through
    HAProxy (pinned to ``replica`` unless a request names another)."""

    def __init__(
        self, base_url: str, tls: ssl.SSLContext, address: str, replica: str | None
    ) -> None:
        self.address = address
        self.replica = replica
        self.session = aiohttp.ClientSession(
            base_url=base_url,
            cookie_jar=aiohttp.CookieJar(unsafe=True),
            connector=aiohttp.TCPConnector(local_addr=(address, 0), ssl=tls),
        )
        self.csrf = ""

    def _headers(self, replica: str | None, extra: dict[str, str]) -> dict[str, str]:
        replica = replica or self.replica
        return {**({"X-Replica": replica} if replica else {}), **extra}

    async def get(
        self, path: str, replica: str | None = None, **headers: str
    ) -> aiohttp.ClientResponse:
        return await self.session.get(
            path, headers=self._headers(replica, headers), allow_redirects=False
        )

    async def post(
        self, path: str, data: Any, replica: str | None = None
    ) -> aiohttp.ClientResponse:
        """A form POST with this browser's CSRF token."""
        return await self.session.post(
            path,
            data={"csrf_token": self.csrf, **data},
            headers=self._headers(replica, {}),
            allow_redirects=False,
        )

    async def post_json(
        self, path: str, body: Any, replica: str | None = None
    ) -> aiohttp.ClientResponse:
        headers = {"X-CSRF-Token": self.csrf, "Accept": "application/json"}
        return await self.session.post(
            path, json=body, headers=self._headers(replica, headers)
        )

    async def page(self, path: str, replica: str | None = None) -> str:
        response = await self.get(path, replica)
        assert response.status == 200, f"{path}: {response.status}"
        return await response.text()

    async def login(
        self, username: str, password: str, replica: str | None = None
    ) -> aiohttp.ClientResponse:
        """GET the login page and POST ``password`` (unfollowed response)."""
        self.csrf = csrf_from(await self.page("/staff/login", replica))
        return await self.post(
            "/staff/login", {"username": username, "password": password}, replica
        )

    async def sign_in(self, username: str, secret: str) -> None:
        """Password, then the TOTP code: a full staff session."""
        response = await self.login(username, PASSWORD)
        assert response.status == 303, await response.text()
        self.csrf = csrf_from(await self.page("/staff/mfa"))
        code = pyotp.TOTP(secret).now()
        response = await self.post("/staff/mfa", {"totp_code": code})
        assert response.status == 303, await response.text()
        self.csrf = csrf_from(await self.page("/staff"))

    async def submit_request(self, replica: str | None = None) -> str:
        """The citizen form, filled in for a video call; the new reference."""
        html = await self.page("/", replica)
        match = _SUBMISSION.search(html)
        assert match, "the form has no submission_id"
        self.csrf = csrf_from(html)
        response = await self.post(
            "/", {**ANSWERS, "submission_id": match.group(1)}, replica
        )
        assert response.status == 303, await response.text()
        pinned = replica or self.replica
        if pinned:
            assert response.headers["X-Served-By"] == pinned
        confirmation = await self.page(response.headers["Location"], replica)
        found = _REFERENCE.search(confirmation)
        assert found, "the confirmation shows no reference"
        return found.group(1)

    async def open_link(self, link: str) -> None:
        """Open a join link as the citizen's or interpreter's browser does."""
        landing = await self.page("/gesprek")
        match = _DATA_CSRF.search(landing)
        assert match, "the landing page has no data-csrf"
        self.csrf = match.group(1)
        opened = await self.post_json(
            "/gesprek/openen", {"token": link.split("#t=")[1]}
        )
        assert opened.status == 200, await opened.text()

    async def close(self) -> None:
        await self.session.close()


async def grant(browser: Browser, path: str) -> dict[str, Any]:
    """A media grant (``POST path``) for this browser."""
    response = await browser.post_json(path, {})
    assert response.status == 200, await response.text()
    body: dict[str, Any] = await response.json()
    return body


async def join_media(granted: dict[str, Any]) -> MediaClient:
    """A real aiortc peer that joined the granted room and publishes."""
    client = MediaClient(granted["media_url"])
    reply = await client.connect(granted["room_id"], granted["token"])
    assert reply["type"] == "joined", reply
    await client.publish()
    return client


@dataclass
class Call:
    """A video call between an employee and an interpreter, each a real aiortc
    peer on the call's media node, signed in and linked through HAProxy."""

    room_id: str
    agent: Browser
    interpreter: Browser
    peers: list[MediaClient] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"/staff/gesprekken/{self.room_id}"

    def frames(self) -> list[int]:
        """Video frames each peer has received so far."""
        return [sum(peer.frames_from("video")) for peer in self.peers]

    async def media_flows(self, timeout: float = 30) -> None:  # noqa: ASYNC109
        """Wait until both peers decode each other's video and audio."""
        await wait_for(
            lambda: all(decodes(peer) for peer in self.peers),
            timeout,
            lambda: f"media between the peers of {self.room_id}: {self.frames()}",
        )

    async def media_grows(self, by: int = 10, timeout: float = 15) -> None:  # noqa: ASYNC109
        """Wait until every peer has received ``by`` more video frames."""
        start = self.frames()
        await wait_for(
            lambda: all(n >= s + by for n, s in zip(self.frames(), start, strict=True)),
            timeout,
            lambda: f"media to go on in {self.room_id}: {start} -> {self.frames()}",
        )

    async def hang_up(self) -> None:
        """End the call for everyone (the employee's button) and close the peers."""
        response = await self.agent.post_json(self.base + "/einde", {})
        assert response.status == 200, await response.text()
        await self.close()

    async def discard(self) -> None:
        """After a test, however it went: the call ended (a call left open would
        weigh on the next placement) and the peers closed."""
        with contextlib.suppress(aiohttp.ClientError):
            await self.agent.post_json(self.base + "/einde", {})
        await self.close()

    async def close(self) -> None:
        for peer in self.peers:
            await _close_peer(peer)
        self.peers.clear()


async def _close_peer(peer: MediaClient) -> None:
    """Close a test peer, also when its signalling reader had failed (a
    renegotiation that met a connection already closed as its room ended): then
    ``MediaClient.close`` stops at the reader, so the rest is closed here."""
    with contextlib.suppress(InvalidStateError):
        await peer.close()
    for received in peer.received:
        received.task.cancel()
    await peer.pc.close()
    if peer.ws is not None:
        await peer.ws.close()
    if peer.session is not None:
        await peer.session.close()


async def start_call(desk: Deployment, agent: Browser) -> Call:
    """A citizen's video request, claimed by the signed-in ``agent``, whose call
    is started and joined by the employee and an interpreter with media."""
    reference = await desk.browser().submit_request()
    request_id = (await desk.request_row(reference)).id
    claimed = await agent.post(f"/staff/requests/{request_id}/claim", {})
    assert claimed.status == 303, await claimed.text()
    started = await agent.post(f"/staff/requests/{request_id}/video", {})
    assert started.status == 303, await started.text()
    room_id = started.headers["Location"].rsplit("/", 1)[1]
    call = Call(room_id, agent, desk.browser())
    invited = await agent.post_json(call.base + "/tolk", {})
    assert invited.status == 200, await invited.text()
    await call.interpreter.open_link((await invited.json())["link"])
    for browser, path in (
        (agent, call.base + "/token"),
        (call.interpreter, "/gesprek/token"),
    ):
        call.peers.append(await join_media(await grant(browser, path)))
    return call


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    name: str
    data: dict[str, Any]


async def next_event(response: aiohttp.ClientResponse) -> Event | None:
    """The next event of an event stream (comments skipped); None at its end."""
    event_id, name, data = "", "message", []
    while True:
        raw = await response.content.readline()
        if not raw:
            return None
        line = raw.decode().rstrip("\n")
        if line.startswith("id:"):
            event_id = line[3:].strip()
        elif line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif not line and data:
            return Event(event_id, name, json.loads("\n".join(data)))
