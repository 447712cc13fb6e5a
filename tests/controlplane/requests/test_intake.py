"""The public callback form, its confirmation page and the privacy statement."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from aiohttp import FormData
from structlog.testing import capture_logs

from beeldbel.config import DeskConfig, RetentionConfig, SecurityConfig
from controlplane.app.factory import create_app
from controlplane.base.metrics import METRICS
from controlplane.requests.intake import confirmation_token
from controlplane.requests.live import QUEUE_EVENTS
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB
from controlplane.storage.schema import callback_requests
from tests.helpers import csrf_from

ANSWERS = {
    "name": "Jan Jansen",
    "phone": "06-12345678",
    "email": "",
    "topic": "report_question",
    "channel": "phone",
    "preferred": "asap",
    "language": "nl",
    "accessibility_note": "",
    "consent": "yes",
}
_SUBMISSION = re.compile(r'name="submission_id" value="([^"]+)"')
_REFERENCE = re.compile(r'id="reference">(BB-[0-9A-Z]{4}-[0-9A-Z]{4})<')


def _found(pattern: re.Pattern[str], text: str) -> str:
    match = pattern.search(text)
    assert match, f"no {pattern.pattern} in the page"
    return match.group(1)


async def _fresh_form(client: Any, path: str = "/") -> dict[str, str]:
    """The hidden fields of a newly loaded form."""
    response = await client.get(path)
    assert response.status == 200
    html = await response.text()
    return {"csrf_token": csrf_from(html), "submission_id": _found(_SUBMISSION, html)}


async def _submit(client: Any, data: Any, **kwargs: Any) -> Any:
    return await client.post("/", data=data, allow_redirects=False, **kwargs)


async def _rows(client: Any) -> list[dict[str, Any]]:
    async with client.server.app[DB].read() as conn:
        result = await conn.execute(sa.select(callback_requests))
        return [dict(row._mapping) for row in result]


@pytest.fixture
async def sqlite_client(aiohttp_client, make_config, sqlite_url):
    """For page tests where the database backend does not matter."""
    return await aiohttp_client(create_app(make_config(sqlite_url)))


async def test_form_has_the_fields_the_browser_test_uses(sqlite_client):
    html = await (await sqlite_client.get("/")).text()
    for control in [
        'id="name" name="name" autocomplete="name"',
        'id="phone" name="phone" autocomplete="tel" inputmode="tel"',
        'id="email" name="email" autocomplete="email" inputmode="email"',
        'id="topic"',
        'id="channel-video"',
        'id="channel-phone"',
        'id="preferred-asap"',
        'id="preferred-slot"',
        'id="slot"',
        'id="language"',
        'id="accessibility-text_chat"',
        'id="accessibility-screen_reader"',
        'id="accessibility_note"',
        'id="consent"',
        'id="submit-request"',
        'href="/privacy"',
        # the emergency numbers can be called with one tap
        '<a href="tel:112">112</a>',
        '<a href="tel:+319008844">0900-8844</a>',
        "<legend>",
        'lang="nl"',
    ]:
        assert control in html, control
    assert 'label for="slot"' in html
    assert "<optgroup" in html
    # nothing is chosen for the citizen
    assert not re.search(r'type="radio"[^>]*\bchecked\b', html)
    assert "error-summary" not in html


@pytest.mark.parametrize(
    ("lang", "days"),
    [
        ("nl", "Vandaag|Morgen|Maandag|Dinsdag|Woensdag|Donderdag|Vrijdag|Zaterdag"),
        ("en", "Today|Tomorrow|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday"),
    ],
)
async def test_slots_are_grouped_by_readable_days(sqlite_client, lang, days):
    html = await (await sqlite_client.get(f"/?lang={lang}")).text()
    groups = re.findall(r'<optgroup label="([^"]+)"', html)
    assert len(groups) >= 6, "a week of opening days"
    assert len(set(groups)) == len(groups)
    for label in groups:
        pattern = rf"(({days}),? )+\d{{1,2}} [A-Za-z]+"
        assert re.fullmatch(pattern, label, re.IGNORECASE), label
        assert label[0].isupper()
    options = re.findall(r'<option value="\d{4}-[^"]+Z"[^>]*>([^<]+)<', html)
    assert options
    assert all(re.search(r"\d\d:\d\d (tot|to) \d\d:\d\d$", o) for o in options)


async def test_opening_hours_are_summed_up_for_asap(
    aiohttp_client, make_config, sqlite_url
):
    hours = {
        "mon": "08:00-17:00",
        "tue": "08:00-17:00",
        "wed": "",
        "thu": "10:00-12:00",
    }
    desk = DeskConfig(opening_hours=hours)
    client = await aiohttp_client(create_app(make_config(sqlite_url, desk=desk)))
    html = await (await client.get("/")).text()
    expected = "maandag t/m dinsdag 08:00\u201317:00, donderdag 10:00\u201312:00."
    assert f"Binnen onze openingstijden: {expected}" in html
    english = await (await client.get("/?lang=en")).text()
    assert "Monday to Tuesday 08:00\u201317:00, Thursday 10:00\u201312:00." in english


async def test_a_submitted_form_is_stored_and_confirmed(client):
    """Happy path on both databases: E.164 phone, counted, published, logged."""
    app = client.server.app
    form = await _fresh_form(client)
    with capture_logs() as logs:
        async with app[QUEUE_EVENTS].subscribe() as events:
            response = await _submit(
                client,
                {**form, **ANSWERS, "accessibility": ["text_chat", "extra_time"]},
            )
            assert events.qsize() == 1
    assert response.status == 303
    location = response.headers["Location"]
    assert location.startswith("/bevestiging/")

    (row,) = await _rows(client)
    assert row["phone"] == "+31612345678"
    assert row["name"] == "Jan Jansen"
    assert row["email"] is None
    assert row["source"] == "web"
    assert row["accessibility"] == ["text_chat", "extra_time"]
    assert row["submission_key"] == f"web:{form['submission_id']}"
    assert row["reference"] in location

    page = await client.get(location)
    assert page.status == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = await page.text()
    assert _found(_REFERENCE, html) == row["reference"]
    assert "eindigt op 78" in html
    assert "Jan" not in html
    assert "12345678" not in html

    counted = app[METRICS].registry.get_sample_value(
        "beeldbel_callback_requests_received_total",
        {"channel": "phone", "topic": "report_question", "source": "web"},
    )
    assert counted == 1
    received = [e for e in logs if e["event"] == "callback_request_received"]
    assert received == [
        {
            "event": "callback_request_received",
            "log_level": "info",
            "channel": "phone",
            "topic": "report_question",
            "source": "web",
        }
    ]


async def test_a_chosen_slot_is_stored_and_shown(sqlite_client):
    form_page = await (await sqlite_client.get("/")).text()
    first_slot = _found(re.compile(r'<option value="(\d{4}-[^"]+Z)"'), form_page)
    form = await _fresh_form(sqlite_client)
    response = await _submit(
        sqlite_client,
        {
            **form,
            **ANSWERS,
            "channel": "video",
            "preferred": "slot",
            "slot": first_slot,
        },
    )
    assert response.status == 303
    (row,) = await _rows(sqlite_client)
    assert row["slot_start"] == datetime.fromisoformat(first_slot)
    assert row["due_at"] == row["slot_start"]
    html = await (await sqlite_client.get(response.headers["Location"])).text()
    assert "U krijgt van ons een link" in html
    slot = datetime.fromisoformat(first_slot).astimezone(ZoneInfo("Europe/Amsterdam"))
    day = ["maandag", "dinsdag", "woensdag", "donderdag", "vrijdag", "zaterdag"][
        slot.weekday()
    ]
    assert f"Wij bellen u op {day} {slot.day} " in html
    assert f" tussen {slot:%H:%M} en " in html


async def test_the_same_form_sent_twice_makes_one_request(client):
    form = await _fresh_form(client)
    first = await _submit(client, {**form, **ANSWERS})
    again = await _submit(client, {**form, **ANSWERS, "name": "Changed"})
    assert first.status == again.status == 303
    reference = first.headers["Location"].split("/")[-1].split(".")[0]
    assert again.headers["Location"].split("/")[-1].split(".")[0] == reference
    rows = await _rows(client)
    assert [r["reference"] for r in rows] == [reference]
    assert rows[0]["name"] == "Jan Jansen"
    counted = client.server.app[METRICS].registry.get_sample_value(
        "beeldbel_callback_requests_received_total",
        {"channel": "phone", "topic": "report_question", "source": "web"},
    )
    assert counted == 1


async def test_a_double_click_makes_one_request(client):
    """Two POSTs of one form at the same moment (a double click) store one row."""
    form = await _fresh_form(client)
    responses = await asyncio.gather(
        *(_submit(client, {**form, **ANSWERS}) for _ in range(3))
    )
    assert [r.status for r in responses] == [303, 303, 303]
    references = {r.headers["Location"].split("/")[-1].split(".")[0] for r in responses}
    assert len(references) == 1
    assert len(await _rows(client)) == 1


async def test_errors_are_shown_next_to_fields_and_values_stay(sqlite_client):
    form = await _fresh_form(sqlite_client)
    response = await _submit(
        sqlite_client,
        {**form, **ANSWERS, "name": "Jan <b>", "phone": "06-1234", "consent": ""},
    )
    assert response.status == 422
    assert response.headers["Cache-Control"] == "no-store"
    html = await response.text()
    assert "<title>Fout:" in html
    assert 'id="error-summary"' in html
    assert '<a href="#phone">Vul een telefoonnummer in' in html
    assert '<a href="#consent">' in html
    assert 'id="phone-error"' in html
    assert 'aria-describedby="phone-hint phone-error" aria-invalid="true"' in html
    assert 'aria-describedby="consent-hint consent-error" aria-invalid="true"' in html
    assert 'value="Jan &lt;b&gt;"' in html
    assert 'value="06-1234"' in html
    assert 'value="report_question" selected' in html
    assert 'value="phone" aria-describedby="channel-phone-hint" checked' in html
    assert f'value="{form["submission_id"]}"' in html, "the same submission id"
    assert 'aria-invalid="true"' not in html.split('id="name"')[1].split(">")[0]
    assert await _rows(sqlite_client) == []


async def test_garbage_values_get_field_errors_not_a_crash(sqlite_client):
    form = await _fresh_form(sqlite_client)
    data = [
        *form.items(),
        ("name", "x"),
        ("phone", "\x00\x01"),
        ("topic", "'; DROP TABLE callback_requests; --"),
        ("channel", "fax"),
        ("channel", "video"),
        ("preferred", "slot"),
        ("slot", "2099-01-01T00:00:00Z"),
        ("language", "de"),
        ("accessibility", "jetpack"),
        ("consent", "yes"),
        ("unexpected", "value"),
    ]
    response = await _submit(sqlite_client, data)
    assert response.status == 422
    html = await response.text()
    for anchor in ["phone", "topic", "channel-video", "slot", "language"]:
        assert f'<a href="#{anchor}">' in html, anchor
    assert '<a href="#accessibility-text_chat">' in html
    assert await _rows(sqlite_client) == []


async def test_a_file_instead_of_text_is_a_field_error(sqlite_client):
    form = await _fresh_form(sqlite_client)
    data = FormData()
    for key, value in {**form, **ANSWERS}.items():
        if key != "name":
            data.add_field(key, value)
    data.add_field("name", b"Jan", filename="name.txt")
    response = await _submit(sqlite_client, data)
    assert response.status == 422
    assert '<a href="#name">Vul uw naam in.</a>' in await response.text()


async def test_english_form_and_errors(sqlite_client):
    html = await (await sqlite_client.get("/?lang=en")).text()
    assert 'lang="en"' in html
    assert "Ask us to call you back" in html
    form = await _fresh_form(sqlite_client)
    response = await _submit(sqlite_client, {**form, **ANSWERS, "name": ""})
    text = await response.text()
    assert "Enter your name." in text
    assert "There is a problem with your details" in text


async def test_a_form_without_csrf_token_is_refused(sqlite_client):
    form = await _fresh_form(sqlite_client)
    del form["csrf_token"]
    response = await _submit(sqlite_client, {**form, **ANSWERS})
    assert response.status == 403
    assert "Uw formulier is verlopen" in await response.text()
    assert await _rows(sqlite_client) == []


@pytest.mark.parametrize("where", ["form", "header"])
async def test_a_non_ascii_csrf_token_is_refused_not_a_500(sqlite_client, where):
    form = await _fresh_form(sqlite_client)
    if where == "form":
        form["csrf_token"] = "\u00e9" * 64
        response = await _submit(sqlite_client, {**form, **ANSWERS})
    else:
        response = await sqlite_client.post(
            "/", data={**form, **ANSWERS}, headers={"X-CSRF-Token": "\u00e9" * 64}
        )
    assert response.status == 403
    assert await _rows(sqlite_client) == []


async def test_a_form_without_submission_id_is_refused_clearly(sqlite_client):
    form = await _fresh_form(sqlite_client)
    response = await _submit(
        sqlite_client, {**form, **ANSWERS, "submission_id": "short"}
    )
    assert response.status == 400
    assert "Het formulier was niet compleet" in await response.text()
    assert await _rows(sqlite_client) == []


async def test_an_oversized_form_is_a_clear_413(sqlite_client):
    form = await _fresh_form(sqlite_client)
    response = await _submit(
        sqlite_client, {**form, **ANSWERS, "accessibility_note": "x" * 70_000}
    )
    assert response.status == 413
    assert "Wat u stuurde is te groot" in await response.text()
    assert await _rows(sqlite_client) == []


async def test_too_many_requests_from_one_address_get_a_429(
    aiohttp_client, make_config, db_url
):
    config = make_config(db_url, security=SecurityConfig(intake_per_ip_per_hour=2))
    client = await aiohttp_client(create_app(config))
    sent = []
    for _ in range(2):
        form = await _fresh_form(client)
        response = await _submit(client, {**form, **ANSWERS})
        assert response.status == 303
        sent.append((form, response.headers["Location"]))
    form = await _fresh_form(client)
    refused = await _submit(client, {**form, **ANSWERS})
    assert refused.status == 429
    # the hour's window: the first form was sent a moment ago
    assert 3500 <= int(refused.headers["Retry-After"]) <= 3600
    assert "U heeft te vaak geprobeerd" in await refused.text()
    assert len(await _rows(client)) == 2
    # resending a form that was already stored is no new request: not refused
    first_form, first_location = sent[0]
    again = await _submit(client, {**first_form, **ANSWERS})
    assert again.status == 303
    assert again.headers["Location"].split(".")[0] == first_location.split(".")[0]


async def test_the_global_limit_protects_the_desk(
    aiohttp_client, make_config, sqlite_url
):
    config = make_config(
        sqlite_url, security=SecurityConfig(intake_global_per_minute=1)
    )
    client = await aiohttp_client(create_app(config))
    form = await _fresh_form(client)
    assert (await _submit(client, {**form, **ANSWERS})).status == 303
    form = await _fresh_form(client)
    refused = await _submit(client, {**form, **ANSWERS})
    assert refused.status == 429
    assert 50 <= int(refused.headers["Retry-After"]) <= 60  # a minute's window


async def test_confirmation_links_cannot_be_guessed_or_reused_later(sqlite_client):
    form = await _fresh_form(sqlite_client)
    location = (await _submit(sqlite_client, {**form, **ANSWERS})).headers["Location"]
    reference, expires, signature = location.split("/")[-1].split(".")
    key = sqlite_client.server.app[SECRET_KEY]
    forged = [
        f"{reference}.{expires}.{signature[:-1]}A",
        f"{reference}.{int(expires) + 3600}.{signature}",
        reference,
        f"BB-2345-6789.{expires}.{signature}",
        confirmation_token(key, reference, datetime.now(UTC) - timedelta(hours=2)),
        "x.1.y",
    ]
    for token in forged:
        response = await sqlite_client.get(f"/bevestiging/{token}")
        assert response.status == 404, token
        text = await response.text()
        assert "Deze bevestigingspagina is verlopen" in text
        assert reference not in text
    fresh = confirmation_token(key, reference, datetime.now(UTC))
    assert (await sqlite_client.get(f"/bevestiging/{fresh}")).status == 200


async def test_english_confirmation(sqlite_client):
    await sqlite_client.get("/?lang=en")
    form = await _fresh_form(sqlite_client)
    location = (await _submit(sqlite_client, {**form, **ANSWERS})).headers["Location"]
    html = await (await sqlite_client.get(location)).text()
    assert "We will call you on your number ending in 78." in html


async def test_privacy_statement_names_the_retention(
    aiohttp_client, make_config, sqlite_url
):
    config = make_config(
        sqlite_url, retention=RetentionConfig(personal_data_days=14, audit_days=400)
    )
    client = await aiohttp_client(create_app(config))
    response = await client.get("/privacy")
    assert response.status == 200
    html = await response.text()
    assert "14 dagen nadat uw aanvraag is afgehandeld" in html
    assert "400 dagen" in html
    assert "Wie kan uw gegevens zien?" in html
    english = await (await client.get("/privacy?lang=en")).text()
    assert "14 days after your request has been dealt with" in english
    assert "Your rights" in english


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"&name=\xff\xfe"),
        ("application/x-www-form-urlencoded; charset=klingon", b"&name=x"),
        ("multipart/form-data; boundary=xx", b"--xx\r\nbroken"),
    ],
)
async def test_unreadable_bodies_are_a_clear_400(sqlite_client, content_type, body):
    """Bytes that are no form at all get a 'could not be processed' page, no 500."""
    form = await _fresh_form(sqlite_client)
    hidden = f"csrf_token={form['csrf_token']}&submission_id={form['submission_id']}"
    response = await _submit(
        sqlite_client,
        hidden.encode() + body,
        headers={"Content-Type": content_type},
    )
    assert response.status == 400
    assert "Uw verzoek kon niet worden verwerkt" in await response.text()


async def test_the_accessibility_statement_is_linked_from_every_page(sqlite_client):
    """The government's model: status, how it was checked, known gaps, contact."""
    form = await (await sqlite_client.get("/")).text()
    assert '<a href="/toegankelijkheid">Toegankelijkheid</a>' in form
    response = await sqlite_client.get("/toegankelijkheid")
    assert response.status == 200
    html = await response.text()
    for heading in (
        "<h1>Toegankelijkheids\u00adverklaring</h1>",
        "Nalevingsstatus",
        "Hoe wij dit controleren",
        "Wat wij nog niet weten of nog niet bieden",
        "Loopt u ergens tegenaan?",
    ):
        assert heading in html, heading
    assert "Voldoet gedeeltelijk aan WCAG 2.1 niveau AA" in html
    assert '<a href="tel:+319008844">0900-8844</a>' in html
    english = await (await sqlite_client.get("/toegankelijkheid?lang=en")).text()
    assert "<h1>Accessibility statement</h1>" in english
