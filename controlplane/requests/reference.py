"""Citizen-facing references like ``BB-4K7Q-9M2X``: random, unguessable, easy to read
aloud (no 0/O, 1/I/L or U)."""

from __future__ import annotations

import re
import secrets

ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"
_PATTERN = re.compile(rf"BB-([{ALPHABET}]{{4}})-([{ALPHABET}]{{4}})")
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1"})


def new_reference() -> str:
    """About 39 bits of randomness; uniqueness is enforced by the database."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"BB-{chars[:4]}-{chars[4:]}"


def parse_reference(text: str) -> str | None:
    """Normalise what a person typed (case, spaces, missing dashes) or return None."""
    compact = re.sub(r"[\s\-]", "", text.upper())
    if compact.startswith("BB"):
        compact = compact[2:]
    if len(compact) != 8:
        return None
    candidate = f"BB-{compact[:4]}-{compact[4:]}"
    return candidate if _PATTERN.fullmatch(candidate) else None
