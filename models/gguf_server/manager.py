"""The model in service, and swapping it without failing a request.

A request takes a *lease* on the loaded model it starts on and keeps it to its last token. A swap
downloads and verifies the new version in the background, loads it beside the old one, points new
requests at it, and frees the old one once its last lease is returned. A version that cannot be
downloaded, verified or loaded changes nothing but a log line, a metric and ``/health``'s
``last_error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from models.blob_store import (
    BlobUnavailable,
    DiskFull,
    ModelStore,
    ModelVersion,
    PointerMoved,
    file_sha256,
)
from models.gguf_server.engine import Engine, NotReady
from models.gguf_server.metrics import Metrics
from models.gguf_server.settings import GGUFServerSettings
from models.local_files import resolve_model_file

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Loaded:
    engine: Engine
    version: str
    sha256: str | None
    path: Path
    load_seconds: float
    leases: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(eq=False)
class Lease:
    loaded: Loaded
    released: bool = False

    @property
    def engine(self) -> Engine:
        return self.loaded.engine

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.loaded.leases -= 1
            if self.loaded.leases == 0:
                self.loaded.idle.set()


@dataclass(eq=False)
class ModelManager:
    settings: GGUFServerSettings
    metrics: Metrics
    store: ModelStore | None = None
    current: Loaded | None = None
    reason: str = "loading model"
    last_error: str | None = None
    rejected: set[str] = field(default_factory=set)
    _refresh: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _draining: set[asyncio.Task[None]] = field(default_factory=set)
    _old: list[Loaded] = field(default_factory=list)

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        for task in [*([self._task] if self._task else []), *self._draining]:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for loaded in [*self._old, *([self.current] if self.current else [])]:
            await asyncio.to_thread(loaded.engine.close)
        self.current = None
        if self.store is not None:
            await self.store.aclose()

    def refresh(self) -> None:
        """Check the alias pointer now (the Event Grid endpoint calls this)."""
        self._refresh.set()

    @property
    def in_flight(self) -> int:
        return sum(x.leases for x in [*self._old, *([self.current] if self.current else [])])

    def load(self) -> dict[str, int]:
        """The load the gateway routes on: sequences decoding (draining versions included),
        requests queued, and the slots of the version in service."""
        active = queued = 0
        for loaded in [*self._old, *([self.current] if self.current else [])]:
            a, q = loaded.engine.load_report()
            active, queued = active + a, queued + q
        return {"active": active, "queued": queued,
                "slots": self.current.engine.slots if self.current else 0}

    def lease(self) -> Lease:
        cur = self.current
        if cur is None:
            raise NotReady(f"The model is not ready: {self.reason}.")
        cur.leases += 1  # no await between reading `current` and taking the lease
        cur.idle.clear()
        return Lease(cur)

    # -- the loop ----------------------------------------------------------------------------
    async def _run(self) -> None:
        s = self.settings
        if self.store is None:
            try:
                path = resolve_model_file(s.model, s.cache_dir)
                sha = await asyncio.to_thread(file_sha256, path)
                template = (await asyncio.to_thread(s.chat_template_file.read_text, "utf-8")
                            if s.chat_template_file else None)
                await self._load(path, s.version or path.name, sha, None, template)
            except Exception as e:  # noqa: BLE001 - reported by /health
                self.reason = f"failed: {type(e).__name__}: {e}"
                log.error("model load failed", extra={"error": self.reason})
            return
        backoff = 1.0
        while self.current is None:
            try:
                await self._check()
                backoff = 1.0
                if self.current is None and self.rejected:
                    await self._serve_cached()
                if self.current is None:
                    self.reason = self.last_error or f"no model is published for alias {s.alias!r}"
            except BlobUnavailable as e:
                self.reason = f"blob storage unreachable: {e}"
                log.warning("blob storage unreachable", extra={"error": str(e), "retry_s": backoff})
            except Exception as e:
                self.reason = f"sync failed: {type(e).__name__}: {e}"
                log.exception("model sync failed")
            await self._wait(backoff if self.current is None else 0)
            backoff = min(backoff * 2, s.startup_backoff_max_s)
        while True:
            await self._wait(s.poll_interval_s)
            try:
                await self._check()
            except BlobUnavailable as e:
                log.warning("blob storage unreachable; serving the loaded version",
                            extra={"error": str(e)})
            except Exception:
                log.exception("model sync failed; serving the loaded version")

    async def _wait(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._refresh.wait(), seconds)
        self._refresh.clear()

    async def _check(self) -> None:
        """Swap to the version the pointer names, if it is new; the last pointer written wins."""
        assert self.store is not None
        try:
            await self._follow(await self.store.current(self.settings.alias))
        except PointerMoved:
            log.info("the model blob changed during the download; taking the new one next")

    async def _follow(self, mv: ModelVersion | None) -> None:
        assert self.store is not None
        while mv is not None and mv.version not in self.rejected and (
                self.current is None or mv.version != self.current.version):
            path = await self._fetch(mv)
            latest = await self.store.current(self.settings.alias)
            if latest is not None and latest.version != mv.version:
                mv = latest  # another upload came in meanwhile: skip to it
                continue
            if path is not None:
                await self._load(path, mv.version, mv.sha256, mv.n_ctx, mv.chat_template)
            return

    async def _fetch(self, mv: ModelVersion) -> Path | None:
        assert self.store is not None
        s = self.settings
        dest = s.cache_dir / mv.alias / f"{mv.version}.gguf"
        before = (self.store.stats.bytes, self.store.stats.seconds)
        try:
            try:
                path = await self.store.download(mv, dest, min_free_bytes=s.min_free_bytes)
            except DiskFull:
                self._prune(keep=1)  # make room from cached versions not in use, then once more
                path = await self.store.download(mv, dest, min_free_bytes=s.min_free_bytes)
            await asyncio.to_thread(_write_params, path, mv)
            return path
        except BlobUnavailable:
            raise
        except DiskFull as e:  # not the version's fault: tried again at the next poll
            self._fail(mv.version, e)
            return None
        except Exception as e:  # noqa: BLE001 - verification: the version is rejected
            self._reject(mv.version, e)
            return None
        finally:
            self.metrics.download_bytes.inc(self.store.stats.bytes - before[0])
            self.metrics.download_seconds.inc(self.store.stats.seconds - before[1])

    async def _serve_cached(self) -> None:
        """At start-up the pointer names a version that was rejected: rather than answer 503 until
        someone publishes again, serve the newest verified version in the cache, and say so."""
        folder = self.settings.cache_dir / self.settings.alias
        files = sorted(folder.glob("*.gguf"), key=lambda p: p.stat().st_mtime, reverse=True) \
            if folder.is_dir() else []
        for f in files:
            if f.stem in self.rejected:
                continue
            params = await asyncio.to_thread(_read_params, f)
            await self._load(f, f.stem, params.get("sha256"), params.get("n_ctx"),
                             params.get("chat_template"))
            if self.current is not None:
                log.warning("serving a cached version: the alias points at a rejected one",
                            extra={"version": f.stem, "error": self.last_error})
                return

    def _reject(self, version: str, e: Exception) -> None:
        """A version that will never work (until the pointer moves): not tried again."""
        self.rejected.add(version)
        self._fail(version, e)

    def _fail(self, version: str, e: Exception) -> None:
        self.last_error = f"version {version} rejected: {type(e).__name__}: {e}"
        self.metrics.swap_failures.labels(type(e).__name__).inc()
        log.error("model version rejected", extra={"version": version, "error": str(e),
                                                   "reason": type(e).__name__})

    async def _load(self, path: Path, version: str, sha: str | None, n_ctx: int | None,
                    chat_template: str | None) -> None:
        s = self.settings
        started = time.perf_counter()
        engine = Engine(path, slots=s.slots, threads=s.threads,
                        n_ctx=n_ctx or s.n_ctx, n_batch=s.n_batch, max_queue=s.max_queue,
                        chat_template=chat_template, flash_attn=s.flash_attn)
        try:
            await asyncio.to_thread(engine.load)
        except Exception as e:
            await asyncio.to_thread(engine.close)
            self._reject(version, e)
            if self.store is None:
                raise
            return
        engine.activate()
        loaded = Loaded(engine, version, sha, path, round(time.perf_counter() - started, 3))
        old, self.current = self.current, loaded
        self.metrics.set_model(s.alias, version, sha)
        if old is not None:
            self.metrics.swaps.inc()
            self._old.append(old)
            task = asyncio.get_running_loop().create_task(self._drain(old))
            self._draining.add(task)
            task.add_done_callback(self._draining.discard)
        log.info("model in service", extra={"alias": s.alias, "version": version,
                                            "seconds": loaded.load_seconds})
        if self.store is not None:
            self._prune(parts=True)

    async def _drain(self, old: Loaded) -> None:
        if old.leases > 0:
            await old.idle.wait()
        await asyncio.to_thread(old.engine.close)
        self._old.remove(old)
        self._prune()

    def _prune(self, keep: int | None = None, *, parts: bool = False) -> None:
        """Keep the newest ``keep_versions`` files of the alias on disk (for rollback), never one in
        use. ``parts``: also drop partial downloads; only the watcher passes it, between downloads."""
        folder = self.settings.cache_dir / self.settings.alias
        if not folder.is_dir():
            return
        in_use = {x.path for x in [*self._old, *([self.current] if self.current else [])]}
        files = sorted(folder.glob("*.gguf"), key=lambda p: p.stat().st_mtime, reverse=True)
        for f in files[self.settings.keep_versions if keep is None else keep:]:
            if f not in in_use:
                f.unlink(missing_ok=True)
                f.with_suffix(".json").unlink(missing_ok=True)
        for f in folder.glob("*.gguf.part") if parts else ():
            f.unlink(missing_ok=True)


def _write_params(path: Path, mv: ModelVersion) -> None:
    """Keep a cached file's load parameters beside it (``<version>.json``)."""
    path.with_suffix(".json").write_bytes(orjson.dumps(
        {"sha256": mv.sha256, "n_ctx": mv.n_ctx, "chat_template": mv.chat_template}))


def _read_params(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.with_suffix(".json").read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}
