"""``Idempotency-Key`` for the API's POSTs: one key, one outcome, however often sent.

A key is first reserved with the request's fingerprint (status 0), then the
response is stored against it. A retry with the same body gets the stored
response; with another body it is refused. A reservation left by a crash is
taken over by the retry, which is safe because the request itself is created
with a submission key derived from the idempotency key. A refused (invalid)
request reserves nothing, so the corrected request may use the same key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from controlplane.errors import BadRequest, IdempotencyKeyReused
from controlplane.storage.database import Database
from controlplane.storage.schema import idempotency_keys

HEADER = "Idempotency-Key"
MAX_LENGTH = 255
IN_FLIGHT = 0


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


async def reserve(
    db: Database, api_key_id: int, key: str, print_: str
) -> StoredResponse | None:
    """Claim ``key`` for this request (None), or find it taken by the same body.

    Returns the stored response when that earlier request has finished; None
    when it is still in flight (or died), so this request carries on with it.
    """
    try:
        async with db.write() as conn:
            await conn.execute(
                sa.insert(idempotency_keys).values(
                    api_key_id=api_key_id,
                    key=key,
                    fingerprint=print_,
                    status=IN_FLIGHT,
                    body="",
                    created_at=datetime.now(UTC),
                )
            )
    except IntegrityError:
        return await replay(db, api_key_id, key, print_)
    return None


async def store(
    db: Database, api_key_id: int, key: str, status: int, body: str
) -> None:
    """Keep the response a retry with ``key`` will get."""
    async with db.write() as conn:
        await conn.execute(
            sa.update(idempotency_keys)
            .where(
                idempotency_keys.c.api_key_id == api_key_id,
                idempotency_keys.c.key == key,
            )
            .values(status=status, body=body)
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
