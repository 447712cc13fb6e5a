"""Sample callback requests: a valid body for the integrator API (``VALID``), and
requests made through the domain (``create_request``), not over HTTP."""

from __future__ import annotations

from typing import Any

from controlplane.requests.callbacks import NewRequest, create_request
from controlplane.storage.database import Database

NAME = "Jozefien Canarie-Testpersoon"

VALID: dict[str, Any] = {
    "name": "Jan de Vries",
    "phone": "06-12345678",
    "email": "jan@example.nl",
    "topic": "report_crime",
    "channel": "video",
    "preferred": "asap",
    "language": "nl",
    "accessibility": ["extra_time"],
    "accessibility_note": "Graag langzaam praten",
    "consent": True,
}


def new_request(**overrides: Any) -> NewRequest:
    """A valid video request from ``NAME`` who needs sign language; ``overrides``
    replace fields."""
    values: dict[str, Any] = {
        "name": NAME,
        "phone": "+31612345678",
        "channel": "video",
        "topic": "report_crime",
        "language": "nl",
        "preferred": "asap",
        "source": "web",
        "accessibility": ("sign_language",),
    }
    values.update(overrides)
    return NewRequest(**values)


async def add_request(db: Database, **overrides: Any) -> tuple[int, str]:
    """Store :func:`new_request` (no submission key); returns (id, reference)."""
    created = await create_request(db, new_request(**overrides), None)
    return created.id, created.reference
