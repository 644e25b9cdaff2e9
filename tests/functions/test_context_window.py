"""The context check before any expensive stage: a floor of the prompt's tokens against the
model's context length."""

import pytest

from functions.context_window import BYTES_PER_TOKEN, check_context, prompt_tokens_floor
from functions.errors import ContextLengthExceeded
from functions.protocol.chat import ChatCompletionRequest
from functions.protocol.completions import CompletionRequest


def chat(text: str) -> ChatCompletionRequest:
    return ChatCompletionRequest.parse(
        b'{"model": "m", "messages": [{"role": "user", "content": "' + text.encode() + b'"}]}')


def test_a_prompt_that_cannot_fit_is_refused_with_openais_code() -> None:
    req = chat("word " * 4000)  # 20 kB: at least 2,500 tokens, whatever the tokenizer
    with pytest.raises(ContextLengthExceeded) as e:
        check_context(req, 2048)
    assert (e.value.status, e.value.code, e.value.param) == (400, "context_length_exceeded",
                                                             "messages")
    assert "2048 tokens" in e.value.message


def test_a_prompt_that_may_fit_is_left_to_the_backend() -> None:
    """English at ~4 bytes a token: 12 kB is ~3,000 tokens, too long for 2048, but the floor is
    1,500: the backend, which has the tokenizer, decides."""
    req = chat("word " * 2400)
    assert prompt_tokens_floor(req) < 2048
    check_context(req, 2048)
    check_context(chat("hello"), 2048)


def test_completions_count_the_longest_prompt_and_token_ids_exactly() -> None:
    batch = CompletionRequest.parse(b'{"model": "m", "prompt": ["short", "' + b"x" * 80_000 + b'"]}')
    assert prompt_tokens_floor(batch) == 80_000 // BYTES_PER_TOKEN
    with pytest.raises(ContextLengthExceeded) as e:
        check_context(batch, 4096)
    assert e.value.param == "prompt"
    ids = CompletionRequest.parse(b'{"model": "m", "prompt": [' + b",".join([b"7"] * 3000) + b"]}")
    assert prompt_tokens_floor(ids) == 3000
    check_context(ids, 4096)
    with pytest.raises(ContextLengthExceeded):
        check_context(ids, 2048)
