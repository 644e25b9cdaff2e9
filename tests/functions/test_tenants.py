"""Tenant records against the real Postgres: CRUD, validation, the per-process cache, Entra lookup."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest

from functions.db import Database
from functions.errors import InvalidRequest, NotFound
from functions.tenants import TenantStore, model_allowed


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    d = Database(postgres_url, min_size=0, max_size=2)
    yield d
    await d.aclose()


def name() -> str:
    return "ten-" + uuid.uuid4().hex[:8]


async def test_create_update_list(db: Database) -> None:
    store, n = TenantStore(db), name()
    rec = await store.create(n, allowed_models=["mock"], rpm_limit=10,
                             monthly_budget=Decimal("12.5"))
    assert (rec.allowed_models, rec.rpm_limit, rec.tpm_limit, rec.monthly_budget,
            rec.on_redis_down) == (["mock"], 10, None, Decimal("12.5"), "open")
    rec = await store.update(n, rpm_limit=None, tpm_limit=100, on_redis_down="closed")
    assert (rec.rpm_limit, rec.tpm_limit, rec.on_redis_down) == (None, 100, "closed")
    assert n in [t.name for t in await store.list()]
    assert rec.as_json()["monthly_budget"] == 12.5


@pytest.mark.parametrize(("fields", "error"), [
    ({"rpm_limit": 0}, "rpm_limit_check"),
    ({"on_redis_down": "sometimes"}, "on_redis_down_check"),
    ({"colour": "red"}, "Unknown tenant field"),
    ({"entra_roles": None}, "entra_roles cannot be null"),
    ({"max_price_per_1k": Decimal("-1")}, "max_price_per_1k_check"),
])
async def test_invalid_updates(db: Database, fields: dict[str, object], error: str) -> None:
    store, n = TenantStore(db), name()
    await store.create(n)
    with pytest.raises(InvalidRequest, match=error):
        await store.update(n, **fields)


async def test_a_price_ceiling_is_kept_and_cleared(db: Database) -> None:
    store, n = TenantStore(db), name()
    rec = await store.create(n, max_price_per_1k=Decimal("0.00005"))
    assert rec.max_price_per_1k == Decimal("0.00005")
    assert rec.as_json()["max_price_per_1k"] == 0.00005
    assert (await store.update(n, max_price_per_1k=None)).max_price_per_1k is None


async def test_names_are_checked(db: Database) -> None:
    store, n = TenantStore(db), name()
    await store.create(n)
    with pytest.raises(InvalidRequest, match="already exists"):
        await store.create(n)
    with pytest.raises(InvalidRequest, match="Invalid tenant name"):
        await store.create("no spaces")
    with pytest.raises(NotFound):
        await store.update("ten-missing", rpm_limit=1)
    with pytest.raises(NotFound):
        await store.by_name("ten-missing")


async def test_cache_holds_for_its_ttl(db: Database) -> None:
    n = name()
    rec = await TenantStore(db).create(n, rpm_limit=1)
    cached, fresh = TenantStore(db, cache_ttl_s=3600), TenantStore(db, cache_ttl_s=0)
    assert (await cached.get(str(rec.tenant_id))).rpm_limit == 1
    await TenantStore(db).update(n, rpm_limit=2)  # another instance changes it
    assert (await cached.get(str(rec.tenant_id))).rpm_limit == 1
    assert (await fresh.get(str(rec.tenant_id))).rpm_limit == 2


async def test_entra_lookup(db: Database) -> None:
    store, role = TenantStore(db, 0), "Role." + uuid.uuid4().hex[:6]
    rec = await store.create(name(), entra_roles=[role], entra_groups=["g-" + role])
    assert [t.name for t in await store.by_entra([role], [])] == [rec.name]
    assert [t.name for t in await store.by_entra([], ["g-" + role])] == [rec.name]
    assert await store.by_entra(["other"], []) == []
    assert await store.by_entra([], []) == []


@pytest.mark.parametrize(("alias", "lists", "ok"), [
    ("mock", (None, None), True),
    ("mock", (["mock"], None), True),
    ("mock-500", (["mock*"], ["mock-5??"]), True),
    ("mock", (["mock*"], ["mock-5??"]), False),
    ("smollm2-135m", (["mock"],), False),
    ("mock", ([],), False),
])
def test_model_allowed(alias: str, lists: tuple[list[str] | None, ...], ok: bool) -> None:
    assert model_allowed(alias, *lists) is ok
