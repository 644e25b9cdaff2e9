"""Two-stage retrieval: dense top-N candidates from Qdrant, then a second stage to top-k.

Second stage: a cross-encoder when one is configured (``rerank``), else by default a hybrid of the
dense ranking and BM25 over the candidates fused by reciprocal rank (``hybrid``); ``dense`` keeps the
dense order. Candidates under the minimum cosine similarity are dropped first, near-duplicates (the
same text, or cosine similarity above the threshold to a better-ranked chunk) last.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from functions.rag.embedder import Reranker
from functions.rag.lexical import bm25_scores
from functions.rag.store import Hit

Mode = Literal["dense", "hybrid", "rerank"]


@dataclass(frozen=True, slots=True)
class Passage:
    doc_id: str
    title: str
    chunk: int
    heading: str
    text: str
    score: float
    """Cosine similarity of the passage to the question (what ``min_score`` applies to)."""
    rank_score: float
    """The score the second stage ordered by (RRF, cross-encoder or cosine)."""

    @classmethod
    def of(cls, hit: Hit, rank_score: float) -> Passage:
        p = hit.payload
        return cls(str(p.get("doc_id", "")), str(p.get("title", "")), int(p.get("chunk", 0)),
                   str(p.get("heading", "")), str(p.get("text", "")), hit.score, rank_score)

    @property
    def body(self) -> str:
        return f"{self.heading}\n{self.text}" if self.heading else self.text


@dataclass(frozen=True, slots=True)
class RankParams:
    top_k: int
    min_score: float
    dedup_threshold: float
    rrf_k: int = 60
    lexical_max_df: float = 0.2


def rrf(rankings: Sequence[Sequence[int]], n: int, k: int) -> list[float]:
    """Reciprocal rank fusion: each ranking (a list of item indexes, best first) adds 1/(k+rank)."""
    scores = [0.0] * n
    for ranking in rankings:
        for r, i in enumerate(ranking, 1):
            scores[i] += 1.0 / (k + r)
    return scores


def second_stage(query: str, hits: Sequence[Hit], mode: Mode, p: RankParams,
                 reranker: Reranker | None = None) -> list[Passage]:
    """Re-rank stage-1 candidates (best dense first) to at most ``top_k`` passages."""
    hits = [h for h in hits if h.score >= p.min_score]
    if not hits:
        return []
    texts = [_text(h) for h in hits]
    if mode == "rerank" and reranker is not None:
        scores = reranker.score(query, texts)
    elif mode in ("hybrid", "rerank"):
        lexical = bm25_scores(query, texts, p.lexical_max_df)
        by_lexical = [i for i in sorted(range(len(hits)), key=lambda i: -lexical[i]) if lexical[i] > 0]
        scores = rrf([range(len(hits)), by_lexical], len(hits), p.rrf_k)
    else:
        scores = [h.score for h in hits]
    order = sorted(range(len(hits)), key=lambda i: -scores[i])
    return [Passage.of(hits[i], scores[i]) for i in _dedup(hits, order, p)]


def _text(h: Hit) -> str:
    heading, text = h.payload.get("heading"), str(h.payload.get("text", ""))
    return f"{heading}\n{text}" if heading else text


def _dedup(hits: Sequence[Hit], order: Sequence[int], p: RankParams) -> list[int]:
    import numpy as np

    vectors = np.asarray([h.vector for h in hits], dtype=np.float32)
    kept: list[int] = []
    seen: set[str] = set()
    for i in order:
        digest = str(hits[i].payload.get("text_hash", hits[i].id))
        # vectors are stored normalized: the dot product is the cosine
        if digest in seen or (kept and float(np.max(vectors[kept] @ vectors[i])) >= p.dedup_threshold):
            continue
        seen.add(digest)
        kept.append(i)
        if len(kept) == p.top_k:
            break
    return kept

