"""What follows a newly stored request, however it came in (web form, phone line,
API): it is counted, open staff consoles are told, and the citizen is sent a
confirmation (:mod:`controlplane.requests.confirmations`)."""

from __future__ import annotations

import structlog
from aiohttp import web

from controlplane.base.metrics import METRICS
from controlplane.requests.callbacks import Created, NewRequest
from controlplane.requests.confirmations import CONFIRMATIONS
from controlplane.requests.live import QUEUE_EVENTS

log = structlog.get_logger()


def announce_new_request(
    app: web.Application, new: NewRequest, created: Created
) -> None:
    """Count, log, push to consoles and confirm a newly stored request; a repeated
    submission (``created.created`` false) is none of these."""
    if not created.created:
        return
    app[METRICS].requests_received.labels(new.channel, new.topic, new.source).inc()
    app[QUEUE_EVENTS].publish()
    app[CONFIRMATIONS].send(created.row)
    log.info(
        "callback_request_received",
        channel=new.channel,
        topic=new.topic,
        source=new.source,
    )
