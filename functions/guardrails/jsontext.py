"""The text inside a JSON document (tool-call arguments, a JSON tool result), for the guardrails.

A check must look at what a JSON string *says*, not at its escaped spelling, and masking must leave a
document that still parses: so the checks see the document's leaves (its keys, string values and
integers, decoded, in document order), each one masked on its own, and the document is rebuilt
from the parsed value with the masked leaves in place. A document that is left unchanged keeps its
original spelling byte for byte.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from functions.guardrails.findings import Span

Path = tuple[str | int, ...]
SEPARATOR = "\n"
"""Between the texts analysed together: a line break, so each leaf is its own sentence to NER
and a key stands just before its value (the context Presidio's recognizers look for: "ssn")."""


@dataclass(frozen=True, slots=True)
class Leaf:
    path: Path
    """From the document's root; for a key, the path of the key itself."""
    key: bool
    text: str


def parse(raw: str) -> Any | None:
    """The value of ``raw`` when it is a JSON object or array (scalars and invalid JSON: None)."""
    s = raw.lstrip()
    if not s or s[0] not in "{[":
        return None
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


def leaves(value: Any) -> list[Leaf]:
    """Keys, strings and integers (a card or phone number sent as a number), in document order.
    Iterative: a deeply nested document cannot exhaust the stack."""
    out: list[Leaf] = []
    stack: list[tuple[Any, Path, bool]] = [(value, (), False)]
    while stack:
        node, path, is_key = stack.pop()
        if is_key:
            out.append(Leaf(path, True, node))
        elif isinstance(node, dict):
            for k, v in reversed(list(node.items())):
                stack.append((v, (*path, k), False))
                stack.append((k, (*path, k), True))
        elif isinstance(node, list):
            stack.extend((v, (*path, i), False) for i, v in reversed(list(enumerate(node))))
        elif isinstance(node, str):
            out.append(Leaf(path, False, node))
        elif isinstance(node, int) and not isinstance(node, bool):
            out.append(Leaf(path, False, str(node)))
    return out


def rebuild(value: Any, changes: dict[tuple[Path, bool], str]) -> Any:
    """``value`` with the leaves named in ``changes`` replaced (paths as :func:`leaves` gives
    them); an integer that changed becomes a string (a placeholder is not a number). Containers
    on a changed path are copied, the rest is shared; ``value`` itself is never changed."""
    root: list[Any] = [value]
    fresh: set[int] = set()  # the containers copied here (kept alive by the tree, so ids hold)

    def parent(path: Path) -> tuple[Any, Any]:
        holder: Any = root
        step: Any = 0
        for nxt in path:
            child = holder[step]
            if id(child) not in fresh:
                child = dict(child) if isinstance(child, dict) else list(child)
                fresh.add(id(child))
                holder[step] = child
            holder, step = child, nxt
        return holder, step

    for (path, key), new in changes.items():  # values first: their paths use the original keys
        if not key:
            holder, step = parent(path)
            holder[step] = new
    renames = sorted(((p, new) for (p, key), new in changes.items() if key),
                     key=lambda r: -len(r[0]))  # deepest first, while ancestors keep their keys
    for path, new in renames:
        holder, step = parent(path[:-1])
        d = holder[step]
        if id(d) not in fresh:
            d = holder[step] = dict(d)
            fresh.add(id(d))
        items = list(d.items())
        d.clear()
        d.update((new if k == path[-1] else k, v) for k, v in items)
    return root[0]


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class Document:
    """A text field that may hold JSON: its leaves when it is an object or array, else the whole
    text as one leaf."""

    __slots__ = ("leaves", "raw", "value")

    def __init__(self, raw: str) -> None:
        self.raw = raw
        self.value = parse(raw)
        self.leaves = leaves(self.value) if self.value is not None else [Leaf((), False, raw)]

    def replaced(self, texts: Sequence[str]) -> str:
        """The document with each leaf's text replaced by ``texts`` (same order); unchanged, the
        original text."""
        changes = {(leaf.path, leaf.key): new
                   for leaf, new in zip(self.leaves, texts, strict=True) if new != leaf.text}
        if not changes:
            return self.raw
        if self.value is None:
            return texts[0]
        return dumps(rebuild(self.value, changes))


def join(texts: Sequence[str]) -> tuple[str, list[int]]:
    """Texts analysed as one (so a key is context for its value): the joined text and where each
    text starts in it."""
    starts, at = [], 0
    for t in texts:
        starts.append(at)
        at += len(t) + len(SEPARATOR)
    return SEPARATOR.join(texts), starts


def split(spans: Sequence[Span], starts: Sequence[int], texts: Sequence[str]) -> list[list[Span]]:
    """Findings of a joined text, back in each text's own offsets. A finding that spans several
    texts is cut into one finding per text it covers (so each piece is still masked)."""
    out: list[list[Span]] = [[] for _ in texts]
    for s in spans:
        i = max(0, bisect.bisect_right(starts, s.start) - 1)
        while i < len(texts) and starts[i] < s.end:
            a, b = max(s.start, starts[i]), min(s.end, starts[i] + len(texts[i]))
            if a < b:
                out[i].append(Span(s.entity, a - starts[i], b - starts[i], s.score))
            i += 1
    return out
