"""What llama.cpp offers beyond plain text, over HTTP on the real SmolLM2-135M server:
``response_format`` (JSON, JSON schema), tools, logprobs, logit_bias and ``n``; every body and chunk
checked against OpenAI's published schemas."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import jsonschema
import pytest

from tests.support.openapi import (
    validate_chat,
    validate_chat_chunk,
    validate_completion,
    validate_completion_chunk,
)

pytestmark = pytest.mark.slow

PERSON = {"type": "object", "properties": {
    "name": {"type": "string", "maxLength": 24},
    "age": {"type": "integer"},
    "role": {"enum": ["student", "teacher", "engineer", "artist"]},
    "hobbies": {"type": "array", "items": {"type": "string", "maxLength": 16}, "maxItems": 3}},
    "required": ["name", "age", "role", "hobbies"], "additionalProperties": False}

PROMPTS = [
    "Describe a person who likes painting.",
    "Invent a character for a story about the sea.",
    "Tell me about a young student who plays chess.",
    "Who teaches music at a small school?",
    "Make up an engineer who builds bridges.",
    "Describe your best friend.",
    "Create a profile for a retired sailor.",
    "Give me a fictional scientist.",
    "Describe a baker who loves mornings.",
    "Write about a traveller from the mountains.",
    "Describe a gardener with a big family.",
    "Invent a runner who trains every day.",
]

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 32},
        "unit": {"enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Current local time in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 32}},
                   "required": ["city"], "additionalProperties": False}}}
TOOLS = [WEATHER, TIME]
SCHEMAS = {"get_weather": WEATHER["function"]["parameters"],
           "get_time": TIME["function"]["parameters"]}


def sse(r: httpx.Response) -> list[dict[str, Any]]:
    lines = [ln for ln in r.iter_lines() if ln.startswith("data: ")]
    assert lines[-1] == "data: [DONE]"
    return [json.loads(ln[6:]) for ln in lines[:-1]]


def chat(url: str, **body: Any) -> dict[str, Any]:
    r = httpx.post(f"{url}/v1/chat/completions", json={"temperature": 0, **body}, timeout=120)
    assert r.status_code == 200, r.text
    data = r.json()
    validate_chat(data)
    return data


def chat_stream(url: str, **body: Any) -> list[dict[str, Any]]:
    with httpx.stream("POST", f"{url}/v1/chat/completions", timeout=120,
                      json={"temperature": 0, **body, "stream": True,
                            "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200, r.read()
        chunks = sse(r)
    for c in chunks:
        validate_chat_chunk(c)
    return chunks


def streamed_text(chunks: list[dict[str, Any]], index: int = 0) -> str:
    return "".join(ch["delta"].get("content") or "" for c in chunks for ch in c["choices"]
                   if ch["index"] == index)


def streamed_calls(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Reassemble ``delta.tool_calls`` as a client does, checking OpenAI's id semantics."""
    calls: dict[int, dict[str, Any]] = {}
    for c in chunks:
        for ch in c["choices"]:
            for d in ch["delta"].get("tool_calls") or []:
                i = d["index"]
                if i not in calls:  # the first delta of a call names it
                    assert re.fullmatch(r"call_[0-9a-f]+", d["id"]) and d["type"] == "function"
                    assert d["function"]["name"] and d["function"]["arguments"] == ""
                    calls[i] = {"id": d["id"], "type": "function",
                                "function": {"name": d["function"]["name"], "arguments": ""}}
                else:  # later ones carry only fragments of the arguments
                    assert set(d) == {"index", "function"} and set(d["function"]) == {"arguments"}
                    calls[i]["function"]["arguments"] += d["function"]["arguments"]
    return [calls[i] for i in sorted(calls)]


def finish(chunks: list[dict[str, Any]]) -> list[str]:
    return [ch["finish_reason"] for c in chunks for ch in c["choices"] if ch["finish_reason"]]


# -- response_format ---------------------------------------------------------------------------
@pytest.mark.parametrize("prompt", PROMPTS[:10])
def test_json_schema_answers_validate_whole_and_streamed(gguf_url: str, prompt: str) -> None:
    rf = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON,
                                                 "strict": True}}
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 160,
            "response_format": rf}
    choice = chat(gguf_url, **body)["choices"][0]
    assert choice["finish_reason"] == "stop"
    answer = json.loads(choice["message"]["content"])
    jsonschema.validate(answer, PERSON)
    assert list(answer) == list(PERSON["properties"])  # keys in the schema's order
    chunks = chat_stream(gguf_url, **body)
    assert finish(chunks) == ["stop"]
    assert streamed_text(chunks) == choice["message"]["content"]


@pytest.mark.parametrize(("i", "prompt"), list(enumerate(PROMPTS[2:12])))
def test_json_object_answers_are_objects(gguf_url: str, i: int, prompt: str) -> None:
    body = {"messages": [{"role": "system", "content": "Answer in JSON."},
                         {"role": "user", "content": prompt}],
            "max_tokens": 200, "response_format": {"type": "json_object"}}
    if i % 2:
        chunks = chat_stream(gguf_url, **body)
        text, reason = streamed_text(chunks), finish(chunks)[0]
    else:
        choice = chat(gguf_url, **body)["choices"][0]
        text, reason = choice["message"]["content"], choice["finish_reason"]
    if reason == "stop":
        assert isinstance(json.loads(text), dict)
    else:  # cut by max_tokens: still the start of an object
        assert reason == "length" and text.lstrip().startswith("{")


@pytest.mark.parametrize("rf", [
    {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "no-such-type"}}},
    {"type": "json_schema", "json_schema": {"name": "x", "schema": "not an object"}},
    {"type": "json_schema"},
    {"type": "xml"},
])
def test_invalid_response_format_is_400_naming_it(gguf_url: str, rf: dict[str, Any]) -> None:
    r = httpx.post(f"{gguf_url}/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "x"}], "response_format": rf})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "response_format"


# -- tools -------------------------------------------------------------------------------------
ASK = [{"role": "user", "content": "What is the weather in Paris, in celsius?"}]


def check_calls(message: dict[str, Any]) -> list[dict[str, Any]]:
    assert message["content"] is None and message["refusal"] is None
    calls = message["tool_calls"]
    assert calls
    for c in calls:
        assert re.fullmatch(r"call_[0-9a-f]+", c["id"]) and c["type"] == "function"
        assert isinstance(c["function"]["arguments"], str)
        jsonschema.validate(json.loads(c["function"]["arguments"]), SCHEMAS[c["function"]["name"]])
    return list(calls)


def test_tool_choice_required(gguf_url: str) -> None:
    body = chat(gguf_url, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80)
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    check_calls(choice["message"])


def test_tool_choice_named(gguf_url: str) -> None:
    body = chat(gguf_url, messages=ASK, tools=TOOLS, max_tokens=80,
                tool_choice={"type": "function", "function": {"name": "get_time"}})
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = check_calls(choice["message"])
    assert [c["function"]["name"] for c in calls] == ["get_time"]


def test_tool_choice_none_answers_in_text(gguf_url: str) -> None:
    body = chat(gguf_url, messages=ASK, tools=TOOLS, tool_choice="none", max_tokens=24)
    message = body["choices"][0]["message"]
    assert message["content"] and "tool_calls" not in message
    assert body["choices"][0]["finish_reason"] in ("stop", "length")


def test_tool_choice_auto_is_text_or_calls(gguf_url: str) -> None:
    for content in ("What is the weather in Rome in fahrenheit? Use a tool.",
                    "Say hello to my friend Anna."):
        body = chat(gguf_url, messages=[{"role": "user", "content": content}], tools=TOOLS,
                    max_tokens=60)
        choice = body["choices"][0]
        if choice["message"].get("tool_calls"):
            assert choice["finish_reason"] == "tool_calls"
            check_calls(choice["message"])
        else:
            assert choice["message"]["content"] is not None
            assert not choice["message"]["content"].lstrip().startswith("<tool_call>")


@pytest.mark.xfail(reason="SmolLM2-135M answers one call where two are asked; the grammar allows an "
                          "array of up to 8 (see test_tools.py for reading several)", strict=False)
def test_parallel_calls(gguf_url: str) -> None:
    body = chat(gguf_url, tools=TOOLS, tool_choice="required", max_tokens=120, messages=[
        {"role": "user",
         "content": "Make two calls: get_weather for Paris, then get_time for Tokyo."}])
    calls = check_calls(body["choices"][0]["message"])
    assert len(calls) >= 2
    assert len({c["id"] for c in calls}) == len(calls)


def test_no_parallel_calls_gives_one(gguf_url: str) -> None:
    body = chat(gguf_url, tools=TOOLS, tool_choice="required", max_tokens=120,
                parallel_tool_calls=False, messages=[
                    {"role": "user", "content": "Get the weather in Paris and the time in Oslo."}])
    assert len(check_calls(body["choices"][0]["message"])) == 1


@pytest.mark.parametrize("choice", ["required", {"type": "function",
                                                 "function": {"name": "get_weather"}}])
def test_streamed_tool_calls_reassemble_to_the_whole(gguf_url: str, choice: Any) -> None:
    body = {"messages": [{"role": "user",
                          "content": "Weather in Paris and the time in Tokyo, please."}],
            "tools": TOOLS, "tool_choice": choice, "max_tokens": 120}
    whole = chat(gguf_url, **body)["choices"][0]
    chunks = chat_stream(gguf_url, **body)
    calls = streamed_calls(chunks)
    assert finish(chunks) == ["tool_calls"]
    assert [c["function"] for c in calls] == [c["function"] for c in whole["message"]["tool_calls"]]
    assert streamed_text(chunks) == ""
    assert chunks[-1]["usage"]["completion_tokens"] > 0


def test_tool_result_turn_gives_a_final_answer(gguf_url: str) -> None:
    first = chat(gguf_url, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=80)
    message = first["choices"][0]["message"]
    calls = check_calls(message)
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": calls},
               *({"role": "tool", "tool_call_id": c["id"], "content": "Sunny, 21 degrees."}
                 for c in calls)]
    final = chat(gguf_url, messages=history, tools=TOOLS, tool_choice="none", max_tokens=40)
    answer = final["choices"][0]["message"]
    assert answer["content"] and "tool_calls" not in answer
    # without tools the history still renders (the template never sees a 'tool' role)
    plain = chat(gguf_url, messages=history, max_tokens=20)
    assert plain["choices"][0]["message"]["content"]


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "function"}]}, "tools.0"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
])
def test_invalid_tools_are_400(gguf_url: str, body: dict[str, Any], param: str) -> None:
    r = httpx.post(f"{gguf_url}/v1/chat/completions", timeout=60,
                   json={"messages": [{"role": "user", "content": "x"}], **body})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == param


# -- logprobs ----------------------------------------------------------------------------------
def check_token_logprobs(entries: list[dict[str, Any]], k: int) -> None:
    assert entries
    for e in entries:
        assert e["logprob"] <= 0
        assert bytes(e["bytes"]).decode("utf-8", "replace") == e["token"]
        tops = [t["logprob"] for t in e["top_logprobs"]]
        assert len(tops) == k
        assert tops == sorted(tops, reverse=True) and all(t <= 0 for t in tops)
        if k:
            assert e["logprob"] <= tops[0] + 1e-6


def test_chat_logprobs(gguf_url: str) -> None:
    body = chat(gguf_url, messages=[{"role": "user", "content": "Name a colour."}], max_tokens=6,
                logprobs=True, top_logprobs=3)
    choice = body["choices"][0]
    entries = choice["logprobs"]["content"]
    check_token_logprobs(entries, 3)
    assert "".join(e["token"] for e in entries) == choice["message"]["content"]
    assert len(entries) == body["usage"]["completion_tokens"]
    # greedy: the chosen token is the most likely one
    assert all(e["token"] == e["top_logprobs"][0]["token"] for e in entries)


def test_chat_logprobs_streamed(gguf_url: str) -> None:
    chunks = chat_stream(gguf_url, messages=[{"role": "user", "content": "Name a fruit."}],
                         max_tokens=6, logprobs=True, top_logprobs=2)
    entries = [e for c in chunks for ch in c["choices"] if ch.get("logprobs")
               for e in ch["logprobs"]["content"]]
    check_token_logprobs(entries, 2)
    assert "".join(e["token"] for e in entries) == streamed_text(chunks)


def test_no_logprobs_unless_asked(gguf_url: str) -> None:
    body = chat(gguf_url, messages=[{"role": "user", "content": "Hi."}], max_tokens=3)
    assert body["choices"][0]["logprobs"] is None


def test_completion_logprobs(gguf_url: str) -> None:
    r = httpx.post(f"{gguf_url}/v1/completions", timeout=60, json={
        "prompt": "The capital of France is", "max_tokens": 5, "temperature": 0, "logprobs": 2})
    body = r.json()
    validate_completion(body)
    lp = body["choices"][0]["logprobs"]
    n = body["usage"]["completion_tokens"]
    assert len(lp["tokens"]) == len(lp["token_logprobs"]) == len(lp["top_logprobs"]) == \
        len(lp["text_offset"]) == n
    assert "".join(lp["tokens"]) == body["choices"][0]["text"]
    assert all(x <= 0 for x in lp["token_logprobs"])
    assert all(len(t) <= 2 for t in lp["top_logprobs"])
    assert lp["text_offset"] == sorted(lp["text_offset"])
    assert lp["text_offset"][0] == len("The capital of France is")


def test_completion_logprobs_streamed(gguf_url: str) -> None:
    with httpx.stream("POST", f"{gguf_url}/v1/completions", timeout=60, json={
            "prompt": "Roses are red,", "max_tokens": 5, "temperature": 0, "logprobs": 1,
            "stream": True}) as r:
        chunks = sse(r)
    for c in chunks:
        validate_completion_chunk(c)
    tokens = [t for c in chunks for ch in c["choices"] if ch["logprobs"]
              for t in ch["logprobs"]["tokens"]]
    assert "".join(tokens) == "".join(ch["text"] for c in chunks for ch in c["choices"])


# -- logit_bias --------------------------------------------------------------------------------
def first_token(url: str, content: str, **extra: Any) -> dict[str, Any]:
    body = chat(url, messages=[{"role": "user", "content": content}], max_tokens=1,
                logprobs=True, top_logprobs=5, **extra)
    return dict(body["choices"][0]["logprobs"]["content"][0])


def token_id(url: str, text: str) -> int:
    """The id of a single-token text (llama.cpp's ``/tokenize``)."""
    tokens = httpx.post(f"{url}/tokenize", json={"content": text}).json()["tokens"]
    assert len(tokens) == 1, tokens
    return int(tokens[0])


def test_tokenize_and_detokenize(gguf_url: str) -> None:
    tokens = httpx.post(f"{gguf_url}/tokenize", json={"content": "Hello world"}).json()["tokens"]
    assert tokens and all(isinstance(t, int) for t in tokens)
    text = httpx.post(f"{gguf_url}/detokenize", json={"tokens": tokens}).json()["content"]
    assert text == "Hello world"


def test_logit_bias_bans_and_forces(gguf_url: str) -> None:
    prompt = "What is the capital of France?"
    free = first_token(gguf_url, prompt)
    tok = token_id(gguf_url, free["token"])
    banned = first_token(gguf_url, prompt, logit_bias={str(tok): -100})
    assert banned["token"] != free["token"]
    forced_id = token_id(gguf_url, " banana")
    forced = first_token(gguf_url, prompt, logit_bias={str(forced_id): 100})
    assert forced["token"] == " banana"


# -- n -----------------------------------------------------------------------------------------
def test_n_gives_n_choices(gguf_url: str) -> None:
    body = chat(gguf_url, messages=[{"role": "user", "content": "Write a word."}], max_tokens=8,
                n=2, temperature=1.0, seed=3)
    assert [c["index"] for c in body["choices"]] == [0, 1]
    assert all(c["message"]["content"] is not None for c in body["choices"])
    assert body["usage"]["completion_tokens"] >= 2


def test_n_streamed(gguf_url: str) -> None:
    chunks = chat_stream(gguf_url, messages=[{"role": "user", "content": "Write two words."}],
                         max_tokens=6, n=2)
    assert sorted(ch["index"] for c in chunks for ch in c["choices"] if ch["finish_reason"]) == \
        [0, 1]
    assert streamed_text(chunks, 0) == streamed_text(chunks, 1)  # greedy: the same answer
    assert chunks[-1]["usage"]["completion_tokens"] >= 2


def test_n_beyond_the_slots_is_400(gguf_url: str) -> None:
    r = httpx.post(f"{gguf_url}/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "x"}], "n": 5})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "n"


# -- shapes ------------------------------------------------------------------------------------
def test_plain_bodies_and_chunks_match_the_spec(gguf_url: str) -> None:
    msg = [{"role": "user", "content": "Say hi."}]
    body = chat(gguf_url, messages=msg, max_tokens=4)
    assert body["choices"][0]["message"]["refusal"] is None
    chat_stream(gguf_url, messages=msg, max_tokens=4)
    r = httpx.post(f"{gguf_url}/v1/completions", timeout=60,
                   json={"prompt": "Hi", "max_tokens": 3})
    validate_completion(r.json())


def test_unknown_fields_are_ignored(gguf_url: str) -> None:
    body = chat(gguf_url, messages=[{"role": "user", "content": "Hi."}], max_tokens=2,
                store=True, metadata={"a": "b"}, service_tier="auto", no_such_field=1)
    assert body["choices"][0]["message"]["content"] is not None
