"""The conversation store against the real Postgres: every statement scoped by tenant."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from functions.conversations.store import ConversationStore, Message
from functions.db import Database
from functions.errors import NotFound
from tests.support.tenants import create_tenant, make_tenant


@pytest.fixture
async def store(postgres_url: str) -> AsyncIterator[ConversationStore]:
    db = Database(postgres_url, min_size=0, max_size=2)
    yield ConversationStore(db)
    await db.aclose()


@pytest.fixture(scope="module")
def tenants(postgres_url: str) -> tuple[str, str]:
    return make_tenant(postgres_url, "store-a").id, make_tenant(postgres_url, "store-b").id


async def test_crud_is_scoped_by_tenant(store: ConversationStore, tenants: tuple[str, str]) -> None:
    a, b = tenants
    conv = await store.create(a, "title", {"k": "v"})
    await store.append(a, conv.id, [Message("user", "q", 5), Message("assistant", "r", 3)], "m")
    got = await store.get(a, conv.id)
    assert (got.title, got.metadata) == ("title", {"k": "v"})
    assert [(m.role, m.content, m.tokens, m.model) for m in got.messages or []] == [
        ("user", "q", 5, "m"), ("assistant", "r", 3, "m")]
    for call in (store.get(b, conv.id), store.delete(b, conv.id), store.history(b, conv.id, 10),
                 store.append(b, conv.id, [Message("user", "x", 1)], "m")):
        with pytest.raises(NotFound):
            await call
    assert conv.id not in [c.id for c in (await store.page(b, 100, None))[0]]
    assert [c.id async for c in store.export(b)] == []
    await store.delete(a, conv.id)
    with pytest.raises(NotFound):
        await store.get(a, conv.id)
    with pytest.raises(NotFound):
        await store.delete(a, uuid4())


async def test_history_reads_the_newest_messages_in_order(store: ConversationStore,
                                                          tenants: tuple[str, str]) -> None:
    a, _ = tenants
    conv = await store.create(a, None, {})
    assert await store.history(a, conv.id, 10) == []
    await store.append(a, conv.id, [Message("user", f"m{i}", 1) for i in range(6)], "m")
    assert [m.content for m in await store.history(a, conv.id, 4)] == ["m2", "m3", "m4", "m5"]


async def test_pages_are_newest_first_without_gaps(store: ConversationStore,
                                                   postgres_url: str) -> None:
    t = (await create_tenant(postgres_url, "store-pages")).id
    ids = [(await store.create(t, str(i), {})).id for i in range(5)]
    seen, after, more = [], None, True
    while more:
        page, more = await store.page(t, 2, after)
        seen += [c.id for c in page]
        after = page[-1].id
    assert seen == ids[::-1]
    assert [c.id async for c in store.export(t, page=2)] == ids


async def test_purge_deletes_expired_conversations_in_batches(store: ConversationStore,
                                                              postgres_url: str) -> None:
    short = (await create_tenant(postgres_url, "store-short", retention_days=1)).id
    keep = (await create_tenant(postgres_url, "store-keep")).id
    old = [(await store.create(short, None, {})).id for _ in range(5)]
    fresh = (await store.create(short, None, {})).id
    ancient = (await store.create(keep, None, {})).id
    await store.append(short, old[0], [Message("user", "x", 1)], "m")
    async with store._db.connection() as conn:
        await conn.execute("UPDATE conversations SET updated_at = now() - interval '2 days'"
                           " WHERE id = ANY(%s)", (old,))
        await conn.execute("UPDATE conversations SET updated_at = now() - interval '900 days'"
                           " WHERE id = %s", (ancient,))
    assert await store.purge_expired(None, batch=2, max_batches=100) == 5
    assert (await store.get(short, fresh)).id == fresh
    assert (await store.get(keep, ancient)).id == ancient  # no retention for this tenant
    async with store._db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM conversation_messages WHERE"
                                 " conversation_id = ANY(%s)", (old,))
        assert await cur.fetchone() == (0,)
    await store.delete(keep, ancient)
