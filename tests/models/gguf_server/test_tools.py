"""Tool calling without the model: plans, the prompt, and reading answers piece by piece."""

from __future__ import annotations

import json
from typing import Any

import pytest

from models.gguf_server import grammars
from models.gguf_server.tools import (
    CallArgs,
    CallStart,
    Content,
    Piece,
    ToolAnswer,
    ToolError,
    plan,
    render,
)

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
ADD = {"type": "function", "function": {"name": "add", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}}}}


def feed(text: str, step: int) -> tuple[ToolAnswer, list[Piece]]:
    answer, pieces = ToolAnswer(), []
    for i in range(0, len(text), step):
        pieces += answer.feed(text[i:i + step])
    return answer, pieces + answer.flush()


CALLS = ('<tool_call>[{"name": "get_weather", "arguments": {"city": "Pa\\"ris {x}"}}, '
         '{"name": "add", "arguments": {"a": 1, "b": [2, {"c": "]"}]}}]')


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000])
def test_calls_are_read_whatever_the_pieces(step: int) -> None:
    answer, pieces = feed(" " + CALLS, step)
    assert answer.mode == "calls"
    assert [(c.name, json.loads(c.arguments)) for c in answer.calls] == [
        ("get_weather", {"city": 'Pa"ris {x}'}), ("add", {"a": 1, "b": [2, {"c": "]"}]})]
    starts = [p for p in pieces if isinstance(p, CallStart)]
    assert [(s.index, s.name) for s in starts] == [(0, "get_weather"), (1, "add")]
    for i, call in enumerate(answer.calls):
        frags = "".join(p.fragment for p in pieces if isinstance(p, CallArgs) and p.index == i)
        assert frags == call.arguments
    # every call's first piece is its start
    first = {}
    for p in pieces:
        if isinstance(p, CallStart | CallArgs):
            first.setdefault(p.index, p)
    assert all(isinstance(p, CallStart) for p in first.values())
    assert not [p for p in pieces if isinstance(p, Content)]


def test_one_call_without_array() -> None:
    answer, _ = feed('<tool_call>{"name": "add", "arguments": {"a": 3, "b": 4}}', 4)
    assert [(c.name, c.arguments) for c in answer.calls] == [("add", '{"a": 3, "b": 4}')]


@pytest.mark.parametrize("text", ["Hello there", " <b>bold</b>", "<tool", ""])
def test_text_is_text(text: str) -> None:
    answer, pieces = feed(text, 2)
    assert "".join(p.text for p in pieces if isinstance(p, Content)) == text
    assert not answer.calls


def test_plan_modes_and_grammars() -> None:
    assert plan(None, None, None) is None
    auto = plan([WEATHER, ADD], "auto", None)
    assert auto is not None and auto.mode == "auto" and auto.parallel
    assert auto.grammar is not None and "plain-text-answer" in auto.grammar
    required = plan([WEATHER, ADD], "required", False)
    assert required is not None and not required.parallel
    assert required.grammar is not None and required.grammar.startswith('root ::= "<tool_call>"')
    named = plan([WEATHER, ADD], {"type": "function", "function": {"name": "add"}}, True)
    assert named is not None and named.mode == "named" and not named.parallel
    assert [f["name"] for f in named.functions] == ["add"]
    none = plan([WEATHER], "none", None)
    assert none is not None and none.grammar is None and not none.calls


@pytest.mark.parametrize(("tools", "choice", "param"), [
    ([{"type": "custom"}], None, "tools.0"),
    ([WEATHER, WEATHER], None, "tools"),
    ([WEATHER], {"type": "function", "function": {"name": "x"}}, "tool_choice"),
    ([WEATHER], "maybe", "tool_choice"),
    (None, "required", "tool_choice"),
])
def test_plan_refusals_name_the_parameter(tools: Any, choice: Any, param: str) -> None:
    with pytest.raises(ToolError) as e:
        plan(tools, choice, None)
    assert e.value.param == param


def test_tool_turns_become_plain_turns() -> None:
    p = plan([WEATHER], "auto", None)
    messages = render([
        {"role": "developer", "content": "Be kind."},
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "Sunny"},
        {"role": "tool", "tool_call_id": "call_2", "content": "Rainy"},
    ], p)
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "get_weather" in messages[0]["content"] and messages[0]["content"].startswith("Be kind.")
    assert messages[2]["content"] == '<tool_call>[{"name":"get_weather","arguments":{"city":"Rome"}}]'
    assert messages[3]["content"] == ("Tool result (get_weather): Sunny\n\n"
                                      "Tool result (call_2): Rainy")


def test_schema_grammars_are_cached_and_strict_about_strings() -> None:
    schema = {"type": "object", "properties": {"b": {"type": "string"}, "a": {"type": "integer"}}}
    g = grammars.json_schema(schema)
    assert grammars.json_schema(dict(schema)) is g  # the LRU
    assert g.index('"\\"b\\""') < g.index('"\\"a\\""') or "b-kv" in g  # schema order kept
    assert r"\x00-\x1F" in g  # no raw control characters inside strings
    with pytest.raises(grammars.GrammarError):
        grammars.json_schema({"type": "nonsense"})
