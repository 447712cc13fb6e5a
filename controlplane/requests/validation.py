"""Turning what a citizen, a staff member or an API client typed into a request.

Pure functions, shared by the web form, the staff phone-line entry and the JSON
API: :func:`parse_request` raises :class:`~controlplane.base.errors.ValidationFailed`
whose ``details`` map each wrong field to a translation key in
``web/i18n/citizen.toml`` (show it with ``catalog.get(key, lang)``).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import PhoneNumberType

from beeldbel.config import DeskConfig
from controlplane.base.errors import ValidationFailed
from controlplane.requests.callbacks import ACCESSIBILITY_NEEDS, CHANNELS, NewRequest
from controlplane.requests.slots import is_bookable

FIELDS = (
    "name",
    "phone",
    "email",
    "topic",
    "channel",
    "preferred",
    "slot",
    "language",
    "accessibility",
    "accessibility_note",
    "consent",
)
LANGUAGES = ("nl", "en")
PREFERRED = ("asap", "slot")
NAME_MAX = 200
NOTE_MAX = 1000
EMAIL_MAX = 254
PHONE_TEXT_MAX = 40
DEFAULT_REGION = "NL"

_PHONE_CHARS = frozenset("0123456789+-()./ \u00a0")
#: Numbers that cost the desk money to call, or that nobody answers.
_NOT_CALLABLE = frozenset(
    {PhoneNumberType.PREMIUM_RATE, PhoneNumberType.SHARED_COST, PhoneNumberType.PAGER}
)
#: Bidirectional overrides that make text display differently from what it is.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

FieldValue = str | Sequence[str]
#: A per-field parser: the text in, the clean value out, or ``_Invalid``.
_Parser = Callable[[str], str]


class PhoneNotCallable(ValueError):
    """A valid number we will not call: premium rate, shared cost or pager."""


def mask_phone(e164: str) -> str:
    """A number as the citizen recognises it without showing it: the Dutch
    area or mobile prefix and the last two digits (``06-…78``, ``020-…67``),
    abroad the country code (``+32…56``). For pages only; never for logs."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return "…" + e164[-2:]
    last = e164[-2:]
    if number.country_code == 31:
        national = phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.NATIONAL
        )
        return f"{national.split()[0]}-…{last}"
    return f"+{number.country_code}…{last}"


def normalize_phone(text: str) -> str:
    """A phone number as typed (``06-12345678``, ``+32 …``, ``0031 …``) → E.164.

    Raises ``ValueError`` (:class:`PhoneNotCallable` for paid numbers).
    """
    cleaned = text.strip()
    if not cleaned or len(cleaned) > PHONE_TEXT_MAX:
        raise ValueError("phone number is empty or too long")
    if not set(cleaned) <= _PHONE_CHARS or "+" in cleaned[1:]:
        raise ValueError("phone number has characters that are not digits")
    try:
        number = phonenumbers.parse(cleaned, DEFAULT_REGION)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("phone number cannot be read") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("phone number does not exist")
    if phonenumbers.number_type(number) in _NOT_CALLABLE:
        raise PhoneNotCallable("phone number costs money to call")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(text: str) -> str:
    """An e-mail address in its normal form (no DNS look-up); raises ``ValueError``."""
    try:
        result = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    if len(result.normalized) > EMAIL_MAX:
        raise ValueError("e-mail address is too long")
    return result.normalized


def parse_request(
    fields: Mapping[str, FieldValue],
    desk: DeskConfig,
    *,
    source: str,
    now: datetime,
    require_consent: bool = True,
) -> NewRequest:
    """Validate every field at once; raise ``ValidationFailed`` naming all errors.

    ``fields`` holds strings (``accessibility`` may hold several); ``now`` is
    aware. ``slot`` is an ISO 8601 UTC slot start, used when ``preferred`` is
    ``"slot"``. ``consent`` must be ``"yes"`` unless ``require_consent`` is off.
    """
    errors: dict[str, str] = {}
    text = _parse_text(fields, desk, errors)
    slot = _slot(fields, desk, now, errors) if text["preferred"] == "slot" else None
    accessibility = _accessibility(fields, errors)
    if require_consent and _single_or_none(fields, "consent") != "yes":
        errors["consent"] = "citizen_error_consent_missing"
    if errors:
        raise ValidationFailed("citizen_error_summary", details=errors)
    return NewRequest(
        name=text["name"],
        phone=text["phone"],
        channel=text["channel"],
        topic=text["topic"],
        language=text["language"],
        preferred=text["preferred"],
        source=source,
        email=text["email"] or None,
        slot_start=slot,
        accessibility=accessibility,
        accessibility_note=text["accessibility_note"] or None,
    )


def _parse_text(
    fields: Mapping[str, FieldValue], desk: DeskConfig, errors: dict[str, str]
) -> dict[str, str]:
    """The one-string fields, each clean, or ``""`` with its error in ``errors``."""
    parsers: dict[str, _Parser] = {
        "name": _name,
        "phone": _phone,
        "email": _email,
        "topic": _choice(tuple(t.code for t in desk.topics)),
        "channel": _choice(CHANNELS),
        "preferred": _choice(PREFERRED),
        "language": _choice(LANGUAGES),
        "accessibility_note": _note,
    }
    return {
        field: _check(fields, field, parse, errors) for field, parse in parsers.items()
    }


def _check(
    fields: Mapping[str, FieldValue],
    field: str,
    parse: _Parser,
    errors: dict[str, str],
) -> str:
    try:
        return parse(_single(fields, field))
    except _Invalid as exc:
        errors[field] = f"citizen_error_{field}_{exc.reason}"
        return ""


class _Invalid(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _single(fields: Mapping[str, FieldValue], field: str) -> str:
    value: object = fields.get(field, "")  # JSON callers may hand in anything
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        if len(value) == 0:
            return ""
        if len(value) == 1 and isinstance(value[0], str):
            return value[0]
    raise _Invalid("invalid")


def _single_or_none(fields: Mapping[str, FieldValue], field: str) -> str | None:
    try:
        return _single(fields, field)
    except _Invalid:
        return None


def _name(text: str) -> str:
    name = " ".join(unicodedata.normalize("NFC", text).split())
    if not name:
        raise _Invalid("missing")
    if len(name) > NAME_MAX:
        raise _Invalid("too_long")
    if has_controls(name, allowed=""):
        raise _Invalid("invalid")
    return name


def _phone(text: str) -> str:
    if not text.strip():
        raise _Invalid("missing")
    try:
        return normalize_phone(text)
    except PhoneNotCallable:
        raise _Invalid("not_callable") from None
    except ValueError:
        raise _Invalid("invalid") from None


def _email(text: str) -> str:
    if not text.strip():
        return ""
    try:
        return normalize_email(text)
    except ValueError:
        raise _Invalid("invalid") from None


def _note(text: str) -> str:
    note = unicodedata.normalize("NFC", text.replace("\r\n", "\n")).strip()
    if len(note) > NOTE_MAX:
        raise _Invalid("too_long")
    if has_controls(note, allowed="\n\t"):
        raise _Invalid("invalid")
    return note


def _choice(allowed: tuple[str, ...]) -> _Parser:
    def parse(text: str) -> str:
        if not text:
            raise _Invalid("missing")
        if text not in allowed:
            raise _Invalid("invalid")
        return text

    return parse


def _slot(
    fields: Mapping[str, FieldValue],
    desk: DeskConfig,
    now: datetime,
    errors: dict[str, str],
) -> datetime | None:
    text = _single_or_none(fields, "slot")
    if not text:
        errors["slot"] = "citizen_error_slot_missing"
        return None
    try:
        parsed = datetime.fromisoformat(text)
        slot = parsed.astimezone(UTC) if parsed.tzinfo is not None else None
    except (ValueError, OverflowError):  # not a time, or beyond year 1..9999 in UTC
        slot = None
    if slot is None:
        errors["slot"] = "citizen_error_slot_invalid"
        return None
    if not is_bookable(slot, desk, now):
        errors["slot"] = "citizen_error_slot_unavailable"
        return None
    return slot


def _accessibility(
    fields: Mapping[str, FieldValue], errors: dict[str, str]
) -> tuple[str, ...]:
    value: object = fields.get("accessibility", ())
    chosen = [value] if isinstance(value, str) else value
    if not isinstance(chosen, list | tuple) or not all(
        isinstance(c, str) for c in chosen
    ):
        errors["accessibility"] = "citizen_error_accessibility_invalid"
        return ()
    picked = {c for c in chosen if c}
    if not picked <= set(ACCESSIBILITY_NEEDS):
        errors["accessibility"] = "citizen_error_accessibility_invalid"
        return ()
    return tuple(code for code in ACCESSIBILITY_NEEDS if code in picked)


def has_controls(text: str, *, allowed: str) -> bool:
    """Whether ``text`` holds control, surrogate, private-use or bidi-override
    characters other than those in ``allowed`` (PostgreSQL refuses NUL outright)."""
    return any(
        (unicodedata.category(c) in ("Cc", "Cs", "Co") and c not in allowed)
        or c in _BIDI_CONTROLS
        for c in text
    )
