"""Breaker and drain state shared through a real Redis; Redis down: the local view, no failure."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from functions.errors import DependencyUnavailable
from functions.routing.shared import SharedState


async def test_two_instances_see_an_open_breaker_and_a_drain(redis_url: str) -> None:
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        one, two = SharedState(a), SharedState(b)
        await one.opened("shared-x", 2.0)
        await one.set_drained("shared-y", True)
        got = await two.read(["shared-x", "shared-y"])
        assert got is not None
        opened, drained = got
        assert 1.0 < opened["shared-x"] <= 2.0 and "shared-y" not in opened
        assert "shared-y" in drained
        await two.closed("shared-x")
        await two.set_drained("shared-y", False)
        got = await one.read(["shared-x", "shared-y"])
        assert got == ({}, set())
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_down_reads_none_and_a_drain_is_refused(dead_url: str) -> None:
    port = dead_url.rsplit(":", 1)[1]
    r = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    try:
        s = SharedState(r)
        assert await s.read(["x"]) is None
        await s.opened("x", 1.0)  # logged and counted, not raised
        assert s.failures == 2
        with pytest.raises(DependencyUnavailable):
            await s.set_drained("x", True)
    finally:
        await r.aclose()
