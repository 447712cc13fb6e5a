"""The citizen's status link: ``{public_url}/verzoek/{reference}.{signature}``.

The link needs no account and may be opened any number of times. It is signed,
not sealed: the reference is no secret (the citizen reads it out on the phone),
but nobody can make the link of another reference without the server's key. The
signature is an HMAC-SHA256 under a key derived for this purpose alone
(:func:`controlplane.security.secret_box.derive_key`), cut to 128 bits, so the
whole link fits in one text message. It carries no expiry of its own: it expires
with the request, which is read on every open (:func:`live_request`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from controlplane.base.errors import LinkExpired, NotFound
from controlplane.requests.callbacks import CLOSED_STATES, find_by_reference
from controlplane.requests.reference import parse_reference
from controlplane.security.secret_box import STATUS_LINKS, derive_key
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import Database

PATH = "/verzoek/"
_SIGNATURE_BYTES = 16
_TOKEN_MAX = 64


def status_token(secret_key: bytes, reference: str) -> str:
    """``BB-4K7Q-9M2X.<signature>``: the last part of a status link."""
    return f"{reference}.{_sign(secret_key, reference)}"


def status_url(public_url: str, secret_key: bytes, reference: str, lang: str) -> str:
    """The status link to send; an English request's link opens in English."""
    url = public_url.rstrip("/") + PATH + status_token(secret_key, reference)
    return url + "?lang=en" if lang == "en" else url


def status_path(request: web.Request, reference: str) -> str:
    """The status page of ``reference`` on this server, for a link in a page."""
    return PATH + status_token(request.app[SECRET_KEY], reference)


def read_token(secret_key: bytes, token: str) -> str | None:
    """The reference ``token`` was signed for, or None if forged or malformed."""
    if len(token) > _TOKEN_MAX or not token.isascii():
        return None
    reference, _, signature = token.rpartition(".")
    if parse_reference(reference) != reference:
        return None
    expected = _sign(secret_key, reference)
    return reference if hmac.compare_digest(signature, expected) else None


def _sign(secret_key: bytes, reference: str) -> str:
    key = derive_key(secret_key, STATUS_LINKS)
    digest = hmac.new(key, reference.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_SIGNATURE_BYTES]).decode().rstrip("=")


def is_past_retention(row: dict[str, Any], retention_days: int, now: datetime) -> bool:
    """The request's personal data is (or is about to be) erased: its link is over."""
    if row["purged_at"] is not None:
        return True
    closed_at: datetime | None = row["closed_at"]
    return (
        row["state"] in CLOSED_STATES
        and closed_at is not None
        and closed_at + timedelta(days=retention_days) <= now
    )


async def live_request(
    db: Database, secret_key: bytes, token: str, retention_days: int, now: datetime
) -> dict[str, Any]:
    """The request a status link opens. :class:`NotFound` for a forged or unknown
    link, :class:`LinkExpired` once the request is past its retention."""
    reference = read_token(secret_key, token)
    if reference is None:
        raise NotFound("citizen_status_link_invalid")
    row = await find_by_reference(db, reference)
    if row is None:
        raise NotFound("citizen_status_link_invalid")
    if is_past_retention(row, retention_days, now):
        raise LinkExpired("citizen_status_link_expired")
    return row
