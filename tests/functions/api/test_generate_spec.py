"""Answers through the real gateway validate against OpenAI's response schemas (the spec in
``../shared/openai-openapi``): whole bodies and every streamed chunk, live and replayed from the
cache, over the real GGUF server (the mock backend is a test double of failure modes, not a tier:
its bodies are not held to the spec)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support import openapi
from tests.support.tenancy import tenant_with_key
from tests.support.tenants import letter_tag


def _post(url: str, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/{path}", json=body, timeout=120,
                      headers={"authorization": f"Bearer {key}"})


def _chunks(r: httpx.Response) -> list[dict[str, Any]]:
    events = [line[6:] for line in r.text.split("\n") if line.startswith("data: ")]
    assert events[-1] == "[DONE]", events[-3:]
    return [json.loads(e) for e in events[:-1]]


def _assert_valid(schema: str, instance: dict[str, Any]) -> None:
    errors = openapi.errors(schema, instance)
    assert not errors, (schema, errors[:5], instance)


CASES = [("chat/completions", "CreateChatCompletionResponse", "CreateChatCompletionStreamResponse"),
         ("completions", "CreateCompletionResponse", openapi.COMPLETION_CHUNK)]


@pytest.fixture(scope="module")
def unguarded_key(postgres_url: str) -> str:
    """A tenant without guardrails: what the model says is always stored (an answer with a
    guardrail finding, a name the model made up, say, is never cached), so the second request
    is a cache hit whatever the model says."""
    import psycopg

    from functions.guardrails.policy import GuardrailPolicy

    tenant, key = tenant_with_key(postgres_url)
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE tenants SET guardrail_policy = %s WHERE id = %s",
                     (GuardrailPolicy(enabled=False).model_dump_json(), tenant.tenant_id))
    return key


@pytest.mark.slow
@pytest.mark.parametrize(("path", "whole", "chunk"), CASES)
def test_answers_match_the_spec_live_and_cached(gateway_url: str, unguarded_key: str, path: str,
                                                whole: str, chunk: str) -> None:
    api_key, tag = unguarded_key, letter_tag()
    body: dict[str, Any] = {"model": "smollm2-135m", "max_tokens": 8, "temperature": 0}
    if path == "chat/completions":
        body["messages"] = [{"role": "user", "content": f"Say one word about {tag}."}]
    else:
        body["prompt"] = f"One word about {tag}:"
    seen = set()
    for _ in range(2):  # the second request of the same reproducible body is a cache hit
        r = _post(gateway_url, api_key, path, body)
        assert r.status_code == 200, r.text
        seen.add(r.headers["x-cache"])
        _assert_valid(whole, r.json())
    assert seen == {"miss", "hit"}
    streamed = {**body, "stream": True, "stream_options": {"include_usage": True}}
    for _ in range(2):
        r = _post(gateway_url, api_key, path, streamed)
        assert r.status_code == 200, r.text
        chunks = _chunks(r)
        assert chunks[-1]["usage"]["completion_tokens"] > 0
        for c in chunks:
            _assert_valid(chunk, c)


def test_the_validator_is_not_vacuous() -> None:
    """The spec's schema refuses what OpenAI's clients would choke on."""
    good = {"id": "x", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop", "logprobs": None,
         "message": {"role": "assistant", "content": "hi", "refusal": None}}]}
    assert not openapi.errors("CreateChatCompletionResponse", good)
    no_refusal = json.loads(json.dumps(good))
    del no_refusal["choices"][0]["message"]["refusal"]
    assert openapi.errors("CreateChatCompletionResponse", no_refusal)
    assert openapi.errors("CreateChatCompletionResponse", {**good, "object": "text_completion"})
