"""/v1/embeddings through the gateway vs the embedding tier directly, in one run.

    .venv/bin/python bench/embeddings.py [--n 30] [--threads 1]

Starts Postgres, Redis, the embedding server (all-MiniLM-L6-v2, CPU torch) and the gateway as
processes, as in production, then sends batches of 1 and of 32 inputs (distinct texts of about 20
tokens) from one client, alternating direct and gateway requests so both see the same machine state.
The tenant's guardrails are off (the row measures the gateway's own path: key, limits, ledger,
dispatch). Each answer is checked: 200, as many vectors as inputs of 384 floats, and through the
gateway ``x-llmp-backend`` naming the tier's backend; anything else fails the run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.overhead import pct  # noqa: E402
from llmp_cli.local import LocalPostgres, LocalRedis, free_port, running  # noqa: E402

MODEL = "all-minilm-l6-v2"
BACKEND = "embedding-bench"
WORDS = ["harbour", "lantern", "quiet", "river", "stone", "market", "winter", "orchard", "signal",
         "copper", "meadow", "bridge", "thunder", "garden", "paper", "window", "silver", "valley",
         "engine", "letter"]


def text(i: int) -> str:
    return " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(16)) + f" number {i}."


def setup(db_url: str) -> str:
    from functions.db import Database
    from functions.guardrails.policies import PolicyStore
    from functions.guardrails.policy import GuardrailPolicy
    from functions.keys import KeyStore

    async def run() -> str:
        db = Database(db_url, min_size=0, max_size=1)
        try:
            _, key = await KeyStore(db).create("bench-embeddings", name="bench")
            await PolicyStore(db, 0).set("bench-embeddings", GuardrailPolicy(enabled=False))
        finally:
            await db.aclose()
        return key

    return asyncio.run(run())


def check(r: httpx.Response, batch: int, via_gateway: bool) -> None:
    if r.status_code != 200:
        raise SystemExit(f"HTTP {r.status_code}: {r.text[:300]}")
    data = r.json()["data"]
    if len(data) != batch or any(len(d["embedding"]) != 384 for d in data):
        raise SystemExit(f"expected {batch} vectors of 384 floats, got {len(data)}")
    if via_gateway and r.headers.get("x-llmp-backend") != BACKEND:
        raise SystemExit(f"not answered by the tier: x-llmp-backend={r.headers.get('x-llmp-backend')}")


async def bench(direct: str, gateway: str, key: str, n: int) -> list[str]:
    rows = ["| batch | path | req/s | p50 ms | p95 ms |", "| --- | --- | --- | --- | --- |"]
    async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
        for batch in (1, 32):
            times: dict[str, list[float]] = {"direct": [], "gateway": []}
            for i in range(n + 5):
                body = {"model": MODEL, "input": [text(i * batch + j) for j in range(batch)]}
                for path, url, headers in (("direct", direct, {}),
                                           ("gateway", gateway, {"authorization": f"Bearer {key}"})):
                    t0 = time.perf_counter()
                    r = await client.post(f"{url}/v1/embeddings", json=body, headers=headers)
                    elapsed = time.perf_counter() - t0
                    check(r, batch, path == "gateway")
                    if i >= 5:  # warm-up
                        times[path].append(elapsed)
            p50 = {}
            for path, ts in times.items():
                p50[path] = pct([t * 1000 for t in ts], 50)
                rows.append(f"| {batch} | {path} | {len(ts) / sum(ts):.1f} | {p50[path]:.2f} | "
                            f"{pct([t * 1000 for t in ts], 95):.2f} |")
            rps_ratio = sum(times["direct"]) / sum(times["gateway"])
            rows.append(f"| {batch} | gateway / direct | {rps_ratio:.2f}x | "
                        f"+{p50['gateway'] - p50['direct']:.2f} | |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="the embedding server's torch threads")
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-bench-embeddings-"))
    emb_port, gw_port = free_port(), free_port()
    emb, gw = f"http://127.0.0.1:{emb_port}", f"http://127.0.0.1:{gw_port}"
    pg, redis = LocalPostgres(work / "pg"), LocalRedis(work / "redis")
    db_url, redis_url = pg.start(), redis.start()
    key = setup(db_url)
    catalog = work / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": MODEL, "tier": "embedding", "context_length": 254,
         "backends": [{"name": BACKEND, "url": emb}],
         "capabilities": {"chat": False, "completions": False, "tools": False,
                          "json_schema": False, "logprobs": False, "embeddings": True,
                          "embedding_dimensions": 384}}]}))
    gw_env = {**env, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
              "LLMP_CATALOG_PATH": str(catalog), "LLMP_LOG_LEVEL": "WARNING"}
    out = [f"# embeddings ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, n={args.n}, "
           f"concurrency 1, {args.threads} torch thread(s))"]
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(running([py, "-m", "models.embedding_server.app"],
                                        {**env, "LLMP_EMBEDDING_SERVER_PORT": str(emb_port),
                                         "LLMP_EMBEDDING_SERVER_ALIAS": MODEL,
                                         "LLMP_EMBEDDING_SERVER_THREADS": str(args.threads)},
                                        f"{emb}/health",
                                        quiet=True, timeout_s=120))
            stack.enter_context(running(
                [py, "-m", "uvicorn", "functions.asgi:create_app", "--factory", "--port",
                 str(gw_port), "--log-level", "warning", "--no-access-log"], gw_env, f"{gw}/ready",
                quiet=True, timeout_s=120))
            out += asyncio.run(bench(emb, gw, key, args.n))
    finally:
        redis.stop()
        pg.stop()
    print("\n".join(out))


if __name__ == "__main__":
    main()
