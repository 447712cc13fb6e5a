"""The citizen's survey link after a phone callback:
``{public_url}/enquete/{request id}.{expiry}.{signature}``.

The link asks for the survey of one request and nothing else: it opens no status
page and no call. It is signed, not sealed (the request id is no secret, and the
link carries no personal data), with an HMAC-SHA256 under a key derived for this
purpose alone, cut to 128 bits so the link fits in a text message. It expires at
the time it carries (:data:`VALID_FOR` after the call), checked on every open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from controlplane.base.errors import LinkExpired, NotFound
from controlplane.security.secret_box import SURVEY_LINKS, derive_key

PATH = "/enquete/"
#: How long after the call the citizen may still answer.
VALID_FOR = timedelta(days=14)
_SIGNATURE_BYTES = 16
_TOKEN_MAX = 64


def survey_token(secret_key: bytes, request_id: int, expires: datetime) -> str:
    """``<request id>.<expiry, Unix seconds>.<signature>``."""
    payload = f"{request_id}.{int(expires.timestamp())}"
    return f"{payload}.{_sign(secret_key, payload)}"


def survey_url(public_url: str, secret_key: bytes, request_id: int, lang: str) -> str:
    """The link to send now; an English request's link opens in English."""
    expires = datetime.now(UTC) + VALID_FOR
    url = public_url.rstrip("/") + PATH + survey_token(secret_key, request_id, expires)
    return url + "?lang=en" if lang == "en" else url


def read_survey_token(secret_key: bytes, token: str, now: datetime) -> int:
    """The request id ``token`` was signed for. :class:`NotFound` when it is forged
    or malformed, :class:`LinkExpired` when past its time."""
    parts = token.split(".") if len(token) <= _TOKEN_MAX and token.isascii() else []
    if len(parts) != 3 or not all(p.isdigit() and len(p) <= 12 for p in parts[:2]):
        raise NotFound("survey_link_invalid")
    payload = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(parts[2], _sign(secret_key, payload)):
        raise NotFound("survey_link_invalid")
    if int(parts[1]) <= now.timestamp():
        raise LinkExpired("survey_link_expired")
    return int(parts[0])


def _sign(secret_key: bytes, payload: str) -> str:
    key = derive_key(secret_key, SURVEY_LINKS)
    digest = hmac.new(key, payload.encode("ascii"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest[:_SIGNATURE_BYTES]).decode().rstrip("=")
