"""No personal data in logs or metrics: canary values go in, and never come out.

Requests carry a made-up name, phone number, e-mail address and note through
the API and the citizen form (valid, invalid, unknown routes); then every log
line and every metric sample is searched for them, for the API key and for the
client's address.
"""

from __future__ import annotations

import re
from typing import Any

from prometheus_client import generate_latest

from controlplane.app.factory import create_app
from controlplane.base.metrics import Metrics
from controlplane.security.api_keys import create_api_key
from controlplane.storage.database import DB
from tests.controlplane.sample_requests import VALID
from tests.helpers import csrf_from

NAME = "Zyxwvu Canarynaam"
PHONE_TYPED = "06-13579246"
PHONE_DIGITS = ("13579246", "613579246")
EMAIL = "zyxwvu.canary@example.nl"
NOTE = "Canarynotitie qwxz"
CLIENT_IP = "127.0.0.1"


async def _through_the_api(client: Any, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"{NAME} {EMAIL}"}
    body = {**VALID, "name": NAME, "phone": PHONE_TYPED, "email": EMAIL}
    body["accessibility_note"] = NOTE
    assert (
        await client.post("/api/v1/callbacks", json=body, headers=auth)
    ).status == 201
    assert (
        await client.post("/api/v1/callbacks", json=body, headers=auth)
    ).status == 201
    bad = {**body, "phone": f"0900{PHONE_DIGITS[0]}", "email": f"{NAME}@"}
    assert (
        await client.post("/api/v1/callbacks", json=bad, headers=auth)
    ).status == 422
    odd = {**body, "colour": NAME}
    response = await client.post(
        "/api/v1/callbacks", json=odd, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status == 422
    wrong = {"Authorization": f"Bearer {key}x"}
    assert (
        await client.post("/api/v1/callbacks", json=body, headers=wrong)
    ).status == 401
    missing = await client.get(f"/api/v1/callbacks/{NAME}?email={EMAIL}", headers=auth)
    assert missing.status == 404


async def _through_the_form(client: Any) -> None:
    page = await client.get("/")
    html = await page.text()
    submission = re.search(r'name="submission_id" value="([^"]+)"', html)
    assert submission
    form = {
        "name": NAME,
        "phone": PHONE_TYPED,
        "email": EMAIL,
        "topic": "report_question",
        "channel": "phone",
        "preferred": "asap",
        "language": "nl",
        "accessibility_note": NOTE,
        "consent": "yes",
        "csrf_token": csrf_from(html),
        "submission_id": submission.group(1),
    }
    invalid = {**form, "phone": f"0900{PHONE_DIGITS[0]}"}
    assert (await client.post("/", data=invalid)).status == 422
    sent = await client.post("/", data=form, allow_redirects=False)
    assert sent.status == 303
    lost = await client.get(f"/{NAME}/{PHONE_TYPED}?email={EMAIL}&phone={PHONE_TYPED}")
    assert lost.status == 404


async def test_no_personal_data_in_logs_or_metrics(
    sqlite_url, make_config, aiohttp_client, log_stream, capfd
):
    metrics = Metrics()
    client = await aiohttp_client(create_app(make_config(sqlite_url), metrics=metrics))
    key = await create_api_key(
        client.server.app[DB], "crm", ("callbacks:write", "callbacks:read")
    )
    secret = key.split("_", 2)[2]

    await _through_the_api(client, key)
    await _through_the_form(client)

    captured = capfd.readouterr()
    logs = log_stream.getvalue() + captured.out + captured.err
    assert logs.count("http_request_handled") >= 9, "the request log was not captured"
    assert "callback_request_received" in logs
    exposition = generate_latest(metrics.registry).decode()
    assert 'source="web"' in exposition
    assert 'source="api"' in exposition
    for canary in (NAME, "Canarynaam", *PHONE_DIGITS, EMAIL, "zyxwvu", NOTE, secret):
        assert canary not in logs, f"{canary!r} appears in a log line"
        assert canary not in exposition, f"{canary!r} appears in the metrics"
    assert CLIENT_IP not in logs, "the client's address appears in a log line"
    assert CLIENT_IP not in exposition
