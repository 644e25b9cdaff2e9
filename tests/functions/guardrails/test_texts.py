from functions.guardrails.texts import input_texts, replace_texts
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.completions import CompletionRequest
from functions.protocol.embeddings import EmbeddingRequest


def test_every_text_is_found_and_replaced_in_place() -> None:
    req = ChatCompletionRequest.model_validate({"model": "m", "messages": [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "1", "type": "function",
                                                               "function": {"name": "f", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "1", "content": "t"}]})
    items = input_texts(req)
    assert [(t.text, t.role) for t in items] == [("sys", "system"), ("a", "user"), ("b", "user"),
                                                 ("t", "tool")]
    out = replace_texts(req, ["S", "A", "B", "T"])
    assert [t.text for t in input_texts(out)] == ["S", "A", "B", "T"]
    assert out.messages[2] == req.messages[2]
    assert replace_texts(req, ["sys", "a", "b", "t"]) is req


def test_completion_prompts() -> None:
    one = CompletionRequest.model_validate({"model": "m", "prompt": "x"})
    assert replace_texts(one, ["y"]).prompt == "y"
    many = CompletionRequest.model_validate({"model": "m", "prompt": ["x", "z"]})
    assert replace_texts(many, ["y", "z"]).prompt == ["y", "z"]


def test_embedding_inputs() -> None:
    one = EmbeddingRequest.model_validate({"model": "m", "input": "x"})
    assert [(t.text, t.role) for t in input_texts(one)] == [("x", "user")]
    assert replace_texts(one, ["y"]).input == "y"
    many = EmbeddingRequest.model_validate({"model": "m", "input": ["x", "z"]})
    assert replace_texts(many, ["y", "z"]).input == ["y", "z"]
    ids = EmbeddingRequest.model_validate({"model": "m", "input": [[1, 2]]})
    assert input_texts(ids) == []  # token arrays: no text to check
