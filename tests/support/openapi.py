"""OpenAI's published OpenAPI spec (``../shared/openai-openapi/subset.json``): its request fields and
its response schemas as JSON Schema validators.

The spec is OpenAPI 3.1 but still marks some fields with 3.0's ``nullable: true`` (the streamed
``finish_reason`` and ``logprobs``), which JSON Schema ignores; those become ``anyOf [..., null]``
here. The legacy completions schema (shared by streamed chunks, per its description) lists no null
``finish_reason``, yet OpenAI streams ``null`` before the last chunk: ``llmpCompletionChunk`` is that
schema with a null ``finish_reason`` allowed.
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

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "openai-openapi" / "subset.json"
URI = "urn:openai-openapi"
COMPLETION_CHUNK = "llmpCompletionChunk"


@functools.cache
def spec() -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(SPEC.read_bytes())
    return data


def schemas() -> dict[str, Any]:
    out: dict[str, Any] = spec()["components"]["schemas"]
    return out


def properties(name: str) -> dict[str, Any]:
    """Every property of a component schema, through ``allOf`` and ``$ref``."""
    out: dict[str, Any] = {}

    def walk(s: dict[str, Any]) -> None:
        if "$ref" in s:
            walk(schemas()[s["$ref"].rsplit("/", 1)[1]])
            return
        for part in s.get("allOf", []):
            walk(part)
        out.update(s.get("properties", {}))

    walk(schemas()[name])
    return out


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
    doc: dict[str, Any] = _nullable(spec())
    chunk = copy.deepcopy(doc["components"]["schemas"]["CreateCompletionResponse"])
    reason = chunk["properties"]["choices"]["items"]["properties"]["finish_reason"]
    chunk["properties"]["choices"]["items"]["properties"]["finish_reason"] = {
        "anyOf": [reason, {"type": "null"}]}
    doc["components"]["schemas"][COMPLETION_CHUNK] = chunk
    return doc


@functools.cache
def validator(component: str) -> jsonschema.protocols.Validator:
    """A Draft 2020-12 validator of one component schema, ``$ref`` resolved in the whole spec."""
    registry: Registry[Any] = Registry().with_resource(
        URI, Resource.from_contents(_document(), default_specification=DRAFT202012))
    schema = {"$ref": f"{URI}#/components/schemas/{component}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def errors(component: str, instance: Any) -> list[str]:
    """The validation errors of ``instance`` against ``component`` (empty: valid)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(component).iter_errors(instance)]


def validate(body: Any, component: str) -> None:
    """Raise ``jsonschema.ValidationError`` unless ``body`` matches the spec's ``component``."""
    validator(component).validate(body)


def validate_chat(body: Any) -> None:
    validate(body, "CreateChatCompletionResponse")


def validate_chat_chunk(chunk: Any) -> None:
    validate(chunk, "CreateChatCompletionStreamResponse")


def validate_completion(body: Any) -> None:
    validate(body, "CreateCompletionResponse")


def validate_completion_chunk(chunk: Any) -> None:
    validate(chunk, COMPLETION_CHUNK)
