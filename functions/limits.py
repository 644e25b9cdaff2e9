"""Stage 2, limit: requests and tokens per minute, per key and per tenant, and the monthly budget,
checked and reserved in one Redis script call before any expensive work, settled after the answer.

Algorithm: GCRA (the generic cell rate algorithm), one Redis key per limit holding its "theoretical
arrival time". A limit of L per minute admits a burst of L from idle, then one every 60/L seconds. It is
exact under any concurrency (the script runs atomically on the Redis server, with the server's clock,
so instances' clocks do not matter), keeps one small value per limit (a sliding-window log keeps one
entry per request), and a token reservation can be corrected afterwards by moving that one value
(refund or charge), which a fixed or sliding window counter cannot do as simply. See docs/tenancy.md.

All keys of a tenant share the hash tag ``{<tenant id>}``, so the multi-key script also runs on a
Redis Cluster.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

import orjson
from redis.exceptions import RedisError

from functions.errors import BudgetExceeded, DependencyUnavailable, RateLimited

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from functions.auth import Principal
    from functions.protocol.common import SamplingParams
    from functions.tenants import TenantRecord

log = logging.getLogger(__name__)

SPEND_TTL_S = 40 * 24 * 3600
_REDIS_ERRORS = (RedisError, OSError)

# KEYS[1]: the tenant's month spend; KEYS[2..]: one GCRA key per limit.
# ARGV[1]: budget (-1: none); then per limit: limit per minute, cost of this request.
# Returns {status, retry_after_us, spend_missing, failing limit, remaining_1, reset_us_1, ...};
# status 0 admitted (every limit charged), 1 over a limit, 2 budget spent, 3 larger than a limit.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period = 60000000
local budget = tonumber(ARGV[1])
local missing = 0
if budget >= 0 then
  local spent = redis.call('GET', KEYS[1])
  if not spent then missing = 1
  elseif tonumber(spent) >= budget then return {2, 0, 0, 0} end
end
local status, retry, failing = 0, 0, 0
local out, tats = {}, {}
for i = 1, #KEYS - 1 do
  local limit, cost = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  if cost > limit then return {3, 0, missing, i} end
  local step = period / limit
  local tat = tonumber(redis.call('GET', KEYS[i + 1]) or '0')
  if tat < now then tat = now end
  local new = tat + cost * step
  if new - now > period then
    if new - now - period > retry then retry = new - now - period; failing = i end
    status = 1
    new = tat
  end
  tats[i] = new
  out[#out + 1] = math.max(0, math.floor((period - (new - now)) / step))
  out[#out + 1] = new - now
end
if status == 0 then
  for i = 1, #KEYS - 1 do
    redis.call('SET', KEYS[i + 1], string.format('%.0f', tats[i]), 'PX',
               math.ceil((tats[i] - now) / 1000) + 1000)
  end
end
local head = {status, retry, missing, failing}
for _, v in ipairs(out) do head[#head + 1] = v end
return head
"""

# KEYS[1..n]: token GCRA keys; KEYS[n+1]: the month spend. ARGV[1]: tokens used minus reserved;
# ARGV[2..n+1]: their limits; ARGV[n+2]: cost. The spend counter is only added to once it exists
# (it is seeded from the ledger by the first request of a tenant with a budget).
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS - 1
local delta = tonumber(ARGV[1])
for i = 1, n do
  local step = 60000000 / tonumber(ARGV[i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
  if tat < now then tat = now end
  local new = tat + delta * step
  if new <= now then redis.call('DEL', KEYS[i])
  else redis.call('SET', KEYS[i], string.format('%.0f', new), 'PX',
                  math.ceil((new - now) / 1000) + 1000) end
end
if tonumber(ARGV[n + 2]) > 0 and redis.call('EXISTS', KEYS[n + 1]) == 1 then
  redis.call('INCRBYFLOAT', KEYS[n + 1], ARGV[n + 2])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class _Limit:
    key: str
    per_minute: int
    kind: str  # "requests" | "tokens"


@dataclass(slots=True)
class Reservation:
    """What :meth:`Limiter.reserve` charged; :meth:`Limiter.settle` corrects the tokens once."""

    tenant_id: str = ""
    tokens: int = 0
    token_limits: list[_Limit] = field(default_factory=list)
    spend_key: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    active: bool = False
    """False when nothing was charged (no limits, or Redis down and the tenant fails open)."""
    settled: bool = False
    accounted: bool = False
    """Set as soon as the real usage is handed to :meth:`Limiter.settle_soon`: the refund for a
    failed request must not then overwrite it."""
    started: float = 0.0
    """``time.monotonic()`` at admission: the request's backend seconds are measured from it."""


def estimate_prompt_tokens(req: SamplingParams) -> int:
    """The prompt's tokens, estimated as one per 4 bytes of its JSON (errs high; see
    :func:`estimate_tokens`)."""
    text = orjson.dumps(req.model_dump(include={"messages", "prompt", "suffix"}, exclude_none=True))
    return math.ceil(len(text) / 4)


def estimate_tokens(req: SamplingParams, context_length: int, default_max: int) -> int:
    """Tokens to reserve: the prompt estimated as one token per 4 bytes of its JSON (messages or
    prompt; English text runs at about 4 characters a token, and the JSON quoting over-counts a
    little, so the estimate errs high), plus ``max_tokens`` (or the default, capped by the model's
    context length). The real count from the answer's ``usage`` replaces it afterwards."""
    prompt = estimate_prompt_tokens(req)
    wanted = req.max_tokens or getattr(req, "max_completion_tokens", None)
    answer = wanted or max(1, min(default_max, context_length - prompt))
    return prompt + answer


_month: tuple[float, float, str] = (0.0, 0.0, "")
"""(from, until, "YYYY-MM"): the current UTC month, as Unix times, so that the request path
formats a date once a month, not once a request."""


def month_key(tenant_id: str, now: datetime | None = None) -> str:
    if now is not None:
        return f"llmp:spend:{{{tenant_id}}}:{now:%Y-%m}"
    global _month
    t = time.time()
    start, end, month = _month
    if not start <= t < end:
        d = datetime.fromtimestamp(t, UTC)
        first = d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        nxt = (first + timedelta(days=32)).replace(day=1)
        _month = start, end, month = first.timestamp(), nxt.timestamp(), f"{first:%Y-%m}"
    return f"llmp:spend:{{{tenant_id}}}:{month}"


SpendTotal = Callable[[str], Awaitable[Decimal]]
"""The tenant's spend so far this month, from the ledger (seeds the Redis counter)."""


class Limiter:
    def __init__(self, redis: Redis | None, spend_total: SpendTotal) -> None:
        self._redis, self._spend_total = redis, spend_total
        self._reserve_script = redis.register_script(_RESERVE) if redis is not None else None
        self._settle_script = redis.register_script(_SETTLE) if redis is not None else None
        self._settling: set[asyncio.Task[None]] = set()
        self._seeded: set[str] = set()
        """Month spend counters this process has seen exist (checked once, before charging)."""

    async def reserve(self, principal: Principal, tenant: TenantRecord, tokens: int
                      ) -> Reservation:
        """Charge one request and ``tokens`` to every limit that applies, all or nothing; raise
        :class:`RateLimited` or :class:`BudgetExceeded` (headers included) when over."""
        limits = _limits(principal, tenant)
        budget = tenant.monthly_budget
        res = Reservation(principal.tenant_id, tokens, [x for x in limits if x.kind == "tokens"],
                          month_key(principal.tenant_id))
        if not limits and budget is None:
            return res
        try:
            if budget is not None and res.spend_key not in self._seeded:
                # Seed the month's spend before charging anything: a refusal then costs nothing.
                assert self._redis is not None
                if not await self._redis.exists(res.spend_key):
                    await self._seed_spend(res.spend_key, budget, principal.tenant_id)
                self._seeded.add(res.spend_key)
            reply = await self._run_reserve(limits, res.spend_key, budget, tokens)
            status, retry_us, missing, failing, *rest = (int(x) for x in reply)
            if missing and budget is not None:  # Redis lost the counter since: seed it now and
                try:                             # give the tokens back if that refuses
                    await self._seed_spend(res.spend_key, budget, principal.tenant_id)
                except BudgetExceeded:
                    if status == 0:
                        res.active = True
                        await self.settle(res, 0, 0.0)
                    raise
        except _REDIS_ERRORS as e:
            return self._redis_down(tenant, res, e)
        res.headers = _headers(limits, rest)
        if status == 2:
            raise BudgetExceeded(f"Tenant {tenant.name!r} has used its monthly budget of "
                                 f"{budget}; ask the platform team to raise it.",
                                 headers=res.headers)
        if status == 3:
            lim = limits[failing - 1]
            raise RateLimited(f"Request too large: {tokens} tokens estimated (prompt plus "
                              f"max_tokens) against a limit of {lim.per_minute} tokens per "
                              "minute. Lower max_tokens or shorten the prompt.",
                              code="request_too_large", headers=res.headers)
        if status == 1:
            lim = limits[failing - 1]
            retry_s = retry_us / 1e6
            err = RateLimited(
                f"Rate limit reached for {lim.kind} per minute ({lim.per_minute}) on this "
                f"{'API key' if ':k:' in lim.key else 'tenant'}. Retry after {retry_s:.2f} s.",
                headers={**res.headers, "retry-after": str(max(1, math.ceil(retry_s))),
                         "retry-after-ms": str(max(1, math.ceil(retry_us / 1000)))})
            err.type = lim.kind
            raise err
        res.active = True
        return res

    async def settle(self, res: Reservation, used_tokens: int, cost: float) -> None:
        """Replace the reserved token count by the real one, add the cost to the month's spend.
        Once per reservation; failures are logged (the reservation then simply stands)."""
        if res.settled or not res.active or self._settle_script is None:
            return
        res.settled = True
        keys = [x.key for x in res.token_limits] + [res.spend_key]
        args: list[str | int] = [used_tokens - res.tokens,
                                 *(x.per_minute for x in res.token_limits), f"{cost:.10f}"]
        try:
            await self._settle_script(keys=keys, args=args)
        except _REDIS_ERRORS as e:
            log.warning("limit settle failed", extra={"error": type(e).__name__})

    def settle_soon(self, res: Reservation, used_tokens: int, cost: float) -> None:
        """:meth:`settle` in the background, so that the answer does not wait for it."""
        res.accounted = True
        if res.settled or not res.active:
            return
        task = asyncio.get_running_loop().create_task(self.settle(res, used_tokens, cost))
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def aclose(self) -> None:
        """Wait for settlements still running (shutdown)."""
        if self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)

    async def _run_reserve(self, limits: list[_Limit], spend_key: str, budget: Decimal | None,
                           tokens: int) -> list[int]:
        if self._reserve_script is None:
            raise ConnectionError("Redis is not configured")
        args: list[str | int] = [str(budget) if budget is not None else -1]
        for x in limits:
            args += [x.per_minute, tokens if x.kind == "tokens" else 1]
        reply = await self._reserve_script(keys=[spend_key, *(x.key for x in limits)], args=args)
        assert isinstance(reply, list)
        return reply

    async def _seed_spend(self, spend_key: str, budget: Decimal, tenant_id: str) -> None:
        """The month's counter is missing (first request of the month, or Redis lost it): seed it
        from the ledger, once (NX), and refuse if that is already over the budget."""
        assert self._redis is not None
        total = await self._spend_total(tenant_id)
        await self._redis.set(spend_key, str(total), nx=True, ex=SPEND_TTL_S)
        if total >= budget:
            raise BudgetExceeded(f"This tenant has used its monthly budget of {budget}; ask the "
                                 "platform team to raise it.")

    @staticmethod
    def _redis_down(tenant: TenantRecord, res: Reservation, e: BaseException) -> Reservation:
        log.warning("limits unavailable", extra={"error": type(e).__name__,
                                                 "tenant": tenant.name,
                                                 "on_redis_down": tenant.on_redis_down})
        if tenant.on_redis_down == "closed":
            raise DependencyUnavailable("Rate limiting is unavailable and this tenant is set to "
                                        "fail closed; retry shortly.") from None
        return res


def _limits(p: Principal, t: TenantRecord) -> list[_Limit]:
    tag = "{" + p.tenant_id + "}"
    out = []
    for scope, rpm, tpm in (("k:" + p.key_id, p.rpm_limit, p.tpm_limit),
                            ("t", t.rpm_limit, t.tpm_limit)):
        if rpm:
            out.append(_Limit(f"llmp:rl:{tag}:{scope}:req", rpm, "requests"))
        if tpm:
            out.append(_Limit(f"llmp:rl:{tag}:{scope}:tok", tpm, "tokens"))
    return out


def _headers(limits: list[_Limit], values: list[int]) -> dict[str, str]:
    """OpenAI's rate headers, from the tightest limit of each kind."""
    h: dict[str, str] = {}
    for kind in ("requests", "tokens"):
        rows = [(values[2 * i], values[2 * i + 1], x) for i, x in enumerate(limits)
                if x.kind == kind and 2 * i + 1 < len(values)]
        if rows:
            remaining, reset_us, x = min(rows, key=lambda r: (r[0], -r[1]))
            h[f"x-ratelimit-limit-{kind}"] = str(x.per_minute)
            h[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            h[f"x-ratelimit-reset-{kind}"] = _duration(reset_us / 1e6)
    return h


def _duration(s: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1.5s``, ``6m0s``."""
    if s < 1:
        return f"{max(0, round(s * 1000))}ms"
    if s < 60:
        return f"{s:.3g}s"
    return f"{int(s // 60)}m{int(s % 60)}s"
