import json

from functions.guardrails.texts import input_texts, replace_texts, units
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


def test_completion_suffix() -> None:
    req = CompletionRequest.model_validate({"model": "m", "prompt": "x", "suffix": "end"})
    items = input_texts(req)
    assert [(t.text, t.where, t.prompt) for t in items] == [("x", "content", True),
                                                            ("end", "suffix", True)]
    out = replace_texts(req, ["x", "END"])
    assert (out.prompt, out.suffix) == ("x", "END")


TOOLS = [{"type": "function", "function": {
    "name": "send", "description": "Send a message.",
    "parameters": {"type": "object", "properties": {
        "to": {"type": "string", "description": "Recipient address"},
        "description": {"type": "string"},  # a parameter named "description": not a description
        "tags": {"type": "array", "items": {"type": "string", "description": "One tag"}}}}}}]


def tool_request() -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "m", "tools": TOOLS, "messages": [
        {"role": "user", "content": "hi", "name": "ada"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "send", "arguments": '{"to": "a@b.co", "n": 7, "x": "\\"q\\""}'}},
            {"id": "c2", "type": "function", "function": {"name": "send", "arguments": "oops"}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "sent to a@b.co"}'},
        {"role": "tool", "tool_call_id": "c2", "content": "plain result"}]})


def test_names_arguments_results_and_tool_descriptions_are_found() -> None:
    items = input_texts(tool_request())
    got = [(t.where, t.role, t.text, t.path, t.key, t.group) for t in items]
    assert got == [
        ("content", "user", "hi", None, False, None),
        ("name", "user", "ada", None, False, None),
        ("arguments", "assistant", "to", ("to",), True, 1),
        ("arguments", "assistant", "a@b.co", ("to",), False, 1),
        ("arguments", "assistant", "n", ("n",), True, 1),
        ("arguments", "assistant", "7", ("n",), False, 1),
        ("arguments", "assistant", "x", ("x",), True, 1),
        ("arguments", "assistant", '"q"', ("x",), False, 1),
        ("arguments", "assistant", "oops", None, False, None),
        ("content", "tool", "status", ("status",), True, 2),
        ("content", "tool", "sent to a@b.co", ("status",), False, 2),
        ("content", "tool", "plain result", None, False, None),
        ("tools", "developer", "Send a message.", ("function", "description"), False, 3),
        ("tools", "developer", "Recipient address",
         ("function", "parameters", "properties", "to", "description"), False, 3),
        ("tools", "developer", "One tag",
         ("function", "parameters", "properties", "tags", "items", "description"), False, 3)]
    assert [(i.prompt, i.document, i.moderated) for i in items[:2]] == [(True, False, True)] * 2
    assert items[2].prompt is items[2].document is items[2].moderated is False
    assert items[9].document and items[9].moderated
    assert items[12].document and not items[12].moderated and not items[12].prompt
    grouped = units(items)
    assert [u.text for u in grouped] == [
        "hi", "ada", 'to\na@b.co\nn\n7\nx\n"q"', "oops", "status\nsent to a@b.co", "plain result",
        "Send a message.\nRecipient address\nOne tag"]


def test_replacing_keeps_json_valid_and_everything_else_in_place() -> None:
    req = tool_request()
    texts = [t.text.replace("a@b.co", "<EMAIL_ADDRESS_1>").replace("ada", "<PERSON_1>")
             .replace("7", "<N>").replace("Recipient", '"R"').replace("oops", "OOPS")
             for t in input_texts(req)]
    out = replace_texts(req, texts)
    assert out.messages[0].name == "<PERSON_1>"
    calls = out.messages[1].tool_calls or []
    assert json.loads(calls[0]["function"]["arguments"]) == {"to": "<EMAIL_ADDRESS_1>", "n": "<N>",
                                                             "x": '"q"'}
    assert calls[0]["id"] == "c1" and calls[0]["function"]["name"] == "send"
    assert calls[1]["function"]["arguments"] == "OOPS"
    assert json.loads(str(out.messages[2].content)) == {"status": "sent to <EMAIL_ADDRESS_1>"}
    assert out.messages[3] == req.messages[3]
    props = out.model_dump()["tools"][0]["function"]["parameters"]["properties"]
    assert props["to"] == {"type": "string", "description": '"R" address'}
    assert props["description"] == {"type": "string"}
    assert TOOLS[0]["function"]["parameters"]["properties"]["to"]["description"] == (  # type: ignore[index]
        "Recipient address")  # the caller's objects are not changed
    assert [t.text for t in input_texts(out)] == texts


def test_embedding_inputs() -> None:
    one = EmbeddingRequest.model_validate({"model": "m", "input": "x"})
    assert [(t.text, t.role) for t in input_texts(one)] == [("x", "user")]
    assert replace_texts(one, ["y"]).input == "y"
    many = EmbeddingRequest.model_validate({"model": "m", "input": ["x", "z"]})
    assert replace_texts(many, ["y", "z"]).input == ["y", "z"]
    ids = EmbeddingRequest.model_validate({"model": "m", "input": [[1, 2]]})
    assert input_texts(ids) == []  # token arrays: no text to check
