"""The surveys after a video call: the citizen's and the employee's forms.

Pages: ``/gesprek/enquete`` for the citizen (bound to the browser session of the
call, also after the call ended) and ``/staff/gesprekken/{record_id}/enquete``
for the employee. The answers are stored on the call's record
(:mod:`controlplane.calls.record`). A phone callback's surveys ask the same
questions (:mod:`~controlplane.pilot.phone_surveys`); its record's answers are
shown here too.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from controlplane.base.errors import Conflict, Forbidden, NotFound, ValidationFailed
from controlplane.base.metrics import METRICS
from controlplane.base.rendering import render
from controlplane.calls import (
    CASE_HANDLED,
    COMMENT_MAX,
    SCALE,
    SWITCHED_TO_PHONE,
    WOULD_USE_AGAIN,
    CallRecord,
    CitizenSurvey,
    EmployeeSurvey,
    active_call,
    current_survey_session,
    find_by_room,
    get_call_record,
    handled_by,
    save_citizen_survey,
    save_employee_survey,
)
from controlplane.requests import QUEUE_EVENTS, complete
from controlplane.staff import StaffUser, require_staff
from controlplane.storage.database import DB

CITIZEN_FIELDS = ("ease", "av_quality", "would_use_again", "comment")
EMPLOYEE_FIELDS = ("quality", "case_handled", "would_use_again")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _choice(
    form: Mapping[str, Any],
    name: str,
    allowed: tuple[Any, ...],
    errors: dict[str, str],
) -> Any:
    raw = form.get(name)
    by_text = {str(option): option for option in allowed}
    text = raw.strip() if isinstance(raw, str) else None
    if text not in by_text:
        errors[name] = f"survey_error_{name}"
        return None
    return by_text[text]


def parse_citizen_form(form: Mapping[str, Any]) -> CitizenSurvey:
    """The citizen's answers; :class:`ValidationFailed` maps fields to messages."""
    errors: dict[str, str] = {}
    ease = _choice(form, "ease", SCALE, errors)
    av_quality = _choice(form, "av_quality", SCALE, errors)
    again = _choice(form, "would_use_again", WOULD_USE_AGAIN, errors)
    raw = form.get("comment")
    comment = _CONTROL.sub("", raw).strip() if isinstance(raw, str) else ""
    comment = comment.replace("\r\n", "\n")
    if len(comment) > COMMENT_MAX:
        errors["comment"] = "survey_error_comment"
    if errors:
        raise ValidationFailed("survey_error_summary", details=errors)
    return CitizenSurvey(ease, av_quality, again, comment)


def parse_employee_form(form: Mapping[str, Any]) -> EmployeeSurvey:
    """The employee's answers; :class:`ValidationFailed` maps fields to messages."""
    errors: dict[str, str] = {}
    quality = _choice(form, "quality", SCALE, errors)
    handled = _choice(form, "case_handled", CASE_HANDLED, errors)
    again = _choice(form, "would_use_again", WOULD_USE_AGAIN, errors)
    if errors:
        raise ValidationFailed("survey_error_summary", details=errors)
    return EmployeeSurvey(quality, handled, again)


# pages


def setup(app: web.Application) -> None:
    """Register the citizen and employee survey pages."""
    app.router.add_get("/gesprek/enquete", citizen_page, name="citizen_survey")
    app.router.add_post("/gesprek/enquete", citizen_submit)
    employee = "/staff/gesprekken/{record_id:[0-9]+}/enquete"
    app.router.add_get(employee, employee_page, name="employee_survey")
    app.router.add_post(employee, employee_submit)


def page(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> web.Response:
    response = render(request, template, context, status=status)
    response.headers["Cache-Control"] = "no-store"
    return response


def form_context(
    fields: tuple[str, ...], values: Mapping[str, Any], errors: dict[str, str]
) -> dict[str, Any]:
    anchors = {f: f if f == "comment" else f"{f}-{_first(f)}" for f in fields}
    return {
        "values": {f: str(values.get(f, "")) for f in fields},
        "errors": errors,
        "error_links": [(anchors[f], errors[f]) for f in fields if f in errors],
        "scale": SCALE,
        "would_use_again": WOULD_USE_AGAIN,
        "case_handled": CASE_HANDLED,
        "comment_max": COMMENT_MAX,
    }


def _first(field: str) -> str:
    return {"would_use_again": "yes", "case_handled": "yes"}.get(field, "1")


async def _citizen_record(request: web.Request) -> CallRecord:
    info = await current_survey_session(request)
    if info is None or info.role != "citizen":
        raise NotFound("survey_no_session")
    record = await find_by_room(request.app[DB], info.room_id)
    if record is None:
        raise NotFound("survey_no_call")
    return record


async def citizen_page(request: web.Request) -> web.Response:
    record = await _citizen_record(request)
    if record.citizen is not None:
        return page(request, "survey/thanks.html", {})
    context = form_context(CITIZEN_FIELDS, {}, {})
    return page(request, "survey/citizen.html", _citizen_context(record, context))


def _citizen_context(record: CallRecord, context: dict[str, Any]) -> dict[str, Any]:
    """The same questions after a switch to phone, worded for the phone call,
    so video and phone compare on the same scale."""
    return {**context, "by_phone": _by_phone(record)}


def _by_phone(record: CallRecord) -> bool:
    """The call was (or went on) by phone: the questions are worded for that."""
    return record.channel == "phone" or record.outcome == SWITCHED_TO_PHONE


async def citizen_submit(request: web.Request) -> web.Response:
    record = await _citizen_record(request)
    form = await request.post()
    try:
        survey = parse_citizen_form(form)
    except ValidationFailed as exc:
        context = form_context(CITIZEN_FIELDS, form, exc.details)
        context = _citizen_context(record, context)
        return page(request, "survey/citizen.html", context, status=422)
    # answered in another tab already: the thank-you page is right either way
    with contextlib.suppress(Conflict):
        await save_citizen_survey(request.app[DB], record.id, survey)
    raise web.HTTPSeeOther("/gesprek/enquete")


async def _employee_record(
    request: web.Request, *, answer: bool
) -> tuple[CallRecord, StaffUser]:
    """The call record and the staff member, who must be the employee who handled
    the call; a supervisor may also read it (``answer=False``)."""
    user = await require_staff(request, "agent")
    raw = request.match_info["record_id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        raise NotFound("survey_no_call")
    record = await get_call_record(request.app[DB], int(raw))
    if user.id == await handled_by(request.app[DB], record):
        return record, user
    if not answer and user.has_role("supervisor"):
        return record, user
    raise Forbidden("survey_not_yours")


async def employee_page(request: web.Request) -> web.Response:
    record, _user = await _employee_record(request, answer=False)
    shown = {"record": record, "by_phone": record.channel == "phone"}
    if record.employee is not None:
        return page(request, "survey/employee_thanks.html", shown)
    context = form_context(EMPLOYEE_FIELDS, {}, {})
    return page(request, "survey/employee.html", {**context, **shown})


async def employee_submit(request: web.Request) -> web.Response:
    record, user = await _employee_record(request, answer=True)
    form = await request.post()
    try:
        survey = parse_employee_form(form)
    except ValidationFailed as exc:
        context = form_context(EMPLOYEE_FIELDS, form, exc.details)
        shown = {"record": record, "by_phone": record.channel == "phone"}
        return page(request, "survey/employee.html", {**context, **shown}, status=422)
    # answered in another tab already: the saved answers are shown
    with contextlib.suppress(Conflict):
        await save_employee_survey(request.app[DB], record, survey, by=user.actor)
    if survey.case_handled == "yes":
        await _complete_handled(request, record, user)
    raise web.HTTPSeeOther(f"/staff/gesprekken/{record.id}/enquete")


async def _complete_handled(
    request: web.Request, record: CallRecord, user: StaffUser
) -> None:
    """ "Case handled: yes" completes the request of a call that is over, if its
    end step did not close it yet (and no new call of it runs)."""
    app = request.app
    if record.request_id is None or await active_call(app, record.request_id):
        return
    # closed already, or no longer this employee's: the answer stays as it is
    with contextlib.suppress(Conflict, Forbidden):
        await complete(app[DB], app[METRICS], record.request_id, user.actor, "resolved")
        app[QUEUE_EVENTS].publish()
