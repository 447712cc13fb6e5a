"""The webhook events the OpenAPI document lists under ``webhooks:``.

The one place where the document learns of webhooks: each
:class:`WebhookEvent` names an event type (``callback.created``…), says in a
line when it is sent, and gives the pydantic model of its body, whose
``json_schema_extra`` holds one whole example (as every model in
:mod:`controlplane.api.models` does). They come from the webhooks package's own
models (:data:`controlplane.webhooks.EVENT_MODELS`), which its tests hold
against what it sends, so the document cannot drift from the events.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from controlplane.webhooks import EVENT_MODELS


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    name: str
    summary: str
    payload: type[BaseModel]


#: Every event type an endpoint may subscribe to, in the order docs list them.
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = tuple(
    WebhookEvent(name, summary, payload) for name, summary, payload in EVENT_MODELS
)
