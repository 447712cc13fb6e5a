"""A real media server and the real call pages, without the control plane's call flow.

The media server runs in-process (real UDP, DTLS, SRTP) and fetches its JWKS over
HTTPS. The pages are the control plane's own app (``create_app``: templates,
static files, CSP, CSRF) with a few test routes that do what ``controlplane.calls``
does in production: render ``call/*.html`` with a ``call_app`` context and mint
join tokens. So the browser code is tested against the real server, alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from playwright.async_api import Page, Route

from beeldbel.config import CallsConfig, MediaServerConfig, Secret
from beeldbel.tokens import MediaClaims, sign_media_token
from beeldbel.turn import ice_servers
from controlplane.app.factory import create_app
from controlplane.app.middlewares import CSP
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.calls.agents import staff_call_context
from controlplane.security.csrf import csrf_token
from mediaserver.app import create_app as create_media_app
from tests.helpers import serve_jwks, wait_for

ISSUER = "https://desk.test"
NODE = "media-e2e"
API_SECRET = "api-secret-for-call-tests"
ROOM = "room-e2e"


@dataclass
class CallHarness:
    """The running pieces and what the pages reported."""

    pages: TestServer
    media: TestServer
    media_config: MediaServerConfig
    progress: list[dict[str, Any]] = field(default_factory=list)
    quality: list[dict[str, Any]] = field(default_factory=list)
    lobby_message: str | None = None
    tokens_issued: int = 0
    #: how the employee closed the request once the call was over
    closed_as: str | None = None
    #: how the call ended, once the employee ended it from the page
    outcome: str | None = None

    def url(self, path: str) -> str:
        return str(self.pages.make_url(path))

    async def media_api(self, method: str, path: str, **kwargs: Any) -> int:
        headers = {"Authorization": f"Bearer {API_SECRET}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(
                method, str(self.media.make_url(path)), headers=headers, **kwargs
            ) as response,
        ):
            return response.status

    async def create_room(self) -> None:
        status = await self.media_api("POST", "/api/rooms", json={"room_id": ROOM})
        assert status == 201, status

    async def end_room(self) -> None:
        assert await self.media_api("DELETE", f"/api/rooms/{ROOM}") == 204


def client_errors(harness: CallHarness, page: str, kind: str) -> float:
    """How many client errors of ``page`` and ``kind`` the control plane counted."""
    value = harness.pages.app[METRICS].registry.get_sample_value(
        "beeldbel_client_errors_total", {"page": page, "kind": kind}
    )
    return value or 0.0


async def reported(harness: CallHarness, page: str, kind: str, what: str) -> None:
    """Wait until one client error of ``page`` and ``kind`` is counted."""
    await wait_for(
        lambda: client_errors(harness, page, kind) == 1, 5, f"{what} to be counted"
    )


async def refuse(page: Page, pattern: str) -> None:
    """The page's requests to ``pattern`` get a 503, as from a failing server."""

    async def unavailable(route: Route) -> None:
        await route.fulfill(status=503, body="")

    await page.route(pattern, unavailable)


def _call_app(role: str, request: web.Request) -> dict[str, str]:
    data = {
        "role": role,
        "csrf": csrf_token(request),
        "token-url": f"/t/token/{role}",
        "quality-url": f"/t/quality/{role}",
        "survey-url": f"/t/survey/{role}",
        "lang": "nl",
    }
    if role == "agent":
        data |= {
            "end-url": "/t/end",
            "switch-url": "/t/switch",
            "interpreter-url": "/t/interpreter",
            "message-url": "/t/message",
            "link-url": "/t/link",
            "close-url": "/t/close",
        }
    else:
        data |= {
            "progress-url": "/t/progress",
            "status-url": "/t/status",
            "events-url": "/t/events",
            "phone-hint": "06-…78",
        }
    return data


def _page_routes(
    harness_ref: list[CallHarness], signing_key: Ed25519PrivateKey
) -> web.RouteTableDef:
    routes = web.RouteTableDef()

    def harness() -> CallHarness:
        return harness_ref[0]

    def with_media_csp(response: web.StreamResponse) -> web.StreamResponse:
        # production: controlplane.calls allows its media node in connect-src
        ws = str(harness().media.make_url("/")).replace("http", "ws", 1).rstrip("/")
        response.headers["Content-Security-Policy"] = CSP.replace(
            "connect-src 'self'", f"connect-src 'self' {ws}"
        )
        return response

    @routes.get("/t/device/{role}")
    async def device(request: web.Request) -> web.StreamResponse:
        role = request.match_info["role"]
        context = {
            "call_app": _call_app(role, request),
            "call_page_url": f"/t/call/{role}",
        }
        return with_media_csp(render(request, "call/device_check.html", context))

    @routes.get("/t/call/{role}")
    async def call(request: web.Request) -> web.StreamResponse:
        role = request.match_info["role"]
        if role != "agent":
            guest = {"call_app": _call_app(role, request)}
            return with_media_csp(render(request, "call/call.html", guest))
        # the page's own context, as controlplane.calls.agents renders it
        context = staff_call_context(
            request,
            _call_app(role, request),
            SimpleNamespace(
                reference="BB-TEST-01",
                channel="video",
                language="nl",
                accessibility=("text_chat",),
                accessibility_note=None,
                email="burger@example.org",
                phone="+31612345678",
            ),
            join_link=harness().url("/gesprek#t=example-link-token"),
            interpreter_link=None,
            progress=[
                {
                    "step": "link_sent",
                    "failed": [],
                    "at": "2026-11-27T22:00:00Z",
                    "local": "23:00",
                }
            ],
        )
        return with_media_csp(render(request, "call/staff_call.html", context))

    @routes.post("/t/token/{role}")
    async def token(request: web.Request) -> web.Response:
        role = request.match_info["role"]
        config = harness().media_config
        claims = MediaClaims.issue(
            issuer=ISSUER, audience=NODE, participant=f"{role}-1", room=ROOM, role=role
        )
        harness().tokens_issued += 1
        servers = ice_servers(
            stun_urls=config.stun_urls,
            turn_urls=config.turn_urls,
            turn_secret=config.turn_secret,
            turn_ttl_seconds=config.turn_ttl_seconds,
            user=f"{role}-1",
        )
        media_url = str(harness().media.make_url("/ws")).replace("http", "ws", 1)
        return web.json_response(
            {
                "media_url": media_url,
                "room_id": ROOM,
                "token": sign_media_token(claims, signing_key, "k1"),
                "role": role,
                "ice_servers": servers,
                "force_relay": False,
            }
        )

    @routes.post("/t/progress")
    async def progress(request: web.Request) -> web.Response:
        harness().progress.append(await request.json())
        return web.Response(status=204)

    @routes.post("/t/quality/{role}")
    async def quality(request: web.Request) -> web.Response:
        harness().quality.append(
            {"role": request.match_info["role"], **await request.json()}
        )
        return web.Response(status=204)

    @routes.post("/t/end")
    async def end(request: web.Request) -> web.Response:
        await harness().end_room()
        return web.json_response({"next": "/t/survey/agent"})

    @routes.post("/t/switch")
    async def switch(request: web.Request) -> web.Response:
        harness().outcome = "switched_to_phone"
        await harness().end_room()
        return web.json_response({"next": "/t/survey/agent"})

    @routes.post("/t/close")
    async def close(request: web.Request) -> web.Response:
        harness().closed_as = str((await request.json())["result"])
        return web.json_response({"next": "/t/survey/agent"})

    @routes.post("/t/link")
    async def link(request: web.Request) -> web.Response:
        return web.json_response(
            {"link": harness().url("/gesprek#t=new-link"), "sent": [], "failed": []}
        )

    @routes.post("/t/interpreter")
    async def interpreter(request: web.Request) -> web.Response:
        return web.json_response(
            {"link": harness().url("/gesprek#t=interpreter-token")}
        )

    @routes.post("/t/message")
    async def message(request: web.Request) -> web.Response:
        harness().lobby_message = str((await request.json())["text"])
        return web.Response(status=204)

    @routes.get("/t/status")
    async def status(request: web.Request) -> web.Response:
        ended = harness().outcome is not None
        body = {"ended": ended, "outcome": harness().outcome}
        return web.json_response({**body, "message": harness().lobby_message})

    @routes.get("/t/events")
    async def events(request: web.Request) -> web.StreamResponse:
        """The waiting room's SSE: ``lobby_message`` whenever the message changes,
        ``ended`` with the outcome when the employee ended the call."""
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        sent = None
        while request.transport is not None and not request.transport.is_closing():
            if harness().outcome is not None:
                data = json.dumps({"outcome": harness().outcome})
                await response.write(f"event: ended\ndata: {data}\n\n".encode())
                break
            text = harness().lobby_message
            if text != sent:
                sent = text
                data = json.dumps({"text": text})
                await response.write(f"event: lobby_message\ndata: {data}\n\n".encode())
            await asyncio.sleep(0.1)
        return response

    @routes.get("/t/survey/{role}")
    async def survey(request: web.Request) -> web.Response:
        body = (
            '<!doctype html><html lang="nl"><head><meta charset="utf-8">'
            "<title>Vragenlijst</title></head><body><main>"
            "<h1 id=survey>Vragenlijst</h1></main></body></html>"
        )
        return web.Response(text=body, content_type="text/html")

    return routes


@pytest.fixture
def make_call_harness(
    aiohttp_server: Any, tmp_path: Any, make_config: Any, sqlite_url: str
) -> Callable[..., Awaitable[CallHarness]]:
    """``await make_call_harness(**media_config_changes)``: media server + pages."""

    async def make(*, test_hooks: bool = True, **media_changes: Any) -> CallHarness:
        """The harness; ``test_hooks``: the pages publish window.beeldbel."""
        signing_key = Ed25519PrivateKey.generate()
        jwks_url, ca_file = await serve_jwks(
            aiohttp_server, signing_key.public_key(), tmp_path
        )
        media_config = MediaServerConfig(
            node_id=NODE,
            udp_port=0,
            udp_bind="127.0.0.1",
            jwks_url=jwks_url,
            jwks_ca_file=ca_file,
            token_issuer=ISSUER,
            api_secret=Secret(API_SECRET),
        )
        media_config = dataclasses.replace(media_config, **media_changes)
        media = await aiohttp_server(create_media_app(media_config))
        holder: list[CallHarness] = []
        calls = CallsConfig(test_hooks=test_hooks)
        config = make_config(sqlite_url, mediaserver=media_config, calls=calls)
        app = create_app(config)
        app.router.add_routes(_page_routes(holder, signing_key))
        pages = await aiohttp_server(app)
        harness = CallHarness(pages=pages, media=media, media_config=media_config)
        holder.append(harness)
        await harness.create_room()
        return harness

    return make
