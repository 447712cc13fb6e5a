"""Moving-window rate limits (``limits``): when they refuse, how long they say to
wait, that access comes back after the window, and that on Redis several
control-plane processes share one count that concurrency cannot slip past."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from beeldbel.config import Config, RedisConfig
from controlplane.base.errors import RateLimited
from controlplane.security.ratelimit import LimitStore, RateLimit
from tests.helpers import wait_for


async def refused(limit: RateLimit, key: str = "") -> RateLimited | None:
    try:
        await limit.hit(key)
    except RateLimited as exc:
        return exc
    return None


async def test_the_limit_refuses_with_the_time_left_and_lets_in_after_the_window():
    limit = RateLimit("test", 2, 1, LimitStore())
    assert await refused(limit, "a") is None
    assert await refused(limit, "a") is None
    exc = await refused(limit, "a")
    assert exc is not None
    assert exc.retry_after == 1
    assert await refused(limit, "b") is None  # keys are counted apart

    async def lets_in() -> bool:
        return await refused(limit, "a") is None

    await wait_for(lets_in, 5, "the window never passed")


async def test_the_time_left_is_counted_from_the_oldest_event():
    limit = RateLimit("test", 1, 3600, LimitStore())
    await limit.hit()
    exc = await refused(limit)
    assert exc is not None
    assert 3590 <= exc.retry_after <= 3600


def redis_config(config: Config, url: str) -> Config:
    return dataclasses.replace(config, redis=RedisConfig(url=url))


async def test_two_processes_share_one_count_on_redis_under_concurrency(
    redis_url, make_config, sqlite_url
):
    config = redis_config(make_config(sqlite_url), redis_url)
    # two stores, as two control-plane processes would have
    stores = [LimitStore.from_config(config) for _ in range(2)]
    a, b = (RateLimit("login_per_ip", 10, 60, store) for store in stores)
    results = await asyncio.gather(
        *(refused(limit, "198.51.100.7") for limit in [a, b] * 25)
    )
    another = await refused(a, "another")
    for store in stores:
        await store.close()
    assert sum(r is None for r in results) == 10
    assert all(r.retry_after >= 1 for r in results if r is not None)
    assert another is None


async def test_redis_keys_hold_no_raw_address(redis_url, make_config, sqlite_url):
    import redis.asyncio as redis

    config = redis_config(make_config(sqlite_url), redis_url)
    store = LimitStore.from_config(config)
    await RateLimit("login_per_ip", 5, 60, store).hit("198.51.100.7")
    await store.close()
    client = redis.Redis.from_url(redis_url)
    keys = [k.decode() for k in await client.keys("*")]
    await client.aclose()
    assert keys
    assert all(k.startswith("beeldbel:limits") for k in keys), keys
    assert not [k for k in keys if "198.51.100.7" in k], keys


async def test_without_redis_each_process_still_limits_and_counts_the_failure(
    make_config, sqlite_url
):
    # nothing listens there: every check falls back to this process's memory
    config = redis_config(make_config(sqlite_url), "redis://127.0.0.1:9/0")
    store = LimitStore.from_config(config)
    seen: list[int] = []
    store.on_failure = lambda: seen.append(1)
    limit = RateLimit("login_per_ip", 2, 60, store)
    assert await refused(limit, "x") is None
    assert await refused(limit, "x") is None
    assert await refused(limit, "x") is not None
    await store.close()
    assert store.failures == 3
    assert len(seen) == 3


@pytest.mark.parametrize("url", ["http://redis:6379", "redis:6379", "tcp://x"])
def test_a_redis_url_of_another_scheme_is_refused(url):
    with pytest.raises(ValueError, match="redis://"):
        RedisConfig(url=url)
