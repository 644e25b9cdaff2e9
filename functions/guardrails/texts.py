"""Where the text of a request lives, and how to put checked text back.

Everything of a request that reaches a model as text is an :class:`InputText`: message content
(text parts), a message's ``name``, the arguments of the tool calls in assistant messages, tool
results, the descriptions in ``tools`` (the function's and its parameters'), completion prompts and
``suffix``. JSON (tool-call arguments, a tool result that is a JSON object or array) is split into
its leaves (:mod:`functions.guardrails.jsontext`), so masking keeps it valid JSON; the leaves of one
document, and the descriptions of one tool, share a ``group`` and are analysed as one text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from functions.guardrails import jsontext
from functions.guardrails.jsontext import Path
from functions.protocol.chat import TOOLS, ChatCompletionRequest, RefusalPart, TextPart
from functions.protocol.common import SamplingParams
from functions.protocol.completions import CompletionRequest
from functions.protocol.embeddings import EmbeddingRequest

R = TypeVar("R", bound=SamplingParams | EmbeddingRequest)
Where = Literal["content", "name", "arguments", "tools", "suffix"]


@dataclass(frozen=True, slots=True)
class InputText:
    text: str
    role: str
    """``user``, ``tool``, ``system``, ``developer``, ``assistant``; a completion prompt or suffix
    is ``user``; a tool description is ``developer``."""
    message: int
    """The message's index (``tools``: the tool's index; completions: the prompt's)."""
    part: int | None = None
    where: Where = "content"
    call: int | None = None
    """``arguments``: the tool call's index in the message's ``tool_calls``."""
    path: Path | None = None
    """A leaf of a JSON document (inside the content or the arguments), or the place of a
    description inside the tool's definition; None for the whole field."""
    key: bool = False
    """The leaf is an object key (``path`` ends with it)."""
    group: int | None = None
    """Texts with the same group are analysed together, in order (one JSON document, one tool)."""

    @property
    def prompt(self) -> bool:
        """What a user wrote: injection-checked as a prompt, moderated."""
        return self.role == "user"

    @property
    def document(self) -> bool:
        """Untrusted content (tool results, tool descriptions): injection-checked as a document.
        A tool definition can come from a third-party tool registry (an MCP server) and carry
        instructions aimed at the model ("tool poisoning")."""
        return self.role == "tool" or self.where == "tools"

    @property
    def moderated(self) -> bool:
        return self.role in ("user", "tool")


@dataclass(frozen=True, slots=True)
class Unit:
    """One text to analyse: a lone :class:`InputText`, or a group joined by line breaks."""

    text: str
    items: list[int]
    """Indices into the :func:`input_texts` list."""
    starts: list[int] = field(default_factory=lambda: [0])
    prompt: bool = False
    document: bool = False
    moderated: bool = False


def input_texts(req: SamplingParams | EmbeddingRequest) -> list[InputText]:
    out: list[InputText] = []
    if isinstance(req, ChatCompletionRequest):
        groups = 0

        def document(raw: str, role: str, i: int, part: int | None, where: Where,
                     call: int | None = None) -> None:
            nonlocal groups
            doc = jsontext.Document(raw)
            if doc.value is None:
                out.append(InputText(raw, role, i, part, where, call))
                return
            groups += 1
            out.extend(InputText(leaf.text, role, i, part, where, call, leaf.path, leaf.key, groups)
                       for leaf in doc.leaves)

        for i, m in enumerate(req.messages):
            json_content = m.role == "tool"  # tool results are often JSON: masked as JSON
            if isinstance(m.content, str):
                if json_content:
                    document(m.content, m.role, i, None, "content")
                else:
                    out.append(InputText(m.content, m.role, i))
            elif isinstance(m.content, list):
                for j, p in enumerate(m.content):
                    if not isinstance(p, TextPart | RefusalPart):
                        continue
                    if json_content:
                        document(p.text, m.role, i, j, "content")
                    else:
                        out.append(InputText(p.text, m.role, i, j))
            if m.name:
                out.append(InputText(m.name, m.role, i, where="name"))
            for k, call in enumerate(m.tool_calls or []):
                args = (call.get("function") or {}).get("arguments")
                if isinstance(args, str) and args:
                    document(args, m.role, i, None, "arguments", k)
        for t, tool in enumerate(req.tools or []):
            found = _descriptions(tool.model_dump(exclude_none=True))
            if found:
                groups += 1
                out.extend(InputText(text, "developer", t, where="tools", path=path, group=groups)
                           for path, text in found)
    elif isinstance(req, CompletionRequest):
        out.extend(InputText(p, "user", i) for i, p in enumerate(req.prompts))
        if req.suffix:
            out.append(InputText(req.suffix, "user", 0, where="suffix"))
    elif isinstance(req, EmbeddingRequest):  # strings are user text; token arrays carry none
        out.extend(InputText(t, "user", i) for i, t in enumerate(req.texts or []))
    return out


def _descriptions(value: Any) -> list[tuple[Path, str]]:
    """Every ``description`` string in a tool definition, in order: the function's, its
    parameters' at any depth (JSON Schema ``properties``, ``items``, ``$defs``, ``anyOf``...).
    Iterative: a deeply nested schema cannot exhaust the stack."""
    out: list[tuple[Path, str]] = []
    stack: list[tuple[Any, Path, bool]] = [(value, (), False)]
    while stack:
        node, path, text = stack.pop()
        if text:
            if node:
                out.append((path, node))
        elif isinstance(node, dict):
            stack.extend((v, (*path, k), k == "description" and isinstance(v, str))
                         for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, (*path, i), False) for i, v in reversed(list(enumerate(node))))
    return out


def units(items: Sequence[InputText]) -> list[Unit]:
    """The texts to analyse: each item alone, or its group's items joined."""
    out: list[Unit] = []
    i = 0
    while i < len(items):
        g, j = items[i].group, i + 1
        if g is not None:
            while j < len(items) and items[j].group == g:
                j += 1
        members = list(range(i, j))
        text, starts = jsontext.join([_analysed(items[k]) for k in members])
        first = items[i]
        out.append(Unit(text, members, starts, first.prompt, first.document, first.moderated))
        i = j
    return out


def _analysed(item: InputText) -> str:
    """The text the detectors see: a ``name`` cannot hold spaces (``Dana_White``,
    ``ignore_previous_instructions``), so its underscores are read as spaces (same length: the
    findings' offsets hold for the name itself)."""
    return item.text.replace("_", " ") if item.where == "name" else item.text


def replace_texts(req: R, texts: list[str]) -> R:
    """``req`` with the texts :func:`input_texts` found replaced, in the same order."""
    items = input_texts(req)
    if all(t.text == n for t, n in zip(items, texts, strict=True)):
        return req
    if isinstance(req, ChatCompletionRequest):
        return _replace_chat(req, items, texts)  # type: ignore[return-value]
    if isinstance(req, CompletionRequest):
        update: dict[str, Any] = {}
        prompts = [n for t, n in zip(items, texts, strict=True) if t.where == "content"]
        if not req.token_prompt:  # token ids carry no text to mask
            update["prompt"] = prompts[0] if isinstance(req.prompt, str) else prompts
        suffix = [n for t, n in zip(items, texts, strict=True) if t.where == "suffix"]
        if suffix:
            update["suffix"] = suffix[0]
        return req.model_copy(update=update)
    if isinstance(req, EmbeddingRequest):
        return req.model_copy(update={"input": texts[0] if isinstance(req.input, str) else texts})
    return req


def _replace_chat(req: ChatCompletionRequest, items: list[InputText],
                  texts: list[str]) -> ChatCompletionRequest:
    messages = list(req.messages)
    tools = [t.model_dump(exclude_none=True) for t in req.tools or []]
    # Leaves of one JSON document (or one tool) are put back together.
    docs: dict[tuple[str, int, int | None, int | None], list[tuple[InputText, str]]] = {}
    for item, new in zip(items, texts, strict=True):
        if item.path is not None or item.where in ("arguments", "tools"):
            docs.setdefault((item.where, item.message, item.part, item.call), []).append((item, new))
            continue
        if item.text == new:
            continue
        _set_message(messages, item, new)
    for (where, index, _, _), leaves in docs.items():
        if all(item.text == new for item, new in leaves):
            continue
        if where == "tools":
            changes = {(item.path or (), False): new for item, new in leaves}
            tools[index] = jsontext.rebuild(tools[index], changes)
            continue
        first = leaves[0][0]
        raw = _raw(messages[index], first)
        doc = jsontext.Document(raw)
        _set_message(messages, first, doc.replaced([new for _, new in leaves]))
    update: dict[str, Any] = {"messages": messages}
    if req.tools is not None:
        update["tools"] = TOOLS.validate_python(tools)
    return req.model_copy(update=update)


def _raw(m: Any, item: InputText) -> str:
    """The field's original text (a JSON document's)."""
    if item.where == "arguments":
        return str(m.tool_calls[item.call]["function"]["arguments"])
    if item.part is not None:
        return str(m.content[item.part].text)
    return str(m.content)


def _set_message(messages: list[Any], item: InputText, new: str) -> None:
    m = messages[item.message]
    update: dict[str, Any]
    if item.where == "name":
        update = {"name": new}
    elif item.where == "arguments":
        calls = list(m.tool_calls or [])
        call = dict(calls[item.call])  # type: ignore[index]
        call["function"] = {**(call.get("function") or {}), "arguments": new}
        calls[item.call] = call  # type: ignore[index]
        update = {"tool_calls": calls}
    elif item.part is None:
        update = {"content": new}
    else:
        content = list(m.content) if isinstance(m.content, list) else []
        content[item.part] = TextPart(type="text", text=new)
        update = {"content": content}
    messages[item.message] = m.model_copy(update=update)
