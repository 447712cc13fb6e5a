"""The server-to-server room API, probes and metrics."""

from __future__ import annotations

from beeldbel.config import Secret
from mediaserver.app import STATS
from tests.mediaserver.conftest import API_SECRET, create_room

AUTH = {"Authorization": f"Bearer {API_SECRET}"}


async def test_room_api_needs_the_bearer_secret(server):
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = await server.post(
            "/api/rooms", json={"room_id": "r"}, headers=headers
        )
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"


async def test_create_get_end_room(server):
    await create_room(server, "r1", video_codec="H264")
    response = await server.get("/api/rooms/r1", headers=AUTH)
    assert (await response.json())["video_codec"] == "H264"
    again = await server.post("/api/rooms", json={"room_id": "r1"}, headers=AUTH)
    assert again.status == 409
    assert (await server.delete("/api/rooms/r1", headers=AUTH)).status == 204
    assert (await server.get("/api/rooms/r1", headers=AUTH)).status == 404


async def test_unknown_codec_is_refused(server):
    response = await server.post(
        "/api/rooms", json={"room_id": "r", "video_codec": "AV1"}, headers=AUTH
    )
    assert response.status == 400


async def test_probes_and_metrics(server):
    assert (await server.get("/healthz")).status == 200
    assert (await server.get("/readyz")).status == 200
    text = await (await server.get("/metrics")).text()
    assert "beeldbel_media_rooms" in text
    assert "beeldbel_media_event_loop_lag_seconds" in text
    # the worker's own CPU and memory, for sizing and alerts
    assert "process_cpu_seconds_total" in text
    assert "process_resident_memory_bytes" in text
    # no _created series: they only double what a dashboard has to skip
    assert "_created" not in text


async def test_congestion_signals_are_counted(server):
    stats = server.app[STATS]
    stats.opus_fec, stats.transport_feedback = 7, 3
    stats.transport_feedback_in, stats.probes, stats.probe_packets = 5, 2, 40
    text = await (await server.get("/metrics")).text()
    assert 'beeldbel_media_fec_packets_total{codec="opus"} 7.0' in text
    for line in (
        'beeldbel_media_transport_feedback_total{direction="to_publisher"} 3.0',
        'beeldbel_media_transport_feedback_total{direction="from_subscriber"} 5.0',
        'beeldbel_media_downlink_probes_total{sent="probes"} 2.0',
        'beeldbel_media_downlink_probes_total{sent="padding_packets"} 40.0',
    ):
        assert line in text


async def test_metrics_secret_is_required_when_set(make_server):
    """With ``metrics_secret`` set, even localhost needs the bearer token."""
    server = await make_server(metrics_secret=Secret("metrics-secret-for-tests"))
    assert (await server.get("/metrics")).status == 401
    wrong = {"Authorization": "Bearer not-the-secret"}
    assert (await server.get("/metrics", headers=wrong)).status == 401
    right = {"Authorization": "Bearer metrics-secret-for-tests"}
    response = await server.get("/metrics", headers=right)
    assert response.status == 200
    assert "beeldbel_media_rooms" in await response.text()
