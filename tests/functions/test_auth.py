"""Authentication with the real key store and Redis cache, and with each of them failing."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from functions.auth import Authenticator, cache_key
from functions.db import Database
from functions.errors import AuthenticationFailed, DependencyUnavailable
from functions.keys import KeyStore, hash_key


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[KeyStore]:
    db = Database(postgres_url, min_size=0, max_size=2)
    yield KeyStore(db)
    await db.aclose()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


async def new_key(store: KeyStore, **kw: object) -> tuple[str, str]:
    rec, key = await store.create("auth-" + uuid.uuid4().hex[:6], **kw)  # type: ignore[arg-type]
    return str(rec.key_id), key


async def test_valid_key_is_cached(store: KeyStore, redis: Redis) -> None:
    key_id, key = await new_key(store)
    auth = Authenticator(store, redis, 60)
    p = await auth.authenticate(f"Bearer {key}")
    assert p.key_id == key_id
    assert await redis.ttl(cache_key(hash_key(key))) > 0
    assert await auth.authenticate(f"bearer {key}") == p


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer ", "Bearer sk-llmp-wrong"])
async def test_rejected_headers(store: KeyStore, redis: Redis, header: str | None) -> None:
    with pytest.raises(AuthenticationFailed):
        await Authenticator(store, redis, 60).authenticate(header)


async def test_revoked_key_is_refused_once_forgotten(store: KeyStore, redis: Redis) -> None:
    key_id, key = await new_key(store)
    auth = Authenticator(store, redis, 60)
    await auth.authenticate(f"Bearer {key}")
    await auth.forget(await store.revoke(uuid.UUID(key_id)))
    with pytest.raises(AuthenticationFailed):
        await auth.authenticate(f"Bearer {key}")


async def test_expired_key_is_refused(store: KeyStore, redis: Redis) -> None:
    _, key = await new_key(store, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with pytest.raises(AuthenticationFailed):
        await Authenticator(store, redis, 60).authenticate(f"Bearer {key}")


async def test_redis_down_falls_back_to_postgres(store: KeyStore, dead_url: str) -> None:
    _, key = await new_key(store)
    port = dead_url.rsplit(":", 1)[1]
    down = Redis.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=0.2,
                          socket_timeout=0.2)
    p = await Authenticator(store, down, 60).authenticate(f"Bearer {key}")
    assert p.tenant.startswith("auth-")
    await down.aclose()


async def test_postgres_down_is_503(redis: Redis, dead_url: str) -> None:
    port = dead_url.rsplit(":", 1)[1]
    db = Database(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout_s=1)
    with pytest.raises(DependencyUnavailable):
        await Authenticator(KeyStore(db), redis, 60).authenticate("Bearer sk-llmp-unknown-key")
    await db.aclose()


async def test_works_without_a_cache(store: KeyStore) -> None:
    _, key = await new_key(store)
    auth = Authenticator(store, None, 60)
    assert (await auth.authenticate(f"Bearer {key}")).tenant.startswith("auth-")
    assert await auth.forget(b"x")


async def test_forget_reports_an_unreachable_cache(store: KeyStore, dead_url: str) -> None:
    port = dead_url.rsplit(":", 1)[1]
    down = Redis.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=0.2)
    assert not await Authenticator(store, down, 60).forget(b"x")
    await down.aclose()
