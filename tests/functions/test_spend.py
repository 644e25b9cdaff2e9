"""The spend ledger against the real Postgres: batched off the request path, kept while the database
is down, written once, and flushed on shutdown (also through the ASGI app's lifespan)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

from functions.asgi import create_app
from functions.db import Database
from functions.gateway import Gateway
from functions.settings import GatewaySettings
from functions.spend import SpendEntry, SpendLedger, UsageReader, month_range, summarize
from tests.support.servers import serve_asgi
from tests.support.tenancy import bearer, new_tenant, tenant_with_key


@pytest.fixture
async def db(postgres_url: str) -> AsyncIterator[Database]:
    d = Database(postgres_url, min_size=0, max_size=2)
    yield d
    await d.aclose()


def entry(tenant_id: str, cost: float = 0.01, **kw: object) -> SpendEntry:
    return SpendEntry(tenant_id, "key-1", "mock", "mock-a", 5, 10, cost, **kw)  # type: ignore[arg-type]


async def rows(db: Database, tenant_id: str) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM spend_ledger WHERE tenant_id = %s",
                                 (tenant_id,))
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def test_entries_are_written_in_the_background(db: Database, postgres_url: str) -> None:
    t, _ = await new_tenant(postgres_url)
    ledger = SpendLedger(db, flush_s=0.05, batch_max=10)
    for _ in range(25):
        ledger.record(entry(str(t.tenant_id)))
    deadline = time.monotonic() + 5
    while await rows(db, str(t.tenant_id)) < 25:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    assert ledger.pending == 0
    await ledger.aclose()


async def test_flush_on_close(db: Database, postgres_url: str) -> None:
    t, _ = await new_tenant(postgres_url)
    ledger = SpendLedger(db, flush_s=3600)
    for _ in range(3):
        ledger.record(entry(str(t.tenant_id)))
    assert await rows(db, str(t.tenant_id)) == 0
    await ledger.aclose()
    assert await rows(db, str(t.tenant_id)) == 3


async def test_a_dead_database_never_slows_record_and_loses_nothing(
        dead_url: str, db: Database, postgres_url: str) -> None:
    t, _ = await new_tenant(postgres_url)
    port = dead_url.rsplit(":", 1)[1]
    dead = Database(f"postgresql://postgres@127.0.0.1:{port}/postgres", timeout_s=0.5)
    ledger = SpendLedger(dead, flush_s=0.05)
    started = time.perf_counter()
    for _ in range(1000):
        ledger.record(entry(str(t.tenant_id)))
    assert time.perf_counter() - started < 0.2  # 1000 records, no database round trip
    await asyncio.sleep(0.3)  # some flushes fail meanwhile
    assert ledger.pending == 1000
    ledger._db = db  # the database is back
    await ledger.flush()
    assert await rows(db, str(t.tenant_id)) == 1000
    await ledger.aclose()
    await dead.aclose()


async def test_a_retried_batch_is_written_once(db: Database, postgres_url: str) -> None:
    t, _ = await new_tenant(postgres_url)
    e = entry(str(t.tenant_id))
    ledger = SpendLedger(db, flush_s=3600)
    ledger.record(e)
    ledger.record(e)
    await ledger.flush()
    assert await rows(db, str(t.tenant_id)) == 1
    await ledger.aclose()


async def test_buffer_is_bounded(db: Database) -> None:
    ledger = SpendLedger(db, flush_s=3600, buffer_max=3)
    ledger._closed = True  # no background task
    for i in range(5):
        ledger.record(entry("00000000-0000-0000-0000-000000000000", cost=i))
    assert [e.cost for e in ledger._queue] == [2, 3, 4]


async def test_month_total_and_report(db: Database, postgres_url: str) -> None:
    t, _ = await new_tenant(postgres_url)
    tid = str(t.tenant_id)
    ledger = SpendLedger(db, flush_s=3600)
    ledger.record(entry(tid, 0.25))
    ledger.record(SpendEntry(tid, "k", "other", None, 1, 2, 0.5))
    ledger.record(entry(tid, 9.0, at=datetime(2020, 1, 15, tzinfo=UTC)))  # an old month
    await ledger.aclose()
    assert await ledger.month_total(tid) == Decimal("0.75")
    first, last = month_range()
    report = await UsageReader(db).report(first, last, tid)
    assert [(r.model, r.requests, r.cost) for r in report] == [("mock", 1, 0.25),
                                                              ("other", 1, 0.5)]
    s = summarize(report)
    assert s["total_cost"] == 0.75 and [m["model"] for m in s["by_model"]] == ["mock", "other"]
    old = await UsageReader(db).report(date(2020, 1, 1), date(2020, 1, 31), tid)
    assert [(r.day, r.cost) for r in old] == [(date(2020, 1, 15), 9.0)]


async def test_routed_rows_report_by_route_and_tier(db: Database, postgres_url: str) -> None:
    from functions.spend import summarize_routes
    from models.catalog import parse_catalog

    catalog = parse_catalog("""
models:
  - {alias: small, tier: gguf, context_length: 8, price: {input_per_1k: 1, output_per_1k: 2},
     backends: [{name: s, url: "http://s"}]}
  - {alias: large, tier: gguf, context_length: 8, price: {input_per_1k: 4, output_per_1k: 8},
     backends: [{name: l, url: "http://l"}]}
routes:
  - {alias: auto, tiers: [small, large]}
""", {})
    t, _ = await new_tenant(postgres_url)
    tid = str(t.tenant_id)
    ledger = SpendLedger(db, flush_s=3600)
    small = catalog.get("small")
    assert small is not None
    ledger.record(SpendEntry(tid, "k", "small", "s", 1000, 500, small.price.cost(1000, 500),
                             route="auto", reason="classifier:small"))
    ledger.record(SpendEntry(tid, "k", "large", "l", 100, 100, 1.2, route="auto",
                             reason="rule:context", retries=1))
    ledger.record(entry(tid))  # named a model: not in the route report
    await ledger.aclose()
    first, last = month_range()
    routes = await UsageReader(db).routes(first, last, tid)
    assert [(r.route, r.tier, r.reason, r.requests) for r in routes] == [
        ("auto", "large", "rule:context", 1), ("auto", "small", "classifier:small", 1)]
    (auto,) = summarize_routes(routes, catalog)
    assert auto["largest_tier"] == "large" and auto["requests"] == 2
    assert auto["cost"] == pytest.approx(2.0 + 1.2)
    assert auto["cost_at_largest"] == pytest.approx(8.0 + 1.2)  # 1000 in + 500 out at large's price
    assert auto["saved"] == pytest.approx(6.0)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT retries FROM spend_ledger WHERE tenant_id = %s AND "
                                 "reason = 'rule:context'", (tid,))
        assert await cur.fetchone() == (1,)


def test_month_range() -> None:
    assert month_range(date(2024, 2, 10)) == (date(2024, 2, 1), date(2024, 2, 29))
    assert month_range(date(2024, 12, 31)) == (date(2024, 12, 1), date(2024, 12, 31))


def test_gateway_flushes_the_ledger_on_exit(gateway_settings: GatewaySettings,
                                            postgres_url: str) -> None:
    """A gateway that would not flush for an hour still writes its spend when it stops."""
    t, key = tenant_with_key(postgres_url)
    settings = gateway_settings.model_copy(update={"spend_flush_s": 3600})
    with serve_asgi(create_app(Gateway(settings))) as url:
        r = httpx.post(f"{url}/v1/chat/completions", headers=bearer(key), timeout=60,
                       json={"model": "mock", "messages": [{"role": "user", "content": "hi"}],
                             "max_tokens": 3})  # a new gateway: its models load on this request
        assert r.status_code == 200

    async def count() -> int:
        db = Database(postgres_url, min_size=0, max_size=1)
        try:
            return await rows(db, str(t.tenant_id))
        finally:
            await db.aclose()

    assert asyncio.run(count()) == 1
