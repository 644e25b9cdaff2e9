import pytest

from functions.errors import InvalidRequest
from functions.protocol.completions import CompletionRequest


def test_prompt_forms() -> None:
    assert CompletionRequest.parse(b'{"model": "m", "prompt": "x"}').prompt == "x"
    assert CompletionRequest.parse(b'{"model": "m", "prompt": ["x"]}').prompt == ["x"]


def test_empty_prompt_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="prompt"):
        CompletionRequest.parse(b'{"model": "m", "prompt": ""}')


def test_token_prompts_parse_and_have_no_text() -> None:
    req = CompletionRequest.parse(b'{"model": "m", "prompt": [[1, 2], [3]]}')
    assert req.token_prompt and req.prompts == []
    assert not CompletionRequest.parse(b'{"model": "m", "prompt": ["a", "b"]}').token_prompt


def test_best_of_only_where_it_changes_nothing() -> None:
    req = CompletionRequest.parse(b'{"model": "m", "prompt": "x", "best_of": 2, "n": 2}')
    assert req.ignored == ["best_of"] and "best_of" not in req.upstream_body("m")
    with pytest.raises(InvalidRequest) as e:
        CompletionRequest.parse(b'{"model": "m", "prompt": "x", "best_of": 3}')
    assert e.value.param == "best_of"
