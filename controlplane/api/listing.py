"""``GET /api/v1/callbacks?status=&since=&cursor=&limit=``: the key's own
requests, oldest first, a page at a time.

Only requests this key created through the API are listed, never another key's
and never a web-form request, each shown as ``GET /callbacks/{reference}`` shows
it. Pages follow (created_at, reference), which never changes for a request,
so a request is listed once however the others change meanwhile. The cursor is
that pair, base64url-encoded: opaque to clients, and it reveals nothing a page
did not show.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime

import sqlalchemy as sa
from aiohttp import web

from controlplane.api.access import BASE, authorize
from controlplane.api.models import Callback, CallbackPage, CallbackQuery
from controlplane.api.parsing import failure, parse_query
from controlplane.base.errors import FieldError
from controlplane.security.api_keys import ApiKey
from controlplane.storage.database import DB
from controlplane.storage.schema import callback_requests

Position = tuple[datetime, str]
_SEPARATOR = "|"


def setup(app: web.Application) -> None:
    app.router.add_get(f"{BASE}/callbacks", list_callbacks)


async def list_callbacks(request: web.Request) -> web.Response:
    key = await authorize(request, "callbacks:read")
    query = parse_query(CallbackQuery, request.query)
    after = decode_cursor(query.cursor) if query.cursor else None
    async with request.app[DB].read() as conn:
        rows = (await conn.execute(_select(key, query, after))).mappings().all()
    items = [Callback.from_row(dict(row)) for row in rows[: query.limit]]
    more = len(rows) > query.limit
    last = items[-1] if items else None
    page = CallbackPage(
        items=items,
        next_cursor=encode_cursor((last.created_at, last.reference))
        if more and last
        else None,
    )
    return web.json_response(page.model_dump(mode="json"))


def _select(
    key: ApiKey, query: CallbackQuery, after: Position | None
) -> sa.Select[tuple[object, ...]]:
    table = callback_requests.c
    select = sa.select(callback_requests).where(
        table.api_key_id == key.id, table.source == "api"
    )
    if query.status is not None:
        select = select.where(table.state == query.status)
    if query.since is not None:
        select = select.where(table.updated_at >= query.since)
    if after is not None:
        created, reference = after
        select = select.where(
            sa.or_(
                table.created_at > created,
                sa.and_(table.created_at == created, table.reference > reference),
            )
        )
    order = (table.created_at, table.reference)
    return select.order_by(*order).limit(query.limit + 1)


def encode_cursor(position: Position) -> str:
    created, reference = position
    text = f"{created.isoformat()}{_SEPARATOR}{reference}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Position:
    """The position after which the next page starts; 422 when not a cursor."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode()
        created, reference = text.split(_SEPARATOR)
        moment: datetime | None = datetime.fromisoformat(created)
        if moment is not None and moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
    except (ValueError, UnicodeError, binascii.Error, OverflowError):
        moment = None
    if moment is None or moment.tzinfo is None:
        detail = "is not a cursor this API gave; start again without it"
        raise failure([FieldError("query", ("cursor",), "invalid", detail)])
    return moment, reference
