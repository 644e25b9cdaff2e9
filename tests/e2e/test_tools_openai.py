"""A full tool loop with the official ``openai`` client, through the gateway, on the GGUF tier
(SmolLM2-135M): call with tools, get a tool call, send the tool result, get a final text answer.
Prompts are unique per test (the gateway caches temperature-0 answers)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from openai import OpenAI

pytestmark = pytest.mark.slow

MODEL = "smollm2-135m"
TOOLS: list[Any] = [{"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 32},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"], "additionalProperties": False}}}]


@pytest.fixture
def client(gateway_url: str, api_key: str) -> Iterator[OpenAI]:
    with OpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, max_retries=0) as c:
        yield c


def weather(city: str, unit: str) -> str:
    return f"It is sunny in {city}, twenty degrees {unit}."


def test_tool_loop(client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "How is the weather in Lisbon today?"}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS,
                                           tool_choice="required", max_tokens=60, temperature=0)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert calls and calls[0].id.startswith("call_")
    call = calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    args = json.loads(call.function.arguments)
    assert set(args) == {"city", "unit"} and args["unit"] in ("celsius", "fahrenheit")

    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": weather(**args)})
    final = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS,
                                           tool_choice="none", max_tokens=40, temperature=0)
    answer = final.choices[0]
    assert answer.message.content and not answer.message.tool_calls
    assert answer.finish_reason in ("stop", "length")
    # the tool result reached the model: its turn is in the prompt (tools are not rendered with
    # tool_choice "none", so compare with the prompt without it)
    assert final.usage is not None and first.usage is not None
    without = client.chat.completions.create(model=MODEL, messages=messages[:-1], tools=TOOLS,
                                             tool_choice="none", max_tokens=1, temperature=0)
    assert without.usage is not None and final.usage.prompt_tokens > without.usage.prompt_tokens


def test_tool_loop_streamed(client: OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Is it raining in Vienna right now?"}]
    stream = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS,
                                            tool_choice="required", max_tokens=60,
                                            temperature=0, stream=True)
    calls: dict[int, dict[str, str]] = {}
    reasons = []
    for chunk in stream:
        for ch in chunk.choices:
            if ch.finish_reason:
                reasons.append(ch.finish_reason)
            for d in ch.delta.tool_calls or []:
                if d.index not in calls:
                    assert d.id and d.function and d.function.name
                    calls[d.index] = {"id": d.id, "name": d.function.name, "arguments": ""}
                calls[d.index]["arguments"] += (d.function.arguments if d.function else "") or ""
    assert reasons == ["tool_calls"]
    assert calls
    call = calls[0]
    args = json.loads(call["arguments"])
    assert call["name"] == "get_weather" and set(args) == {"city", "unit"}

    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": call["id"], "type": "function",
         "function": {"name": call["name"], "arguments": call["arguments"]}}]})
    messages.append({"role": "tool", "tool_call_id": call["id"], "content": weather(**args)})
    text = ""
    final_reasons = []
    for chunk in client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS,
                                                tool_choice="none", max_tokens=40,
                                                temperature=0, stream=True):
        for ch in chunk.choices:
            text += ch.delta.content or ""
            assert not ch.delta.tool_calls
            if ch.finish_reason:
                final_reasons.append(ch.finish_reason)
    assert text.strip()
    assert final_reasons and final_reasons[0] in ("stop", "length")


def test_json_schema_through_the_gateway(client: OpenAI) -> None:
    schema = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 20},
                                               "warm": {"type": "boolean"}},
              "required": ["colour", "warm"], "additionalProperties": False}
    r = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Pick a colour for a kitchen wall."}],
        max_tokens=60, temperature=0,
        response_format={"type": "json_schema",
                         "json_schema": {"name": "colour", "schema": schema, "strict": True}})
    answer = json.loads(r.choices[0].message.content or "")
    assert set(answer) == {"colour", "warm"} and isinstance(answer["warm"], bool)
