"""Every request field of OpenAI's spec, sent once through the real gateway: 200 (passed on or
dropped, dropped ones named in ``x-llmp-ignored-params``) or a 400 naming the field, never a 500.
The table must name every field the spec has (a new spec field fails here until it is decided), and
so must ``docs/api-fields.md``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest

from tests.support import openapi
from tests.support.tenancy import tenant_with_key
from tests.support.tenants import letter_tag

Treatment = Literal["pass", "drop", "refuse"]
DOC = Path(__file__).resolve().parents[3] / "docs" / "api-fields.md"

TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}

# field -> (sample value, treatment on a tier that serves the capability)
CHAT: dict[str, tuple[Any, Treatment]] = {
    "audio": ({"voice": "alloy", "format": "wav"}, "refuse"),
    "frequency_penalty": (0.5, "pass"),
    "function_call": ("auto", "refuse"),
    "functions": ([TOOL["function"]], "refuse"),
    "logit_bias": ({"42": -5}, "pass"),
    "logprobs": (True, "pass"),
    "max_completion_tokens": (4, "pass"),
    "max_tokens": (4, "pass"),
    "messages": (None, "pass"),
    "metadata": ({"app": "tests"}, "drop"),
    "modalities": (["text"], "drop"),
    "model": (None, "pass"),
    "moderation": ({"model": "omni-moderation-latest"}, "refuse"),
    "n": (2, "pass"),
    "parallel_tool_calls": (False, "pass"),
    "prediction": ({"type": "content", "content": "Paris"}, "drop"),
    "presence_penalty": (0.5, "pass"),
    "prompt_cache_key": ("tests-cache-key", "drop"),
    "prompt_cache_options": ({"ttl": "30m"}, "drop"),
    "prompt_cache_retention": ("24h", "drop"),
    "reasoning_effort": ("low", "drop"),
    "response_format": ({"type": "json_object"}, "pass"),
    "safety_identifier": ("user-hash-abc", "drop"),
    "seed": (7, "pass"),
    "service_tier": ("auto", "drop"),
    "stop": (["\n\n"], "pass"),
    "store": (True, "drop"),
    "stream": (False, "pass"),
    "stream_options": ({"include_usage": True}, "pass"),
    "temperature": (0.3, "pass"),
    "tool_choice": ("auto", "pass"),
    "tools": ([TOOL], "pass"),
    "top_logprobs": (2, "pass"),
    "top_p": (0.9, "pass"),
    "user": ("end-user-abc", "drop"),
    "verbosity": ("low", "drop"),
    "web_search_options": ({}, "refuse"),
}
COMPLETION: dict[str, tuple[Any, Treatment]] = {
    "best_of": (1, "drop"),
    "echo": (True, "pass"),
    "frequency_penalty": (0.5, "pass"),
    "logit_bias": ({"42": -5}, "pass"),
    "logprobs": (2, "pass"),
    "max_tokens": (4, "pass"),
    "model": (None, "pass"),
    "n": (2, "pass"),
    "presence_penalty": (0.5, "pass"),
    "prompt": (None, "pass"),
    "seed": (7, "pass"),
    "stop": (["\n\n"], "pass"),
    "stream": (False, "pass"),
    "stream_options": ({"include_usage": True}, "pass"),
    "suffix": (" and that was all.", "pass"),
    "temperature": (0.3, "pass"),
    "top_p": (0.9, "pass"),
    "user": ("end-user-abc", "drop"),
}
# fields a tier's capabilities refuse (a 400 naming them), by catalog alias
NOT_SERVED = {
    "smollm2-135m": {"echo", "suffix"},
    "mock": {"suffix"},
}


def test_tables_name_every_spec_field() -> None:
    assert set(CHAT) == set(openapi.properties("CreateChatCompletionRequest"))
    assert set(COMPLETION) == set(openapi.properties("CreateCompletionRequest"))


def test_docs_name_every_spec_field() -> None:
    doc = DOC.read_text()
    named = set(re.findall(r"`([a-z_]+)", doc))
    missing = sorted((set(CHAT) | set(COMPLETION)) - named)
    assert not missing, f"docs/api-fields.md does not name {missing}"


def _send(url: str, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/{path}", json=body, timeout=120,
                      headers={"authorization": f"Bearer {key}"})


def _check(r: httpx.Response, field: str, treatment: Treatment, alias: str) -> None:
    assert r.status_code < 500, (field, r.status_code, r.text)
    if treatment == "refuse" or field in NOT_SERVED[alias]:
        assert r.status_code == 400, (field, r.text)
        err = r.json()["error"]
        assert err["param"] == field or err["param"].startswith(field), (field, err)
        assert err["code"] == "unsupported_parameter", err
        return
    assert r.status_code == 200, (field, r.text)
    ignored = r.headers.get("x-llmp-ignored-params", "")
    if treatment == "drop":
        assert field in ignored.split(", "), (field, ignored)
    else:
        assert field not in ignored.split(", ")


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["mock", "smollm2-135m"])
@pytest.mark.parametrize("field", sorted(CHAT))
def test_every_chat_field(gateway_url: str, api_key: str, alias: str, field: str) -> None:
    value, treatment = CHAT[field]
    body: dict[str, Any] = {
        "model": alias, "max_tokens": 24, "temperature": 0,
        "messages": [{"role": "user", "content": f"Name a city ({letter_tag()})."}]}
    if value is not None:
        body[field] = value
    if field == "response_format":
        body["messages"][0]["content"] = f"Reply in JSON with a key city ({letter_tag()})."
    if field == "top_logprobs":
        body["logprobs"] = True  # the spec: top_logprobs needs logprobs (alone it is a 400)
    _check(_send(gateway_url, api_key, "chat/completions", body), field, treatment, alias)


@pytest.mark.slow
@pytest.mark.parametrize("alias", ["mock", "smollm2-135m"])
@pytest.mark.parametrize("field", sorted(COMPLETION))
def test_every_completion_field(gateway_url: str, api_key: str, alias: str, field: str) -> None:
    value, treatment = COMPLETION[field]
    body: dict[str, Any] = {"model": alias, "max_tokens": 4, "temperature": 0,
                            "prompt": f"The capital of France ({letter_tag()}) is"}
    if value is not None:
        body[field] = value
    _check(_send(gateway_url, api_key, "completions", body), field, treatment, alias)


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                 "image_url": {"url": "data:,"}}]}]},
     "messages[0].content[0]"),
    ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools[0]"),
    ({"modalities": ["text", "audio"]}, "modalities"),
    ({"best_of": 3}, None),
])
def test_answers_no_tier_can_give_are_refused(gateway_url: str, api_key: str,
                                              body: dict[str, Any], param: str | None) -> None:
    path = "completions" if "best_of" in body else "chat/completions"
    base: dict[str, Any] = ({"prompt": "Hello"} if path == "completions" else
                            {"messages": [{"role": "user", "content": "Hello"}]})
    r = _send(gateway_url, api_key, path, {"model": "mock", **base, **body})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == (param or "best_of") and err["code"] == "unsupported_parameter", err


def test_unknown_fields_are_still_refused(gateway_url: str, api_key: str) -> None:
    r = _send(gateway_url, api_key, "chat/completions", {
        "model": "mock", "messages": [{"role": "user", "content": "Hi"}], "frobnicate": 1})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "Unrecognized request argument supplied: frobnicate",
                                 "type": "invalid_request_error", "param": "frobnicate",
                                 "code": "unknown_parameter"}


def test_refusal_comes_before_any_reservation(gateway_url: str, postgres_url: str) -> None:
    """Capability refusals reserve nothing: with one request a minute, three refused requests
    leave that one request for a servable body."""
    _, key = tenant_with_key(postgres_url, rpm_limit=1)
    for _ in range(3):
        r = _send(gateway_url, key, "completions",
                  {"model": "smollm2-135m", "prompt": "Hi", "echo": True})
        assert r.status_code == 400 and r.json()["error"]["param"] == "echo", r.text
    r = _send(gateway_url, key, "completions", {"model": "mock", "prompt": "Hi", "max_tokens": 2})
    assert r.status_code == 200, r.text
    r = _send(gateway_url, key, "completions", {"model": "mock", "prompt": "Hi", "max_tokens": 2})
    assert r.status_code == 429  # the limit is real
