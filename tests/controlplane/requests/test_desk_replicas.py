"""An admin's change of the desk (topics, opening hours) on one control-plane
process reaches the others at once: their forms offer the new topic and their
validation takes it, with one database and one real Redis."""

from __future__ import annotations

import dataclasses

from beeldbel.config import RedisConfig
from controlplane.app.factory import create_app
from controlplane.requests import DESK, topics_to_json
from controlplane.storage.database import DB
from tests.helpers import wait_for


async def test_a_new_topic_on_one_replica_is_offered_by_the_other(
    aiohttp_client, make_config, db_url, redis_url
):
    config = dataclasses.replace(make_config(db_url), redis=RedisConfig(url=redis_url))
    a = await aiohttp_client(create_app(config))
    b = await aiohttp_client(create_app(config))
    desk_a = a.app[DESK]
    topics = [
        *topics_to_json(desk_a.current.topics),
        {"code": "lost_property", "nl": "Gevonden voorwerpen", "en": "Lost property"},
    ]
    await desk_a.update(a.app[DB], "topics", topics)

    def b_knows_it() -> bool:
        return b.app[DESK].topic("lost_property") is not None

    await wait_for(b_knows_it, 10, "replica B never heard of the new topic")
    form = await (await b.get("/")).text()
    assert "Gevonden voorwerpen" in form
