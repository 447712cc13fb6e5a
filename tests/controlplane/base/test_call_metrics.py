"""Metrics of video calls (issue 12), counted along a real call: the control plane
over HTTP, an in-process media node and a real SMTP server on loopback; read
from the app's registry. Labels carry codes only, never a room or a person."""

from __future__ import annotations

import re

import pytest
from prometheus_client import generate_latest

from controlplane.app.factory import create_app
from controlplane.base.metrics import Metrics
from controlplane.calls import refresh_survey_scores
from controlplane.storage.database import DB
from tests.controlplane.video_calls import (
    Client,
    Guest,
    call_config,
    claim,
    claimed,
    record_of,
    staff_json,
    start,
    video_request,
)
from tests.helpers import wait_for

_LINK = re.compile(r"https?://\S+/gesprek#t=[A-Za-z0-9_-]+")


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def client(aiohttp_client, make_config, sqlite_url, media, smtp, metrics):
    config = call_config(make_config, sqlite_url, str(media.make_url("")), smtp[1])
    return await aiohttp_client(create_app(config, metrics=metrics))


def value(metrics: Metrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


async def citizen_in(client: Client, smtp) -> Guest:
    """The citizen's browser, in with the join link of the e-mail to them."""
    mailbox, _port = smtp

    def link() -> str | None:
        for _from, _to, message in mailbox.messages:
            body = message.get_body(("plain",)).get_content()
            if match := _LINK.search(body):
                return match.group(0)
        return None

    await wait_for(link, message="the e-mail with the join link")
    citizen = Guest(client)
    opened = await citizen.open(str(link()))
    assert opened.status == 200, await opened.text()
    return citizen


async def progress(citizen: Guest, step: str, *failed: str) -> None:
    sent = await citizen.post("/gesprek/voortgang", {"step": step, "failed": failed})
    assert sent.status == 204, await sent.text()


async def quality(citizen: Guest, first_picture_ms: int) -> None:
    body = {"join_to_first_picture_ms": first_picture_ms, "connection_type": "direct"}
    assert (await citizen.post("/gesprek/kwaliteit", body)).status == 204


async def test_a_call_switched_to_phone_is_counted_step_by_step(client, smtp, metrics):
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token, send_email="1")
    assert value(metrics, "beeldbel_calls_started_total") == 1

    citizen = await citizen_in(client, smtp)
    try:
        await progress(citizen, "device_check_failed", "camera", "microphone")
        await progress(citizen, "device_check_failed", "camera")
        failures = "beeldbel_call_device_check_failures_total"
        assert value(metrics, failures, kind="camera") == 2
        assert value(metrics, failures, kind="microphone") == 1
        assert value(metrics, failures, kind="speaker") == 0

        # the lobby: from "waiting" until the employee lets them in
        await progress(citizen, "device_check_passed")
        await progress(citizen, "waiting")
        assert value(metrics, "beeldbel_call_lobby_wait_seconds_count") == 0
        await progress(citizen, "in_call")
        assert value(metrics, "beeldbel_call_lobby_wait_seconds_count") == 1
        assert value(metrics, "beeldbel_call_lobby_wait_seconds_sum") < 5

        # the first report with a first picture counts, the repeats do not
        await quality(citizen, 1500)
        await quality(citizen, 1500)
        first = "beeldbel_call_join_to_first_picture_seconds"
        assert value(metrics, f"{first}_count") == 1
        assert value(metrics, f"{first}_sum") == 1.5

        path = f"/staff/gesprekken/{room_id}/naar-telefoon"
        switched = await staff_json(client, path, token, {"reason": "accessibility"})
        assert switched.status == 200, await switched.text()
    finally:
        await citizen.close()
    switches = "beeldbel_call_switches_to_phone_total"
    assert value(metrics, switches, reason="accessibility") == 1
    ended = "beeldbel_calls_ended_total"
    assert value(metrics, ended, outcome="switched_to_phone") == 1
    assert value(metrics, "beeldbel_call_duration_seconds_count") == 1
    assert 0 < value(metrics, "beeldbel_call_duration_seconds_sum") < 60


async def test_calls_ended_and_closed_requests_by_channel(client, smtp, metrics):
    """A call hung up counts as completed; a request closed after it counts by
    the channel it ended on (video here, phone after a switch)."""
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    ended = await staff_json(client, f"/staff/gesprekken/{room_id}/einde", token)
    assert ended.status == 200, await ended.text()
    assert value(metrics, "beeldbel_calls_ended_total", outcome="completed") == 1
    closed = await staff_json(
        client, f"/staff/gesprekken/{room_id}/afsluiten", token, {"result": "handled"}
    )
    assert closed.status == 200, await closed.text()
    outcomes = "beeldbel_callback_outcomes_total"
    labels = {"state": "completed", "outcome": "resolved"}
    assert value(metrics, outcomes, channel="video", **labels) == 1

    second = await video_request(client)
    await claim(client, second, token)
    room_id = await start(client, second, token)
    path = f"/staff/gesprekken/{room_id}/naar-telefoon"
    assert (await staff_json(client, path, token, {"reason": "other"})).status == 200
    page = await client.get(f"/staff/requests/{second}")
    assert page.status == 200
    closed = await client.post(
        f"/staff/requests/{second}/complete",
        data={"csrf_token": token, "outcome": "resolved"},
        allow_redirects=False,
    )
    assert closed.status == 303, await closed.text()
    assert value(metrics, outcomes, channel="phone", **labels) == 1
    assert value(metrics, "beeldbel_calls_started_total") == 2


async def test_no_created_series(client, metrics):
    """``_created`` series only double the families a dashboard has to skip."""
    await client.get("/healthz")
    assert b"_created" not in generate_latest(metrics.registry)


async def test_survey_answers_by_channel_respondent_and_question(client, metrics):
    """Read from the call records at each scrape, so every process shows all the
    answers, also after a restart; each series is there from the start (at 0),
    so the first answer counts as an increase."""
    await refresh_survey_scores(client.app[DB], metrics)
    score = "beeldbel_survey_answer_score"
    employee = {"channel": "video", "respondent": "employee", "question": "quality"}
    assert value(metrics, f"{score}_count", **employee) == 0
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    ended = await staff_json(client, f"/staff/gesprekken/{room_id}/einde", token)
    assert ended.status == 200, await ended.text()
    record = await record_of(client, room_id)
    answers = {"quality": "4", "case_handled": "partly", "would_use_again": "yes"}
    answered = await client.post(
        f"/staff/gesprekken/{record.id}/enquete",
        data={"csrf_token": token, **answers},
        allow_redirects=False,
    )
    assert answered.status == 303, await answered.text()

    await refresh_survey_scores(client.app[DB], metrics)
    assert value(metrics, f"{score}_count", **employee) == 1
    assert value(metrics, f"{score}_sum", **employee) == 4
    assert value(metrics, f"{score}_bucket", le="3.0", **employee) == 0
    assert value(metrics, f"{score}_bucket", le="4.0", **employee) == 1
    for channel, respondent, question in (
        ("video", "citizen", "ease"),
        ("phone", "citizen", "av_quality"),
        ("phone", "employee", "quality"),
    ):
        labels = {"channel": channel, "respondent": respondent, "question": question}
        assert value(metrics, f"{score}_count", **labels) == 0, labels
