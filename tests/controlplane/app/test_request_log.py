"""The per-request log line and duration metric tell a client that went away
(e.g. an event stream being closed) from a server error."""

from __future__ import annotations

from controlplane.base.metrics import METRICS
from tests.controlplane.staff_accounts import sign_in
from tests.helpers import read_event, wait_for


def count(client, status: str) -> float:
    value = client.app[METRICS].registry.get_sample_value(
        "beeldbel_http_request_duration_seconds_count",
        {"route": "/staff/queue/events", "method": "GET", "status": status},
    )
    return value or 0.0


async def test_a_stream_the_client_closes_is_logged_as_499_not_500(client):
    await sign_in(client)
    stream = await client.get(
        "/staff/queue/events", headers={"Accept": "text/event-stream"}
    )
    assert stream.status == 200
    await read_event(stream, "rows")
    stream.close()
    await wait_for(lambda: count(client, "499") == 1, 10, "no 499 counted")
    assert count(client, "500") == 0
