"""The text inside a JSON document (tool-call arguments, a JSON tool result), for the guardrails.

A check must look at what a JSON string *says*, not at its escaped spelling, and masking must leave a
document that still parses: so the checks see the document's leaves (its keys, string values and
integers, decoded, in document order), each one masked on its own, and the document is rebuilt
from the parsed value with the masked leaves in place. A document that is left unchanged keeps its
original spelling byte for byte.
"""

from __future__ import annotations

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


def leaves(value: Any, path: Path = ()) -> list[Leaf]:
    """Keys, strings and integers (a card or phone number sent as a number), in document order."""
    out: list[Leaf] = []
    if isinstance(value, dict):
        for k, v in value.items():
            out.append(Leaf((*path, k), True, k))
            out.extend(leaves(v, (*path, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(leaves(v, (*path, i)))
    elif isinstance(value, str):
        out.append(Leaf(path, False, value))
    elif isinstance(value, int) and not isinstance(value, bool):
        out.append(Leaf(path, False, str(value)))
    return out


def rebuild(value: Any, changes: dict[tuple[Path, bool], str], path: Path = ()) -> Any:
    """``value`` with the leaves named in ``changes`` replaced; an integer that changed becomes a
    string (a placeholder is not a number)."""
    if isinstance(value, dict):
        return {changes.get(((*path, k), True), k): rebuild(v, changes, (*path, k))
                for k, v in value.items()}
    if isinstance(value, list):
        return [rebuild(v, changes, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str | int) and not isinstance(value, bool):
        return changes.get((path, False), value)
    return value


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
        for i, (start, text) in enumerate(zip(starts, texts, strict=True)):
            a, b = max(s.start, start), min(s.end, start + len(text))
            if a < b:
                out[i].append(Span(s.entity, a - start, b - start, s.score))
    return out
