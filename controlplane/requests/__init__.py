"""Callback requests: the citizen's form, what a request holds and how it is
validated, the desk's topics, hours and slots, the staff queue and its states,
and retention.

Offers the rest the request and its queue operations (claim, complete, ...),
the desk, queue news for open consoles and :func:`setup` for the routes.
"""

from aiohttp import web

from controlplane.requests import confirmations, intake, retention, status_page
from controlplane.requests.after_call import AFTER_CALL, call_ended, close_after_call
from controlplane.requests.announce import announce_new_request
from controlplane.requests.callbacks import (
    ACCESSIBILITY_NEEDS,
    CHANNELS,
    OPEN_STATES,
    Created,
    NewRequest,
    State,
    create_request,
    store_request,
)
from controlplane.requests.desk import DESK, Desk, topics_to_json
from controlplane.requests.desk import page_values as desk_page_values
from controlplane.requests.live import QUEUE_EVENTS, QueueEvents
from controlplane.requests.metrics_refresh import (
    refresh_desk_gauges,
    refresh_queue_depth,
)
from controlplane.requests.queue import (
    CANCEL_REASONS,
    OUTCOMES,
    SWITCH_REASONS,
    add_note,
    cancel,
    claim,
    complete,
    expire_overdue,
    no_answer,
    reassign,
    release,
    release_stale,
    start_attempt,
    switch_channel,
)
from controlplane.requests.queue_items import (
    Actor,
    QueueFilter,
    Request,
    active_staff,
    get_request,
    list_notes,
    list_open,
    may_work,
)
from controlplane.requests.reference import parse_reference
from controlplane.requests.slots import available_slots
from controlplane.requests.status_page import LINK_HELP_LISTENERS
from controlplane.requests.validation import (
    EMAIL_MAX,
    LANGUAGES,
    NAME_MAX,
    NOTE_MAX,
    PREFERRED,
    FieldValue,
    has_controls,
    mask_phone,
    normalize_email,
    normalize_phone,
    parse_request,
)


def setup(app: web.Application) -> None:
    """The routes and background work of requests."""
    intake.setup(app)
    status_page.setup(app)
    confirmations.setup(app)
    retention.setup(app)


__all__ = [
    "ACCESSIBILITY_NEEDS",
    "AFTER_CALL",
    "CANCEL_REASONS",
    "CHANNELS",
    "DESK",
    "EMAIL_MAX",
    "LANGUAGES",
    "LINK_HELP_LISTENERS",
    "NAME_MAX",
    "NOTE_MAX",
    "OPEN_STATES",
    "OUTCOMES",
    "PREFERRED",
    "QUEUE_EVENTS",
    "SWITCH_REASONS",
    "Actor",
    "Created",
    "Desk",
    "FieldValue",
    "NewRequest",
    "QueueEvents",
    "QueueFilter",
    "Request",
    "State",
    "active_staff",
    "add_note",
    "announce_new_request",
    "available_slots",
    "call_ended",
    "cancel",
    "claim",
    "close_after_call",
    "complete",
    "create_request",
    "desk_page_values",
    "expire_overdue",
    "get_request",
    "has_controls",
    "list_notes",
    "list_open",
    "mask_phone",
    "may_work",
    "no_answer",
    "normalize_email",
    "normalize_phone",
    "parse_reference",
    "parse_request",
    "reassign",
    "refresh_desk_gauges",
    "refresh_queue_depth",
    "release",
    "release_stale",
    "setup",
    "start_attempt",
    "store_request",
    "switch_channel",
    "topics_to_json",
]
