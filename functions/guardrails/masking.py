"""Reversible masking: values become stable placeholders (``<PERSON_1>``) for one request.

The same value gets the same placeholder everywhere in the request, so the model can refer to it;
:meth:`Masker.restore` puts the values back into the answer. A :class:`Masker` lives only as long as
its request: it is never cached, logged or stored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from functions.guardrails.findings import Span

if TYPE_CHECKING:
    from presidio_anonymizer import AnonymizerEngine

PLACEHOLDER = re.compile(r"<([A-Z][A-Z_]{1,30})_(\d{1,4})>")
MAX_PLACEHOLDER = 40
"""Longest placeholder text; a stream holds back at most this much to restore one split across
chunks."""


class Masker:
    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_placeholder: dict[str, str] = {}
        self._counts: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self._by_placeholder)

    def __repr__(self) -> str:  # never show the values, even in a traceback
        return f"Masker({len(self._by_placeholder)} placeholders)"

    def placeholder(self, entity: str, value: str) -> str:
        key = (entity, value)
        if key not in self._by_value:
            n = self._counts[entity] = self._counts.get(entity, 0) + 1
            ph = f"<{entity}_{n}>"
            self._by_value[key] = ph
            self._by_placeholder[ph] = value
        return self._by_value[key]

    def reserve(self, texts: Sequence[str]) -> None:
        """Placeholders already in use in ``texts`` (a conversation's stored history): new ones of
        this request are numbered after them, so ``<PERSON_1>`` never names two values."""
        for text in texts:
            for m in PLACEHOLDER.finditer(text):
                entity, n = m.group(1), int(m.group(2))
                self._counts[entity] = max(self._counts.get(entity, 0), n)

    def mask(self, text: str, spans: Sequence[Span]) -> str:
        """Replace each span (sorted, not overlapping) by its placeholder, numbered in order of
        appearance."""
        for s in spans:
            self.placeholder(s.entity, text[s.start:s.end])
        return _anonymize(text, spans, lambda entity, value: self._by_value[(entity, value)])

    def restore(self, text: str) -> str:
        if not self._by_placeholder:
            return text
        return PLACEHOLDER.sub(lambda m: self._by_placeholder.get(m.group(0), m.group(0)), text)


def redact(text: str, spans: Sequence[Span]) -> str:
    """Irreversible: each span becomes ``<TYPE>`` (for findings in a model's answer)."""
    return _anonymize(text, spans, lambda entity, value: f"<{entity}>")


def _anonymize(text: str, spans: Sequence[Span], replace: Callable[[str, str], str]) -> str:
    """Presidio's anonymizer with one custom operator per entity type."""
    if not spans:
        return text
    from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

    def operator(entity: str) -> OperatorConfig:
        return OperatorConfig("custom", {"lambda": lambda value: replace(entity, value)})

    results = [RecognizerResult(s.entity, s.start, s.end, s.score) for s in spans]
    ops = {entity: operator(entity) for entity in {s.entity for s in spans}}
    return str(_engine().anonymize(text, results, ops).text)


@functools.cache
def _engine() -> AnonymizerEngine:
    """Presidio's anonymizer holds no request state: one per process serves every request."""
    from presidio_anonymizer import AnonymizerEngine

    return AnonymizerEngine()  # type: ignore[no-untyped-call]


def safe_cut(text: str, limit: int) -> int:
    """The largest index <= ``limit`` that does not fall inside a (possibly unfinished)
    placeholder at the end of ``text[:limit]``."""
    start = text.rfind("<", max(0, limit - MAX_PLACEHOLDER), limit)
    if start != -1 and ">" not in text[start:limit]:
        return start
    return limit
