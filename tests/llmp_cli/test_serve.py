"""``llmp serve`` as a newcomer runs it: everything local, real model, Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest
from openai import OpenAI

from llmp_cli.local import free_port
from llmp_cli.serve import (
    GGUFServer,
    embedding_servers,
    gguf_servers,
    local_vllm,
    replicate,
    write_catalog,
)
from models.catalog import CatalogError, load_catalog, parse_catalog

TWO_TIERS = """
models:
  - {alias: a, tier: gguf, context_length: 9, gguf: {file: x.gguf, slots: 2},
     backends: [{name: l, url: "http://127.0.0.1:8101"}, {name: r, url: "http://gguf.svc:80"}]}
  - {alias: b, tier: vllm, context_length: 9, backends: [{name: v, url: "http://127.0.0.1:8000"}]}
"""


def test_gguf_servers_only_for_loopback_backends() -> None:
    catalog = parse_catalog("""
models:
  - {alias: a, tier: gguf, context_length: 9, gguf: {file: x.gguf, slots: 2},
     backends: [{name: l, url: "http://127.0.0.1:8101"}, {name: r, url: "http://gguf.svc:80"}]}
  - {alias: b, tier: vllm, context_length: 9, backends: [{name: v, url: "http://127.0.0.1:8000"}]}
""", {})
    assert gguf_servers(catalog) == [GGUFServer("a", "x.gguf", 8101, 2, "l", 0, None)]


def test_replicas_are_backends_of_the_alias_on_their_own_ports() -> None:
    catalog = replicate(parse_catalog(TWO_TIERS, {}), 3)
    a, b = catalog.models
    assert [(x.name, x.base_url) for x in a.backends] == [
        ("l-0", "http://127.0.0.1:8101"), ("l-1", "http://127.0.0.1:8201"),
        ("l-2", "http://127.0.0.1:8301"), ("r", "http://gguf.svc")]  # remote ones stay
    assert b == parse_catalog(TWO_TIERS, {}).models[1]  # other tiers untouched
    # one server per replica, the cores split between them
    assert gguf_servers(catalog, cpus=8) == [
        GGUFServer("a", "x.gguf", 8101, 2, "l-0", 0, 2), GGUFServer("a", "x.gguf", 8201, 2, "l-1", 1, 2),
        GGUFServer("a", "x.gguf", 8301, 2, "l-2", 2, 2)]
    assert {g.threads for g in gguf_servers(catalog, cpus=2)} == {1}  # never below one
    assert replicate(parse_catalog(TWO_TIERS, {}), 1) == parse_catalog(TWO_TIERS, {})
    with pytest.raises(ValueError):
        replicate(parse_catalog(TWO_TIERS, {}), 0)


def test_a_replica_port_the_catalog_already_uses_is_refused() -> None:
    clash = TWO_TIERS.replace("127.0.0.1:8000", "127.0.0.1:8201")
    with pytest.raises(CatalogError, match="8201"):
        replicate(parse_catalog(clash, {}), 2)


def test_the_written_catalog_reads_back_the_same(tmp_path: Path) -> None:
    real = parse_catalog((Path(__file__).parents[2] / "models/catalog.yaml").read_text(), {})
    catalog = replicate(real, 2)
    path = write_catalog(catalog, tmp_path / "catalog.yaml")
    assert load_catalog(path, {}) == catalog
    gguf = [m for m in catalog.models if m.tier == "gguf"]
    assert gguf and all(len(m.backends) == 2 for m in gguf)


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


@pytest.mark.slow
def test_serve_starts_replicas_the_gateway_knows(tmp_path: Path) -> None:
    port, gguf_port, embedding_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "LLMP_GGUF_THREADS")}
    env.update(LLMP_DATA_DIR=str(tmp_path / "data"), LLMP_SMOLLM2_URL=f"http://127.0.0.1:{gguf_port}",
               LLMP_EMBEDDING_URL=f"http://127.0.0.1:{embedding_port}", PYTHONUNBUFFERED="1",
               LLMP_LOCAL_REPLICAS="2", LLMP_GEMMA3_ENABLED="0")
    proc = subprocess.Popen([sys.executable, "-m", "llmp_cli.main", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True, text=True)
    try:
        key, replicas = None, []
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("replica "):
                replicas.append(line.split()[1])
            if line.startswith("local API key"):
                key = line.rsplit(" ", 1)[1].strip()
                break
            assert time.monotonic() < deadline
        assert key, "serve never came up"
        assert replicas == ["gguf-smollm2-local-0", "gguf-smollm2-local-1"]
        # two GGUF servers, each on its own port, serving the alias from its own cache
        for i in range(2):
            health = httpx.get(f"http://127.0.0.1:{gguf_port + 100 * i}/health", timeout=5)
            assert health.status_code == 200 and "x-llmp-load" in health.headers
        assert (tmp_path / "data" / "gguf-cache-1" / "smollm2-135m").is_dir()
        # the gateway reads the catalog with both as backends of the alias
        seen = load_catalog(tmp_path / "data" / "catalog.local.yaml", {}).get("smollm2-135m")
        assert seen is not None
        assert [b.base_url for b in seen.backends] == [
            f"http://127.0.0.1:{gguf_port}", f"http://127.0.0.1:{gguf_port + 100}"]
        r = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", timeout=60,
                       headers={"authorization": f"Bearer {key}"},
                       json={"model": "smollm2-135m", "max_tokens": 3,
                             "messages": [{"role": "user", "content": "Hi"}]})
        assert r.status_code == 200
        assert r.headers["x-llmp-backend"] in replicas
        # the local admin key (for `llmp backends`) has the admin role; the dev key has not
        admin = (tmp_path / "data" / "admin-api-key").read_text().strip()
        for k, status in ((admin, 200), (key, 403)):
            got = httpx.get(f"http://127.0.0.1:{port}/v1/admin/tenants", timeout=30,
                            headers={"authorization": f"Bearer {k}"})
            assert got.status_code == status, got.text
        # `llmp backends` against this gateway: both replicas, with the load they report
        out = subprocess.run([sys.executable, "-m", "llmp_cli.main", "backends", "--json",
                              "--base-url", f"http://127.0.0.1:{port}", "--api-key", admin],
                             env=env, capture_output=True, text=True, timeout=60, check=True)
        rows = {row["backend"]: row for row in json.loads(out.stdout)}
        assert set(replicas) <= set(rows)
        assert all(rows[name]["load"]["slots"] == 4 for name in replicas)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
