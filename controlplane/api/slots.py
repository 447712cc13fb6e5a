"""``GET /api/v1/slots?from=&to=``: the free slots a new request may name, from
the same grid as the citizen form (:func:`controlplane.requests.available_slots`).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from controlplane.api.access import BASE, authorize
from controlplane.api.models import Slot, SlotList, SlotQuery
from controlplane.api.parsing import failure, parse_query
from controlplane.api.topics import SCOPES
from controlplane.base.errors import FieldError
from controlplane.requests import DESK, available_slots


def setup(app: web.Application) -> None:
    app.router.add_get(f"{BASE}/slots", list_slots)


async def list_slots(request: web.Request) -> web.Response:
    await authorize(request, *SCOPES)
    query = parse_query(SlotQuery, request.query)
    if query.start and query.end and query.end <= query.start:
        detail = "must be later than from"
        raise failure([FieldError("query", ("to",), "invalid", detail)])
    desk = request.app[DESK].current
    length = timedelta(minutes=desk.slot_minutes)
    free = [
        Slot(start=start, end=start + length)
        for start in available_slots(desk, datetime.now(UTC))
        if (query.start is None or query.start <= start)
        and (query.end is None or start < query.end)
    ]
    return web.json_response(SlotList(items=free).model_dump(mode="json"))
