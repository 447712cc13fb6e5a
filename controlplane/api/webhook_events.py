"""The webhook events the OpenAPI document lists under ``webhooks:``.

The one place where the document learns of webhooks: each
:class:`WebhookEvent` names an event type (``callback.created``…), says in a
line when it is sent, and gives the pydantic model of its payload, whose
``json_schema_extra`` holds one whole example (as every model in
:mod:`controlplane.api.models` does). :data:`WEBHOOK_EVENTS` is filled from the
webhooks package's own event models, so the document cannot drift from what is
sent; until then the section is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class WebhookEvent:
    name: str
    summary: str
    payload: type[BaseModel]


#: Every event type an endpoint may subscribe to, in the order docs list them.
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = ()
