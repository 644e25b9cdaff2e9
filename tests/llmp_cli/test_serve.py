"""``llmp serve`` as a newcomer runs it: everything local, real model, Ctrl-C stops it all."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from openai import OpenAI

from llmp_cli.local import free_port
from llmp_cli.serve import embedding_servers, gguf_servers, local_vllm
from models.catalog import parse_catalog


def test_gguf_servers_only_for_loopback_backends() -> None:
    catalog = parse_catalog("""
models:
  - {alias: a, tier: gguf, context_length: 9, gguf: {file: x.gguf, slots: 2},
     backends: [{name: l, url: "http://127.0.0.1:8101"}, {name: r, url: "http://gguf.svc:80"}]}
  - {alias: b, tier: vllm, context_length: 9, backends: [{name: v, url: "http://127.0.0.1:8000"}]}
""", {})
    assert gguf_servers(catalog) == [("a", "x.gguf", 8101, 2)]


def test_embedding_servers_only_for_loopback_backends() -> None:
    catalog = parse_catalog("""
models:
  - {alias: e, tier: embedding, context_length: 9,
     backends: [{name: l, url: "http://127.0.0.1:8102"}, {name: r, url: "http://emb.svc:80"},
                {name: s, url: "http://localhost:8103", served_model: x}]}
  - {alias: b, tier: vllm, context_length: 9, backends: [{name: v, url: "http://127.0.0.1:8000"}]}
""", {})
    assert embedding_servers(catalog) == [("e", 8102), ("x", 8103)]


def test_local_vllm_listens_where_the_catalog_points() -> None:
    catalog = parse_catalog("""
models:
  - {alias: smollm2-vllm, tier: vllm, context_length: 9, backends: [{name: v, url: "http://127.0.0.1:8123"}]}
""", {})
    v = local_vllm(catalog)
    assert v is not None and v.port == 8123 and v.served_model == "smollm2-vllm"
    assert local_vllm(parse_catalog("""
models:
  - {alias: b, tier: vllm, context_length: 9, backends: [{name: v, url: "http://127.0.0.1:8000"}]}
""", {})) is None
    enabled = [m.alias for m in parse_catalog((Path(__file__).parents[2] / "models/catalog.yaml")
                                              .read_text(), {}).models]
    assert "smollm2-vllm" not in enabled  # off unless LLMP_VLLM_LOCAL=1
    assert "smollm2-vllm" in [m.alias for m in parse_catalog(
        (Path(__file__).parents[2] / "models/catalog.yaml").read_text(), {"LLMP_VLLM_LOCAL": "1"}).models]


@pytest.mark.slow
def test_serve_answers_then_stops_on_sigint(tmp_path: Path) -> None:
    port, gguf_port, embedding_port, gemma_port = (free_port() for _ in range(4))
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(LLMP_DATA_DIR=str(tmp_path / "data"), LLMP_SMOLLM2_URL=f"http://127.0.0.1:{gguf_port}",
               LLMP_EMBEDDING_URL=f"http://127.0.0.1:{embedding_port}",
               LLMP_GEMMA3_URL=f"http://127.0.0.1:{gemma_port}", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "llmp_cli.main", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, text=True)
    try:
        key = None
        deadline = time.monotonic() + 240  # Gemma is assembled (250 MB) and published first
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("local API key"):
                key = line.rsplit(" ", 1)[1].strip()
                break
            assert time.monotonic() < deadline
        assert key, "serve never came up"
        family = psutil.Process(proc.pid).children(recursive=True)
        assert len(family) >= 5  # redis, two GGUF servers, an embedding server, the gateway
        # (postgres runs detached)
        with OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0) as c:
            r = c.chat.completions.create(model="smollm2-135m", max_tokens=5,
                                          messages=[{"role": "user", "content": "Hi"}])
            assert r.choices[0].message.content
            routed = c.chat.completions.with_raw_response.create(
                model="auto", max_tokens=5, messages=[{"role": "user", "content": "Hello there!"}])
            assert routed.headers["x-llmp-route"] == "auto"
            assert routed.headers["x-llmp-tier"] in ("smollm2-135m", "gemma3-270m")
            assert routed.parse().choices[0].message.content
            gemma = c.chat.completions.create(model="gemma3-270m", max_tokens=5,
                                              messages=[{"role": "user", "content": "Hi"}])
            assert gemma.choices[0].message.content
            e = c.embeddings.create(model="all-minilm-l6-v2", input="Hi")  # the embedding tier
            assert len(e.data[0].embedding) == 384

        started = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(15) == 0
        assert time.monotonic() - started < 10
        _, alive = psutil.wait_procs(family, timeout=5)
        assert not alive, f"left running: {[p.cmdline() for p in alive]}"
        pg_pid_file = tmp_path / "data" / "pgdata" / "postmaster.pid"
        assert not pg_pid_file.exists(), "postgres is still running"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
