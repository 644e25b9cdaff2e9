"""BM25 over a candidate set: the lexical half of the hybrid second stage."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "can", "do", "does", "for", "from", "how",
    "i", "in", "is", "it", "its", "of", "on", "or", "that", "the", "this", "to", "was", "what",
    "when", "where", "which", "who", "why", "will", "with", "you", "your"})


def terms(text: str) -> list[str]:
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in STOPWORDS]


def bm25_scores(query: str, docs: Sequence[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """Okapi BM25 of ``query`` against each of ``docs``; document frequencies are taken over
    ``docs`` (the stage-1 candidates), which is what a re-ranker sees."""
    q = set(terms(query))
    bags = [Counter(terms(d)) for d in docs]
    if not q or not bags:
        return [0.0] * len(docs)
    avg = sum(sum(bag.values()) for bag in bags) / len(bags) or 1.0
    n = len(bags)
    df = {t: sum(1 for bag in bags if t in bag) for t in q}
    idf = {t: math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) for t in q}
    out = []
    for bag in bags:
        length = sum(bag.values())
        s = 0.0
        for t in q:
            tf = bag.get(t, 0)
            if tf:
                s += idf[t] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * length / avg))
        out.append(s)
    return out
