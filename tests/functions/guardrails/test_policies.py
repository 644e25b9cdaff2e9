import asyncio

import pytest

from functions.db import Database
from functions.errors import InternalError
from functions.guardrails.policies import DEFAULT, PolicyStore, parse_policy
from functions.guardrails.policy import GuardrailPolicy
from functions.keys import KeyStore


def test_stored_per_tenant_and_cached(postgres_url: str) -> None:
    async def run() -> None:
        db = Database(postgres_url, min_size=0, max_size=2)
        rec, _ = await KeyStore(db).create("policy-tenant")
        store = PolicyStore(db, ttl_s=60)
        tid = str(rec.tenant_id)
        assert await store.get(tid) == DEFAULT
        strict = GuardrailPolicy(pii={"entities": {"PERSON": "block"}})
        assert await store.set("policy-tenant", strict)
        assert (await store.get(tid)).pii.entities == {"PERSON": "block"}
        assert not await store.set("no-such-tenant", strict)
        other = PolicyStore(db, ttl_s=60)  # another instance: reads Postgres
        assert (await other.get(tid)).pii.entities == {"PERSON": "block"}
        await store.set("policy-tenant", None)
        assert await store.get(tid) == DEFAULT
        assert (await other.get(tid)).pii.entities == {"PERSON": "block"}  # until its TTL ends
        await db.aclose()

    asyncio.run(run())


def test_a_broken_stored_policy_is_a_server_error() -> None:
    with pytest.raises(InternalError, match="operator"):
        parse_policy({"pii": {"entities": {"PERSON": "explode"}}})


def test_postgres_down_uses_the_last_known_policy(postgres_url: str, dead_url: str) -> None:
    from functions.errors import DependencyUnavailable

    async def run() -> None:
        db = Database(postgres_url, min_size=0, max_size=1)
        rec, _ = await KeyStore(db).create("policy-stale")
        store = PolicyStore(db, ttl_s=0)  # every call goes to Postgres
        await store.set("policy-stale", GuardrailPolicy(on_error="allow"))
        assert (await store.get(str(rec.tenant_id))).on_error == "allow"
        await db.aclose()
        port = dead_url.rsplit(":", 1)[1]
        store._db = Database(f"postgresql://x@127.0.0.1:{port}/x", min_size=0, max_size=1,
                             timeout_s=0.5)
        assert (await store.get(str(rec.tenant_id))).on_error == "allow"  # stale, not weaker
        with pytest.raises(DependencyUnavailable):
            await store.get("00000000-0000-0000-0000-00000000dead")  # never seen: refused
        await store._db.aclose()

    asyncio.run(run())
