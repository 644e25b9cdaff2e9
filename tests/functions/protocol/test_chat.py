import pytest

from functions.errors import InvalidRequest
from functions.protocol.chat import ChatCompletionRequest


def test_text_parts_and_max_completion_tokens() -> None:
    req = ChatCompletionRequest.parse(
        b'{"model": "m", "max_completion_tokens": 5, "messages": [{"role": "user",'
        b' "content": [{"type": "text", "text": "hi"}]}]}')
    body = req.upstream_body("m")
    assert body["max_tokens"] == 5 and "max_completion_tokens" not in body
    assert body["messages"][0]["content"] == [{"type": "text", "text": "hi"}]


def test_usage_chunk_only_when_asked() -> None:
    req = ChatCompletionRequest.parse(
        b'{"model": "m", "stream": true, "stream_options": {"include_usage": true},'
        b' "messages": [{"role": "user", "content": "x"}]}')
    assert req.wants_usage_chunk


MSGS = b'"messages": [{"role": "user", "content": "x"}]'


def test_fields_that_change_nothing_are_dropped_and_named() -> None:
    req = ChatCompletionRequest.parse(
        b'{"model": "m", ' + MSGS + b', "store": true, "metadata": {"a": "b"}, "user": "u",'
        b' "service_tier": "auto", "prompt_cache_key": "k", "reasoning_effort": "low",'
        b' "verbosity": "low", "safety_identifier": "s", "modalities": ["text"],'
        b' "prediction": {"type": "content", "content": "x"}, "seed": 1}')
    body = req.upstream_body("m")
    assert req.ignored == ["metadata", "modalities", "prediction", "prompt_cache_key",
                           "reasoning_effort", "safety_identifier", "service_tier", "store",
                           "user", "verbosity"]
    assert set(body) == {"model", "messages", "seed", "stream"}


@pytest.mark.parametrize(("extra", "param"), [
    (b'"modalities": ["text", "audio"]', "modalities"),
    (b'"audio": {"voice": "alloy", "format": "wav"}', "audio"),
    (b'"web_search_options": {}', "web_search_options"),
    (b'"functions": [{"name": "f"}]', "functions"),
    (b'"function_call": "auto"', "function_call"),
    (b'"moderation": {"model": "omni-moderation-latest"}', "moderation"),
    (b'"tool_choice": {"type": "function", "function": {"name": "f"}}', "tool_choice"),
    (b'"top_logprobs": 2', "top_logprobs"),
])
def test_what_no_tier_can_honour_is_refused(extra: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        ChatCompletionRequest.parse(b'{"model": "m", ' + MSGS + b", " + extra + b"}")
    assert e.value.param == param
    assert e.value.code == ("invalid_value" if param == "top_logprobs" else "unsupported_parameter")


@pytest.mark.parametrize(("raw", "param"), [
    (b'{"model": "m", "messages": [{"role": "tool", "content": "x"}]}', "messages[0]"),
    (b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "video"}]}]}',
     "messages[0].content[0]"),
    (b'{"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]}',
     "messages[0].content[0].text"),
    (b'{"model": "m", ' + MSGS + b', "tools": [{"type": "function", "function": {}}]}',
     "tools[0].function.name"),
    (b'{"model": "m", ' + MSGS + b', "response_format": {"type": "json_schema"}}',
     "response_format"),
    (b'{"model": "m", ' + MSGS + b', "logit_bias": {"hello": 1}}', "logit_bias"),
    (b'{"model": "m", "messages": [{"role": "assistant", "content": null, "tool_calls":'
     b' [{"id": "c", "type": "function", "function": {"name": "f"}}]}]}', "messages[0].tool_calls"),
])
def test_malformed_parts_name_their_path(raw: bytes, param: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        ChatCompletionRequest.parse(raw)
    assert e.value.param == param, e.value.message


def test_a_tool_loop_parses_and_passes_on_unchanged() -> None:
    raw = (b'{"model": "m", "tools": [{"type": "function", "function": {"name": "get_weather",'
           b' "parameters": {"type": "object"}, "x-vendor": 1}}], "tool_choice": "auto",'
           b' "messages": [{"role": "user", "content": "weather?"},'
           b' {"role": "assistant", "content": null, "tool_calls": [{"id": "call_a",'
           b' "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},'
           b' {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}]}')
    req = ChatCompletionRequest.parse(raw)
    body = req.upstream_body("m")
    assert req.uses_tools
    assert body["tools"][0]["function"]["x-vendor"] == 1  # tool definitions pass as sent
    assert body["messages"][1]["tool_calls"][0]["id"] == "call_a"
    assert body["messages"][2] == {"role": "tool", "tool_call_id": "call_a", "content": "sunny"}


def test_refusal_parts_count_as_text() -> None:
    req = ChatCompletionRequest.parse(
        b'{"model": "m", "messages": [{"role": "assistant", "content": [{"type": "refusal",'
        b' "refusal": "no"}]}, {"role": "user", "content": "why"}]}')
    assert req.messages[0].text() == "no"
