"""Video calls: rooms on media nodes and where they are placed, join links,
the citizen's and interpreter's call pages, live call news, each call's
record (quality, outcome, survey answers), and the media nodes' heartbeats.

Offers the rest opening a room, links and media grants for a request's call,
the call record and :func:`setup` for the routes.
"""

from aiohttp import web

from controlplane.calls import (
    agents,
    client_errors,
    guests,
    heartbeats,
    join_links,
    rooms,
)
from controlplane.calls.join_links import current_survey_session
from controlplane.calls.record import (
    CASE_HANDLED,
    COMMENT_MAX,
    SCALE,
    SWITCHED_TO_PHONE,
    WOULD_USE_AGAIN,
    CallRecord,
    CitizenSurvey,
    EmployeeSurvey,
    find_by_room,
    get_call_record,
    handled_by,
    phone_call_record,
    records_of_request,
    save_citizen_survey,
    save_employee_survey,
)
from controlplane.calls.rooms import active_call, media_grant, new_link, open_room
from controlplane.calls.survey_scores import refresh_survey_scores


def setup(app: web.Application) -> None:
    """The routes and background work of calls."""
    join_links.setup(app)
    rooms.setup(app)
    heartbeats.setup(app)
    agents.setup(app)
    guests.setup(app)
    client_errors.setup(app)


__all__ = [
    "CASE_HANDLED",
    "COMMENT_MAX",
    "SCALE",
    "SWITCHED_TO_PHONE",
    "WOULD_USE_AGAIN",
    "CallRecord",
    "CitizenSurvey",
    "EmployeeSurvey",
    "active_call",
    "current_survey_session",
    "find_by_room",
    "get_call_record",
    "handled_by",
    "media_grant",
    "new_link",
    "open_room",
    "phone_call_record",
    "records_of_request",
    "refresh_survey_scores",
    "save_citizen_survey",
    "save_employee_survey",
    "setup",
]
