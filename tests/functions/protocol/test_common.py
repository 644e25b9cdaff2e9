import pytest

from functions.errors import InvalidRequest
from functions.protocol.chat import ChatCompletionRequest


def parse(raw: bytes) -> ChatCompletionRequest:
    return ChatCompletionRequest.parse(raw)


@pytest.mark.parametrize(("raw", "param", "fragment"), [
    (b"{not json", None, "not valid JSON"),
    (b"[1]", None, "JSON object"),
    (b'{"messages": [{"role": "user", "content": "x"}]}', "model", "Missing required"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 9}',
     "temperature", "Invalid value"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "top_p": 1.5}', "top_p",
     "Invalid value"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 0}',
     "max_tokens", "Invalid value"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 200}', "n",
     "Invalid value"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a","b","c","d","e"]}',
     "stop", "at most 4"),
    (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "frobnicate": 1}',
     "frobnicate", "Unrecognized request argument"),
    (b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role",
     "Invalid value"),
])
def test_bad_bodies_name_the_parameter(raw: bytes, param: str | None, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as e:
        parse(raw)
    assert e.value.param == param
    assert fragment in e.value.message


def test_upstream_body_names_the_backend_model_and_asks_for_usage() -> None:
    req = parse(b'{"model": "alias", "messages": [{"role": "user", "content": "x"}],'
                b' "stream": true, "seed": 3}')
    body = req.upstream_body("served")
    assert body["model"] == "served"
    assert body["stream_options"] == {"include_usage": True}
    assert body["seed"] == 3
    assert "temperature" not in body  # unset stays unset
    assert not req.wants_usage_chunk
