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
