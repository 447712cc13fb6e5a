"""The server-to-server API the control plane uses to create and end rooms.

Every request carries ``Authorization: Bearer <api_secret>``. Also serves the
liveness and readiness probes and ``/metrics``.
"""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from beeldbel.config import Secret
from mediaserver.errors import (
    BadMessage,
    Draining,
    MediaError,
    UdpNotBound,
    Unauthorized,
)
from mediaserver.room import RoomId, Rooms

ROOMS = web.AppKey("rooms", Rooms)
API_SECRET = web.AppKey("api_secret", Secret)
METRICS_SECRET = web.AppKey("metrics_secret", Secret)
REGISTRY = web.AppKey("registry", CollectorRegistry)


def _authorize(request: web.Request, secret: Secret) -> None:
    header = request.headers.get("Authorization", "")
    expected = f"Bearer {secret.reveal()}"
    if not secret or not hmac.compare_digest(header.encode(), expected.encode()):
        raise Unauthorized("missing or wrong bearer secret")


async def create_room(request: web.Request) -> web.Response:
    _authorize(request, request.app[API_SECRET])
    try:
        body: Any = await request.json()
    except ValueError:
        raise BadMessage("body is not JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("room_id"), str):
        raise BadMessage("body needs a string room_id")
    codec = body.get("video_codec", "VP8")
    if not isinstance(codec, str):
        raise BadMessage("video_codec must be a string")
    room = request.app[ROOMS].create(RoomId(body["room_id"]), codec)
    return web.json_response(
        {"room_id": room.id, "video_codec": room.video_codec}, status=201
    )


async def get_room(request: web.Request) -> web.Response:
    _authorize(request, request.app[API_SECRET])
    room = request.app[ROOMS].get(RoomId(request.match_info["room_id"]))
    return web.json_response(
        {
            "room_id": room.id,
            "video_codec": room.video_codec,
            "participants": room.roster(),
        }
    )


async def end_room(request: web.Request) -> web.Response:
    _authorize(request, request.app[API_SECRET])
    await request.app[ROOMS].end(RoomId(request.match_info["room_id"]))
    return web.Response(status=204)


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    if request.app[ROOMS].draining:
        raise Draining("this media node is draining")
    if not request.app[ROOMS].mux.bound:
        raise UdpNotBound("the UDP media port is not bound")
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    secret = request.app[METRICS_SECRET]
    if secret:
        _authorize(request, secret)
    elif request.remote not in ("127.0.0.1", "::1"):
        raise Unauthorized("metrics are served to localhost only")
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """MediaError → ``{"error": {"code", "message"}}``; anything else → logged 500."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except MediaError as exc:
        return web.json_response(
            {"error": {"code": exc.code, "message": str(exc)}}, status=exc.status
        )


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/rooms", create_room)
    app.router.add_get("/api/rooms/{room_id}", get_room)
    app.router.add_delete("/api/rooms/{room_id}", end_room)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
