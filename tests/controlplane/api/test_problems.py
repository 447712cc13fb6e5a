"""Every /api/v1 error is RFC 9457 problem details, with the old ``error`` object
kept inside for clients written against it; pages keep their own errors."""

from __future__ import annotations

from typing import Any

import pytest

from controlplane.api.problems import PROBLEM_TYPES, problem_type
from controlplane.app.factory import create_app
from controlplane.security.api_keys import create_api_key
from controlplane.storage.database import DB
from tests.controlplane.sample_requests import VALID

PROBLEM = "application/problem+json"


async def _problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json()
    assert body["type"] == f"/api/v1/problems/{code}"
    assert body["status"] == status
    assert body["title"] == PROBLEM_TYPES[code].title
    assert body["detail"]
    assert body["instance"] == response.url.path
    assert body["error"]["code"] == code
    assert body["error"]["message"] == body["detail"]
    return body


@pytest.fixture
async def api(sqlite_url, make_config, aiohttp_client):
    client = await aiohttp_client(create_app(make_config(sqlite_url)))
    client.key = await create_api_key(
        client.server.app[DB], "crm", ("callbacks:write", "callbacks:read")
    )
    return client


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_routing_and_key_errors_are_problems(api):
    await _problem(await api.get("/api/v1/nothing"), 404, "not_found")
    wrong = await api.delete("/api/v1/callbacks")
    await _problem(wrong, 405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]
    no_key = await api.post("/api/v1/callbacks", json=VALID)
    await _problem(no_key, 401, "unauthorized")
    assert no_key.headers["WWW-Authenticate"].startswith("Bearer")
    unknown = await api.get("/api/v1/callbacks/BB-2222-2222", headers=_auth(api.key))
    await _problem(unknown, 404, "not_found")


async def test_body_errors_are_problems(api):
    headers = {**_auth(api.key), "Content-Type": "application/json"}
    await _problem(
        await api.post("/api/v1/callbacks", data=b"{no", headers=headers),
        400,
        "bad_request",
    )
    text = {**_auth(api.key), "Content-Type": "text/plain"}
    await _problem(
        await api.post("/api/v1/callbacks", data=b"{}", headers=text),
        415,
        "unsupported_media_type",
    )


async def test_validation_errors_point_at_each_field(api):
    body = {**VALID, "name": 5, "colour": "red", "accessibility": ["x"]}
    del body["consent"]
    response = await api.post("/api/v1/callbacks", json=body, headers=_auth(api.key))
    problem = await _problem(response, 422, "validation_failed")
    by_pointer = {e["pointer"]: e for e in problem["errors"]}
    assert set(by_pointer) == {"#/name", "#/colour", "#/accessibility/0", "#/consent"}
    assert by_pointer["#/name"]["code"] == "wrong_type"
    assert by_pointer["#/colour"]["code"] == "unknown_field"
    assert by_pointer["#/consent"]["code"] == "required"
    assert by_pointer["#/accessibility/0"]["code"] == "not_allowed"
    assert all(e["detail"] for e in problem["errors"])
    # the old shape: field name to message
    assert set(problem["error"]["details"]) == {
        "name",
        "colour",
        "accessibility",
        "consent",
    }


async def test_form_rule_errors_point_at_their_fields(api):
    body = {**VALID, "phone": "0900-1234567", "topic": "nope"}
    response = await api.post("/api/v1/callbacks", json=body, headers=_auth(api.key))
    problem = await _problem(response, 422, "validation_failed")
    assert {(e["pointer"], e["code"]) for e in problem["errors"]} == {
        ("#/phone", "invalid"),
        ("#/topic", "invalid"),
    }


async def test_pages_keep_their_html_errors(api):
    response = await api.get("/nope?lang=en")
    assert response.status == 404
    assert response.content_type == "text/html"


def test_every_problem_type_has_a_title_and_a_stable_uri():
    for code, kind in PROBLEM_TYPES.items():
        assert kind.title
        assert problem_type(code) == f"/api/v1/problems/{code}"
