"""Errors the control plane shows to people and programs.

Handlers raise these; the error middleware turns them into a page, a JSON body
``{"error": {"code", "message"}}`` or, under /api/v1, RFC 9457 problem details,
with the status. Messages are Dutch-first translation keys where a citizen may
see them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal


class ControlPlaneError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(self, message: str, *, details: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(ControlPlaneError):
    code = "bad_request"
    status = 400


@dataclass(frozen=True, slots=True)
class FieldError:
    """What is wrong where: a body member (``path`` into the JSON) or a query
    parameter, with a machine ``code`` (``required``, ``wrong_type``…)."""

    where: Literal["body", "query"]
    path: tuple[str | int, ...]
    code: str
    detail: str


class ValidationFailed(ControlPlaneError):
    """One or more fields are wrong; ``details`` maps field to message and
    ``errors`` says precisely where (derived from ``details`` when not given)."""

    code = "validation_failed"
    status = 422

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, str] | None = None,
        errors: Sequence[FieldError] = (),
    ) -> None:
        if details is None:
            details = {}
            for error in errors:
                details.setdefault(str(error.path[0]), error.detail)
        super().__init__(message, details=details)
        self.errors = tuple(errors) or tuple(
            FieldError("body", (field,), "invalid", text)
            for field, text in self.details.items()
        )


class Unauthorized(ControlPlaneError):
    code = "unauthorized"
    status = 401


class Forbidden(ControlPlaneError):
    code = "forbidden"
    status = 403


class CsrfFailed(Forbidden):
    code = "csrf_failed"


class NotFound(ControlPlaneError):
    code = "not_found"
    status = 404


class Conflict(ControlPlaneError):
    """The request is not in a state that allows this (already claimed, closed…)."""

    code = "conflict"
    status = 409


class PayloadTooLarge(ControlPlaneError):
    code = "payload_too_large"
    status = 413


class UnsupportedMediaType(ControlPlaneError):
    code = "unsupported_media_type"
    status = 415


class RateLimited(ControlPlaneError):
    code = "rate_limited"
    status = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class IdempotencyKeyReused(ControlPlaneError):
    """An ``Idempotency-Key`` came back with another request body."""

    code = "idempotency_key_reused"
    status = 422


class LinkUsed(Conflict):
    """A single-use join link was already opened, in this or another browser."""

    code = "link_used"


class LinkExpired(ControlPlaneError):
    """A join link (or the session it gave) is past its time or its call ended."""

    code = "link_expired"
    status = 410


class LinkReplaced(LinkExpired):
    """A join link (or its session) was replaced by a newer one for the same call."""

    code = "link_replaced"


class DeliveryFailed(ControlPlaneError):
    """An e-mail or SMS could not be handed to the mail server or SMS gateway."""

    code = "delivery_failed"
    status = 502


class MediaUnavailable(ControlPlaneError):
    """The media node's API did not answer or refused to make or end a room."""

    code = "media_unavailable"
    status = 503
