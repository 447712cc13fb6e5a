"""Sliding-window rate limits on an injected clock: when they refuse, how long
they say to wait, and that access comes back once the window has passed."""

from __future__ import annotations

import pytest

from controlplane.base.errors import RateLimited
from controlplane.security.ratelimit import RateLimit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_limit_refuses_with_the_time_left_and_lets_in_after_the_window():
    clock = Clock()
    limit = RateLimit("test", 2, 60, clock=clock)
    limit.hit("a")
    clock.now += 20
    limit.hit("a")
    with pytest.raises(RateLimited) as refused:
        limit.hit("a")
    assert refused.value.retry_after == 40  # the first event leaves the window then
    limit.hit("b")  # keys are counted apart
    clock.now += 39.5
    with pytest.raises(RateLimited) as refused:
        limit.hit("a")
    assert refused.value.retry_after == 1
    clock.now += 0.5  # the first event is 60 s old now
    limit.hit("a")
    with pytest.raises(RateLimited):
        limit.hit("a")


def test_refused_attempts_do_not_extend_the_wait():
    clock = Clock()
    limit = RateLimit("test", 1, 10, clock=clock)
    limit.hit()
    for _ in range(5):
        clock.now += 1
        with pytest.raises(RateLimited):
            limit.hit()
    clock.now += 5
    limit.hit()
