"""The OpenAPI 3.1 description of /api/v1, served at ``/api/v1/openapi.json``.

Kept next to the handlers in ``api.py`` and checked against them by schemathesis
(``tests/controlplane/test_openapi.py``), so it says what the code does.
"""

from __future__ import annotations

from typing import Any

from controlplane.requests import (
    ACCESSIBILITY_NEEDS,
    CHANNELS,
    EMAIL_MAX,
    LANGUAGES,
    NAME_MAX,
    NOTE_MAX,
    PREFERRED,
    State,
)

ERROR = {"$ref": "#/components/schemas/Error"}
CALLBACK = {"$ref": "#/components/schemas/Callback"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ERROR}},
    }


def _callback(description: str, headers: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": CALLBACK}},
    }


AUTH_ERRORS = {
    "401": {
        **_error("No, an unknown or a revoked API key."),
        "headers": {
            "WWW-Authenticate": {"schema": {"type": "string"}, "required": True}
        },
    },
    "403": _error("The API key lacks the scope this operation needs."),
    "429": {
        **_error("The API key made too many requests; retry after the header."),
        "headers": {"Retry-After": {"schema": {"type": "string"}, "required": True}},
    },
}
BODY_ERRORS = {
    "400": _error("The body is not a JSON object, or a header is malformed."),
    "413": _error("The body is larger than the configured limit."),
    "415": _error("The body is not application/json."),
    "422": _error("A field is missing, unknown, of the wrong type or invalid."),
}
REFERENCE = {
    "name": "reference",
    "in": "path",
    "required": True,
    "description": "The reference returned on creation, e.g. BB-4K7Q-9M2X.",
    "schema": {"type": "string"},
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
}

CALLBACK_CREATE: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "name",
        "phone",
        "topic",
        "channel",
        "preferred",
        "language",
        "consent",
    ],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": NAME_MAX},
        "phone": {
            "type": "string",
            "description": "Dutch or international number; stored as E.164.",
            "examples": ["+31612345678"],
        },
        "email": {"type": ["string", "null"], "maxLength": EMAIL_MAX},
        "topic": {
            "type": "string",
            "description": "One of the desk's topic codes.",
            "examples": ["report_crime"],
        },
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "preferred": {"type": "string", "enum": list(PREFERRED)},
        "slot": {
            **NULLABLE_TIME,
            "description": (
                "Slot start with an offset; set exactly when preferred is slot."
            ),
        },
        "language": {"type": "string", "enum": list(LANGUAGES)},
        "accessibility": {
            "type": "array",
            "items": {"type": "string", "enum": list(ACCESSIBILITY_NEEDS)},
        },
        "accessibility_note": {"type": ["string", "null"], "maxLength": NOTE_MAX},
        "consent": {
            "type": "boolean",
            "const": True,
            "description": "The integrator asserts that the citizen consented.",
        },
    },
}

CALL_TOKEN_REQUEST: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["role", "kind"],
    "properties": {
        "role": {"type": "string", "enum": ["agent", "citizen", "interpreter"]},
        "kind": {
            "type": "string",
            "enum": ["link", "media"],
            "description": "A join link (citizen, interpreter) or a media token.",
        },
    },
}
CALL_TOKEN_RESPONSE: dict[str, Any] = {
    "type": "object",
    "required": ["kind", "role", "room_id"],
    "properties": {
        "kind": {"type": "string", "enum": ["link", "media"]},
        "role": {"type": "string"},
        "room_id": {"type": "string"},
        "link": {"type": "string", "description": "Single-use join link."},
        "expires_at": {"type": "string", "format": "date-time"},
        "token": {"type": "string", "description": "Single-use media join token."},
        "media_url": {"type": "string", "description": "The media node's WebSocket."},
        "expires_in": {"type": "integer"},
        "ice_servers": {"type": "array", "items": {"type": "object"}},
        "force_relay": {"type": "boolean"},
    },
}

CALLBACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "reference",
        "state",
        "channel",
        "topic",
        "language",
        "preferred",
        "slot",
        "accessibility",
        "created_at",
        "updated_at",
        "due_at",
        "attempts",
        "first_attempt_at",
        "outcome",
        "closed_at",
    ],
    "properties": {
        "id": {"type": "string", "description": "Public id; equals reference."},
        "reference": {"type": "string", "pattern": "^BB-[0-9A-Z]{4}-[0-9A-Z]{4}$"},
        "state": {"type": "string", "enum": [s.value for s in State]},
        "channel": {"type": "string", "enum": list(CHANNELS)},
        "topic": {"type": "string"},
        "language": {"type": "string", "enum": list(LANGUAGES)},
        "preferred": {"type": "string", "enum": list(PREFERRED)},
        "slot": NULLABLE_TIME,
        "accessibility": {
            "type": "array",
            "items": {"type": "string", "enum": list(ACCESSIBILITY_NEEDS)},
        },
        "created_at": {"type": "string", "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
        "due_at": {"type": "string", "format": "date-time"},
        "attempts": {"type": "integer", "minimum": 0},
        "first_attempt_at": NULLABLE_TIME,
        "outcome": {"type": ["string", "null"]},
        "closed_at": NULLABLE_TIME,
    },
}

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "examples": ["validation_failed"]},
                "message": {"type": "string"},
                "details": {
                    "type": "object",
                    "description": "Field name → what is wrong with it.",
                    "additionalProperties": {"type": "string"},
                },
            },
        }
    },
}


def document() -> dict[str, Any]:
    """The whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Beeldbel integrator API",
            "version": "1.0.0",
            "description": (
                "Create callback requests on behalf of citizens and follow them. "
                "A key sees only the requests it created."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": _paths(),
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "bb_<prefix>_<secret>",
                }
            },
            "schemas": {
                "CallbackCreate": CALLBACK_CREATE,
                "Callback": CALLBACK_SCHEMA,
                "Error": ERROR_SCHEMA,
            },
        },
    }


def _paths() -> dict[str, Any]:
    location = {"Location": {"schema": {"type": "string"}, "required": True}}
    replayed = {
        "Idempotent-Replayed": {
            "schema": {"type": "string", "enum": ["true"]},
            "description": "Present when this is the stored answer to a retry.",
        }
    }
    return {
        "/api/v1/callbacks": {
            "post": {
                "operationId": "createCallback",
                "summary": "Ask for a citizen to be called back",
                "parameters": [IDEMPOTENCY_KEY],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/CallbackCreate"}
                        }
                    },
                },
                "responses": {
                    "201": _callback(
                        "Created (or replayed).", {**location, **replayed}
                    ),
                    **BODY_ERRORS,
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/callbacks/{reference}": {
            "get": {
                "operationId": "getCallback",
                "summary": "The state of a request this key created",
                "parameters": [REFERENCE],
                "responses": {
                    "200": _callback("The request, without personal data.", {}),
                    "404": _error("No request with this reference for this key."),
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/callbacks/{reference}/cancel": {
            "post": {
                "operationId": "cancelCallback",
                "summary": "Cancel a request that nobody is calling yet",
                "parameters": [REFERENCE],
                "responses": {
                    "200": _callback("Cancelled.", {}),
                    "404": _error("No request with this reference for this key."),
                    "409": _error("The request is being called or is closed."),
                    **BODY_ERRORS,
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/callbacks/{reference}/tokens": {
            "post": {
                "operationId": "issueCallToken",
                "summary": "A join link or media token for the request's video call",
                "description": "Needs the calls:write scope. Makes the room if "
                "the open video request has no running call.",
                "parameters": [REFERENCE],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": CALL_TOKEN_REQUEST}},
                },
                "responses": {
                    "200": {
                        "description": "The link or token; never logged or kept.",
                        "content": {
                            "application/json": {"schema": CALL_TOKEN_RESPONSE}
                        },
                    },
                    "404": _error("No request with this reference for this key."),
                    "409": _error("The request is closed or not a video request."),
                    "410": _error("The request's call has ended."),
                    "503": _error("The media node cannot be reached."),
                    **BODY_ERRORS,
                    **AUTH_ERRORS,
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
