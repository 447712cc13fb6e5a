"""The control plane's Prometheus metrics, on an injected registry.

Labels are low-cardinality codes only: never a reference, a person or an address.
"""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

#: The survey questions answered on the 1-5 scale, by respondent.
SURVEY_QUESTIONS = (
    ("citizen", "ease"),
    ("citizen", "av_quality"),
    ("employee", "quality"),
)
SURVEY_CHANNELS = ("video", "phone")
_SCORES = (1, 2, 3, 4, 5)


class SurveyScores(Collector):
    """Survey answers as a histogram by channel, respondent and question, from
    counts the control plane reads from the call records at each scrape (the
    stored answers, so every process shows them all, also after a restart).
    Every series is there from the start, at 0, so a first answer is an increase.
    """

    def __init__(self) -> None:
        #: (channel, respondent, question) → {score: answers}
        self.counts: dict[tuple[str, str, str], dict[int, int]] = {}

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "beeldbel_survey_answer_score",
            "Survey answers on the 1-5 scale, by channel, respondent and question"
            " (all stored answers: the same on every control plane).",
            labels=["channel", "respondent", "question"],
        )
        for channel in SURVEY_CHANNELS:
            for respondent, question in SURVEY_QUESTIONS:
                by_score = self.counts.get((channel, respondent, question), {})
                buckets: list[tuple[str, float]] = []
                running = 0
                for score in _SCORES:
                    running += by_score.get(score, 0)
                    buckets.append((str(float(score)), running))
                buckets.append(("+Inf", running))
                total = sum(score * n for score, n in by_score.items())
                family.add_metric([channel, respondent, question], buckets, total)
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        # a _created series per counter and histogram only doubles what a
        # dashboard has to skip (a process-wide switch of prometheus_client)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # CPU, memory, open files of this process (process_*)
        ProcessCollector(registry=r)
        self.event_bus_connected = Gauge(
            "beeldbel_event_bus_connected",
            "1 while this process's event bus reaches Redis (always 1 without it):"
            " at 0, consoles and call pages on other processes hear of changes"
            " only at their next heartbeat.",
            registry=r,
        )
        self.requests_received = Counter(
            "beeldbel_callback_requests_received_total",
            "Callback requests received, by channel, topic and source.",
            ["channel", "topic", "source"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "beeldbel_callback_queue_depth",
            "Callback requests by state (refreshed at each scrape).",
            ["state"],
            registry=r,
        )
        # read from the database at each scrape, like queue_depth
        self.oldest_wait = Gauge(
            "beeldbel_callback_oldest_wait_seconds",
            "How long the oldest request that is due and not yet claimed waits.",
            registry=r,
        )
        self.desk_open = Gauge(
            "beeldbel_desk_open",
            "1 within the desk's opening hours (in its time zone), else 0.",
            registry=r,
        )
        self.staff_online = Gauge(
            "beeldbel_staff_online",
            "Staff members with a live session (not expired, not idle too long).",
            registry=r,
        )
        self.time_to_first_attempt = Histogram(
            "beeldbel_callback_time_to_first_attempt_seconds",
            "From the moment a request was due to the first callback attempt.",
            buckets=(30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 86400),
            registry=r,
        )
        self.outcomes = Counter(
            "beeldbel_callback_outcomes_total",
            "Closed callback requests by final state, outcome code and the channel"
            " (video or phone) they ended on.",
            ["state", "outcome", "channel"],
            registry=r,
        )
        self.http_duration = Histogram(
            "beeldbel_http_request_duration_seconds",
            "HTTP request latency by route pattern, method and status.",
            ["route", "method", "status"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r,
        )
        self.rate_limited = Counter(
            "beeldbel_http_rate_limited_total",
            "Requests refused by a rate limit, by limit name.",
            ["limit"],
            registry=r,
        )
        self.rate_limit_store_failures = Counter(
            "beeldbel_rate_limit_store_failures_total",
            "Rate-limit checks counted in process memory because Redis failed.",
            registry=r,
        )
        self.logins = Counter(
            "beeldbel_staff_logins_total",
            "Staff login steps by result.",
            ["result"],
            registry=r,
        )
        # per media node, refreshed by each control plane's node sweep (1 s);
        # the node id is the only label (a configured, short list)
        self.media_node_rooms = Gauge(
            "beeldbel_media_node_rooms",
            "Open calls plus rooms being placed, by media node.",
            ["node"],
            registry=r,
        )
        self.media_node_capacity = Gauge(
            "beeldbel_media_node_capacity",
            "Rooms the media node accepts at most.",
            ["node"],
            registry=r,
        )
        self.media_node_draining = Gauge(
            "beeldbel_media_node_draining",
            "1 while the media node drains (takes no new rooms) before it stops.",
            ["node"],
            registry=r,
        )
        self.media_node_up = Gauge(
            "beeldbel_media_node_up",
            "1 while the media node is up (heartbeats arrive or never started).",
            ["node"],
            registry=r,
        )
        # page and kind come from fixed lists (controlplane.calls.client_errors)
        self.client_errors = Counter(
            "beeldbel_client_errors_total",
            "Errors the pages' scripts reported (POST /gesprek/fout), by page and"
            " kind: failures a browser would otherwise swallow.",
            ["page", "kind"],
            registry=r,
        )
        # via: email, sms or none; result: sent, failed or skipped (none configured)
        self.confirmations = Counter(
            "beeldbel_confirmations_total",
            "Confirmations of new requests to citizens, by way and result.",
            ["via", "result"],
            registry=r,
        )
        # video calls: outcomes, switch reasons and device parts are fixed codes
        self.calls_started = Counter(
            "beeldbel_calls_started_total",
            "Video calls started (a room opened for a request).",
            registry=r,
        )
        self.calls_ended = Counter(
            "beeldbel_calls_ended_total",
            "Video calls ended, by outcome (completed, switched_to_phone, media_lost).",
            ["outcome"],
            registry=r,
        )
        self.call_duration = Histogram(
            "beeldbel_call_duration_seconds",
            "From the start of a video call to its end.",
            buckets=(30, 60, 120, 300, 600, 900, 1200, 1800, 2700, 3600, 7200),
            registry=r,
        )
        self.lobby_wait = Histogram(
            "beeldbel_call_lobby_wait_seconds",
            "A citizen's wait in the waiting room until the employee let them in.",
            buckets=(5, 10, 20, 30, 60, 120, 180, 300, 600, 900, 1800),
            registry=r,
        )
        self.join_to_first_picture = Histogram(
            "beeldbel_call_join_to_first_picture_seconds",
            "From joining a call to the first picture, as the browser measured it"
            " (the first report of each call).",
            buckets=(0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30),
            registry=r,
        )
        self.switches_to_phone = Counter(
            "beeldbel_call_switches_to_phone_total",
            "Video calls the employee turned into a phone call, by reason.",
            ["reason"],
            registry=r,
        )
        self.device_check_failures = Counter(
            "beeldbel_call_device_check_failures_total",
            "Failed parts of citizens' device checks, by kind (camera, microphone,"
            " speaker, connection).",
            ["kind"],
            registry=r,
        )
        self.survey_scores = SurveyScores()
        r.register(self.survey_scores)
        self.purged = Counter(
            "beeldbel_retention_purged_requests_total",
            "Callback requests whose personal data was erased.",
            registry=r,
        )
        self.purge_last_run = Gauge(
            "beeldbel_retention_last_run_timestamp_seconds",
            "When the purge of personal data last ran to the end (Unix time).",
            registry=r,
        )

        self.webhook_deliveries = Counter(
            "beeldbel_webhook_deliveries_total",
            "Tries to deliver a webhook, by outcome (delivered, retried,"
            " dead_lettered).",
            ["outcome"],
            registry=r,
        )
        self.webhook_delivery_duration = Histogram(
            "beeldbel_webhook_delivery_duration_seconds",
            "How long one try to deliver a webhook took (connect, send, answer).",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.webhook_outbox = Gauge(
            "beeldbel_webhook_outbox_messages",
            "Webhook deliveries in the outbox, by state (pending, dead).",
            ["state"],
            registry=r,
        )
        self.webhook_oldest_pending = Gauge(
            "beeldbel_webhook_outbox_oldest_pending_seconds",
            "Age of the oldest webhook not yet delivered (0 when none).",
            registry=r,
        )


METRICS = web.AppKey("metrics", Metrics)
