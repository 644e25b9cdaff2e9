import pytest

from functions.capabilities import check
from functions.errors import InvalidRequest
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.completions import CompletionRequest
from models.catalog import parse_catalog

CATALOG = parse_catalog("""
models:
  - {alias: g, tier: gguf, context_length: 2048, backends: [{name: a, url: "http://127.0.0.1:1"}],
     gguf: {file: x.gguf, slots: 2}}
  - {alias: v, tier: vllm, context_length: 2048, backends: [{name: b, url: "http://127.0.0.1:1"}]}
  - {alias: e, tier: embedding, context_length: 512, backends: [{name: c, url: "http://127.0.0.1:1"}]}
  - {alias: plain, tier: vllm, context_length: 2048, backends: [{name: d, url: "http://127.0.0.1:1"}],
     capabilities: {tools: false, json_schema: false, logprobs: false}}
""", {})
USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": "f"}}]


def chat(**kw: object) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate({"model": "x", "messages": USER, **kw})


def refused(alias: str, req: ChatCompletionRequest | CompletionRequest) -> str | None:
    spec = CATALOG.get(alias)
    assert spec is not None
    try:
        check(spec, req)
    except InvalidRequest as e:
        code, param = e.code, e.param
    else:
        return None
    assert code == "unsupported_parameter"
    return param


@pytest.mark.parametrize(("alias", "req", "param"), [
    ("plain", chat(tools=TOOLS), "tools"),
    ("plain", chat(tools=TOOLS, tool_choice="none"), None),  # no tool can be called
    ("plain", chat(response_format={"type": "json_object"}), "response_format"),
    ("plain", chat(response_format={"type": "text"}), None),
    ("plain", chat(logprobs=True), "logprobs"),
    ("plain", chat(logprobs=True, top_logprobs=2), "logprobs"),
    ("g", chat(tools=TOOLS, response_format={"type": "json_object"}, logprobs=True), None),
    ("g", chat(n=2), None),
    ("g", chat(n=3), "n"),  # one choice per slot
    ("v", chat(n=16), None),
    ("e", chat(), "model"),
    ("v", chat(tools=[{"type": "custom", "custom": {"name": "c"}}]), "tools[0]"),
    ("v", chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:,"}}]}]), "messages[0].content[1]"),
])
def test_chat_capabilities(alias: str, req: ChatCompletionRequest, param: str | None) -> None:
    assert refused(alias, req) == param


@pytest.mark.parametrize(("alias", "body", "param"), [
    ("g", {"echo": True}, "echo"),
    ("v", {"echo": True}, None),
    ("g", {"suffix": "end"}, "suffix"),
    ("v", {"suffix": "end"}, "suffix"),
    ("g", {"prompt": [1, 2, 3]}, "prompt"),
    ("v", {"prompt": [1, 2, 3]}, None),
    ("plain", {"logprobs": 1}, "logprobs"),
    ("e", {}, "model"),
])
def test_completion_capabilities(alias: str, body: dict[str, object], param: str | None) -> None:
    req = CompletionRequest.model_validate({"model": "x", "prompt": "hi", **body})
    assert refused(alias, req) == param
