import pytest
from pydantic import ValidationError

from models.gguf_server.protocol import ChatRequest, CompletionRequest, ParamError


def test_chat_text_parts_are_joined() -> None:
    req = ChatRequest.model_validate({"messages": [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}]})
    assert req.prompt().messages == [{"role": "user", "content": "ab"}]


def test_sampling_defaults_and_stop_forms() -> None:
    s = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}],
                                    "stop": "END"}).sampling(99)
    assert (s.max_tokens, s.stop) == (99, ("END",))
    s = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}],
                                    "max_completion_tokens": 7, "stop": ["a", "b"]}).sampling(99)
    assert (s.max_tokens, s.stop) == (7, ("a", "b"))


@pytest.mark.parametrize("body", [
    {"messages": []},
    {"messages": [{"role": "user", "content": "x"}], "n": 65},
    {"messages": [{"role": "user", "content": "x"}], "temperature": 3},
    {"messages": [{"role": "user", "content": "x"}], "logit_bias": {"hello": 1}},
    {"messages": [{"role": "user", "content": "x"}], "logit_bias": {"12": 101}},
    {"messages": [{"role": "user", "content": "x"}], "top_logprobs": 21},
])
def test_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate(body)


@pytest.mark.parametrize(("body", "param"), [
    ({"tools": [{"type": "function"}]}, "tools.0"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]},
     "tools.0.function.parameters"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"response_format": {"type": "json_schema", "json_schema": {"schema": {"type": "nope"}}}},
     "response_format"),
    ({"response_format": {"type": "yaml"}}, "response_format"),
    ({"top_logprobs": 2}, "top_logprobs"),
])
def test_refused_naming_the_parameter(body: dict[str, object], param: str) -> None:
    req = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}], **body})
    def build() -> None:
        req.prompt()
        req.sampling(10)

    with pytest.raises(ParamError) as e:
        build()
    assert e.value.param == param


def test_sampling_carries_grammar_bias_and_logprobs() -> None:
    s = ChatRequest.model_validate({
        "messages": [{"role": "user", "content": "x"}], "logit_bias": {"7": -100, "9": 2.5},
        "logprobs": True, "top_logprobs": 3, "response_format": {"type": "json_object"}}
    ).sampling(10)
    assert s.logit_bias == ((7, -100), (9, 2.5)) and s.logprobs == 3
    assert s.grammar is not None and "root" in s.grammar
    plain = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}]})
    assert plain.sampling(10).grammar is None and plain.sampling(10).logprobs is None
    assert CompletionRequest(prompt="a", logprobs=0).sampling(5).logprobs == 0


def test_tools_render_into_the_prompt_and_disable_stops() -> None:
    req = ChatRequest.model_validate({
        "messages": [{"role": "system", "content": "Be brief."},
                     {"role": "user", "content": "Weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}],
        "stop": ["\n"]})
    messages = req.prompt().messages
    assert messages is not None and messages[0]["role"] == "system"
    assert messages[0]["content"].startswith("Be brief.") and "get_weather" in messages[0]["content"]
    s = req.sampling(10)
    assert s.stop == () and s.grammar_param == "tools" and s.grammar is not None


def test_completion_prompt_list_of_one() -> None:
    assert CompletionRequest(prompt=["hi"]).as_prompt().text == "hi"
    with pytest.raises(ValueError, match="exactly one"):
        CompletionRequest(prompt=["a", "b"]).as_prompt()
