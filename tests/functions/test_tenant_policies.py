"""The shared per-tenant JSON policy store, through its two users: guardrails refuse a tenant they
never read while Postgres is down, the cache is bypassed for it."""

import asyncio

import pytest

from functions.cache.policies import CachePolicyStore
from functions.cache.policy import CachePolicy
from functions.db import Database
from functions.errors import DependencyUnavailable, InternalError
from functions.guardrails.policies import PolicyStore
from functions.keys import KeyStore
from functions.tenant_policies import parse_policy_json


def test_each_column_is_its_own(postgres_url: str) -> None:
    async def run() -> None:
        db = Database(postgres_url, min_size=0, max_size=1)
        rec, _ = await KeyStore(db).create("two-policies")
        cache = CachePolicyStore(db, 60)
        assert await cache.set("two-policies", CachePolicy(ttl_s=42))
        assert (await cache.get(str(rec.tenant_id))).ttl_s == 42
        assert (await PolicyStore(db, 60).get(str(rec.tenant_id))).enabled  # untouched: defaults
        await db.aclose()

    asyncio.run(run())


def test_never_read_and_postgres_down(dead_url: str) -> None:
    port = dead_url.rsplit(":", 1)[1]

    async def run() -> None:
        db = Database(f"postgresql://x@127.0.0.1:{port}/x", min_size=0, max_size=1, timeout_s=0.5)
        tid = "00000000-0000-0000-0000-00000000beef"
        with pytest.raises(DependencyUnavailable):
            await PolicyStore(db, 60).get(tid)
        assert await CachePolicyStore(db, 60).get_or_none(tid) is None
        await db.aclose()

    asyncio.run(run())


def test_a_broken_stored_value_names_the_column() -> None:
    with pytest.raises(InternalError, match="cache policy"):
        parse_policy_json(CachePolicy, "cache_policy", {"ttl_s": -1})
