"""The GCRA limits and budget against the real Redis: exact under concurrency, tokens settled,
budget seeded and enforced, and Redis down handled as each tenant chose."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from redis.asyncio import Redis

from functions.auth import Principal
from functions.errors import BudgetExceeded, DependencyUnavailable, RateLimited
from functions.limits import Limiter, Reservation, _duration, estimate_tokens, month_key
from functions.protocol.chat import ChatCompletionRequest
from functions.tenants import TenantRecord


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


def who(key: dict[str, Any] | None = None, **tenant: Any) -> tuple[Principal, TenantRecord]:
    tid = uuid.UUID(int=uuid.uuid4().int)
    return (Principal(str(tid), "t", str(uuid.uuid4()), **(key or {})),
            TenantRecord(tid, "t", **tenant))


async def zero(tenant_id: str) -> Decimal:
    return Decimal(0)


async def outcome(limiter: Limiter, p: Principal, t: TenantRecord, tokens: int = 1
                  ) -> Reservation | Exception:
    try:
        return await limiter.reserve(p, t, tokens)
    except (RateLimited, BudgetExceeded) as e:
        return e


async def test_requests_limit_is_exact_under_concurrency(redis: Redis) -> None:
    limiter = Limiter(redis, zero)
    p, t = who(rpm_limit=7)
    results = await asyncio.gather(*(outcome(limiter, p, t) for _ in range(50)))
    admitted = [r for r in results if isinstance(r, Reservation)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(admitted) == 7 and len(refused) == 43
    assert int(refused[0].headers["retry-after"]) >= 1
    assert refused[0].headers["x-ratelimit-remaining-requests"] == "0"
    assert refused[0].type == "requests" and refused[0].code == "rate_limit_exceeded"


async def test_key_and_tenant_limits_both_apply_all_or_nothing(redis: Redis) -> None:
    limiter = Limiter(redis, zero)
    p, t = who({"rpm_limit": 2}, rpm_limit=3)
    other = Principal(p.tenant_id, "t", str(uuid.uuid4()))  # another key, same tenant
    assert isinstance(await outcome(limiter, p, t), Reservation)
    r = await outcome(limiter, p, t)
    assert isinstance(r, Reservation)
    assert r.headers["x-ratelimit-limit-requests"] == "2"  # the tighter limit is reported
    assert isinstance(await outcome(limiter, p, t), RateLimited)  # key limit: tenant not charged
    assert isinstance(await outcome(limiter, other, t), Reservation)  # so the tenant has one left
    assert isinstance(await outcome(limiter, other, t), RateLimited)


async def test_tokens_are_reserved_then_settled(redis: Redis) -> None:
    limiter = Limiter(redis, zero)
    p, t = who(tpm_limit=1000)
    res = await limiter.reserve(p, t, 600)
    assert 399 <= int(res.headers["x-ratelimit-remaining-tokens"]) <= 401
    assert isinstance(await outcome(limiter, p, t, 500), RateLimited)
    await limiter.settle(res, 100, 0.0)  # 500 given back
    await limiter.settle(res, 900, 0.0)  # once only
    again = await limiter.reserve(p, t, 500)
    assert 395 <= int(again.headers["x-ratelimit-remaining-tokens"]) <= 410


async def test_settling_more_than_reserved_charges_the_difference(redis: Redis) -> None:
    limiter = Limiter(redis, zero)
    p, t = who(tpm_limit=1000)
    res = await limiter.reserve(p, t, 100)
    await limiter.settle(res, 700, 0.0)
    assert isinstance(await outcome(limiter, p, t, 400), RateLimited)


async def test_a_request_larger_than_the_limit_is_refused_as_too_large(redis: Redis) -> None:
    p, t = who(tpm_limit=100)
    r = await outcome(Limiter(redis, zero), p, t, 101)
    assert isinstance(r, RateLimited) and r.code == "request_too_large"


async def test_no_limits_no_redis_call() -> None:
    p, t = who()
    res = await Limiter(None, zero).reserve(p, t, 10)
    assert not res.active and res.headers == {}


async def test_budget_is_seeded_from_the_ledger_and_enforced(redis: Redis) -> None:
    spent: dict[str, Decimal] = {}

    async def total(tenant_id: str) -> Decimal:
        return spent.get(tenant_id, Decimal(0))

    limiter = Limiter(redis, total)
    p, t = who(monthly_budget=Decimal("0.05"))
    res = await limiter.reserve(p, t, 10)  # counter missing: seeded with 0 from the "ledger"
    assert await redis.get(month_key(p.tenant_id)) == b"0"
    await limiter.settle(res, 10, 0.03)
    res = await limiter.reserve(p, t, 10)
    await limiter.settle(res, 10, 0.03)
    with pytest.raises(BudgetExceeded, match="monthly budget"):
        await limiter.reserve(p, t, 10)

    p2, t2 = who(monthly_budget=Decimal("1"))  # Redis lost the counter; the ledger knows
    spent[p2.tenant_id] = Decimal("1.5")
    with pytest.raises(BudgetExceeded) as e:
        await limiter.reserve(p2, t2, 10)
    assert e.value.status == 402 and e.value.code == "budget_exceeded"


@pytest.mark.parametrize("redis_down", ["open", "closed"])
async def test_redis_down_follows_the_tenant(dead_url: str, redis_down: str) -> None:
    port = dead_url.rsplit(":", 1)[1]
    down = Redis.from_url(f"redis://127.0.0.1:{port}", socket_connect_timeout=0.2,
                          socket_timeout=0.2)
    p, t = who(rpm_limit=1, on_redis_down=redis_down)
    try:
        for limiter in (Limiter(down, zero), Limiter(None, zero)):
            if redis_down == "open":
                res = await limiter.reserve(p, t, 10)
                assert not res.active
                await limiter.settle(res, 5, 1.0)  # nothing to settle, no error
            else:
                with pytest.raises(DependencyUnavailable):
                    await limiter.reserve(p, t, 10)
    finally:
        await down.aclose()


def test_estimate_covers_prompt_and_answer() -> None:
    msgs = [{"role": "user", "content": "x" * 400}]
    with_max = ChatCompletionRequest.model_validate({"model": "m", "messages": msgs,
                                                     "max_tokens": 50})
    assert 100 <= estimate_tokens(with_max, 4096, 1024) - 50 <= 130
    without = ChatCompletionRequest.model_validate({"model": "m", "messages": msgs})
    assert estimate_tokens(without, 4096, 1024) - estimate_tokens(with_max, 4096, 1024) == 974
    assert estimate_tokens(without, 300, 1024) == 300  # capped by the context length


@pytest.mark.parametrize(("s", "text"), [(0.02, "20ms"), (1.5, "1.5s"), (360, "6m0s")])
def test_reset_header_format(s: float, text: str) -> None:
    assert _duration(s) == text


async def test_a_budget_refusal_while_seeding_charges_nothing(redis: Redis) -> None:
    async def total(tenant_id: str) -> Decimal:
        return Decimal("9")

    limiter = Limiter(redis, total)
    p, t = who(monthly_budget=Decimal("1"), rpm_limit=1)
    with pytest.raises(BudgetExceeded):
        await limiter.reserve(p, t, 10)  # seeded before charging: over the budget already
    await redis.delete(month_key(p.tenant_id))
    spent_ok = Limiter(redis, zero)  # the budget allows it now
    res = await spent_ok.reserve(p, t, 10)  # the one request per minute was not used up above
    assert res.active
