"""BM25 over a candidate set: the lexical half of the hybrid second stage."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset({
    "a", "about", "above", "after", "again", "all", "am", "an", "and", "any", "are", "as", "at",
    "be", "because", "been", "before", "being", "below", "between", "both", "but", "by", "can",
    "could", "did", "do", "does", "doing", "down", "during", "each", "few", "for", "from",
    "further", "get", "got", "had", "has", "have", "having", "he", "her", "here", "hers", "him",
    "his", "how", "i", "if", "in", "into", "is", "it", "its", "just", "me", "more", "most", "must",
    "my", "no", "nor", "not", "now", "of", "off", "on", "once", "only", "or", "other", "our",
    "ours", "out", "over", "own", "same", "she", "should", "so", "some", "such", "than", "that",
    "the", "their", "theirs", "them", "then", "there", "these", "they", "this", "those", "through",
    "to", "too", "under", "until", "up", "very", "was", "we", "were", "what", "when", "where",
    "which", "while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours"})


def terms(text: str) -> list[str]:
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in STOPWORDS]


def bm25_scores(query: str, docs: Sequence[str], max_df: float = 1.0, k1: float = 1.2,
                b: float = 0.75) -> list[float]:
    """Okapi BM25 of ``query`` against each of ``docs``; document frequencies are taken over
    ``docs`` (the stage-1 candidates), which is what a re-ranker sees.

    Query terms found in more than ``max_df`` of the candidates are left out: a word that most
    candidates share ("team" when every candidate is a team page) does not tell them apart, and
    letting it rank them would only add noise to the fusion."""
    bags = [Counter(terms(d)) for d in docs]
    n = len(bags)
    if not n:
        return []
    df = {t: sum(1 for bag in bags if t in bag) for t in set(terms(query))}
    q = {t for t, f in df.items() if 0 < f <= max(1.0, max_df * n)}
    if not q:
        return [0.0] * n
    avg = sum(sum(bag.values()) for bag in bags) / n or 1.0
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
