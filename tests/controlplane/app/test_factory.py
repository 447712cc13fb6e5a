"""The app starts on both databases, and errors are clear pages with safe headers."""

from __future__ import annotations


async def test_unknown_route_is_a_clear_404(client):
    response = await client.get("/does-not-exist")
    assert response.status == 404
    text = await response.text()
    assert "Deze pagina bestaat niet" in text
    assert "<title>Pagina niet gevonden" in text
    assert "<h1>Pagina niet gevonden</h1>" in text
    assert "Traceback" not in text
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"


async def test_the_favicon_is_linked_and_served(client):
    page = await (await client.get("/")).text()
    assert 'rel="icon" type="image/svg+xml" href="/static/favicon.svg' in page
    icon = await client.get("/favicon.ico")  # follows the redirect
    assert icon.status == 200
    assert icon.headers["Content-Type"] == "image/svg+xml"
    assert (await icon.read()).startswith(b"<svg")


async def test_unknown_api_route_is_json(client):
    response = await client.get("/api/v1/nothing")
    assert response.status == 404
    body = await response.json()
    assert body["error"]["code"] == "not_found"


async def test_english_error_page(client):
    response = await client.get("/nope?lang=en")
    text = await response.text()
    assert "This page does not exist" in text
    assert "<h1>Page not found</h1>" in text
