"""Numeric ids in paths are ASCII digits: other Unicode digits (``²``, Arabic-Indic
``٣``) are a 404, never a 500 or an action on the request they stand for."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from aiohttp import web

from controlplane.app.factory import create_app
from controlplane.requests import get_request
from controlplane.storage.database import DB
from controlplane.storage.schema import call_records
from tests.controlplane.video_calls import (
    JSON,
    call_config,
    claim,
    claimed,
    video_request,
)
from tests.helpers import csrf_from


@pytest.fixture
async def call_client(aiohttp_client, make_config, sqlite_url, media):
    config = call_config(make_config, sqlite_url, str(media.make_url("")))
    return await aiohttp_client(create_app(config))


def test_every_numeric_id_in_a_route_takes_ascii_digits_only(config):
    app = create_app(config)
    checked = 0
    for resource in app.router.resources():
        if not isinstance(resource, web.DynamicResource):
            continue
        pattern = resource.get_info()["pattern"].pattern
        for name, regex in re.findall(r"\(\?P<(\w+)>(.*?)\)(?:/|\\Z|$)", pattern):
            if name in ("id", "record_id"):
                checked += 1
                assert regex == "[0-9]+", f"{resource.canonical}: {regex}"
    assert checked > 10


async def test_non_ascii_digits_in_ids_are_a_404(call_client, media):
    client = call_client
    await claimed(client)
    await video_request(client)
    third = await video_request(client)
    page = await client.get(f"/staff/requests/{third}")
    token = csrf_from(await page.text())
    await claim(client, third, token)
    assert third == 3

    # "²" is a digit to str.isdigit but not to int()
    survey = await client.get("/staff/gesprekken/%C2%B2/enquete", headers=JSON)
    assert survey.status == 404
    # "٣" is ARABIC-INDIC DIGIT THREE: int() reads it as 3
    for path in ("/staff/requests/%D9%A3/video", "/staff/requests/%D9%A3/release"):
        response = await client.post(
            path, data={"csrf_token": token}, headers=JSON, allow_redirects=False
        )
        assert response.status == 404, path
    assert (await client.get("/staff/requests/%D9%A3", headers=JSON)).status == 404
    async with client.app[DB].read() as conn:
        calls = await conn.execute(
            sa.select(call_records.c.id).where(call_records.c.request_id == third)
        )
        assert calls.all() == []
    assert (await get_request(client.app[DB], third)).claimed_by is not None
