"""Where the gateway's time goes on the cache-miss path: the overhead benchmark's setup (Postgres,
Redis, the mock backend, the gateway with guardrails off), cache-miss requests at concurrency 1, and
py-spy sampling the gateway process meanwhile.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile_gateway.py [--n 3000] [--stream] [--out bench/results/miss.txt]

Prints the functions with the most samples (inclusive, and own time), from py-spy's collapsed
stacks (written to ``--out``; feed them to a flame graph tool for the picture).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import miss, run_main  # noqa: E402
from bench.overhead import Samples, Target, batch, make_key, pct, process  # noqa: E402
from llmp_cli.local import LocalPostgres, LocalRedis, free_port  # noqa: E402


def top(collapsed: Path, n: int = 40) -> list[str]:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        k = int(count)
        total += k
        frames = stack.split(";")
        for f in set(frames):
            inclusive[f] += k
        own[frames[-1]] += k
    out = [f"{total} samples", "", "inclusive:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in inclusive.most_common(n)]
    out += ["", "own time:"]
    out += [f"{100 * c / total:5.1f}%  {f}" for f, c in own.most_common(n)]
    return out


def redis_calls(url: str) -> dict[str, int]:
    from redis import Redis

    r = Redis.from_url(url)
    stats = r.info("commandstats")
    r.close()
    return {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "miss.txt")
    args = ap.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    py = sys.executable
    work = Path(tempfile.mkdtemp(prefix="llmp-profile-"))
    mock_port, gw_port = free_port(), free_port()
    mock, gw = f"http://127.0.0.1:{mock_port}", f"http://127.0.0.1:{gw_port}"
    pg, redis = LocalPostgres(work / "pg"), LocalRedis(work / "redis")
    db_url, redis_url = pg.start(), redis.start()
    key = make_key(db_url)
    catalog = work / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"models": [
        {"alias": "mock", "tier": "vllm", "context_length": 4096,
         "backends": [{"name": "mock", "url": mock}]}]}))
    gw_env = {**env, "DATABASE_URL": db_url, "REDIS_URL": redis_url,
              "LLMP_CATALOG_PATH": str(catalog), "LLMP_LOG_LEVEL": "WARNING",
              "LLMP_GUARDRAILS_ENABLED": "0"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        stack.callback(pg.stop)
        stack.callback(redis.stop)
        stack.enter_context(process([py, "bench/mock_backend.py", str(mock_port)], env,
                                    f"{mock}/health"))
        gateway = stack.enter_context(process(
            [py, "-m", "uvicorn", "functions.asgi:create_app", "--factory", "--port", str(gw_port),
             "--log-level", "warning", "--no-access-log"], gw_env, f"{gw}/ready"))
        target = Target(f"{gw}/v1/chat/completions", {"authorization": f"Bearer {key}"}, "mock",
                        miss("mock"), gw)

        async def drive(n: int, s: Samples) -> None:
            async with httpx.AsyncClient(timeout=60, trust_env=False) as client:
                await batch(client, target, args.stream, args.concurrency, n, 16, s)

        asyncio.run(drive(50, Samples()))  # warm-up
        before = redis_calls(redis_url)
        rec = subprocess.Popen([spy, "record", "--pid", str(gateway.pid), "--format", "raw",
                                "--rate", str(args.rate), "--output", str(args.out), "--nonblocking"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
        s = Samples()
        t0 = time.perf_counter()
        asyncio.run(drive(args.n, s))
        elapsed = time.perf_counter() - t0
        rec.send_signal(2)  # SIGINT: py-spy writes its output and exits
        rec.wait(30)
        time.sleep(1)
        after = redis_calls(redis_url)
    per = {c: (after[c] - before.get(c, 0)) / args.n for c in after}
    print("Redis commands per request: " + ", ".join(
        f"{c} {v:.2f}" for c, v in sorted(per.items(), key=lambda x: -x[1]) if v > 0.005))
    print(f"{args.n} requests in {elapsed:.1f} s, p50 {pct(s.latency_ms, 50):.2f} ms, "
          f"load average {os.getloadavg()[0]:.2f}")
    print("\n".join(top(args.out)))


if __name__ == "__main__":
    run_main(main)
