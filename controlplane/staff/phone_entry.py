"""Phone-line entry: staff type in a callback request taken on the phone, stored
once per form and then shown on its request page.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from controlplane.base.errors import ValidationFailed
from controlplane.base.rendering import render
from controlplane.base.times import iso_utc
from controlplane.requests import (
    ACCESSIBILITY_NEEDS,
    CHANNELS,
    DESK,
    NewRequest,
    announce_new_request,
    available_slots,
    create_request,
    parse_request,
)
from controlplane.staff import auth
from controlplane.staff.labels import Labels
from controlplane.storage.database import DB


def setup(app: web.Application) -> None:
    """Register the phone-line entry form."""
    r = app.router
    r.add_get("/staff/requests/new", new_request_page)
    r.add_post("/staff/requests/new", new_request)


def _new_request_context(
    request: web.Request, errors: Mapping[str, str], form: Mapping[str, Any]
) -> dict[str, Any]:
    desk = request.app[DESK].current
    return {
        "errors": errors,
        "form": form,
        "submission_id": form.get("submission_id") or secrets.token_urlsafe(24),
        "slots": available_slots(desk, datetime.now(UTC)),
        "labels": Labels(request),
        "iso": iso_utc,
        "channels": CHANNELS,
        "needs": ACCESSIBILITY_NEEDS,
    }


async def new_request_page(request: web.Request) -> web.Response:
    await auth.require_staff(request)
    return render(
        request, "staff/console/new.html", _new_request_context(request, {}, {})
    )


async def new_request(request: web.Request) -> web.Response:
    """Store a request taken on the phone line, once per form (``submission_id``)."""
    await auth.require_staff(request)
    data = await request.post()
    fields: dict[str, str | list[str]] = {
        k: v for k, v in data.items() if isinstance(v, str) and k != "accessibility"
    }
    fields["accessibility"] = [
        v for v in data.getall("accessibility", []) if isinstance(v, str)
    ]
    submission = str(fields.get("submission_id", ""))
    try:
        new = _phone_request(request, fields, submission)
    except ValidationFailed as exc:
        return render(
            request,
            "staff/console/new.html",
            _new_request_context(request, exc.details, fields),
            status=422,
        )
    created = await create_request(request.app[DB], new, f"phone:{submission}")
    announce_new_request(request.app, new, created)
    raise web.HTTPSeeOther(f"/staff/requests/{created.id}")


def _phone_request(
    request: web.Request, fields: Mapping[str, str | list[str]], submission: str
) -> NewRequest:
    """The request the phone-line form describes; every wrong field at once."""
    errors: dict[str, str] = {}
    if not 16 <= len(submission) <= 64:
        errors["submission_id"] = "console_field_submission_invalid"
    if fields.get("consent_phone") != "yes":
        errors["consent_phone"] = "console_field_consent_phone_missing"
    try:
        new = parse_request(
            fields,
            request.app[DESK].current,
            source="phone",
            now=datetime.now(UTC),
            require_consent=False,
        )
    except ValidationFailed as exc:
        errors = {**exc.details, **errors}
    if errors:
        raise ValidationFailed("console_error_form", details=errors)
    return new
