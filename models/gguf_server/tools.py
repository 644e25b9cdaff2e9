"""Tool calling for models whose chat template has no tool format (SmolLM2, Gemma 3 270M).

The tool definitions are rendered into the system prompt as an instruction; the model answers a call
as ``<tool_call>`` followed by JSON (one call ``{"name": .., "arguments": {..}}``, or an array of them
when parallel calls are allowed), and a grammar (grammars.py) makes that JSON valid against each
tool's parameter schema while decoding. Earlier turns with ``tool_calls`` and ``role: "tool"`` results
are rewritten into plain assistant and user turns in the same format, which every template renders.

:class:`ToolAnswer` reads the answer as it is generated and tells plain text from a call, so a stream
carries ``delta.tool_calls`` with OpenAI's semantics (the first delta of a call carries its index, id,
type, name and ``arguments: ""``; later ones only the index and fragments of the arguments' JSON).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from models.gguf_server.grammars import TOOL_MARKER, GrammarError, tool_calls

Mode = Literal["none", "auto", "required", "named"]


class ToolError(ValueError):
    """An invalid ``tools`` / ``tool_choice`` (a 400 naming ``param``)."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True, slots=True)
class ToolPlan:
    """What a request with ``tools`` asks of the model."""

    functions: tuple[dict[str, Any], ...]
    mode: Mode
    parallel: bool
    grammar: str | None
    """None when ``mode`` is ``none``: the model answers in text, unconstrained."""

    @property
    def calls(self) -> bool:
        return self.mode != "none"


def plan(tools: list[dict[str, Any]] | None, tool_choice: Any,
         parallel_tool_calls: bool | None) -> ToolPlan | None:
    if not tools:
        if tool_choice not in (None, "none", "auto"):
            raise ToolError("'tool_choice' needs 'tools'.", "tool_choice")
        return None
    functions = tuple(_function(t, i) for i, t in enumerate(tools))
    names = [f["name"] for f in functions]
    if len(set(names)) != len(names):
        raise ToolError("Tool names must be unique.", "tools")
    mode: Mode
    if tool_choice is None or tool_choice == "auto":
        mode = "auto"
    elif tool_choice in ("none", "required"):
        mode = tool_choice
    elif isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = (tool_choice.get("function") or {}).get("name")
        match = [f for f in functions if f["name"] == name]
        if not match:
            raise ToolError(f"'tool_choice' names a function that is not in 'tools': {name!r}.",
                            "tool_choice")
        functions, mode = tuple(match), "named"
    else:
        raise ToolError("'tool_choice' must be 'none', 'auto', 'required' or "
                        "{'type': 'function', 'function': {'name': ...}}.", "tool_choice")
    parallel = parallel_tool_calls is not False and mode != "named"
    grammar = None
    if mode != "none":
        try:
            grammar = tool_calls(list(functions), parallel=parallel,
                                 required=mode in ("required", "named"))
        except GrammarError as e:
            raise ToolError(f"Invalid 'tools': a parameter schema cannot be enforced: {e}.",
                            "tools") from None
    return ToolPlan(functions, mode, parallel, grammar)


def _function(tool: Any, i: int) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function" or \
            not isinstance(tool.get("function"), dict):
        raise ToolError(f"'tools[{i}]' must be {{'type': 'function', 'function': {{...}}}}.",
                        f"tools.{i}")
    fn = tool["function"]
    name = fn.get("name")
    if not isinstance(name, str) or not name or len(name) > 64:
        raise ToolError(f"'tools[{i}].function.name' must be a string of 1 to 64 characters.",
                        f"tools.{i}.function.name")
    params = fn.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    if not isinstance(params, dict) or params.get("type", "object") != "object":
        raise ToolError(f"'tools[{i}].function.parameters' must be a JSON schema of an object.",
                        f"tools.{i}.function.parameters")
    out: dict[str, Any] = {"name": name}
    if isinstance(fn.get("description"), str):
        out["description"] = fn["description"]
    out["parameters"] = {"type": "object", **params}
    return out


# -- the prompt ----------------------------------------------------------------------------------
def instruction(p: ToolPlan) -> str:
    lines = ["You can call these functions. Each is described by a JSON object: its name, what it "
             "does, and the JSON schema of its arguments."]
    lines += [orjson.dumps(f).decode() for f in p.functions]
    form = ('a JSON array of calls, each {"name": <function name>, "arguments": <arguments '
            'object>}') if p.parallel else \
        'one JSON object {"name": <function name>, "arguments": <arguments object>}'
    lines.append(f"To call functions, answer with {TOOL_MARKER} followed by {form}, and nothing "
                 "else.")
    if p.mode == "auto":
        lines.append("If no function is needed, answer the user directly in plain text.")
    lines.append("The results of calls come back in messages that start with 'Tool result'.")
    return "\n".join(lines)


def has_tool_turns(messages: list[dict[str, Any]]) -> bool:
    return any(m.get("role") == "tool" or m.get("tool_calls") for m in messages)


def render(messages: list[dict[str, Any]], p: ToolPlan | None) -> list[dict[str, Any]]:
    """Messages any chat template renders: tool turns as plain turns, the tool instruction in the
    system message, no two turns of the same role in a row. ``content`` must already be text."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content") or ""
        if role == "developer":
            role = "system"
        if role == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = (c or {}).get("function") or {}
                names[str(c.get("id"))] = str(fn.get("name"))
                calls.append({"name": fn.get("name"), "arguments": _arguments(fn.get("arguments"))})
            shown: Any = calls if (p is None or p.parallel) else calls[0]
            content = (content + "\n" if content else "") + TOOL_MARKER + \
                orjson.dumps(shown).decode()
        elif role == "tool":
            call_id = str(m.get("tool_call_id") or "")
            who = m.get("name") or names.get(call_id) or call_id
            role, content = "user", f"Tool result ({who}): {content}"
        if out and out[-1]["role"] == role:
            out[-1] = {"role": role, "content": out[-1]["content"] + "\n\n" + content}
        else:
            out.append({"role": role, "content": content})
    if p is not None and p.calls:
        text = instruction(p)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + text}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out


def _arguments(raw: Any) -> Any:
    if isinstance(raw, str):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw
    return raw if raw is not None else {}


# -- the answer ----------------------------------------------------------------------------------
def call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


@dataclass(slots=True)
class Call:
    id: str
    name: str | None = None
    arguments: str = ""
    started: bool = False
    """Whether its first delta (with the name) was given out."""


@dataclass(frozen=True, slots=True)
class Content:
    text: str


@dataclass(frozen=True, slots=True)
class CallStart:
    index: int
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class CallArgs:
    index: int
    fragment: str


Piece = Content | CallStart | CallArgs


@dataclass(slots=True)
class ToolAnswer:
    """Reads an answer piece by piece: plain text, or ``<tool_call>`` and the calls' JSON."""

    mode: Literal["undecided", "text", "calls"] = "undecided"
    calls: list[Call] = field(default_factory=list)
    _held: str = ""
    # the JSON scanner (outside the arguments: call level; inside: raw text of the arguments)
    _depth: int = 0
    _in_str: bool = False
    _esc: bool = False
    _str: list[str] = field(default_factory=list)
    _key: str | None = None
    _expect_key: bool = False
    _args_next: bool = False
    _args_depth: int = 0
    _in_args: bool = False

    def feed(self, text: str) -> list[Piece]:
        if self.mode == "text":
            return [Content(text)] if text else []
        if self.mode == "undecided":
            self._held += text
            rest = self._held.lstrip(" \t\n")
            if rest.startswith(TOOL_MARKER):
                self.mode, self._held = "calls", ""
                return self._scan(rest[len(TOOL_MARKER):])
            if not rest or TOOL_MARKER.startswith(rest):
                return []
            self.mode, held, self._held = "text", self._held, ""
            return [Content(held)]
        return self._scan(text)

    def flush(self) -> list[Piece]:
        """At the end: text held back while it could still have become a call."""
        if self.mode == "undecided" and self._held:
            self.mode, held, self._held = "text", self._held, ""
            return [Content(held)]
        return []

    def _scan(self, text: str) -> list[Piece]:
        out: list[Piece] = []
        args: list[str] = []
        for c in text:
            if self._in_args:
                args.append(c)
                if self._in_str:
                    if self._esc:
                        self._esc = False
                    elif c == "\\":
                        self._esc = True
                    elif c == '"':
                        self._in_str = False
                elif c == '"':
                    self._in_str = True
                elif c in "{[":
                    self._args_depth += 1
                elif c in "}]":
                    self._args_depth -= 1
                    if self._args_depth == 0:
                        self._in_args = False
                        self._emit_args(args, out)
                continue
            if self._in_str:
                if self._esc:
                    self._esc = False
                    self._str.append(c)
                elif c == "\\":
                    self._esc = True
                    self._str.append(c)
                elif c == '"':
                    self._in_str = False
                    self._string_done(orjson.loads('"' + "".join(self._str) + '"'), out)
                else:
                    self._str.append(c)
            elif c == '"':
                self._in_str, self._str = True, []
            elif c == "{":
                if self._args_next:
                    self._args_next, self._in_args, self._args_depth = False, True, 1
                    args.append(c)
                else:
                    self._depth += 1
                    self.calls.append(Call(call_id()))
                    self._expect_key = True
            elif c == "[":
                self._depth += 1
            elif c in "}]":
                self._depth -= 1
            elif c == ",":
                self._expect_key = True
            elif c == ":" and self._key == "arguments":
                self._args_next = True
        if self._in_args:
            self._emit_args(args, out)
        return out

    def _string_done(self, s: str, out: list[Piece]) -> None:
        if self._expect_key:
            self._key, self._expect_key = s, False
        elif self._key == "name" and self.calls:
            call = self.calls[-1]
            call.name = s
            call.started = True
            out.append(CallStart(len(self.calls) - 1, call.id, s))
            if call.arguments:  # arguments came first (a schema ordering them so): give them now
                out.append(CallArgs(len(self.calls) - 1, call.arguments))

    def _emit_args(self, args: list[str], out: list[Piece]) -> None:
        if not args or not self.calls:
            return
        fragment = "".join(args)
        args.clear()
        call = self.calls[-1]
        call.arguments += fragment
        if call.started:
            out.append(CallArgs(len(self.calls) - 1, fragment))
