"""Affinity pins: keyed by conversation, kept in Redis, a local table while Redis is down."""

from __future__ import annotations

import orjson
from redis.asyncio import Redis

from functions.protocol.chat import ChatCompletionRequest
from functions.routing.affinity import Affinity, affinity_key


def chat(messages: list[dict[str, str]], **extra: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.parse(orjson.dumps({"model": "m", "messages": messages, **extra}))


def test_the_key_follows_the_conversation_not_the_last_turn() -> None:
    sys_, u1 = {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}
    a1 = {"role": "assistant", "content": "Hello"}
    turn2 = chat([sys_, u1, a1, {"role": "user", "content": "Weather?"}])
    turn3 = chat([sys_, u1, a1, {"role": "user", "content": "Weather?"},
                  {"role": "assistant", "content": "Sunny"}, {"role": "user", "content": "And?"}])
    assert affinity_key(turn2, 3) == affinity_key(turn3, 3) is not None
    other = chat([sys_, {"role": "user", "content": "Bye"}, a1, u1])
    assert affinity_key(other, 3) != affinity_key(turn2, 3)
    assert affinity_key(chat([u1]), 3) is None  # a single turn is not pinned
    assert affinity_key(chat([u1], conversation_id="conv_1"), 3) == "c:conv_1"


async def test_pins_are_shared_and_per_tenant(redis_url: str) -> None:
    r1, r2 = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        one, two = Affinity(r1, 60), Affinity(r2, 60)
        await one.pin("t1", "alias", "k", "replica-b")
        assert await two.get("t1", "alias", "k") == "replica-b"
        assert await two.get("t2", "alias", "k") is None
    finally:
        await r1.aclose()
        await r2.aclose()


async def test_redis_down_uses_the_local_table(dead_url: str) -> None:
    port = dead_url.rsplit(":", 1)[1]
    r = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    try:
        a = Affinity(r, 60)
        await a.pin("t", "alias", "k", "replica-a")
        assert await a.get("t", "alias", "k") == "replica-a"
        assert a.failures == 2
    finally:
        await r.aclose()
