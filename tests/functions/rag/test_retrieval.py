"""The second stage: BM25, reciprocal rank fusion, minimum score, near-duplicates."""

from __future__ import annotations

import math

from functions.rag.lexical import bm25_scores, terms
from functions.rag.retrieval import RankParams, rrf, second_stage
from functions.rag.store import Hit

P = RankParams(top_k=3, min_score=0.2, dedup_threshold=0.95)


def hit(i: int, score: float, text: str, vector: list[float], **payload: object) -> Hit:
    return Hit(str(i), score, {"doc_id": f"d{i}", "chunk": 0, "text": text, "text_hash": text,
                               **payload}, vector)


def unit(angle: float) -> list[float]:
    return [math.cos(angle), math.sin(angle)]


def test_bm25_prefers_rare_matching_terms() -> None:
    assert terms("What is the VPN-token?") == ["vpn", "token"]
    s = bm25_scores("vpn token", ["reset the vpn token", "the office vpn", "lunch menu"])
    assert s[0] > s[1] > s[2] == 0


def test_bm25_ignores_words_most_candidates_share() -> None:
    docs = ["team atlas owns payroll", "team beacon owns the app", "team cobalt", "team delta"]
    assert bm25_scores("which team owns the app", docs, max_df=0.25) == [
        0.0, *bm25_scores("app", docs)[1:2], 0.0, 0.0]
    assert bm25_scores("team", docs, max_df=0.25) == [0.0] * 4


def test_rrf_sums_reciprocal_ranks() -> None:
    assert rrf([[0, 1], [1]], 2, 60) == [1 / 61, 1 / 62 + 1 / 61]


def test_hybrid_lifts_the_lexical_match() -> None:
    hits = [hit(0, 0.60, "general remote work policy", unit(0.0)),
            hit(1, 0.55, "other things", unit(0.5)),
            hit(2, 0.50, "error E1234 means the badge expired", unit(1.0))]
    dense = second_stage("what does E1234 mean", hits, "dense", P)
    hybrid = second_stage("what does E1234 mean", hits, "hybrid", P)
    assert [p.doc_id for p in dense] == ["d0", "d1", "d2"]
    assert hybrid[0].doc_id == "d2"
    assert hybrid[0].score == 0.50  # the cosine is kept as the citation's score


def test_min_score_and_near_duplicates_are_dropped() -> None:
    hits = [hit(0, 0.9, "a", unit(0.0)), hit(1, 0.85, "a copy", unit(0.01)),
            hit(2, 0.8, "a", unit(1.0)), hit(3, 0.7, "b", unit(1.5)), hit(4, 0.1, "c", unit(2.0))]
    out = second_stage("q", hits, "dense", P)
    assert [p.doc_id for p in out] == ["d0", "d3"]  # d1 near-identical vector, d2 same text, d4 low


def test_nothing_relevant_is_empty() -> None:
    assert second_stage("q", [hit(0, 0.05, "x", unit(0))], "hybrid", P) == []
