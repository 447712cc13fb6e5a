"""``Idempotency-Key`` for the API's POSTs: one key, one outcome, however often sent.

The request's work and its response, with the key and the request's
fingerprint, are committed in one transaction (:func:`once`), so a crash leaves
nothing behind. A retry with the same body gets the stored response; with another
body it is refused. Of concurrent requests with one key, the first to commit
wins; the others' inserts fail, and their retried transaction replays the
winner's response. A refused (invalid) request stores nothing, so the corrected
request may use the same key. Rows with status 0 (in flight) were left by an
earlier version that reserved keys in a transaction of their own; they are taken
over, which is safe because the request is created with a submission key
derived from the idempotency key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.base.errors import BadRequest, IdempotencyKeyReused
from controlplane.storage.database import Database
from controlplane.storage.schema import idempotency_keys

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
IN_FLIGHT = 0
#: Transactions tried when one loses the race for a key (or a reference).
STORE_ATTEMPTS = 5

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: str


def parse_key(value: str | None) -> str | None:
    """The header's value, or None when absent; :class:`BadRequest` if malformed."""
    if value is None:
        return None
    if not 0 < len(value) <= MAX_LENGTH or not all(" " <= c <= "~" for c in value):
        raise BadRequest(
            f"{HEADER} must be 1 to {MAX_LENGTH} printable ASCII characters"
        )
    return value


def fingerprint(method: str, path: str, payload: Any) -> str:
    """A hash of what the request asks for; key order in the JSON does not count."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


def submission_key(api_key_id: int, key: str) -> str:
    """The callback's submission key for this idempotency key (fits 96 chars)."""
    return f"api:{api_key_id}:{hashlib.sha256(key.encode()).hexdigest()}"


async def replay(
    db: Database, api_key_id: int, key: str, print_: str
) -> StoredResponse | None:
    """The stored response for ``key``; None when unknown or still in flight."""
    async with db.read() as conn:
        row = (await conn.execute(_select(api_key_id, key))).first()
    if row is None:
        return None
    _same_request(row.fingerprint, print_)
    if row.status == IN_FLIGHT:
        return None
    return StoredResponse(row.status, row.body)


async def once(
    db: Database,
    api_key_id: int,
    key: str,
    print_: str,
    respond: Callable[[AsyncConnection], Awaitable[tuple[StoredResponse, T]]],
) -> tuple[StoredResponse, T | None]:
    """Run ``respond`` and keep its response against ``key``, in one transaction.

    When ``key`` was used before for the same request, its stored response comes
    back instead, with None for ``respond``'s result. A concurrent request with
    ``key`` that commits first makes this transaction's inserts fail: it is rolled
    back and tried again, and finds that response.
    """
    for _ in range(STORE_ATTEMPTS):
        try:
            async with db.write() as conn:
                row = (await conn.execute(_select(api_key_id, key))).first()
                if row is not None:
                    _same_request(row.fingerprint, print_)
                    if row.status != IN_FLIGHT:
                        return StoredResponse(row.status, row.body), None
                response, result = await respond(conn)
                await conn.execute(
                    _keep(api_key_id, key, print_, response, found=row is not None)
                )
            return response, result
        except IntegrityError:
            continue
    raise RuntimeError(f"could not keep a response for this {HEADER}")


def _keep(
    api_key_id: int, key: str, print_: str, response: StoredResponse, *, found: bool
) -> sa.Insert | sa.Update:
    values = {"status": response.status, "body": response.body}
    if found:  # a reservation left by an earlier version that crashed
        return (
            sa.update(idempotency_keys)
            .where(
                idempotency_keys.c.api_key_id == api_key_id,
                idempotency_keys.c.key == key,
            )
            .values(**values)
        )
    return sa.insert(idempotency_keys).values(
        api_key_id=api_key_id,
        key=key,
        fingerprint=print_,
        created_at=datetime.now(UTC),
        **values,
    )


def _select(api_key_id: int, key: str) -> sa.Select[Any]:
    return sa.select(idempotency_keys).where(
        idempotency_keys.c.api_key_id == api_key_id, idempotency_keys.c.key == key
    )


def _same_request(stored: str, print_: str) -> None:
    if stored != print_:
        raise IdempotencyKeyReused(
            f"this {HEADER} was used before with a different request body; "
            "use a new key for a new request"
        )
