"""Metrics: intake counters, queue depth by state and HTTP latency, as scraped."""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from beeldbel.config import SecurityConfig
from controlplane.app.factory import create_app, create_metrics_app
from controlplane.base.metrics import Metrics
from controlplane.requests.metrics_refresh import refresh_queue_depth
from controlplane.security.api_keys import create_api_key
from controlplane.storage.database import DB
from tests.controlplane.sample_requests import VALID


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def _scrape(aiohttp_client: Any, app: Any, metrics: Metrics) -> Any:
    async def refresh() -> None:
        await refresh_queue_depth(app[DB], metrics)

    scraper = await aiohttp_client(create_metrics_app(metrics, refresh))
    response = await scraper.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return _samples(await response.text())


async def test_scrape_shows_intake_queue_depth_and_latency(
    db_url, make_config, aiohttp_client
):
    metrics = Metrics()
    client = await aiohttp_client(create_app(make_config(db_url), metrics=metrics))
    app = client.server.app
    key = await create_api_key(app[DB], "crm", ("callbacks:write",))
    auth = {"Authorization": f"Bearer {key}"}
    locations = []
    for channel in ("video", "video", "phone"):
        response = await client.post(
            "/api/v1/callbacks", json={**VALID, "channel": channel}, headers=auth
        )
        assert response.status == 201
        locations.append(response.headers["Location"])
    cancelled = await client.post(locations[0] + "/cancel", headers=auth)
    assert cancelled.status == 200

    samples = await _scrape(aiohttp_client, app, metrics)

    def value(name: str, **labels: str) -> Any:
        return samples.get((name, frozenset(labels.items())))

    received = "beeldbel_callback_requests_received_total"
    common = {"topic": "report_crime", "source": "api"}
    assert value(received, channel="video", **common) == 2
    assert value(received, channel="phone", **common) == 1
    depth = "beeldbel_callback_queue_depth"
    assert value(depth, state="new") == 2
    assert value(depth, state="cancelled") == 1
    assert value(depth, state="completed") == 0
    outcome = "beeldbel_callback_outcomes_total"
    cancelled_video = {"state": "cancelled", "outcome": "cancelled_by_api"}
    assert value(outcome, channel="video", **cancelled_video) == 1
    latency = "beeldbel_http_request_duration_seconds_count"
    route = {"route": "/api/v1/callbacks", "method": "POST"}
    assert value(latency, status="201", **route) == 3
    buckets = [
        labels
        for (name, labels) in samples
        if name == "beeldbel_http_request_duration_seconds_bucket"
    ]
    assert buckets


async def test_rate_limited_and_refused_requests_are_counted(
    sqlite_url, make_config, aiohttp_client
):
    metrics = Metrics()
    config = make_config(sqlite_url, security=SecurityConfig(api_per_key_per_minute=1))
    client = await aiohttp_client(create_app(config, metrics=metrics))
    key = await create_api_key(client.server.app[DB], "crm", ("callbacks:read",))
    for _ in range(2):
        await client.get(
            "/api/v1/callbacks/BB-2222-2222", headers={"Authorization": f"Bearer {key}"}
        )
    await client.post("/api/v1/callbacks", json=VALID)
    samples = await _scrape(aiohttp_client, client.server.app, metrics)
    limited = (
        "beeldbel_http_rate_limited_total",
        frozenset({("limit", "api_per_key")}),
    )
    assert samples[limited] == 1
    unauthorized = (
        "beeldbel_http_request_duration_seconds_count",
        frozenset(
            {("route", "/api/v1/callbacks"), ("method", "POST"), ("status", "401")}
        ),
    )
    assert samples[unauthorized] == 1
