import pytest

from functions.errors import InvalidRequest
from functions.protocol.completions import CompletionRequest


def test_prompt_forms() -> None:
    assert CompletionRequest.parse(b'{"model": "m", "prompt": "x"}').prompt == "x"
    assert CompletionRequest.parse(b'{"model": "m", "prompt": ["x"]}').prompt == ["x"]


def test_empty_prompt_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="prompt"):
        CompletionRequest.parse(b'{"model": "m", "prompt": ""}')
