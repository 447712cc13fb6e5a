"""The quality summary a call page reports (time to first picture, round trip,
loss, reconnects, connection type): checked field by field and stored on the
call record.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from controlplane.base.errors import ValidationFailed
from controlplane.base.json_body import json_body
from controlplane.base.metrics import METRICS
from controlplane.calls import record as records
from controlplane.calls.rooms import Call
from controlplane.storage.database import DB


async def store_quality(request: web.Request, call: Call) -> web.Response:
    """Store the summary in the request body on ``call``'s record (204)."""
    quality = parse_quality(await json_body(request))
    db = request.app[DB]
    before = (await records.get_call_record(db, call.record_id)).quality
    await records.update_quality(db, call.record_id, quality)
    first_picture = quality.join_to_first_picture_ms
    # counted once a call: the pages report the same figure again and again
    if before.join_to_first_picture_ms is None and first_picture is not None:
        metrics = request.app[METRICS]
        metrics.join_to_first_picture.observe(first_picture / 1000)
    return web.Response(status=204, headers={"Cache-Control": "no-store"})


def parse_quality(body: dict[str, Any]) -> records.Quality:
    """The quality summary a browser reports; :class:`ValidationFailed` by field."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in ("join_to_first_picture_ms", "rtt_ms_p50", "rtt_ms_p95", "reconnects"):
        value = body.get(name)
        if value is None and name != "reconnects":
            values[name] = None
        elif value is None:
            values[name] = 0
        elif isinstance(value, bool) or not isinstance(value, int | float):
            errors[name] = "calls_quality_number"
        elif not 0 <= value < 2**31:
            errors[name] = "calls_quality_range"
        else:
            values[name] = round(value)
    loss = body.get("loss_pct")
    if loss is not None and (
        isinstance(loss, bool) or not isinstance(loss, int | float)
    ):
        errors["loss_pct"] = "calls_quality_number"
    elif loss is not None and not 0 <= loss <= 100:
        errors["loss_pct"] = "calls_quality_range"
    kind = body.get("connection_type", "unknown")
    if kind not in records.CONNECTION_TYPES:
        errors["connection_type"] = "calls_quality_connection"
    if errors:
        raise ValidationFailed("calls_quality_invalid", details=errors)
    return records.Quality(
        connection_type=str(kind),
        loss_pct=None if loss is None else float(loss),
        **values,
    )
