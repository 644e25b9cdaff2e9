"""GBNF grammars that constrain decoding: JSON (``response_format``) and tool calls.

Grammars are built from JSON schemas with llama-cpp-python's converter (the one llama.cpp ships) and
cached by the schema's JSON text (a bounded LRU), so a schema sent with every request is converted
once. The key keeps the schema's key order: properties are generated in the order they are listed.
llama.cpp parses the GBNF text when a request's grammar sampler is created.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson

TOOL_MARKER = "<tool_call>"
"""What starts a tool call in the model's answer (the prompt tells the model so; see tools.py)."""

_JSON_ROOT_OBJECT = r"""
root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws
object ::= "{" ws ( string ":" ws value ("," ws string ":" ws value)* )? "}" ws
array  ::= "[" ws ( value ("," ws value)* )? "]" ws
string ::= "\"" ( [^"\\\x7F\x00-\x1F] | "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) )* "\"" ws
number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws ::= | " " | "\n" [ \t]{0,20}
"""
"""``json_object``: any JSON object (llama.cpp's ``json.gbnf``; ``JSON_GBNF`` in llama-cpp-python)."""


class GrammarError(ValueError):
    """A schema that cannot be turned into a grammar (the request's fault: a 400)."""


def json_object() -> str:
    return _JSON_ROOT_OBJECT


def canonical(schema: Any) -> str:
    """The cache key of a schema: its JSON, keys in their order (which the grammar follows)."""
    return orjson.dumps(schema).decode()


def json_schema(schema: Any) -> str:
    """The grammar of the JSON values valid against ``schema``."""
    if not isinstance(schema, dict):
        raise GrammarError("the schema must be a JSON object")
    return _schema_gbnf(canonical(schema), "")


@functools.lru_cache(maxsize=256)
def _schema_gbnf(key: str, root_name: str) -> str:
    from llama_cpp.llama_grammar import SchemaConverter

    try:
        make: Any = SchemaConverter  # untyped
        converter = make(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        schema = converter.resolve_refs(orjson.loads(key), "request")
        converter.visit(schema, root_name)
        gbnf = str(converter.format_grammar())
    except RecursionError:
        raise GrammarError("the schema nests too deeply") from None
    except Exception as e:  # noqa: BLE001 - the converter raises assertions, KeyError, ValueError...
        raise GrammarError(f"the schema is not supported: {type(e).__name__}: {e}") from None
    # The converter's string characters include control characters, which JSON forbids raw
    # (llama.cpp's own json.gbnf excludes them): without this a newline in a string is invalid JSON.
    return gbnf.replace(_CHAR_LOOSE, _CHAR_STRICT)


_CHAR_LOOSE = r'char ::= [^"\\] |'
_CHAR_STRICT = r'char ::= [^"\\\x7F\x00-\x1F] |'


def _call_schema(tool: dict[str, Any]) -> dict[str, Any]:
    """One call of ``tool``: ``{"name": <its name>, "arguments": <its parameters>}``."""
    params = tool.get("parameters") or {"type": "object", "properties": {}}
    return {"type": "object", "properties": {"name": {"const": tool["name"]}, "arguments": params},
            "required": ["name", "arguments"], "additionalProperties": False}


def calls_schema(tools: list[dict[str, Any]], *, parallel: bool) -> dict[str, Any]:
    """The JSON of the calls the model may make: one call, or with ``parallel`` an array of them."""
    one = [_call_schema(t) for t in tools]
    call: dict[str, Any] = one[0] if len(one) == 1 else {"anyOf": one}
    if parallel:
        return {"type": "array", "items": call, "minItems": 1, "maxItems": 8}
    return call


def tool_calls(tools: list[dict[str, Any]], *, parallel: bool, required: bool) -> str:
    """Tool calls after the marker; unless ``required``, plain text (not starting with the
    marker's first character) is the other way to answer."""
    body = _schema_gbnf(canonical(calls_schema(tools, parallel=parallel)), "calls")
    lit = orjson.dumps(TOOL_MARKER).decode()
    if required:
        root = f'root ::= {lit} calls'
    else:
        first = TOOL_MARKER[0]
        root = (f'root ::= [ \\t\\n]{{0,4}} ( {lit} calls | plain-text-answer )\n'
                f'plain-text-answer ::= [^{first} \\t\\n] [^\\x00]*')
    return root + "\n" + body
