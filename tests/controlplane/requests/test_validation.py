"""What citizens, staff and API clients type becomes a clean request or clear errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import phonenumbers
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from beeldbel.config import DeskConfig
from controlplane.base.errors import ValidationFailed
from controlplane.base.i18n import Catalog
from controlplane.requests.callbacks import ACCESSIBILITY_NEEDS
from controlplane.requests.reference import new_reference, parse_reference
from controlplane.requests.slots import available_slots
from controlplane.requests.validation import (
    FIELDS,
    PhoneNotCallable,
    normalize_email,
    normalize_phone,
    parse_request,
)

DESK = DeskConfig()
NOW = datetime(2026, 11, 27, 11, 10, tzinfo=UTC)  # Friday 12:10 in Amsterdam
CATALOG = Catalog.load()
VALID = {
    "name": "Jan Jansen",
    "phone": "06-12345678",
    "email": "",
    "topic": "other",
    "channel": "video",
    "preferred": "asap",
    "language": "nl",
    "accessibility": [],
    "accessibility_note": "",
    "consent": "yes",
}


def _errors(**changes) -> dict[str, str]:
    fields = {**VALID, **changes}
    with pytest.raises(ValidationFailed) as caught:
        parse_request(fields, DESK, source="web", now=NOW)
    return caught.value.details


# phone numbers


@st.composite
def dutch_numbers(draw: st.DrawFn) -> str:
    """A valid Dutch national significant number: mobile or a big city's landline."""
    prefix = draw(st.sampled_from(["61", "62", "63", "64", "65", "20", "10", "70"]))
    rest = draw(st.text("0123456789", min_size=7, max_size=7))
    if not prefix.startswith("6"):
        rest = draw(st.sampled_from("23456789")) + rest[1:]
    number = prefix + rest
    assume(phonenumbers.is_valid_number(phonenumbers.parse("0" + number, "NL")))
    return number


@st.composite
def spread(draw: st.DrawFn, digits: str) -> str:
    """``digits`` with spaces, dashes, dots or nothing between any of them."""
    out = []
    for digit in digits:
        out.append(draw(st.sampled_from(["", "", "", " ", "-", "."])))
        out.append(digit)
    return "".join(out).lstrip(" -.")


@settings(max_examples=200, deadline=None)
@given(data=st.data(), number=dutch_numbers())
def test_every_way_of_writing_a_dutch_number_gives_one_e164(data, number):
    area = 1 if number.startswith("6") else 2
    national = data.draw(
        st.sampled_from(
            [
                "0" + number,
                f"0{number[:area]}-{number[area:]}",
                f"0{number[:area]} {number[area:]}",
                f"(0{number[:area]}) {number[area:]}",
                f"+31 {number}",
                f"+31 (0){number[:area]} {number[area:]}",
                f"0031 {number}",
            ]
        )
    )
    messy = data.draw(st.sampled_from([national, data.draw(spread(national))]))
    padded = data.draw(st.sampled_from(["", " ", "\t"])) + messy + " "
    assert normalize_phone(padded) == "+31" + number


@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("06-12345678", "+31612345678"),
        ("020 123 4567", "+31201234567"),
        ("0031 6 12345678", "+31612345678"),
        ("+32 470 12 34 56", "+32470123456"),
        ("+44 20 7946 0958", "+442079460958"),
        ("0049 30 901820", "+4930901820"),
    ],
)
def test_examples_from_the_form_hint(typed, e164):
    assert normalize_phone(typed) == e164


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "   ",
        "12",
        "06-1234567",
        "06-123456789",
        "112",
        "0612345678x",
        "+31+612345678",
        "06 1234 5678 ext 3",
        "0800-FLOWERS",
        "+999 123456",
        "0" * 41,
        "٠٦١٢٣٤٥٦٧٨",
    ],
)
def test_numbers_we_cannot_call_are_refused(typed):
    with pytest.raises(ValueError, match="phone"):
        normalize_phone(typed)


def test_premium_rate_numbers_are_not_called():
    with pytest.raises(PhoneNotCallable):
        normalize_phone("0906 1234")
    assert _errors(phone="0906 1234") == {"phone": "citizen_error_phone_not_callable"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text("0123456789+-(). /", max_size=30)))
def test_any_text_is_a_number_or_a_value_error(text):
    try:
        e164 = normalize_phone(text)
    except ValueError:
        return
    assert re.fullmatch(r"\+[1-9]\d{6,14}", e164)
    assert normalize_phone(e164) == e164


# e-mail addresses


@settings(deadline=None)
@given(st.emails())
def test_valid_addresses_normalise_stably(address):
    try:
        normal = normalize_email(address)
    except ValueError:
        # hypothesis also writes addresses e-mail servers refuse (quoted, odd TLDs)
        return
    assert normalize_email(normal) == normal
    assert "@" in normal
    assert len(normal) <= 254


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_text_is_an_address_or_a_value_error(text):
    try:
        normal = normalize_email(text)
    except ValueError:
        return
    assert normalize_email(normal) == normal


def test_email_domain_is_lowercased_and_space_trimmed():
    assert normalize_email("  Jan.Jansen@Example.NL ") == "Jan.Jansen@example.nl"
    for wrong in ["jan", "jan@", "@example.nl", "jan@example", "a b@example.nl"]:
        with pytest.raises(ValueError, match=r"\w"):
            normalize_email(wrong)


# references


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_references_survive_any_case_and_spacing(data):
    reference = new_reference()
    compact = reference.replace("-", "")
    typed = "".join(
        data.draw(st.sampled_from(["", " ", "-", "  "]))
        + (c.lower() if data.draw(st.booleans()) else c)
        for c in compact
    )
    assert parse_reference(typed) == reference
    assert parse_reference(reference) == reference


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_random_text_is_a_reference_or_none(text):
    parsed = parse_reference(text)
    assert parsed is None or parse_reference(parsed) == parsed


# whole requests


def test_a_valid_form_becomes_a_request():
    new = parse_request(
        {
            **VALID,
            "name": "  Anna   de  Vries ",
            "email": "Anna@Example.nl",
            "accessibility": ["sign_language", "text_chat", "text_chat"],
            "accessibility_note": "Graag\r\nlangzaam praten ",
        },
        DESK,
        source="web",
        now=NOW,
    )
    assert new.name == "Anna de Vries"
    assert new.phone == "+31612345678"
    assert new.email == "Anna@example.nl"
    assert new.accessibility == ("text_chat", "sign_language")
    assert new.accessibility_note == "Graag\nlangzaam praten"
    assert new.preferred == "asap"
    assert new.slot_start is None
    assert new.source == "web"


def test_a_slot_from_the_list_is_taken_and_other_times_are_not():
    slot = available_slots(DESK, NOW)[3]
    value = slot.strftime("%Y-%m-%dT%H:%M:%SZ")
    new = parse_request(
        {**VALID, "preferred": "slot", "slot": value}, DESK, source="web", now=NOW
    )
    assert new.slot_start == slot
    asap = parse_request({**VALID, "slot": value}, DESK, source="web", now=NOW)
    assert asap.slot_start is None, "the slot list is ignored unless chosen"
    assert _errors(preferred="slot", slot="") == {"slot": "citizen_error_slot_missing"}
    assert _errors(preferred="slot", slot="tomorrow") == {
        "slot": "citizen_error_slot_invalid"
    }
    assert _errors(preferred="slot", slot="2026-11-28T10:00:00") == {
        "slot": "citizen_error_slot_invalid"
    }, "a time without zone"
    for edge in ("9999-12-31T23:00:00-14:00", "0001-01-01T00:00:00+14:00"):
        assert _errors(preferred="slot", slot=edge) == {
            "slot": "citizen_error_slot_invalid"
        }, "a time that leaves the calendar in UTC"
    gone = (NOW - timedelta(hours=2)).strftime("%Y-%m-%dT%H:00:00Z")
    assert _errors(preferred="slot", slot=gone) == {
        "slot": "citizen_error_slot_unavailable"
    }


def test_all_errors_are_reported_at_once():
    details = _errors(
        name="",
        phone="",
        topic="nope",
        channel="fax",
        preferred="later",
        language="de",
        accessibility=["x"],
        consent="",
        email="not-an-address",
        accessibility_note="x" * 1001,
    )
    assert details == {
        "name": "citizen_error_name_missing",
        "phone": "citizen_error_phone_missing",
        "email": "citizen_error_email_invalid",
        "topic": "citizen_error_topic_invalid",
        "channel": "citizen_error_channel_invalid",
        "preferred": "citizen_error_preferred_invalid",
        "language": "citizen_error_language_invalid",
        "accessibility": "citizen_error_accessibility_invalid",
        "accessibility_note": "citizen_error_accessibility_note_too_long",
        "consent": "citizen_error_consent_missing",
    }


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("x" * 201, "citizen_error_name_too_long"),
        ("Jan\x00Jansen", "citizen_error_name_invalid"),
        ("Jan\u202eJansen", "citizen_error_name_invalid"),
        ("Jan\nJansen\x07", "citizen_error_name_invalid"),
        (" \t ", "citizen_error_name_missing"),
    ],
)
def test_names_are_limited(name, key):
    assert _errors(name=name) == {"name": key}


def test_long_names_and_notes_at_the_limit_are_fine():
    new = parse_request(
        {**VALID, "name": "é" * 200, "accessibility_note": "a\tb\n" * 250},
        DESK,
        source="web",
        now=NOW,
    )
    assert len(new.name) == 200
    assert new.accessibility_note is not None
    assert _errors(accessibility_note="a\x1b[31m") == {
        "accessibility_note": "citizen_error_accessibility_note_invalid"
    }


def test_consent_is_needed_unless_the_caller_vouches_for_it():
    assert _errors(consent="no") == {"consent": "citizen_error_consent_missing"}
    fields = {k: v for k, v in VALID.items() if k != "consent"}
    new = parse_request(fields, DESK, source="phone", now=NOW, require_consent=False)
    assert new.source == "phone"


def test_topics_come_from_the_desk():
    desk = DeskConfig(topics=DESK.topics[:1])
    with pytest.raises(ValidationFailed) as caught:
        parse_request(VALID, desk, source="web", now=NOW)
    assert caught.value.details == {"topic": "citizen_error_topic_invalid"}


def test_repeated_values_for_one_field_are_an_error():
    assert _errors(channel=["video", "phone"]) == {
        "channel": "citizen_error_channel_invalid"
    }
    new = parse_request({**VALID, "channel": ["phone"]}, DESK, source="web", now=NOW)
    assert new.channel == "phone"


junk = st.one_of(
    st.text(max_size=50),
    st.lists(st.text(max_size=10), max_size=3),
    st.integers(),
    st.none(),
    st.booleans(),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from([*FIELDS, "other"]), junk, max_size=len(FIELDS) + 1)
)
def test_garbage_never_raises_anything_but_validation_failed(changes):
    """JSON callers may send any type; every error key exists in the catalog."""
    details: dict[str, str] | None = None
    try:
        parse_request({**VALID, **changes}, DESK, source="api", now=NOW)
    except ValidationFailed as exc:
        details = exc.details
    if details is None:
        return
    assert details
    for field, key in details.items():
        assert field in FIELDS
        assert key in CATALOG, key
        assert CATALOG.get(key, "en") != CATALOG.get(key, "nl")


def test_every_accessibility_need_has_a_label():
    for code in ACCESSIBILITY_NEEDS:
        assert f"citizen_accessibility_{code}" in CATALOG
