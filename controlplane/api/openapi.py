"""The OpenAPI 3.1 document of /api/v1, generated from the typed models that
validate the requests and shape the responses (:mod:`controlplane.api.models`).

Served at ``/api/v1/openapi.json`` and driven against the real app by
schemathesis (tests/controlplane/api/test_openapi.py). Built here from the
models' JSON Schema (pydantic emits JSON Schema 2020-12, which OpenAPI 3.1
uses as is) rather than with an aiohttp plug-in: the table :data:`OPERATIONS`
is all there is to it, and nothing in the request path depends on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from controlplane.api.access import BASE
from controlplane.api.models import (
    Callback,
    CallbackCreate,
    CallbackPage,
    CallbackQuery,
    CallToken,
    CallTokenRequest,
    SlotList,
    SlotQuery,
    TopicList,
)
from controlplane.api.problems import PROBLEM_TYPES, Problem, problem_type
from controlplane.api.webhook_events import WEBHOOK_EVENTS

REF = "#/components/schemas/{model}"
AUTH_ERRORS = ("unauthorized", "forbidden", "rate_limited")
BODY_ERRORS = (
    "bad_request",
    "payload_too_large",
    "unsupported_media_type",
    "validation_failed",
)
TAGS = [
    {"name": "callbacks", "description": "Callback requests made by this key."},
    {"name": "desk", "description": "What a new request may ask for."},
    {"name": "calls", "description": "Joining a request's video call."},
    {"name": "meta", "description": "This document."},
    {
        "name": "webhooks",
        "description": "Events sent to the endpoints of the key that created "
        "the request, signed as the Standard Webhooks specification says.",
    },
]


@dataclass(frozen=True, slots=True)
class Operation:
    """One route as the document tells it; the handler lives in its module."""

    method: Literal["get", "post"]
    path: str
    operation_id: str
    tag: str
    summary: str
    response: type[BaseModel] | None
    status: int = 200
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    scopes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    reference: bool = False
    idempotent: bool = False
    description: str = ""


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "post", "/callbacks", "createCallback", "callbacks",
        "Ask for a citizen to be called back", Callback, status=201,
        body=CallbackCreate, scopes=("callbacks:write",), errors=BODY_ERRORS,
        idempotent=True,
    ),
    Operation(
        "get", "/callbacks", "listCallbacks", "callbacks",
        "The requests this key created, oldest first, a page at a time",
        CallbackPage, query=CallbackQuery, scopes=("callbacks:read",),
        errors=("validation_failed",),
    ),
    Operation(
        "get", "/callbacks/{reference}", "getCallback", "callbacks",
        "The state of a request this key created", Callback,
        scopes=("callbacks:read",), errors=("not_found",), reference=True,
    ),
    Operation(
        "post", "/callbacks/{reference}/cancel", "cancelCallback", "callbacks",
        "Cancel a request that nobody is calling yet", Callback,
        scopes=("callbacks:write",), errors=("not_found", "conflict", *BODY_ERRORS),
        reference=True, description="No body, or an empty JSON object.",
    ),
    Operation(
        "post", "/callbacks/{reference}/tokens", "issueCallToken", "calls",
        "A join link or media token for the request's video call", CallToken,
        body=CallTokenRequest, scopes=("calls:write",),
        errors=("not_found", "conflict", "link_expired", "media_unavailable",
                *BODY_ERRORS),
        reference=True,
        description="Makes the room if the open video request has no running "
        "call. The answer is never logged or kept (Cache-Control: no-store).",
    ),
    Operation(
        "get", "/topics", "listTopics", "desk",
        "The desk's topics: the codes a request's topic may be", TopicList,
        scopes=("callbacks:write", "callbacks:read"),
    ),
    Operation(
        "get", "/slots", "listSlots", "desk",
        "Free slots a request with preferred slot may name", SlotList,
        query=SlotQuery, scopes=("callbacks:write", "callbacks:read"),
        errors=("validation_failed",),
    ),
)  # fmt: skip


def setup(app: web.Application) -> None:
    app.router.add_get(f"{BASE}/openapi.json", openapi_json)


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(document())


@cache
def document() -> dict[str, Any]:
    """The whole OpenAPI document (built once; the models do not change)."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Beeldbel integrator API",
            "version": "1.1.0",
            "description": (
                "Create callback requests on behalf of citizens and follow them. "
                "A key sees only the requests it created. Errors are RFC 9457 "
                "problem details (application/problem+json)."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "tags": TAGS,
        "paths": _paths(),
        "webhooks": _webhooks(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "bb_<prefix>_<secret>",
                }
            },
            "schemas": _schemas(),
        },
    }


def _schemas() -> dict[str, Any]:
    """Every model's JSON Schema, referring to each other under components."""
    inputs = [op.body for op in OPERATIONS if op.body]
    outputs = [op.response for op in OPERATIONS if op.response]
    outputs += [Problem, *(event.payload for event in WEBHOOK_EVENTS)]
    pairs: list[tuple[type[BaseModel], Literal["validation", "serialization"]]]
    pairs = [(model, "validation") for model in dict.fromkeys(inputs)]
    pairs += [(model, "serialization") for model in dict.fromkeys(outputs)]
    _refs, top = models_json_schema(pairs, ref_template=REF)
    schemas: dict[str, Any] = top.get("$defs", {})
    return schemas


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _example(model: type[BaseModel]) -> Any:
    extra = model.model_config.get("json_schema_extra")
    examples = extra.get("examples") if isinstance(extra, dict) else None
    if not isinstance(examples, list) or not examples:
        raise TypeError(f"{model.__name__} needs an example in json_schema_extra")
    return examples[0]


def _paths() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for op in OPERATIONS:
        paths.setdefault(f"{BASE}{op.path}", {})[op.method] = _operation(op)
    paths[f"{BASE}/openapi.json"] = {
        "get": {
            "operationId": "getOpenApi",
            "tags": ["meta"],
            "summary": "This document",
            "security": [],
            "responses": {
                "200": {
                    "description": "The OpenAPI document.",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    }
    return paths


def _operation(op: Operation) -> dict[str, Any]:
    scopes = " or ".join(op.scopes)
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "tags": [op.tag],
        "summary": op.summary,
        "description": f"{op.description} Needs the scope {scopes}.".strip(),
        "parameters": _parameters(op),
        "responses": {str(op.status): _success(op), **_problems(op)},
    }
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "content": {
                "application/json": {
                    "schema": _ref(op.body),
                    "example": _example(op.body),
                }
            },
        }
    return spec


def _parameters(op: Operation) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if op.reference:
        parameters.append(REFERENCE)
    if op.idempotent:
        parameters.append(IDEMPOTENCY_KEY)
    if op.query is not None:
        parameters += _query_parameters(op.query)
    return parameters


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """One parameter per field; an absent parameter is the field's null."""
    schema = model.model_json_schema(mode="validation")
    parameters = []
    for name, field in schema["properties"].items():
        field = dict(field)
        branches = [b for b in field.pop("anyOf", []) if b.get("type") != "null"]
        if branches:
            field.update(branches[0])
        field.pop("title", None)
        if field.get("default", "") is None:  # absent, not the JSON null
            del field["default"]
        description = field.pop("description", "")
        example = field.pop("examples", [None])[0]
        parameter = {
            "name": name,
            "in": "query",
            "required": name in schema.get("required", ()),
            "description": description,
            "schema": field,
        }
        if example is not None:
            parameter["example"] = example
        parameters.append(parameter)
    return parameters


def _success(op: Operation) -> dict[str, Any]:
    assert op.response is not None  # noqa: S101
    response: dict[str, Any] = {
        "description": op.response.__doc__ or op.summary,
        "content": {
            "application/json": {
                "schema": _ref(op.response),
                "example": _example(op.response),
            }
        },
    }
    if op.idempotent:
        response["description"] = "Created (or replayed)."
        response["headers"] = {
            "Location": {"schema": {"type": "string"}, "required": True},
            "Idempotent-Replayed": {
                "schema": {"type": "string", "enum": ["true"]},
                "description": "Present when this is the stored answer to a retry.",
            },
        }
    return response


def _problems(op: Operation) -> dict[str, Any]:
    """The problem responses of ``op``, one per status, with an example each."""
    by_status: dict[int, list[str]] = {}
    for code in (*op.errors, *AUTH_ERRORS):
        by_status.setdefault(PROBLEM_TYPES[code].status, []).append(code)
    responses = {}
    for status, codes in sorted(by_status.items()):
        kind = PROBLEM_TYPES[codes[0]]
        response: dict[str, Any] = {
            "description": "; ".join(
                f"{code}: {PROBLEM_TYPES[code].title}" for code in codes
            ),
            "content": {
                "application/problem+json": {
                    "schema": _ref(Problem),
                    "example": _problem_example(op, codes[0], kind.title, status),
                }
            },
        }
        if status in STATUS_HEADERS:
            response["headers"] = STATUS_HEADERS[status]
        responses[str(status)] = response
    return responses


def _problem_example(op: Operation, code: str, title: str, status: int) -> Any:
    instance = f"{BASE}{op.path}".replace("{reference}", "BB-4K7Q-9M2X")
    return {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": title,
        "instance": instance,
        "error": {"code": code, "message": title},
    }


def _webhooks() -> dict[str, Any]:
    """The ``webhooks:`` section: one entry per event in
    :data:`controlplane.api.webhook_events.WEBHOOK_EVENTS`."""
    return {
        event.name: {
            "post": {
                "operationId": f"webhook_{event.name.replace('.', '_')}",
                "tags": ["webhooks"],
                "summary": event.summary,
                "parameters": WEBHOOK_HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": _ref(event.payload),
                            "example": _example(event.payload),
                        }
                    },
                },
                "responses": {
                    "2XX": {"description": "Received; any other answer is retried."}
                },
            }
        }
        for event in WEBHOOK_EVENTS
    }


STATUS_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    429: {"Retry-After": {"schema": {"type": "string"}, "required": True}},
}
REFERENCE = {
    "name": "reference",
    "in": "path",
    "required": True,
    "description": "The reference returned on creation.",
    "schema": {"type": "string"},
    "example": "BB-4K7Q-9M2X",
}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Send the same key when retrying: the request is created once and the "
        "first response is returned again (with Idempotent-Replayed: true). "
        "The same key with another body is refused with 422."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": 255,
        "pattern": "^[ -~]+$",
    },
    "example": "crm-ticket-48151",
}
#: The Standard Webhooks headers every delivery carries.
WEBHOOK_HEADERS = [
    {
        "name": "webhook-id",
        "in": "header",
        "required": True,
        "description": "The event's id: the same on every retry; de-duplicate on it.",
        "schema": {"type": "string"},
        "example": "msg_2b7f3c9e1a4d4e0f8c6b5a3d2e1f0a9b",
    },
    {
        "name": "webhook-timestamp",
        "in": "header",
        "required": True,
        "description": "When this attempt was signed, in Unix seconds.",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
        "example": "1772443900",
    },
    {
        "name": "webhook-signature",
        "in": "header",
        "required": True,
        "description": "v1,<base64 HMAC-SHA256 of id.timestamp.body>; during a "
        "secret's rotation, one per secret, space-separated.",
        "schema": {"type": "string"},
        "example": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
    },
]
