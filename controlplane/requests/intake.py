"""Citizen pages: the callback form, its confirmation and the privacy statement.

The confirmation lives at ``/bevestiging/{token}``: the token names the request
and is signed with the server's key and valid for :data:`CONFIRMATION_TTL`, so
nobody can guess the page of someone else, and a link left in a shared
browser's history stops working. Even then the page shows no name or number,
only the reference, the channel, the last two digits and the moment.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from multidict import MultiDictProxy

from beeldbel.config import WEEKDAYS, DeskConfig
from controlplane.base.client import client_ip
from controlplane.base.errors import BadRequest, NotFound, ValidationFailed
from controlplane.base.i18n import request_language
from controlplane.base.rendering import render
from controlplane.base.settings import CONFIG
from controlplane.requests.announce import announce_new_request
from controlplane.requests.callbacks import (
    ACCESSIBILITY_NEEDS,
    Created,
    NewRequest,
    create_request,
    find_by_reference,
    find_by_submission,
)
from controlplane.requests.desk import DESK
from controlplane.requests.reference import parse_reference
from controlplane.requests.status_links import status_path
from controlplane.requests.validation import FIELDS, FieldValue, parse_request
from controlplane.requests.wording import (
    Translate,
    page_translator,
    slot_groups,
    when_text,
)
from controlplane.security.ratelimit import LIMITS
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB

log = structlog.get_logger()

CONFIRMATION_TTL = timedelta(hours=1)
EN_DASH = "\u2013"
_SUBMISSION_ID = re.compile(r"[A-Za-z0-9_-]{22,64}")
#: Where each field's error links to: the id of its (first) control.
ANCHORS = {
    "channel": "channel-video",
    "preferred": "preferred-asap",
    "accessibility": f"accessibility-{ACCESSIBILITY_NEEDS[0]}",
}


def setup(app: web.Application) -> None:
    """Register the citizen pages on ``app``."""
    app.router.add_get("/", show_form, name="citizen_form")
    app.router.add_post("/", submit_form)
    app.router.add_get("/bevestiging/{token}", show_confirmation, name="confirmation")
    app.router.add_get("/privacy", show_privacy, name="privacy")
    app.router.add_get("/toegankelijkheid", show_accessibility, name="accessibility")


async def show_form(request: web.Request) -> web.Response:
    # no choice made for the citizen: each radio group starts empty
    values: dict[str, FieldValue] = {"language": request_language(request)}
    return _form_page(request, values, {}, secrets.token_urlsafe(18))


async def submit_form(request: web.Request) -> web.Response:
    form = await request.post()
    submission_id = form.get("submission_id")
    if not isinstance(submission_id, str) or not _SUBMISSION_ID.fullmatch(
        submission_id
    ):
        raise BadRequest("citizen_error_form_incomplete")
    fields = _form_fields(form)
    desk = request.app[DESK].current
    try:
        new = parse_request(fields, desk, source="web", now=datetime.now(UTC))
    except ValidationFailed as exc:
        return _form_page(request, fields, exc.details, submission_id, status=422)
    created = await _store(request, new, f"web:{submission_id}")
    token = confirmation_token(
        request.app[SECRET_KEY], created.reference, datetime.now(UTC)
    )
    location = request.app.router["confirmation"].url_for(token=token)
    return web.Response(status=303, headers={"Location": str(location)})


async def _store(request: web.Request, new: NewRequest, key: str) -> Created:
    """Store once per form; only a new request is rate limited, counted and told."""
    db = request.app[DB]
    if await find_by_submission(db, key) is None:
        limits = request.app[LIMITS]
        await limits.intake_per_ip.hit(client_ip(request))
        await limits.intake_global.hit()
    created = await create_request(db, new, key)
    announce_new_request(request.app, new, created)
    return created


async def show_confirmation(request: web.Request) -> web.Response:
    reference = read_confirmation_token(
        request.app[SECRET_KEY], request.match_info["token"], datetime.now(UTC)
    )
    row = None
    if reference is not None:
        row = await find_by_reference(request.app[DB], reference)
    if row is None:
        raise NotFound("citizen_confirmation_expired")
    desk = request.app[DESK].current
    t = page_translator(request)
    phone: str | None = row["phone"]
    response = render(
        request,
        "citizen/confirmation.html",
        {
            "reference": row["reference"],
            "channel": row["channel"],
            "phone_digits": phone[-2:] if phone else None,
            "when": when_text(row["slot_start"], desk, t),
            "status_link": status_path(request, row["reference"]),
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response


async def show_accessibility(request: web.Request) -> web.Response:
    """The accessibility statement the Dutch government asks of public sites."""
    return render(request, "citizen/accessibility.html", {})


async def show_privacy(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    return render(
        request,
        "citizen/privacy.html",
        {
            "days": config.retention.personal_data_days,
            "audit_days": config.retention.audit_days,
        },
    )


def confirmation_token(key: bytes, reference: str, now: datetime) -> str:
    """A URL-safe token for ``reference``'s confirmation page, valid for an hour."""
    expires = int((now + CONFIRMATION_TTL).timestamp())
    payload = f"{reference}.{expires}"
    return f"{payload}.{_sign(key, payload)}"


def read_confirmation_token(key: bytes, token: str, now: datetime) -> str | None:
    """The reference in ``token``, or None if it is forged, malformed or expired."""
    reference, _, rest = token.partition(".")
    expires, _, signature = rest.partition(".")
    payload = f"{reference}.{expires}"
    if not hmac.compare_digest(signature.encode(), _sign(key, payload).encode()):
        return None
    if not expires.isdigit() or int(expires) < now.timestamp():
        return None
    return parse_reference(reference)


def _sign(key: bytes, payload: str) -> str:
    digest = hmac.new(key, f"confirmation|{payload}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()[:18]).decode()


def _form_fields(form: MultiDictProxy[Any]) -> dict[str, FieldValue]:
    """The form's text fields by name; ``accessibility`` keeps every value."""
    fields: dict[str, FieldValue] = {}
    for name in FIELDS:
        values = [v for v in form.getall(name, []) if isinstance(v, str)]
        if name == "accessibility":
            fields[name] = values
        elif values:
            fields[name] = values[0] if len(values) == 1 else values
    return fields


def _shown_values(fields: dict[str, FieldValue]) -> dict[str, Any]:
    """What to put back in the form: one text per field, a list for checkboxes."""
    shown: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "accessibility":
            shown[name] = [value] if isinstance(value, str) else list(value)
        else:
            shown[name] = value if isinstance(value, str) else ""
    return shown


def _form_page(
    request: web.Request,
    values: dict[str, FieldValue],
    errors: dict[str, str],
    submission_id: str,
    *,
    status: int = 200,
) -> web.Response:
    desk = request.app[DESK].current
    t = page_translator(request)
    order = [field for field in FIELDS if field in errors]
    response = render(
        request,
        "citizen/form.html",
        {
            "values": _shown_values(values),
            "errors": errors,
            "error_links": [(ANCHORS.get(f, f), errors[f]) for f in order],
            "slot_groups": slot_groups(desk, t),
            "opening_hours": _opening_hours(desk, t),
            "accessibility_needs": ACCESSIBILITY_NEEDS,
            "submission_id": submission_id,
        },
        status=status,
    )
    response.headers["Cache-Control"] = (
        "no-store" if status >= 400 else "private, no-cache"
    )
    return response


def _opening_hours(desk: DeskConfig, t: Translate) -> str:
    """``"maandag t/m vrijdag 08:00-20:00, zaterdag 09:00-17:00"``."""
    runs: list[tuple[str, str, str]] = []  # first day, last day, hours
    for day in WEEKDAYS:
        hours = desk.opening_hours.get(day, "")
        if runs and runs[-1][2] == hours and hours:
            runs[-1] = (runs[-1][0], day, hours)
        else:
            runs.append((day, day, hours))
    parts = []
    for first, last, hours in runs:
        if not hours:
            continue
        days = t(f"citizen_day_{first}")
        if last != first:
            days = t("citizen_days_range", first=days, last=t(f"citizen_day_{last}"))
        parts.append(days + " " + hours.replace("-", EN_DASH))
    return ", ".join(parts)
