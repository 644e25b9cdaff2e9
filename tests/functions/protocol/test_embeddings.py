"""The ``/v1/embeddings`` request model: every input form, and bad ones named ``input``."""

from __future__ import annotations

import orjson
import pytest

from functions.errors import InvalidRequest
from functions.protocol.embeddings import EmbeddingRequest


def parse(**body: object) -> EmbeddingRequest:
    return EmbeddingRequest.parse(orjson.dumps({"model": "m", **body}))


@pytest.mark.parametrize(("value", "count", "texts", "arrays"), [
    ("a", 1, ["a"], []),
    (["a", "b"], 2, ["a", "b"], []),
    ([1, 2, 3], 1, None, [[1, 2, 3]]),
    ([[1], [2, 3]], 2, None, [[1], [2, 3]]),
])
def test_input_forms(value: object, count: int, texts: list[str] | None,
                     arrays: list[list[int]]) -> None:
    req = parse(input=value)
    assert (req.count, req.texts, req.token_arrays) == (count, texts, arrays)


@pytest.mark.parametrize("value", [None, 1, "", [], [""], ["a", 1], [1, "a"], [[1], []], [True],
                                   [[True]], [1.5], [-3], {"a": 1}])
def test_bad_inputs_name_input(value: object) -> None:
    with pytest.raises(InvalidRequest) as e:
        parse(input=value)
    assert e.value.param == "input"


def test_other_fields() -> None:
    req = parse(input="a", encoding_format="base64", dimensions=384, user="u", guardrails={})
    assert req.upstream_body("served") == {"model": "served", "input": "a",
                                           "encoding_format": "base64", "dimensions": 384,
                                           "user": "u"}
    for bad in ({"encoding_format": "int8"}, {"dimensions": 0}):
        with pytest.raises(InvalidRequest) as e:
            parse(input="a", **bad)
        assert e.value.param == next(iter(bad))
    with pytest.raises(InvalidRequest) as e:
        parse(input="a", truncate=True)  # the tier's extension is not for clients
    assert e.value.code == "unknown_parameter"


def test_estimated_tokens() -> None:
    assert parse(input=[[1, 2], [3]]).estimated_tokens() == 3
    assert parse(input="word " * 40).estimated_tokens() >= 40
