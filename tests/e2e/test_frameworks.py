"""Clients as popular frameworks configure them, against the real gateway and the real GGUF server:
LangChain's ``ChatOpenAI`` (the OpenAI SDK underneath, with LangChain's own defaults: it sends
``stream_options``, ``n``, strict JSON schemas and tool definitions its own way). Plain answers,
streams, structured output and a tool call with its result turn."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from tests.support.tenants import letter_tag

pytestmark = pytest.mark.slow
langchain_openai = pytest.importorskip("langchain_openai")
MODEL = "smollm2-135m"


class City(BaseModel):
    """A city and the country it is in."""

    name: str = Field(description="the city's name")
    country: str = Field(description="the country the city is in")


def get_weather(city: str) -> str:
    """Get the current weather of a city."""
    return f"It is sunny in {city}."


def _llm(gateway_url: str, api_key: str, **kw: object) -> object:
    return langchain_openai.ChatOpenAI(base_url=f"{gateway_url}/v1", api_key=api_key, model=MODEL,
                                       temperature=0, max_retries=0, **kw)


def test_invoke_and_stream(gateway_url: str, api_key: str) -> None:
    llm = _llm(gateway_url, api_key, max_tokens=12, stream_usage=True)
    question = f"Say hello to {letter_tag()}."
    whole = llm.invoke(question)  # type: ignore[attr-defined]
    assert whole.content and whole.usage_metadata["output_tokens"] > 0
    pieces = list(llm.stream(question))  # type: ignore[attr-defined]
    assert "".join(p.content for p in pieces) == whole.content
    assert sum((p.usage_metadata or {}).get("output_tokens", 0) for p in pieces) > 0


def test_structured_output(gateway_url: str, api_key: str) -> None:
    """``json_schema``: the schema is enforced while decoding, so the object always parses."""
    llm = _llm(gateway_url, api_key, max_tokens=80)
    structured = llm.with_structured_output(City, method="json_schema")  # type: ignore[attr-defined]
    city = structured.invoke(
        f"Give the city Paris and its country as JSON with keys name and country ({letter_tag()}).")
    assert isinstance(city, City) and city.name


def test_json_mode(gateway_url: str, api_key: str) -> None:
    """``json_mode`` promises JSON, not keys (the schema is not sent): the raw answer is a JSON
    object; which keys a 135M model picks is its own business."""
    import json

    from langchain_core.messages import HumanMessage, SystemMessage

    llm = _llm(gateway_url, api_key, max_tokens=120)
    structured = llm.with_structured_output(City, method="json_mode",  # type: ignore[attr-defined]
                                            include_raw=True)
    # json_mode sends no schema: the prompt describes it, as LangChain's docs say to. One fixed
    # prompt: greedy decoding gives the same answer every run (a 135M model can also loop forever
    # inside valid JSON when the prompt leaves the shape open).
    out = structured.invoke([
        SystemMessage('You reply only with JSON like {"name": "Rome", "country": "Italy"}.'),
        HumanMessage("Which city is the capital of France?")])
    assert isinstance(json.loads(out["raw"].content), dict)


def test_tool_call_and_result_turn(gateway_url: str, api_key: str) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage

    llm = _llm(gateway_url, api_key, max_tokens=80).bind_tools(  # type: ignore[attr-defined]
        [get_weather], tool_choice="get_weather")
    messages: list[object] = [HumanMessage(f"What is the weather in Oslo ({letter_tag()})?")]
    ai = llm.invoke(messages)
    assert ai.tool_calls and ai.tool_calls[0]["name"] == "get_weather"
    assert isinstance(ai.tool_calls[0]["args"].get("city"), str)
    messages += [ai, ToolMessage(get_weather(**ai.tool_calls[0]["args"]),
                                 tool_call_id=ai.tool_calls[0]["id"])]
    final = _llm(gateway_url, api_key, max_tokens=40).invoke(messages)  # type: ignore[attr-defined]
    assert isinstance(final.content, str) and final.content
