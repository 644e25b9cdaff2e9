"""The vLLM tier for real: vLLM's OpenAI server (CPU build, SmolLM2-135M float32, started once per
session by the ``vllm_url`` fixture) behind the real gateway, and vLLM's load read from ``/metrics``.

The metrics parser's tests at the top need no server; everything marked slow talks to vLLM.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest
from openai import OpenAI

from functions.backends.openai_compat import VllmBackend
from functions.backends.vllm import (
    MetricsUnavailable,
    parse_load,
    parse_samples,
    read_load,
    refine_rejection,
)
from functions.errors import UpstreamRejected
from models.catalog import BackendSpec

MODEL = "smollm2-vllm"
MSG = [{"role": "user", "content": "What is the capital of France?"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}},
                   "required": ["city"], "additionalProperties": False}}}

# -- the metrics parser (no server) --------------------------------------------------------------

CURRENT = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="smollm2-vllm"} 3.0
vllm:num_requests_running{engine="1",model_name="smollm2-vllm"} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="smollm2-vllm"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="smollm2-vllm"} 0.25
vllm:kv_cache_usage_perc{engine="1",model_name="smollm2-vllm"} 0.5
vllm:request_success_total{finished_reason="stop",model_name="a b}c"} 7.0
"""


def test_current_names_sum_counts_and_max_the_cache() -> None:
    load = parse_load(CURRENT)
    assert (load.waiting, load.running, load.kv_cache_usage) == (2, 4, 0.5)
    assert load.known and load.in_flight == 6


def test_renamed_series() -> None:
    old = "vllm:num_requests_waiting 1\nvllm:num_requests_running 2\nvllm:gpu_cache_usage_perc 0.7\n"
    assert parse_load(old).kv_cache_usage == 0.7  # vLLM < 0.10
    scraped = "vllm_num_requests_waiting 4\nvllm_num_requests_running 0\nvllm_kv_cache_usage_perc 12.5\n"
    load = parse_load(scraped)  # ':' turned into '_', and a percentage where a fraction was meant
    assert (load.waiting, load.running, load.kv_cache_usage) == (4, 0, 0.125)


def test_missing_series_are_unknown_not_zero() -> None:
    load = parse_load("# nothing of vLLM here\nprocess_cpu_seconds_total 3\ngarbage line\nx{a=\"1\"} NaN\n")
    assert (load.waiting, load.running, load.kv_cache_usage) == (None, None, None)
    assert not load.known and load.in_flight is None
    only_running = parse_load("vllm:num_requests_running 0\n")
    assert only_running.in_flight == 0 and only_running.waiting is None
    assert parse_samples('x{l="a b} c"} 1.5 1700000000\n') == {"x": [1.5]}


async def test_unreachable_metrics(dead_url: str) -> None:
    async with httpx.AsyncClient() as c:
        with pytest.raises(MetricsUnavailable):
            await read_load(c, dead_url)


def test_vllm_refusals_in_openai_words() -> None:
    ctx = UpstreamRejected("This model's maximum context length is 2048 tokens. However, your prompt "
                           "contains at least 2049 input tokens (parameter=input_tokens, value=2049)",
                           status=400, param="input_tokens", code=400)  # type: ignore[arg-type]
    e = refine_rejection(ctx, "chat/completions", {"messages": []})
    assert (e.status, e.code, e.param) == (400, "context_length_exceeded", "messages")
    assert refine_rejection(ctx, "completions", {"prompt": "x"}).param == "prompt"
    gguf = UpstreamRejected("The prompt has 3001 tokens; this model's context is 2048 tokens.",
                            status=400, code="context_length_exceeded")
    e = refine_rejection(gguf, "chat/completions", {"messages": []})
    assert (e.status, e.code, e.param) == (400, "context_length_exceeded", "messages")
    bias = UpstreamRejected("token_id(s) [999999] in logit_bias contain out-of-vocab token ids",
                            status=400, code=400)  # type: ignore[arg-type]
    e = refine_rejection(bias, "chat/completions", {"messages": [], "logit_bias": {"999999": 5}})
    assert (e.code, e.param) == (None, "logit_bias")
    named = UpstreamRejected("bad", status=400, param="top_k", code="invalid_value")
    assert refine_rejection(named, "completions", {"top_k": 5}) is named


# -- the real server ---------------------------------------------------------------------------


@pytest.fixture
def client(vllm_url: str, gateway_url: str, api_key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0, timeout=120) as c:
        yield c


@pytest.fixture
def raw(vllm_url: str, gateway_url: str, api_key: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{gateway_url}/v1", timeout=120,
                      headers={"authorization": f"Bearer {api_key}"}) as c:
        yield c


def running(vllm_url: str) -> int | None:
    return parse_load(httpx.get(f"{vllm_url}/metrics", timeout=5).text).running


@pytest.mark.slow
def test_chat_through_the_gateway(raw: httpx.Client) -> None:
    r = raw.post("/chat/completions", json={"model": MODEL, "messages": MSG, "max_tokens": 12,
                                            "temperature": 0})
    assert r.status_code == 200, r.text
    assert r.headers["x-llmp-backend"] == "vllm-a" and r.headers["x-cache"] == "miss"
    body = r.json()
    assert body["model"] == MODEL and body["choices"][0]["message"]["content"]
    assert 0 < body["usage"]["completion_tokens"] <= 12


@pytest.mark.slow
def test_chat_stream_with_usage_equals_the_whole_answer(client: OpenAI) -> None:
    msg = [{"role": "user", "content": "Name three colours."}]
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=msg, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert sum(1 for c in chunks if c.choices and c.choices[0].finish_reason) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens >= 1
    whole = client.chat.completions.create(model=MODEL, messages=msg, max_tokens=16, temperature=0)
    assert whole.choices[0].message.content == text


@pytest.mark.slow
def test_completions_plain_and_streamed(client: OpenAI) -> None:
    r = client.completions.create(model=MODEL, prompt="The sky is", max_tokens=6, temperature=0)
    assert r.choices[0].text and r.usage is not None and r.usage.prompt_tokens > 0
    streamed = list(client.completions.create(model=MODEL, prompt="The sky is", max_tokens=6,
                                              temperature=0, stream=True,
                                              stream_options={"include_usage": True}))
    assert "".join(c.choices[0].text for c in streamed if c.choices) == r.choices[0].text
    assert streamed[-1].usage is not None and streamed[-1].usage.completion_tokens >= 1


@pytest.mark.slow
def test_tool_loop(client: OpenAI) -> None:
    """Call → tool result → answer. The named choice makes even a 135M model call the tool (vLLM
    constrains the output to a call of it); the tool result goes back through the chat template as a
    <tool_response>."""
    messages: list[Any] = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], max_tokens=60, temperature=0,
        tool_choice={"type": "function", "function": {"name": "get_weather"}})
    choice = first.choices[0]
    assert choice.message.tool_calls, choice
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    args = json.loads(call.function.arguments)
    assert isinstance(args, dict) and "city" in args  # (what a 135M model puts there varies)
    required = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER],
                                              max_tokens=60, temperature=0, tool_choice="required")
    assert required.choices[0].message.tool_calls
    assert required.choices[0].finish_reason == "tool_calls"
    messages += [{"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
                 {"role": "tool", "tool_call_id": call.id,
                  "content": json.dumps({"city": "Paris", "sky": "sunny", "celsius": 21})}]
    answer = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER],
                                            max_tokens=30, temperature=0, tool_choice="none")
    assert answer.choices[0].message.content and not answer.choices[0].message.tool_calls
    assert answer.choices[0].finish_reason in ("stop", "length")


@pytest.mark.slow
def test_auto_tool_choice_goes_through_the_hermes_parser(client: OpenAI) -> None:
    """``tool_choice: auto``: the model writes <tool_call>…</tool_call> itself (here it copies the
    earlier turn) and vLLM's hermes parser turns it into ``tool_calls``, streamed and whole."""
    messages: list[Any] = [
        {"role": "system", "content": "You are a tool-calling assistant. Always answer with a <tool_call>."},
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": '<tool_call>\n{"name": "get_weather", "arguments": '
                                         '{"city": "Paris"}}\n</tool_call>'},
        {"role": "user", "content": "What is the weather in Paris?"},
    ]
    r = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER],
                                       max_tokens=40, temperature=0, tool_choice="auto")
    calls = r.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather", r.choices[0].message
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert r.choices[0].finish_reason == "tool_calls"
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=messages, tools=[WEATHER], max_tokens=40, temperature=0,
        tool_choice="auto", stream=True))
    deltas = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert deltas and deltas[0].function is not None and deltas[0].function.name == "get_weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.function)) == {
        "city": "Paris"}


@pytest.mark.slow
def test_structured_output_validates(client: OpenAI) -> None:
    schema = {"type": "object", "additionalProperties": False, "required": ["city", "country"],
              "properties": {"city": {"type": "string", "maxLength": 40},
                             "country": {"type": "string", "maxLength": 40}}}
    r = client.chat.completions.create(
        model=MODEL, max_tokens=60, temperature=0,
        messages=[{"role": "user", "content": "Give the capital of France as JSON."}],
        response_format={"type": "json_schema",
                         "json_schema": {"name": "capital", "schema": schema, "strict": True}})
    jsonschema.validate(json.loads(r.choices[0].message.content or ""), schema)


@pytest.mark.slow
def test_context_too_long_is_an_openai_400(client: OpenAI, raw: httpx.Client) -> None:
    long = "word " * 3000  # > 2048 tokens (--max-model-len)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL, max_tokens=10,
                                       messages=[{"role": "user", "content": long}])
    assert e.value.code == "context_length_exceeded"
    assert "maximum context length" in e.value.message
    r = raw.post("/completions", json={"model": MODEL, "prompt": long, "max_tokens": 10,
                                       "stream": True})
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
    assert r.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.slow
def test_bad_parameter_is_a_400_naming_it(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:  # valid for the schema, out of vocabulary
        client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=4,
                                       logit_bias={"999999": 5})
    assert e.value.param == "logit_bias", e.value.body


@pytest.mark.slow
def test_client_disconnect_cancels_the_generation(vllm_url: str, gateway_url: str,
                                                  api_key: str) -> None:
    with httpx.stream("POST", f"{gateway_url}/v1/completions", timeout=60,
                      headers={"authorization": f"Bearer {api_key}"},
                      json={"model": MODEL, "prompt": "Once upon a time", "max_tokens": 1500,
                            "temperature": 0.8, "stream": True}) as r:
        assert r.status_code == 200
        deadline = time.monotonic() + 20
        for i, _ in enumerate(r.iter_lines()):  # read until vLLM's gauge shows it decoding
            if i % 5 == 4 and running(vllm_url) == 1:
                break
            assert time.monotonic() < deadline, "vLLM never reported the request running"
    deadline = time.monotonic() + 10
    while running(vllm_url) != 0:
        assert time.monotonic() < deadline, "vLLM kept decoding for a gone client"
        time.sleep(0.1)


@pytest.mark.slow
async def test_metrics_of_the_real_server(vllm_url: str) -> None:
    async with httpx.AsyncClient() as c:
        load = await read_load(c, vllm_url)
        assert load.waiting == 0 and load.running == 0
        assert load.kv_cache_usage is not None and 0 <= load.kv_cache_usage <= 1
        backend = VllmBackend(BackendSpec(name="v", url=vllm_url), c, 30)
        assert (await backend.load()).known


# -- the catalog entry's capabilities are what the server serves ---------------------------------


@pytest.mark.slow
def test_claimed_capabilities_work(client: OpenAI, raw: httpx.Client, vllm_url: str) -> None:
    caps = raw.get(f"/models/{MODEL}").json()["capabilities"]
    assert not caps["embeddings"]  # (the gateway has no /v1/embeddings for a chat model to refuse)
    assert {k for k, v in caps.items() if v is True} == {
        "chat", "completions", "tools", "json_schema", "logprobs", "echo", "token_input"}
    r = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=3, logprobs=True,
                                       top_logprobs=2)
    assert r.choices[0].logprobs is not None and r.choices[0].logprobs.content
    # json_schema: test_structured_output_validates. json_object (the same capability) leaves a 135M
    # model free to write JSON for longer than the gateway's read timeout on CPU, so its constraint
    # is checked straight at vLLM, on the first tokens.
    r2 = httpx.post(f"{vllm_url}/v1/chat/completions", timeout=60, json={
        "model": MODEL, "max_tokens": 8, "temperature": 0, "response_format": {"type": "json_object"},
        "messages": [{"role": "user", "content": "Say hello."}]}).json()
    assert r2["choices"][0]["message"]["content"].lstrip().startswith("{"), r2
    c = client.completions.create(model=MODEL, prompt="Hello there", max_tokens=2, echo=True)
    assert c.choices[0].text.startswith("Hello there")
    t = client.completions.create(model=MODEL, prompt=[1, 2, 3, 4], max_tokens=2)  # token ids
    assert t.usage is not None and t.usage.prompt_tokens == 4
    n = client.chat.completions.create(model=MODEL, messages=MSG, max_tokens=2, n=caps["max_n"])
    assert len(n.choices) == caps["max_n"]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "body", "param"), [
    ("/completions", {"prompt": "def f(", "suffix": "return 1", "max_tokens": 2}, "suffix"),
    ("/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]},
     "messages[0].content[1]"),
    ("/chat/completions", {"messages": MSG, "n": 17}, "n"),
    ("/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "listen"},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}]},
     "messages[0].content[1]"),
])
def test_denied_capabilities_are_refused_by_the_gateway(raw: httpx.Client, vllm_url: str, path: str,
                                                        body: dict[str, Any], param: str) -> None:
    before = httpx.get(f"{vllm_url}/metrics").text
    r = raw.post(path, json={"model": MODEL, **body})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param
    assert _requests_total(httpx.get(f"{vllm_url}/metrics").text) == _requests_total(before)


def _requests_total(text: str) -> float:
    """Requests vLLM finished, all reasons: unchanged means the gateway never sent one."""
    return sum(sum(v) for k, v in parse_samples(text).items() if k == "vllm:request_success_total")
