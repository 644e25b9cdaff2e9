"""What tenancy costs a request: the same chat request through two gateways over the same mock
backend, interleaved in one run:

- ``off``: authentication, limits and spend accounting stubbed out (a fixed principal, no Redis
  calls, no ledger), everything else identical;
- ``on``: an API key (warm Redis key cache) whose tenant has requests- and tokens-per-minute limits
  and a monthly budget, so every request runs the reserve script, the settle script and queues a
  ledger row.

    .venv/bin/python bench/limits.py [--rounds N] [--per-round N]

Prints p50/p99 latency of each and what ``on`` adds (aim: < 1 ms p50, < 2 ms p99). Every request
is a response-cache miss (a new prompt each, as in ``bench/overhead.py``), checked on each answer
(``x-cache: miss``, ``x-llmp-backend: mock``) and in each gateway's counters; the run stops with exit
status 2 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import miss, run_main  # noqa: E402
from bench.overhead import Target, measure, pct, process  # noqa: E402
from llmp_cli.local import LocalPostgres, LocalRedis, free_port  # noqa: E402

BENCH_TENANT_ID = "00000000-0000-0000-0000-00000000b0b0"
RPM, TPM = 10_000_000, 1_000_000_000


def create_app_off() -> Any:
    """The gateway with stage 1 and 2 stubbed (uvicorn ``--factory``); bench only."""
    from functions.asgi import create_app
    from functions.auth import Principal
    from functions.gateway import Gateway
    from functions.limits import Reservation
    from functions.tenants import TenantRecord

    principal = Principal(BENCH_TENANT_ID, "bench", "bench-key")
    tenant = TenantRecord(__import__("uuid").UUID(BENCH_TENANT_ID), "bench")

    class NoAuth:
        async def authenticate(self, authorization: str | None) -> Principal:
            return principal

    class NoLimits:
        async def reserve(self, *args: object) -> Reservation:
            return Reservation()

        def settle_soon(self, *args: object) -> None:
            return None

        async def aclose(self) -> None:
            return None

    class OneTenant:
        async def get(self, tenant_id: str) -> TenantRecord:
            return tenant

    class NoLedger:
        def record(self, entry: object) -> None:
            return None

        async def aclose(self) -> None:
            return None

    gw = Gateway()
    gw.__dict__.update(authenticator=NoAuth(), limiter=NoLimits(), tenants=OneTenant(),
                       spend=NoLedger())
    return create_app(gw)


def make_tenant_key(db_url: str) -> str:
    from functions.db import Database
    from functions.keys import KeyStore
    from functions.tenants import TenantStore

    async def run() -> str:
        db = Database(db_url, min_size=0, max_size=1)
        await TenantStore(db).create("bench", rpm_limit=RPM, tpm_limit=TPM,
                                     monthly_budget=Decimal("1000000"))
        _, key = await KeyStore(db).create("bench", rpm_limit=RPM)
        await db.aclose()
        return key

    return asyncio.run(run())


async def stage_costs(db_url: str, redis_url: str, key: str, n: int = 2000) -> list[str]:
    """In-process: each stage alone, warm (no HTTP, no backend), p50/p99 in microseconds."""
    from redis.asyncio import Redis

    from functions.auth import Authenticator
    from functions.db import Database
    from functions.keys import KeyStore
    from functions.limits import Limiter
    from functions.spend import SpendLedger
    from functions.tenants import TenantStore

    db = Database(db_url, min_size=1, max_size=2)
    redis = Redis.from_url(redis_url)
    auth = Authenticator(KeyStore(db), redis, 60)
    tenants, ledger = TenantStore(db), SpendLedger(db)
    limiter = Limiter(redis, ledger.month_total)
    header = f"Bearer {key}"
    p = await auth.authenticate(header)
    t = await tenants.get(p.tenant_id)
    times: dict[str, list[float]] = {"authenticate (Redis key cache)": [],
                                     "tenant record (process cache)": [],
                                     "reserve (GCRA script, 3 limits + budget)": [],
                                     "settle (script, off the answer's path)": []}
    for _ in range(n):
        t0 = time.perf_counter()
        p = await auth.authenticate(header)
        t1 = time.perf_counter()
        t = await tenants.get(p.tenant_id)
        t2 = time.perf_counter()
        res = await limiter.reserve(p, t, 100)
        t3 = time.perf_counter()
        await limiter.settle(res, 50, 0.0001)
        t4 = time.perf_counter()
        for xs, (a, b) in zip(times.values(), ((t0, t1), (t1, t2), (t2, t3), (t3, t4)),
                               strict=True):
            xs.append((b - a) * 1e6)
    await redis.aclose()
    await db.aclose()
    return ["", f"in-process, {n} iterations:", "", "| stage | p50 µs | p99 µs |", "|---|---|---|",
            *(f"| {k} | {pct(v, 50):.0f} | {pct(v, 99):.0f} |" for k, v in times.items())]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=50)
    args = ap.parse_args()

    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONPATH=str(ROOT))
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-bench-limits-"))
    mock_port, on_port, off_port = (free_port() for _ in range(3))
    mock = f"http://127.0.0.1:{mock_port}"
    pg, redis = LocalPostgres(work / "pg"), LocalRedis(work / "redis")
    db_url, redis_url = pg.start(), redis.start()
    key = make_tenant_key(db_url)
    catalog = work / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": "mock", "tier": "vllm", "context_length": 4096,
         "price": {"input_per_1k": 0.5, "output_per_1k": 1.5},
         "backends": [{"name": "mock", "url": mock}]}]}))
    gw_env = {**env, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
              "LLMP_CATALOG_PATH": str(catalog), "LLMP_LOG_LEVEL": "WARNING"}
    uvicorn = [py, "-m", "uvicorn", "--factory", "--log-level", "warning", "--no-access-log"]
    out = [f"# auth + limits overhead ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
           f"rounds={args.rounds}x{args.per_round}, mock backend, not streamed)"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(process([py, "bench/mock_backend.py", str(mock_port)], env,
                                    f"{mock}/health"))
        stack.enter_context(process([*uvicorn, "functions.asgi:create_app", "--port",
                                     str(on_port)], gw_env, f"http://127.0.0.1:{on_port}/ready"))
        stack.enter_context(process([*uvicorn, "bench.limits:create_app_off", "--port",
                                     str(off_port)], gw_env, f"http://127.0.0.1:{off_port}/health"))
        off_url, on_url = f"http://127.0.0.1:{off_port}", f"http://127.0.0.1:{on_port}"
        targets = {
            # off: no limits ran (no rate headers); on: the key's and the tenant's limits did
            "off": Target(f"{off_url}/v1/chat/completions", {}, "mock",
                          {**miss("mock"), "x-ratelimit-limit-requests": ""}, off_url),
            "on": Target(f"{on_url}/v1/chat/completions", {"authorization": f"Bearer {key}"},
                         "mock", {**miss("mock"), "x-ratelimit-limit-requests": str(RPM),
                                  "x-ratelimit-limit-tokens": str(TPM)}, on_url),
        }
        out += ["", "| concurrency | target | n | errors | p50 ms | p99 ms | added p50 ms |"
                " added p99 ms |", "|---|---|---|---|---|---|---|---|"]
        for conc in (1, 16):
            print(f"measuring: concurrency {conc}", flush=True)
            res = asyncio.run(measure(targets, False, conc, args.rounds,
                                      args.per_round if conc == 1 else args.per_round * 4, 16))
            off = res["off"].latency_ms
            for name, s in res.items():
                p50, p99 = pct(s.latency_ms, 50), pct(s.latency_ms, 99)
                added = ("| | |" if name == "off" else
                         f"| {p50 - pct(off, 50):+.2f} | {p99 - pct(off, 99):+.2f} |")
                out.append(f"| {conc} | {name} | {len(s.latency_ms)} | {s.errors} | {p50:.2f} "
                           f"| {p99:.2f} {added}")
    out += asyncio.run(stage_costs(db_url, redis_url, key))
    redis.stop()
    pg.stop()
    print("\n".join(out))


if __name__ == "__main__":
    run_main(main)
