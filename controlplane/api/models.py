"""The integrator API's bodies and query strings as typed (pydantic) models.

Each model validates what comes in or shapes what goes out, and gives its JSON
Schema to the OpenAPI document (:mod:`controlplane.api.openapi`), so the
document cannot drift from the code. The meaning of a request (a real phone
number, a free slot, a known topic) stays with the citizen form's rules in
:mod:`controlplane.requests`; these models check shape and type.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from controlplane.api.examples import (
    CALL_TOKEN_EXAMPLE,
    CALL_TOKEN_REQUEST_EXAMPLE,
    CALLBACK_EXAMPLE,
    CALLBACK_PAGE_EXAMPLE,
    CREATE_EXAMPLE,
    SLOTS_EXAMPLE,
    TOPIC_EXAMPLE,
)
from controlplane.requests import EMAIL_MAX, NAME_MAX, NOTE_MAX

# Literal types name the same values as controlplane.requests' tuples
# (tests/controlplane/api/test_models.py keeps them equal).
Channel = Literal["video", "phone"]
Language = Literal["nl", "en"]
Preferred = Literal["asap", "slot"]
Need = Literal[
    "text_chat", "sign_language", "extra_time", "simple_language", "screen_reader"
]
StateName = Literal[
    "new", "claimed", "calling", "completed", "no_answer", "cancelled", "expired"
]
REFERENCE_PATTERN = "^BB-[0-9A-Z]{4}-[0-9A-Z]{4}$"


def _plain_text(value: str) -> str:
    """Refuses NUL and lone surrogates: the database and UTF-8 cannot hold them."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise PydanticCustomError(
            "invalid_text", "must be valid Unicode text"
        ) from None
    if "\x00" in value:
        raise PydanticCustomError("invalid_text", "must not contain NUL characters")
    return value


Text = Annotated[str, AfterValidator(_plain_text)]
#: A moment as it always appeared in the API: ISO 8601 with ``+00:00``.
Timestamp = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]


def _iso_moment(value: Any) -> Any:
    """An ISO 8601 text as a datetime in UTC: no Unix times, nothing that has no
    UTC equivalent (year 1 east of Greenwich)."""
    if not isinstance(value, str):
        return value
    try:
        moment = datetime.fromisoformat(value)
        return moment.astimezone(UTC) if moment.tzinfo else moment
    except (ValueError, OverflowError):
        raise PydanticCustomError(
            "datetime_parsing", "must be an ISO 8601 date-time with an offset"
        ) from None


#: A query parameter's moment: ISO 8601 with an offset, normalised to UTC.
Moment = Annotated[AwareDatetime, BeforeValidator(_iso_moment)]


class _Body(BaseModel):
    """A JSON body: no unknown members, no coercion (``"5"`` is not 5)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CallbackCreate(_Body):
    model_config = ConfigDict(json_schema_extra={"examples": [CREATE_EXAMPLE]})

    name: Text = Field(min_length=1, max_length=NAME_MAX)
    phone: Text = Field(
        description="Dutch or international number; stored as E.164.",
        examples=["+31612345678"],
    )
    email: Text | None = Field(default=None, max_length=EMAIL_MAX)
    topic: Text = Field(
        description="One of the desk's topic codes (GET /api/v1/topics).",
        examples=["report_crime"],
    )
    channel: Channel
    preferred: Preferred
    slot: Text | None = Field(
        default=None,
        json_schema_extra={"format": "date-time"},
        description="A free slot's start (GET /api/v1/slots) with an offset; "
        "set exactly when preferred is slot.",
    )
    language: Language
    accessibility: list[Need] = Field(default_factory=list)
    accessibility_note: Text | None = Field(default=None, max_length=NOTE_MAX)
    consent: Literal[True] = Field(
        description="The integrator asserts that the citizen consented."
    )


class CancelBody(_Body):
    """``POST …/cancel`` takes no body, or an empty object."""


class Callback(_Out):
    """A callback request as the API shows it: no personal data."""

    model_config = ConfigDict(json_schema_extra={"examples": [CALLBACK_EXAMPLE]})

    id: str = Field(description="Public id; equals reference.")
    reference: str = Field(pattern=REFERENCE_PATTERN)
    state: StateName
    channel: Channel
    topic: str
    language: Language
    preferred: Preferred
    slot: Timestamp | None
    accessibility: list[Need]
    created_at: Timestamp
    updated_at: Timestamp
    due_at: Timestamp
    attempts: int = Field(ge=0)
    first_attempt_at: Timestamp | None
    outcome: str | None
    closed_at: Timestamp | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Callback:
        """The request's row as shown: its columns of the same name, and no more."""
        same = set(cls.model_fields) - {"id", "slot", "accessibility"}
        return cls(
            id=row["reference"],
            slot=row["slot_start"],
            accessibility=list(row["accessibility"] or []),
            **{name: row[name] for name in same},
        )


class CallbackPage(_Out):
    """One page of a key's requests, oldest first."""

    model_config = ConfigDict(json_schema_extra={"examples": [CALLBACK_PAGE_EXAMPLE]})

    items: list[Callback]
    next_cursor: str | None = Field(
        description="Pass as cursor for the next page; null on the last page."
    )


class CallbackQuery(BaseModel):
    """``GET /api/v1/callbacks``: filters and the page to show."""

    model_config = ConfigDict(extra="forbid")

    status: StateName | None = Field(
        default=None, description="Only this state.", examples=["new"]
    )
    since: Moment | None = Field(
        default=None,
        description="Only requests changed at or after this moment (with offset).",
        examples=["2026-12-01T08:00:00+01:00"],
    )
    cursor: str | None = Field(
        default=None,
        max_length=200,
        description="The next_cursor of the previous page; opaque.",
        examples=[CALLBACK_PAGE_EXAMPLE["next_cursor"]],
    )
    limit: int = Field(
        default=50, ge=1, le=100, description="Items per page.", examples=[20]
    )


class SlotQuery(BaseModel):
    """``GET /api/v1/slots``: the window to show free slots in."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: Moment | None = Field(
        default=None,
        alias="from",
        description="From this moment (with offset); default now.",
        examples=["2026-12-07T08:00:00+01:00"],
    )
    end: Moment | None = Field(
        default=None,
        alias="to",
        description="Before this moment (with offset); default the end of the "
        "booking window.",
        examples=["2026-12-08T08:00:00+01:00"],
    )


class Slot(_Out):
    start: Timestamp
    end: Timestamp


class SlotList(_Out):
    """Free slots, ascending; each ``slot_minutes`` long."""

    model_config = ConfigDict(json_schema_extra={"examples": [SLOTS_EXAMPLE]})

    items: list[Slot]


class Topic(_Out):
    code: str = Field(pattern="^[a-z][a-z0-9_]{1,31}$")
    nl: str = Field(description="The name in Dutch.")
    en: str = Field(description="The name in English.")


class TopicList(_Out):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"items": [TOPIC_EXAMPLE]}]}
    )

    items: list[Topic]


class CallTokenRequest(_Body):
    model_config = ConfigDict(
        json_schema_extra={"examples": [CALL_TOKEN_REQUEST_EXAMPLE]}
    )

    role: Literal["agent", "citizen", "interpreter"]
    kind: Literal["link", "media"] = Field(
        description="A join link (citizen, interpreter) or a media token."
    )


class CallToken(_Out):
    """A join link or a media token; never logged or kept."""

    model_config = ConfigDict(json_schema_extra={"examples": [CALL_TOKEN_EXAMPLE]})

    kind: Literal["link", "media"]
    role: str
    room_id: str
    link: str | None = Field(default=None, description="Single-use join link.")
    expires_at: str | None = Field(
        default=None, json_schema_extra={"format": "date-time"}
    )
    token: str | None = Field(default=None, description="Single-use media join token.")
    media_url: str | None = Field(
        default=None, description="The media node's WebSocket."
    )
    expires_in: int | None = None
    ice_servers: list[dict[str, Any]] | None = None
    force_relay: bool | None = None
