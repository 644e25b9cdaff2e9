"""OpenAI's published OpenAPI spec (``../shared/openai-openapi/subset.json``): its request fields and
its response schemas as JSON Schema validators."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "openai-openapi" / "subset.json"


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


@functools.cache
def validator(name: str) -> Any:
    """A Draft 2020-12 validator of one component schema, ``$ref`` resolved in the whole spec.
    OpenAPI 3.0's ``nullable: true`` is honoured (the spec mixes 3.0 and 3.1 idioms)."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    doc = _nullable(spec())
    registry: Registry[Any] = Registry().with_resource(
        "urn:openai", Resource.from_contents(doc, default_specification=DRAFT202012))
    schema = {"$ref": f"urn:openai#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(schema, registry=registry)


def _nullable(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable(v) for k, v in node.items()}
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def errors(name: str, instance: Any) -> list[str]:
    """The validation errors of ``instance`` against the component ``name`` (empty: valid)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(name).iter_errors(instance)]
