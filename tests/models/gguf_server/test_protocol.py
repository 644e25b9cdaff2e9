import pytest
from pydantic import ValidationError

from models.gguf_server.protocol import ChatRequest, CompletionRequest


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
    {"messages": [{"role": "user", "content": "x"}], "n": 2},
    {"messages": [{"role": "user", "content": "x"}], "temperature": 3},
    {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]},
])
def test_refused(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate(body)


def test_completion_prompt_list_of_one() -> None:
    assert CompletionRequest(prompt=["hi"]).as_prompt().text == "hi"
    with pytest.raises(ValueError, match="exactly one"):
        CompletionRequest(prompt=["a", "b"]).as_prompt()
