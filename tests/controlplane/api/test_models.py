"""The OpenAPI document is generated from the models the handlers use: every
route is in it, every operation has a tag and whole examples, the examples fit
their models, and the models name the same values as the domain."""

from __future__ import annotations

from typing import Any, get_args

import pytest
from pydantic import BaseModel, ConfigDict

from controlplane.api import examples, models, openapi
from controlplane.api.openapi import OPERATIONS, document
from controlplane.api.problems import Problem
from controlplane.api.webhook_events import WebhookEvent
from controlplane.app.factory import create_app
from controlplane.requests import (
    ACCESSIBILITY_NEEDS,
    CHANNELS,
    LANGUAGES,
    PREFERRED,
    State,
)
from controlplane.webhooks import CALL_EVENTS, CALLBACK_EVENTS


def test_literal_types_name_the_domains_values():
    assert get_args(models.Channel) == CHANNELS
    assert get_args(models.Language) == LANGUAGES
    assert get_args(models.Preferred) == PREFERRED
    assert get_args(models.Need) == ACCESSIBILITY_NEEDS
    assert get_args(models.StateName) == tuple(s.value for s in State)


@pytest.mark.parametrize(
    ("model", "example"),
    [
        (models.CallbackCreate, examples.CREATE_EXAMPLE),
        (models.Callback, examples.CALLBACK_EXAMPLE),
        (models.CallbackPage, examples.CALLBACK_PAGE_EXAMPLE),
        (models.TopicList, {"items": [examples.TOPIC_EXAMPLE]}),
        (models.SlotList, examples.SLOTS_EXAMPLE),
        (models.CallTokenRequest, examples.CALL_TOKEN_REQUEST_EXAMPLE),
        (models.CallToken, examples.CALL_TOKEN_EXAMPLE),
        (Problem, examples.VALIDATION_PROBLEM_EXAMPLE),
    ],
)
def test_examples_fit_their_models(model: type[BaseModel], example: dict[str, Any]):
    model.model_validate(example)


def test_every_operation_has_tags_and_whole_examples():
    doc = document()
    tags = {tag["name"] for tag in doc["tags"]}
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            where = f"{method} {path}"
            assert set(operation["tags"]) <= tags, where
            for parameter in operation.get("parameters", []):
                assert "example" in parameter, f"{where} {parameter['name']}"
                assert parameter["schema"].get("default", "") is not None, where
            body = operation.get("requestBody", {}).get("content", {})
            for media in body.values():
                assert "example" in media, where
            for status, response in operation["responses"].items():
                for media in response.get("content", {}).values():
                    if path.endswith("openapi.json"):
                        continue
                    assert "example" in media, f"{where} {status}"
            if operation.get("security") != []:
                assert "401" in operation["responses"], where
                assert operation["responses"]["401"]["content"].keys() == {
                    "application/problem+json"
                }, where


def test_the_document_is_openapi_3_1_with_a_webhooks_section():
    doc = document()
    assert doc["openapi"] == "3.1.0"
    assert "webhooks" in doc
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    schemas = doc["components"]["schemas"]
    assert {"CallbackCreate", "Callback", "Problem", "FieldProblem"} <= set(schemas)
    # the request schema is the model's own, refusing unknown members
    assert schemas["CallbackCreate"]["additionalProperties"] is False
    assert set(schemas["CallbackCreate"]["required"]) >= {"name", "phone", "consent"}


def test_every_api_route_is_documented(make_config, sqlite_url):
    app = create_app(make_config(sqlite_url))
    routes = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.resource.canonical.startswith("/api/v1/")
        and route.method != "HEAD"
    }
    documented = {
        (method, path) for path, item in document()["paths"].items() for method in item
    }
    assert routes == documented
    assert len(OPERATIONS) == len(documented) - 1  # and the document itself


def test_a_webhook_event_appears_under_webhooks_with_its_example(monkeypatch):
    """The place the webhooks package fills: one WebhookEvent, one entry."""

    class CallbackCreated(BaseModel):
        model_config = ConfigDict(json_schema_extra={"examples": [{"type": "x"}]})
        type: str

    event = WebhookEvent("callback.created", "A request was made.", CallbackCreated)
    monkeypatch.setattr(openapi, "WEBHOOK_EVENTS", (event,))
    doc = openapi.document.__wrapped__()
    post = doc["webhooks"]["callback.created"]["post"]
    media = post["requestBody"]["content"]["application/json"]
    assert media["schema"] == {"$ref": "#/components/schemas/CallbackCreated"}
    assert media["example"] == {"type": "x"}
    assert "CallbackCreated" in doc["components"]["schemas"]


def test_every_webhook_event_is_documented_with_its_example():
    webhooks = document()["webhooks"]
    assert list(webhooks) == [*CALLBACK_EVENTS, *CALL_EVENTS]
    schemas = document()["components"]["schemas"]
    for name, item in webhooks.items():
        media = item["post"]["requestBody"]["content"]["application/json"]
        assert media["example"]["type"] == name
        assert media["schema"]["$ref"].rsplit("/", 1)[1] in schemas
        assert set(item["post"]["tags"]) <= {tag["name"] for tag in document()["tags"]}
        headers = {p["name"] for p in item["post"]["parameters"]}
        assert headers == {"webhook-id", "webhook-timestamp", "webhook-signature"}
