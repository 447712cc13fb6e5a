"""``GET /api/v1/topics``: the desk's topics, so integrators need not hard-code
the codes a new request's ``topic`` must be one of."""

from __future__ import annotations

from aiohttp import web

from controlplane.api.access import BASE, authorize
from controlplane.api.models import Topic, TopicList
from controlplane.requests import DESK

#: Listing what the desk offers is part of creating and of following requests.
SCOPES = ("callbacks:write", "callbacks:read")


def setup(app: web.Application) -> None:
    app.router.add_get(f"{BASE}/topics", list_topics)


async def list_topics(request: web.Request) -> web.Response:
    await authorize(request, *SCOPES)
    topics = request.app[DESK].current.topics
    shown = TopicList(items=[Topic(code=t.code, nl=t.nl, en=t.en) for t in topics])
    return web.json_response(shown.model_dump(mode="json"))
