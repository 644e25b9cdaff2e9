"""Chunk sections by tokens, with overlap, along headings and sentences.

A chunk never crosses a heading; inside a section, whole sentences are packed up to ``size`` tokens
and the next chunk starts with the last sentences of the previous one (up to ``overlap`` tokens). A
sentence longer than a chunk is split between words.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from functions.rag.parsing import Section

TokenCounter = Callable[[str], int]

_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=\S)|\n+")


@dataclass(frozen=True, slots=True)
class Chunk:
    position: int
    heading: str
    text: str

    @property
    def embed_text(self) -> str:
        """What is embedded and shown to the model: the heading gives a passage its context."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _pieces(sentence: str, tokens: int, size: int) -> Iterator[tuple[str, int]]:
    """A sentence longer than a chunk, cut between words into near-equal pieces."""
    words = sentence.split()
    n = math.ceil(tokens / size) + 1
    step = max(1, math.ceil(len(words) / n))
    for i in range(0, len(words), step):
        piece = " ".join(words[i:i + step])
        yield piece, math.ceil(tokens * len(piece) / max(1, len(sentence)))


def counted_texts(sections: Iterable[Section]) -> list[str]:
    """Every text :func:`chunk_sections` counts the tokens of (headings and sentences), once each:
    count them together, then chunk with the counts."""
    seen: dict[str, None] = {}
    for section in sections:
        if section.heading:
            seen[section.heading] = None
        for s in sentences(section.text):
            seen[s] = None
    return list(seen)


def chunk_sections(sections: Iterable[Section], size: int, overlap: int,
                   count: TokenCounter) -> list[Chunk]:
    out: list[Chunk] = []
    for section in sections:
        budget = max(16, size - (count(section.heading) if section.heading else 0))
        for text in _pack(section.text, budget, min(overlap, budget // 2), count):
            out.append(Chunk(len(out), section.heading, text))
    return out


def _pack(text: str, size: int, overlap: int, count: TokenCounter) -> Iterator[str]:
    units: list[tuple[str, int]] = []
    for s in sentences(text):
        t = count(s)
        units.extend(_pieces(s, t, size) if t > size else [(s, t)])
    window: list[tuple[str, int]] = []
    used = 0
    fresh = False  # the window holds something not yet emitted
    for unit in units:
        if window and used + unit[1] > size:
            yield " ".join(u for u, _ in window)
            window, used = _tail(window, overlap)
            while window and used + unit[1] > size:  # the overlap never pushes a chunk past size
                used -= window.pop(0)[1]
            fresh = False
        window.append(unit)
        used += unit[1]
        fresh = True
    if fresh:
        yield " ".join(u for u, _ in window)


def _tail(window: list[tuple[str, int]], overlap: int) -> tuple[list[tuple[str, int]], int]:
    """The last sentences of a chunk, up to ``overlap`` tokens, that start the next one."""
    tail: list[tuple[str, int]] = []
    used = 0
    for unit in reversed(window):
        if used + unit[1] > overlap:
            break
        tail.insert(0, unit)
        used += unit[1]
    return tail, used
