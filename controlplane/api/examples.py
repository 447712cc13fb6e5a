"""Whole example requests and responses for the OpenAPI document.

Tests validate each one against its model (tests/controlplane/api/test_models.py),
so an example cannot show a field the API does not have.
"""

from __future__ import annotations

from typing import Any

CREATE_EXAMPLE: dict[str, Any] = {
    "name": "Jan de Vries",
    "phone": "06 12345678",
    "email": "jan@example.nl",
    "topic": "report_crime",
    "channel": "video",
    "preferred": "asap",
    "slot": None,
    "language": "nl",
    "accessibility": ["extra_time"],
    "accessibility_note": None,
    "consent": True,
}

CALLBACK_EXAMPLE: dict[str, Any] = {
    "id": "BB-4K7Q-9M2X",
    "reference": "BB-4K7Q-9M2X",
    "state": "new",
    "channel": "video",
    "topic": "report_crime",
    "language": "nl",
    "preferred": "asap",
    "slot": None,
    "accessibility": ["extra_time"],
    "created_at": "2026-11-27T21:40:00+00:00",
    "updated_at": "2026-11-27T21:40:00+00:00",
    "due_at": "2026-11-27T21:40:00+00:00",
    "attempts": 0,
    "first_attempt_at": None,
    "outcome": None,
    "closed_at": None,
}

CALLBACK_PAGE_EXAMPLE: dict[str, Any] = {
    "items": [CALLBACK_EXAMPLE],
    "next_cursor": "MjAyNi0xMS0yN1QyMTo0MDowMCswMDowMHxCQi00SzdRLTlNMlg",
}

TOPIC_EXAMPLE: dict[str, Any] = {
    "code": "report_crime",
    "nl": "Aangifte doen",
    "en": "Report a crime",
}

SLOTS_EXAMPLE: dict[str, Any] = {
    "items": [
        {"start": "2026-12-07T08:00:00+00:00", "end": "2026-12-07T08:30:00+00:00"}
    ]
}

CALL_TOKEN_REQUEST_EXAMPLE: dict[str, Any] = {"role": "citizen", "kind": "link"}

CALL_TOKEN_EXAMPLE: dict[str, Any] = {
    "kind": "link",
    "role": "citizen",
    "room_id": "r-5f2c9a1e",
    "link": "https://beeldbel.example/gesprek#t=eyJhbGciOi...",
    "expires_at": "2026-11-27T22:10:00+00:00",
}

VALIDATION_PROBLEM_EXAMPLE: dict[str, Any] = {
    "type": "/api/v1/problems/validation_failed",
    "title": "Fields are missing or invalid",
    "status": 422,
    "detail": "invalid field 'phone'; see details",
    "instance": "/api/v1/callbacks",
    "errors": [
        {
            "pointer": "#/phone",
            "code": "invalid",
            "detail": "Enter a phone number like 06 12345678 or 020 123 4567.",
        }
    ],
    "error": {
        "code": "validation_failed",
        "message": "invalid field 'phone'; see details",
        "details": {"phone": "Enter a phone number like 06 12345678 or 020 123 4567."},
    },
}
