"""RFC 9457 problem details: how every /api/v1 error is told to the integrator.

The ``type`` is a relative URI, ``/api/v1/problems/<code>``: a self-hosted desk
has no shared domain of its own, the string is the same on every deployment (so
clients may compare it), and resolved against the request it names the desk
itself, never a third party. The old ``{"error": {"code", "message",
"details"}}`` stays inside the problem object for clients written against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from controlplane.api.examples import VALIDATION_PROBLEM_EXAMPLE
from controlplane.base.errors import FieldError

PREFIX = "/api/v1/"
CONTENT_TYPE = "application/problem+json"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One kind of error: its status and a title that never changes."""

    status: int
    title: str


#: Every problem the API answers with; docs/api.md lists them too.
PROBLEM_TYPES: dict[str, ProblemType] = {
    "bad_request": ProblemType(400, "The request is malformed"),
    "unauthorized": ProblemType(401, "No valid API key"),
    "forbidden": ProblemType(403, "The API key lacks the scope"),
    "not_found": ProblemType(404, "No such resource"),
    "method_not_allowed": ProblemType(405, "Method not allowed here"),
    "conflict": ProblemType(409, "Not possible in the request's state"),
    "link_used": ProblemType(409, "The join link was used"),
    "link_expired": ProblemType(410, "The call or link has ended"),
    "link_replaced": ProblemType(410, "The link was replaced"),
    "payload_too_large": ProblemType(413, "The body is too large"),
    "unsupported_media_type": ProblemType(415, "The body is not JSON"),
    "validation_failed": ProblemType(422, "Fields are missing or invalid"),
    "idempotency_key_reused": ProblemType(422, "Idempotency-Key used for another body"),
    "rate_limited": ProblemType(429, "Too many requests"),
    "internal_error": ProblemType(500, "Internal error"),
    "delivery_failed": ProblemType(502, "A message could not be delivered"),
    "media_unavailable": ProblemType(503, "The media node cannot be reached"),
}


class FieldProblem(BaseModel):
    """Where one field is wrong: a ``pointer`` into the body or a query
    ``parameter``, a machine ``code`` and a ``detail`` for people."""

    model_config = ConfigDict(extra="forbid")

    pointer: str | None = Field(
        default=None,
        description="RFC 6901 JSON Pointer into the body, as a URI fragment.",
        examples=["#/phone"],
    )
    parameter: str | None = Field(default=None, examples=["from"])
    code: str = Field(
        description="required, unknown_field, wrong_type, not_allowed, too_long, "
        "too_short, out_of_range or invalid."
    )
    detail: str


class LegacyError(BaseModel):
    """The error object of before problem details, kept for existing clients."""

    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    details: dict[str, str] | None = Field(
        default=None, description="Field name to what is wrong with it."
    )


class Problem(BaseModel):
    """RFC 9457 problem details, with the old ``error`` object inside."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [VALIDATION_PROBLEM_EXAMPLE]}
    )

    type: str = Field(description="Stable URI of the kind of problem.")
    title: str
    status: int = Field(ge=400, le=599)
    detail: str
    instance: str = Field(description="The path the request was made to.")
    errors: list[FieldProblem] | None = None
    error: LegacyError


def problem_type(code: str) -> str:
    """The stable ``type`` URI of the problem ``code``."""
    return f"{PREFIX}problems/{code}"


def is_api(request: web.Request) -> bool:
    """Whether ``request`` is the integrator API's (and gets problem details)."""
    return request.path.startswith(PREFIX)


def problem_response(
    request: web.Request,
    status: int,
    code: str,
    detail: str,
    *,
    details: Mapping[str, str] | None = None,
    errors: Sequence[FieldError] = (),
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """The ``application/problem+json`` answer for one error."""
    known = PROBLEM_TYPES.get(code)
    problem = Problem(
        type=problem_type(code),
        title=known.title if known else HTTPStatus(status).phrase,
        status=status,
        detail=detail,
        instance=request.path,
        errors=[_field(error) for error in errors] or None,
        error=LegacyError(
            code=code, message=detail, details=dict(details or {}) or None
        ),
    )
    return web.json_response(
        problem.model_dump(mode="json", exclude_none=True),
        status=status,
        headers=headers,
        content_type=CONTENT_TYPE,
    )


def _field(error: FieldError) -> FieldProblem:
    """``pointer`` (RFC 6901 as a URI fragment, as in RFC 9457's example) into
    the body, or the query ``parameter``."""
    if error.where == "query":
        return FieldProblem(
            parameter=str(error.path[0]), code=error.code, detail=error.detail
        )
    pointer = "#" + "".join(f"/{_escape(part)}" for part in error.path)
    return FieldProblem(pointer=pointer, code=error.code, detail=error.detail)


def _escape(part: str | int) -> str:
    token = str(part).replace("~", "~0").replace("/", "~1")
    return quote(token, safe="~!$&'()*+,;=:@")
