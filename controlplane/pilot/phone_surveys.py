"""The surveys after a phone callback: the same questions as after a video call,
worded for the phone, stored on a call record with channel ``phone``.

Pages: ``/staff/requests/{id}/enquete`` for the employee who completed the phone
callback (the request page leads there), and ``/enquete/{token}`` for the citizen,
opened from the signed, expiring link the employee chose to send
(:mod:`controlplane.security.survey_links`). The record is made with the first
answer (:func:`~controlplane.calls.phone_call_record`), so an unanswered survey
leaves nothing behind.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from aiohttp import web

from controlplane.base.client import client_ip
from controlplane.base.errors import Conflict, Forbidden, NotFound, ValidationFailed
from controlplane.calls import (
    SWITCHED_TO_PHONE,
    CallRecord,
    phone_call_record,
    records_of_request,
    save_citizen_survey,
    save_employee_survey,
)
from controlplane.pilot.surveys import (
    CITIZEN_FIELDS,
    EMPLOYEE_FIELDS,
    form_context,
    page,
    parse_citizen_form,
    parse_employee_form,
)
from controlplane.requests import Request, State, get_request
from controlplane.security.ratelimit import LIMITS
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.security.survey_links import PATH, read_survey_token
from controlplane.staff import StaffUser, require_staff
from controlplane.storage.database import DB


def setup(app: web.Application) -> None:
    """Register the employee's and the citizen's phone survey pages."""
    employee = "/staff/requests/{id:[0-9]+}/enquete"
    app.router.add_get(employee, employee_page)
    app.router.add_post(employee, employee_submit)
    app.router.add_get(PATH + "{token}", citizen_page)
    app.router.add_post(PATH + "{token}", citizen_submit)


async def phone_callback(request: web.Request, request_id: int) -> Request:
    """The completed phone callback ``request_id``; :class:`NotFound` otherwise
    (open, cancelled, or a video request)."""
    with contextlib.suppress(NotFound):
        item = await get_request(request.app[DB], request_id)
        if item.channel == "phone" and item.state is State.COMPLETED:
            return item
    raise NotFound("survey_no_call")


async def _existing(request: web.Request, item: Request) -> CallRecord | None:
    """The record the phone conversation's answers belong on, if there is one: a
    video call that went on by phone (its surveys are worded for the phone
    already, and one conversation must not count twice), else the phone
    callback's own record once answered."""
    records = await records_of_request(request.app[DB], item.id)
    switched = [r for r in records if r.outcome == SWITCHED_TO_PHONE]
    phone = [r for r in records if r.channel == "phone"]
    found = switched or phone
    return found[-1] if found else None


async def _record(request: web.Request, item: Request) -> CallRecord:
    """The record to store an answer on, made now if there is none yet."""
    existing = await _existing(request, item)
    if existing is not None:
        return existing
    ended = item.closed_at or datetime.now(UTC)
    started = item.first_attempt_at or ended
    return await phone_call_record(
        request.app[DB], item.id, started_at=started, ended_at=ended
    )


# the employee's


async def _employee_callback(request: web.Request) -> tuple[Request, StaffUser]:
    """The callback and its employee: only who completed it answers."""
    user = await require_staff(request, "agent")
    raw = request.match_info["id"]
    if len(raw) > 12:
        raise NotFound("survey_no_call")
    item = await phone_callback(request, int(raw))
    if item.claimed_by != user.id:
        raise Forbidden("survey_not_yours")
    return item, user


#: What became of the citizen's survey link, as the request page reports it.
LINK_RESULTS = ("sent", "failed", "none")


def _employee_form(
    request: web.Request, item: Request, context: dict[str, object], status: int = 200
) -> web.Response:
    link = request.query.get("link", "")
    form = {
        "form_action": request.path,
        "by_phone": True,
        "phone_callback": True,
        "link_notice": link if link in LINK_RESULTS else "",
    }
    return page(request, "survey/employee.html", {**context, **form}, status=status)


async def employee_page(request: web.Request) -> web.Response:
    item, _user = await _employee_callback(request)
    existing = await _existing(request, item)
    # answered, or a video call's survey: that page asks or shows it
    if existing is not None and (existing.employee or existing.channel == "video"):
        raise web.HTTPSeeOther(f"/staff/gesprekken/{existing.id}/enquete")
    return _employee_form(request, item, form_context(EMPLOYEE_FIELDS, {}, {}))


async def employee_submit(request: web.Request) -> web.Response:
    item, user = await _employee_callback(request)
    form = await request.post()
    try:
        survey = parse_employee_form(form)
    except ValidationFailed as exc:
        context = form_context(EMPLOYEE_FIELDS, form, exc.details)
        return _employee_form(request, item, context, status=422)
    record = await _record(request, item)
    # answered in another tab already: the saved answers are shown
    with contextlib.suppress(Conflict):
        await save_employee_survey(request.app[DB], record, survey, by=user.actor)
    raise web.HTTPSeeOther(f"/staff/gesprekken/{record.id}/enquete")


# the citizen's


async def _citizen_callback(request: web.Request) -> Request:
    await request.app[LIMITS].status_per_ip.hit(client_ip(request))
    now = datetime.now(UTC)
    token = request.match_info["token"]
    request_id = read_survey_token(request.app[SECRET_KEY], token, now)
    return await phone_callback(request, request_id)


def _citizen_form(
    request: web.Request, context: dict[str, object], status: int = 200
) -> web.Response:
    form = {"form_action": request.path, "by_phone": True, "phone_callback": True}
    return page(request, "survey/citizen.html", {**context, **form}, status=status)


async def citizen_page(request: web.Request) -> web.Response:
    item = await _citizen_callback(request)
    answered = await _existing(request, item)
    if answered is not None and answered.citizen is not None:
        return page(request, "survey/thanks.html", {})
    return _citizen_form(request, form_context(CITIZEN_FIELDS, {}, {}))


async def citizen_submit(request: web.Request) -> web.Response:
    item = await _citizen_callback(request)
    form = await request.post()
    try:
        survey = parse_citizen_form(form)
    except ValidationFailed as exc:
        errors = {**exc.details}
        if "would_use_again" in errors:  # the video call's message speaks of video
            errors["would_use_again"] = "survey_error_would_use_again_callback"
        context = form_context(CITIZEN_FIELDS, form, errors)
        return _citizen_form(request, context, status=422)
    record = await _record(request, item)
    # answered in another tab already: the thank-you page is right either way
    with contextlib.suppress(Conflict):
        await save_citizen_survey(request.app[DB], record.id, survey)
    raise web.HTTPSeeOther(request.path_qs)
