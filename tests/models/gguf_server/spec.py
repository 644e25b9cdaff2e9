"""Validating bodies and chunks against OpenAI's published response schemas.

The spec is OpenAPI 3.1 but still marks some fields with 3.0's ``nullable: true`` (the streamed
``finish_reason`` and ``logprobs``), which JSON Schema ignores; those become ``anyOf [..., null]``
here. The legacy completions schema (shared by streamed chunks, per its description) lists no null
``finish_reason``, yet OpenAI streams ``null`` before the last chunk: for chunks it is allowed.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import orjson
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC = Path(__file__).resolve().parents[4] / "shared" / "openai-openapi" / "subset.json"
URI = "urn:openai-openapi"


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@functools.cache
def _document() -> dict[str, Any]:
    doc = _nullable(orjson.loads(SPEC.read_bytes()))
    # streamed legacy completions: finish_reason is null until the last chunk
    chunk = copy.deepcopy(doc["components"]["schemas"]["CreateCompletionResponse"])
    reason = chunk["properties"]["choices"]["items"]["properties"]["finish_reason"]
    chunk["properties"]["choices"]["items"]["properties"]["finish_reason"] = {
        "anyOf": [reason, {"type": "null"}]}
    doc["components"]["schemas"]["llmpCompletionChunk"] = chunk
    return doc


@functools.cache
def _validator(component: str) -> jsonschema.protocols.Validator:
    doc = _document()
    registry: Registry[Any] = Registry().with_resource(
        URI, Resource.from_contents(doc, default_specification=DRAFT202012))
    schema = {"$ref": f"{URI}#/components/schemas/{component}"}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, registry=registry)  # type: ignore[call-arg]


def validate(body: Any, component: str) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` matches the spec's ``component``."""
    _validator(component).validate(body)


def validate_chat(body: Any) -> None:
    validate(body, "CreateChatCompletionResponse")


def validate_chat_chunk(chunk: Any) -> None:
    validate(chunk, "CreateChatCompletionStreamResponse")


def validate_completion(body: Any) -> None:
    validate(body, "CreateCompletionResponse")


def validate_completion_chunk(chunk: Any) -> None:
    validate(chunk, "llmpCompletionChunk")
