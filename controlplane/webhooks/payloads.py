"""The webhook events' bodies as typed (pydantic) models, one per event type,
each with a whole example: the OpenAPI document lists them under ``webhooks:``
(:mod:`controlplane.api`), and a test checks that what
:mod:`controlplane.webhooks.events` writes validates against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from controlplane.webhooks.events import CALL_EVENTS, CALLBACK_EVENTS

#: When each event is sent, in a line.
SUMMARIES = {
    "callback.created": "A request of this API key was stored.",
    "callback.claimed": "An employee took the request to work on it.",
    "callback.attempted": "An employee started calling the citizen (each attempt).",
    "callback.completed": "The request is closed after calls: state completed "
    "(with its outcome) or no_answer after the last attempt.",
    "callback.cancelled": "The desk, the citizen or the integrator cancelled the "
    "request.",
    "callback.expired": "Nobody handled the request in time; it closed as expired.",
    "call.started": "The employee started the video call.",
    "call.citizen_joined": "The citizen is in the video call.",
    "call.ended": "The video call ended, with its outcome and quality.",
    "call.switched_to_phone": "The video call became a phone call.",
}


class Request(BaseModel):
    """The request an event is about: its reference, codes and times."""

    model_config = ConfigDict(extra="forbid")

    reference: str = Field(pattern="^BB-[0-9A-Z]{4}-[0-9A-Z]{4}$")
    state: Literal[
        "new", "claimed", "calling", "completed", "no_answer", "cancelled", "expired"
    ]
    channel: Literal["video", "phone"]
    topic: str
    language: Literal["nl", "en"]
    source: Literal["web", "phone", "api"]
    attempts: int = Field(ge=0)
    outcome: str | None
    created_at: datetime
    due_at: datetime
    closed_at: datetime | None


class Quality(BaseModel):
    """A call's technical summary as the browsers measured it (no personal data)."""

    duration_seconds: int | None
    join_to_first_picture_ms: int | None
    connection_type: Literal["direct", "relay", "unknown"]
    reconnects: int
    rtt_ms_p50: int | None
    rtt_ms_p95: int | None
    loss_pct: float | None


class Call(BaseModel):
    """The call an event is about: its id; how it ended, once it has."""

    id: int
    outcome: str | None = None
    quality: Quality | None = None


class CallRequest(Request):
    call: Call


_REQUEST_EXAMPLE: dict[str, Any] = {
    "reference": "BB-4K7Q-9M2X",
    "state": "claimed",
    "channel": "video",
    "topic": "report_crime",
    "language": "nl",
    "source": "api",
    "attempts": 0,
    "outcome": None,
    "created_at": "2026-03-02T09:14:05+00:00",
    "due_at": "2026-03-02T09:14:05+00:00",
    "closed_at": None,
}
_ENDED: dict[str, Any] = {
    "id": 812,
    "outcome": "completed",
    "quality": {
        "duration_seconds": 431,
        "join_to_first_picture_ms": 1830,
        "connection_type": "direct",
        "reconnects": 0,
        "rtt_ms_p50": 38,
        "rtt_ms_p95": 74,
        "loss_pct": 0.2,
    },
}


def example(event_type: str) -> dict[str, Any]:
    """A whole body of ``event_type``, as the receiver gets it."""
    data = dict(_REQUEST_EXAMPLE)
    if event_type in CALL_EVENTS:
        data.update(state="calling", attempts=1)
        data["call"] = _ENDED if event_type == "call.ended" else {"id": 812}
    if event_type == "call.switched_to_phone":
        data["channel"] = "phone"
    timestamp = "2026-03-02T09:31:40+00:00"
    return {"type": event_type, "timestamp": timestamp, "data": data}


def _model(event_type: str) -> type[BaseModel]:
    data_model = CallRequest if event_type in CALL_EVENTS else Request
    # a Literal of a value known only here: typing sees a special form
    type_field: Any = Literal[event_type]
    name = "".join(part.title() for part in event_type.replace(".", "_").split("_"))
    return create_model(
        f"{name}Event",
        __config__=ConfigDict(
            extra="forbid", json_schema_extra={"examples": [example(event_type)]}
        ),
        __doc__=SUMMARIES[event_type],
        type=(type_field, ...),
        timestamp=(datetime, ...),
        data=(data_model, ...),
    )


#: (event type, when it is sent, its body's model) for every event type.
EVENT_MODELS: tuple[tuple[str, str, type[BaseModel]], ...] = tuple(
    (t, SUMMARIES[t], _model(t)) for t in CALLBACK_EVENTS + CALL_EVENTS
)
