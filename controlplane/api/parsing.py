"""Bodies and query strings through their models, into :class:`FieldError`\\ s.

pydantic's own error types are translated into a small vocabulary of our own
(``required``, ``unknown_field``…), so clients do not depend on the library.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from multidict import MultiMapping
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from controlplane.base.errors import FieldError, ValidationFailed

M = TypeVar("M", bound=BaseModel)

_CODES = {
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "literal_error": "not_allowed",
    "enum": "not_allowed",
    "string_too_long": "too_long",
    "too_long": "too_long",
    "string_too_short": "too_short",
    "too_short": "too_short",
    "greater_than_equal": "out_of_range",
    "less_than_equal": "out_of_range",
}


def check(
    model: type[M], data: Mapping[str, Any], where: Literal["body", "query"]
) -> tuple[M | None, list[FieldError]]:
    """``data`` as ``model``, or None and what is wrong, field by field."""
    try:
        return model.model_validate(data), []
    except ValidationError as exc:
        return None, [_field_error(error, where) for error in exc.errors()]


def parse_body(model: type[M], payload: Mapping[str, Any]) -> M:
    """``payload`` as ``model``; :class:`ValidationFailed` naming every field."""
    parsed, errors = check(model, payload, "body")
    if parsed is None:
        raise failure(errors)
    return parsed


def parse_query(model: type[M], query: MultiMapping[str]) -> M:
    """The query string as ``model``; a parameter given twice is refused."""
    errors = [
        FieldError("query", (name,), "repeated", "given more than once")
        for name in dict.fromkeys(query)
        if len(query.getall(name)) > 1
    ]
    parsed, wrong = check(model, {k: query[k] for k in query}, "query")
    if errors or parsed is None:
        raise failure(errors + wrong)
    return parsed


def failure(errors: list[FieldError]) -> ValidationFailed:
    """One :class:`ValidationFailed` for ``errors``; the message names the first."""
    first = errors[0]
    name = str(first.path[0])
    noun = "parameter" if first.where == "query" else "field"
    if first.code == "unknown_field":
        return ValidationFailed(f"unknown {noun} {name!r}", errors=errors)
    return ValidationFailed(f"invalid {noun} {name!r}; see details", errors=errors)


def _field_error(error: ErrorDetails, where: Literal["body", "query"]) -> FieldError:
    kind = error["type"]
    code = _CODES.get(kind, "wrong_type" if kind.endswith("_type") else "invalid")
    # a failed member of a union is reported once per branch: name the field
    path = tuple(p for p in error["loc"] if not _is_branch(p))
    detail = _message(error)
    if code == "unknown_field":
        detail = "unknown parameter" if where == "query" else "unknown field"
    return FieldError(where, path or ("",), code, detail)


def _is_branch(part: str | int) -> bool:
    return isinstance(part, str) and (
        part.startswith(("function-after[", "literal[", "nullable[")) or part == "str"
    )


def _message(error: ErrorDetails) -> str:
    """pydantic's message, made to read as ours (it never repeats the input)."""
    message = error["msg"]
    if error["type"] == "missing":
        return "required"
    return message.removeprefix("Value error, ")
