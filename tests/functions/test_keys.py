from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from functions.db import Database
from functions.errors import InvalidRequest, NotFound
from functions.keys import KEY_PREFIX, KeyStore, hash_key


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[KeyStore]:
    db = Database(postgres_url, min_size=0, max_size=2)
    yield KeyStore(db)
    await db.aclose()


def tenant() -> str:
    return "t-" + uuid.uuid4().hex[:8]


async def test_create_lookup_revoke(store: KeyStore, postgres_url: str) -> None:
    name = tenant()
    rec, key = await store.create(name, name="ci")
    assert key.startswith(KEY_PREFIX) and len(key) > 40
    assert key.startswith(rec.prefix)
    found = await store.lookup(key)
    assert found is not None and found.tenant == name and found.revoked_at is None
    assert await store.lookup(key + "x") is None
    assert await store.revoke(rec.key_id) == hash_key(key)
    found = await store.lookup(key)
    assert found is not None and found.revoked_at is not None


async def test_only_the_hash_is_stored(store: KeyStore, postgres_url: str) -> None:
    _, key = await store.create(tenant())
    db = Database(postgres_url, min_size=0, max_size=1)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM api_keys WHERE key_hash = %s",
                                 (hash_key(key),))
        row = await cur.fetchone()
        assert row is not None and row[0] == 1
        cur = await conn.execute("SELECT * FROM api_keys")
        assert key not in str(await cur.fetchall())
    await db.aclose()


async def test_list_and_expiry(store: KeyStore) -> None:
    name = tenant()
    expires = datetime.now(UTC) + timedelta(days=1)
    await store.create(name, expires_at=expires)
    await store.create(name)
    records = await store.list(name)
    assert len(records) == 2 and records[0].expires_at is not None


async def test_revoke_unknown(store: KeyStore) -> None:
    with pytest.raises(NotFound):
        await store.revoke(uuid.uuid4())


async def test_bad_tenant_name(store: KeyStore) -> None:
    with pytest.raises(InvalidRequest, match="tenant name"):
        await store.create("no spaces allowed")
