"""``llmp serve``: local services (Postgres, Redis, Azurite), the catalog's GGUF servers (serving from
Blob, as in production), its embedding servers (the embedding tier, which RAG and the semantic cache
call too) and the gateway, supervised together; with ``LLMP_VLLM_LOCAL=1``, also vLLM's
OpenAI server on CPU with a small model (``models/vllm_local.py``, catalog alias ``smollm2-vllm``).
With ``LLMP_LOCAL_REPLICAS=N`` (``--replicas N``), N GGUF servers per GGUF alias, each on its own
port, and a gateway that knows all N as backends of the alias (:func:`replicate`; docs/routing.md).

It never prompts. SIGINT (Ctrl-C, to the whole process group) or SIGTERM stops every child within
seconds; a child that dies takes the whole platform down with a non-zero exit, so failures are loud.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx
import yaml

from llmp_cli.local import (
    LocalAzurite,
    LocalPostgres,
    LocalRedis,
    LocalVllm,
    data_dir,
    local_blob_file,
    local_redis_url_file,
)
from models.blob_store import BlobSettings
from models.catalog import BackendSpec, Catalog, CatalogError, ModelSpec, load_catalog

log = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    health_url: str


@dataclass
class Supervisor:
    children: list[Child] = field(default_factory=list)
    stopping: bool = False

    def spawn(self, name: str, argv: list[str], env: dict[str, str], health_url: str) -> None:
        proc = subprocess.Popen(argv, env=env)
        self.children.append(Child(name, proc, health_url))
        log.info("started", extra={"child": name, "pid": proc.pid})

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        pending = list(self.children)
        with httpx.Client(timeout=2.0, trust_env=False) as client:
            while pending and not self.stopping:
                for child in list(pending):
                    if child.proc.poll() is not None:
                        raise RuntimeError(f"{child.name} exited with {child.proc.returncode}")
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(child.health_url).status_code == 200:
                            pending.remove(child)
                if time.monotonic() > deadline:
                    names = ", ".join(c.name for c in pending)
                    raise TimeoutError(f"not healthy after {timeout_s}s: {names}")
                time.sleep(0.2)

    def first_exit(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def stop(self, grace_s: float = 5.0) -> None:
        self.stopping = True
        for c in self.children:
            if c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for c in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                c.proc.wait(max(0.1, deadline - time.monotonic()))
            if c.proc.poll() is None:
                c.proc.kill()
                c.proc.wait()


class GGUFServer(NamedTuple):
    """One GGUF server process that ``llmp serve`` starts: the catalog backend it serves."""

    alias: str
    file: str
    port: int
    slots: int
    backend: str
    replica: int
    """Its index among the alias's local backends (0 for the first)."""
    threads: int | None
    """CPU threads, when several replicas of the alias share this machine; None: all of them."""


REPLICA_PORT_STRIDE = 100
"""Replica ``i`` of a local backend on port ``P`` listens on ``P + i * 100`` (8081, 8181, ...)."""


def replicate(catalog: Catalog, replicas: int) -> Catalog:
    """The catalog as the local gateway sees it with ``replicas`` GGUF servers per alias: each
    loopback backend of a GGUF alias becomes ``replicas`` backends ``NAME-0`` .. ``NAME-{N-1}``, on
    ports ``P``, ``P+100``, ... (remote backends and other tiers are kept as they are). The same
    shape the Azure catalog has for a tier with several replicas: one backend per replica."""
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    if replicas == 1:
        return catalog
    taken = {urlsplit(b.base_url).port for m in catalog.models for b in m.backends}
    models = []
    for m in catalog.models:
        if m.tier != "gguf" or m.gguf is None:
            models.append(m)
            continue
        backends: list[BackendSpec] = []
        for b in m.backends:
            parts = urlsplit(b.base_url)
            if parts.hostname not in LOOPBACK or not parts.port:
                backends.append(b)
                continue
            for i in range(replicas):
                port = parts.port + i * REPLICA_PORT_STRIDE
                if i and (port in taken or port > 65535):
                    raise CatalogError(f"replica {i} of backend {b.name} would listen on port "
                                       f"{port}, which the catalog already uses (or is too high)")
                url = parts._replace(netloc=f"{parts.hostname}:{port}").geturl()
                backends.append(BackendSpec.model_validate(
                    {**b.model_dump(), "name": f"{b.name}-{i}", "url": url}))
        models.append(ModelSpec.model_validate({**m.model_dump(), "backends": backends}))
    return Catalog(models=tuple(models))


def write_catalog(catalog: Catalog, path: Path) -> Path:
    """Write ``catalog`` as YAML that :func:`models.catalog.load_catalog` reads back unchanged
    (values already expanded; disabled models already left out)."""
    data = catalog.model_dump(mode="json", exclude_defaults=True)
    path.write_text("# written by `llmp serve` (LLMP_LOCAL_REPLICAS): the catalog the local gateway"
                    " reads\n" + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gguf_servers(catalog: Catalog, cpus: int | None = None) -> list[GGUFServer]:
    """One :class:`GGUFServer` for each GGUF backend the catalog puts on this machine. Replicas of
    one alias split the machine's cores (``cpus``, default: those this process may use) between
    them, since the router keeps them all busy at once."""
    cpus = cpus or usable_cpus()
    out = []
    for m in catalog.models:
        if m.tier != "gguf" or m.gguf is None:
            continue
        local = [(b, p) for b in m.backends
                 if (p := urlsplit(b.base_url)).hostname in LOOPBACK and p.port]
        threads = max(1, cpus // len(local)) if len(local) > 1 else None
        for i, (b, parts) in enumerate(local):
            assert parts.port is not None
            out.append(GGUFServer(m.alias, m.gguf.file, parts.port, m.gguf.slots, b.name, i,
                                  threads))
    return out


def embedding_servers(catalog: Catalog) -> list[tuple[str, int]]:
    """(alias, port) for each embedding-tier backend the catalog puts on this machine."""
    out = []
    for m in catalog.models:
        if m.tier != "embedding":
            continue
        for b in m.backends:
            parts = urlsplit(b.base_url)
            if parts.hostname in LOOPBACK and parts.port:
                out.append((b.served_model or m.alias, parts.port))
    return out


def _stop_on_signals(sup: Supervisor) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        if not sup.stopping and not sup.children:
            # still starting services (Postgres, migrations, a model upload): stop right here
            sup.stopping = True
            raise KeyboardInterrupt
        sup.stopping = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def ensure_dev_key(database_url: str) -> str:
    """A key for the local ``dev`` tenant, made once and kept in ``.llmp/dev-api-key`` (mode 600)."""
    return _ensure_local_key(database_url, "dev-api-key", "llmp serve", None)


def ensure_admin_key(database_url: str) -> str:
    """A key with the admin role (``/v1/admin/...``: ``llmp backends``), made once and kept in
    ``.llmp/admin-api-key`` (mode 600)."""
    return _ensure_local_key(database_url, "admin-api-key", "llmp serve (admin)", ["admin"])


def _ensure_local_key(database_url: str, file: str, name: str, roles: list[str] | None) -> str:
    path = data_dir() / file
    if path.is_file():
        return path.read_text().strip()
    from functions.db import Database
    from functions.keys import KeyStore

    async def make() -> str:
        db = Database(database_url, min_size=0, max_size=1)
        try:
            _, key = await KeyStore(db).create("dev", name=name, roles=roles)
        finally:
            await db.aclose()
        return key

    key = asyncio.run(make())
    path.touch(mode=0o600)
    path.write_text(key + "\n")
    return key


def publish_missing(settings: BlobSettings, servers: list[GGUFServer], catalog: Catalog) -> None:
    """First start: publish each local GGUF alias's seed file (catalog ``gguf.file``) to Blob, so the
    local platform serves models the way production does: from Blob Storage. The version is loaded
    with the catalog's context length (``n_ctx``); a file a package assembles (``assemble:``) is
    built once into ``.llmp/models``."""
    from llmp_cli.models_cmd import publish_file
    from models.blob_store import ModelStore
    from models.local_files import resolve_model_file

    async def run() -> None:
        store = ModelStore.from_settings(settings)
        try:
            await store.ensure_container()
            for alias, model_file in dict.fromkeys((s.alias, s.file) for s in servers):
                if await store.current(alias) is None:
                    spec = catalog.get(alias)
                    path = resolve_model_file(model_file, data_dir() / "models")
                    template = spec.gguf.chat_template_path if spec and spec.gguf else None
                    mv = await publish_file(store, alias, path,
                                            n_ctx=spec.context_length if spec else None,
                                            chat_template=template.read_text() if template else None)
                    print(f"published {model_file} to Blob as {alias} ({mv.version})", flush=True)
        finally:
            await store.aclose()

    asyncio.run(run())


def local_vllm(catalog: Catalog) -> LocalVllm | None:
    """The local vLLM server of ``LLMP_VLLM_LOCAL=1``: the catalog's ``smollm2-vllm`` backend, on
    its loopback port."""
    from models.vllm_local import SERVED_MODEL

    spec = catalog.get(SERVED_MODEL)
    if spec is None:
        return None
    for b in spec.backends:
        parts = urlsplit(b.base_url)
        if parts.hostname in LOOPBACK and parts.port:
            return LocalVllm(data_dir() / "vllm.log", port=parts.port,
                             served_model=b.served_model or SERVED_MODEL)
    return None


def serve(host: str, port: int, catalog_path: Path | None, replicas: int = 1) -> int:
    try:
        return _serve(host, port, catalog_path, replicas)
    except KeyboardInterrupt:
        return 0


def _serve(host: str, port: int, catalog_path: Path | None, replicas: int) -> int:
    sup = Supervisor()
    _stop_on_signals(sup)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    pg = redis = azurite = None
    try:
        if not env.get("DATABASE_URL"):
            pg = LocalPostgres(data_dir() / "pgdata")
            env["DATABASE_URL"] = pg.start()
        if not env.get("REDIS_URL"):
            redis = LocalRedis(data_dir() / "redis")
            env["REDIS_URL"] = redis.start()
            local_redis_url_file().write_text(env["REDIS_URL"])
        if catalog_path is not None:
            env["LLMP_CATALOG_PATH"] = str(catalog_path)
        env.setdefault("LLMP_RAG_QDRANT_PATH", str(data_dir() / "qdrant"))  # Qdrant local mode
        catalog = replicate(load_catalog(catalog_path), replicas)
        if replicas > 1:  # the gateway reads the catalog with one backend per replica
            env["LLMP_CATALOG_PATH"] = str(write_catalog(catalog, data_dir() / "catalog.local.yaml"))
        key = ensure_dev_key(env["DATABASE_URL"])  # also applies migrations
        ensure_admin_key(env["DATABASE_URL"])
        servers = gguf_servers(catalog)
        blob_set = env.get("LLMP_BLOB_CONNECTION_STRING") or env.get("LLMP_BLOB_ACCOUNT_URL")
        if servers and not blob_set:
            azurite = LocalAzurite(data_dir() / "azurite")
            env["LLMP_BLOB_CONNECTION_STRING"] = azurite.start()
            local_blob_file().write_text(env["LLMP_BLOB_CONNECTION_STRING"])
        if servers:
            publish_missing(BlobSettings(connection_string=env.get("LLMP_BLOB_CONNECTION_STRING"),
                                         account_url=env.get("LLMP_BLOB_ACCOUNT_URL")), servers,
                            catalog)

        for g in servers:
            cache = "gguf-cache" if g.replica == 0 else f"gguf-cache-{g.replica}"  # one per process
            threads = {"LLMP_GGUF_THREADS": str(g.threads)} if g.threads and \
                "LLMP_GGUF_THREADS" not in env else {}
            sup.spawn(f"gguf:{g.backend}" if replicas > 1 else f"gguf:{g.alias}",
                      [sys.executable, "-m", "models.gguf_server.app"],
                      {**env, "LLMP_GGUF_MODEL": "blob:", "LLMP_GGUF_ALIAS": g.alias,
                       "LLMP_GGUF_PORT": str(g.port), "LLMP_GGUF_SLOTS": str(g.slots),
                       "LLMP_GGUF_CACHE_DIR": str(data_dir() / cache), **threads},
                      f"http://127.0.0.1:{g.port}/health")
        for alias, eport in embedding_servers(catalog):
            sup.spawn(f"embedding:{alias}", [sys.executable, "-m", "models.embedding_server.app"],
                      {**env, "HF_HUB_OFFLINE": "1", "LLMP_EMBEDDING_SERVER_ALIAS": alias,
                       "LLMP_EMBEDDING_SERVER_PORT": str(eport)},
                      f"http://127.0.0.1:{eport}/health")
        vllm = local_vllm(catalog) if env.get("LLMP_VLLM_LOCAL") == "1" else None
        if vllm is not None:  # opt-in: ~1 minute and ~5 GB to start
            argv, venv_env = vllm.command()
            sup.spawn("vllm", argv, venv_env, f"{vllm.url}/health")
        sup.spawn("gateway", [sys.executable, "-m", "uvicorn", "functions.asgi:create_app",
                              "--factory", "--host", host, "--port", str(port),
                              "--log-level", "warning", "--no-access-log",
                              "--timeout-graceful-shutdown", "5"],
                  env, f"http://{host}:{port}/ready")
        sup.wait_healthy(timeout_s=600 if env.get("LLMP_VLLM_LOCAL") == "1" else 180)
        if not sup.stopping:
            print(f"llmp is up: OpenAI API at http://{host}:{port}/v1", flush=True)
            print(f"models: {', '.join(m.alias for m in catalog.models)}", flush=True)
            if replicas > 1:
                for g in servers:
                    print(f"replica {g.backend} of {g.alias}: http://127.0.0.1:{g.port} "
                          f"({g.threads or 'all'} threads)", flush=True)
            print(f"local API key (tenant 'dev'): {key}", flush=True)
        while not sup.stopping:
            if (dead := sup.first_exit()) is not None:
                print(f"{dead.name} exited with {dead.proc.returncode}; stopping", file=sys.stderr)
                return 1
            time.sleep(0.2)
        return 0
    finally:
        sup.stop()
        if azurite is not None:
            azurite.stop()
            local_blob_file().unlink(missing_ok=True)
        if redis is not None:
            redis.stop()
            local_redis_url_file().unlink(missing_ok=True)
        if pg is not None:
            pg.stop()
