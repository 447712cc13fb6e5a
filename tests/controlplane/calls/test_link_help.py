"""A citizen who asks for a new video link on their status page during a call:
the employee's call page hears it at once, as a step of the citizen's progress
(issue 11). Over HTTP against a real media node (in-process)."""

from __future__ import annotations

import pytest

from controlplane.app.factory import create_app
from controlplane.calls.live_state import CALLS
from controlplane.requests import get_request
from controlplane.requests.status_links import status_token
from controlplane.security.secrets_store import SECRET_KEY
from controlplane.storage.database import DB
from tests.controlplane.mail import smtp  # noqa: F401 (a fixture)
from tests.controlplane.video_calls import call_config, claimed, start
from tests.helpers import csrf_from


@pytest.fixture
async def client(aiohttp_client, make_config, sqlite_url, media, smtp):  # noqa: F811
    config = call_config(make_config, sqlite_url, str(media.make_url("")), smtp[1])
    return await aiohttp_client(create_app(config))


async def test_the_employee_hears_the_citizen_wants_a_new_link(client):
    app = client.server.app
    request_id, token = await claimed(client)
    room_id = await start(client, request_id, token)
    reference = (await get_request(app[DB], request_id)).reference
    path = f"/verzoek/{status_token(app[SECRET_KEY], reference)}"
    status = await client.get(path)
    html = await status.text()
    assert 'id="ask-link"' in html
    asked = await client.post(
        f"{path}/nieuwe-link",
        data={"csrf_token": csrf_from(html)},
        allow_redirects=False,
    )
    assert asked.status == 303
    history = await app[CALLS].events.history(room_id)
    steps = [e.data.get("step") for e in history if e.kind == "progress"]
    assert steps == ["link_help"]
    page = await (await client.get(f"/staff/gesprekken/{room_id}")).text()
    assert "vraagt om een nieuwe link" in page
