"""RAG benchmark: ingestion throughput, retrieval latency at 10k/100k chunks, retrieval quality.

    .venv/bin/python bench/rag.py                       # everything (about 10 minutes on 2 cores)
    .venv/bin/python bench/rag.py --sizes 10000 --skip-quality
    .venv/bin/python bench/rag.py --reranker PATH       # adds the cross-encoder column

- ingestion: the labeled corpus and generated documents through ``RagService.ingest`` (parse, chunk,
  embed with all-MiniLM-L6-v2 on the CPU, upsert into Qdrant local mode): chunks per second;
- latency: N chunks with random unit vectors (10 tenants x 2 knowledge bases), questions filtered to
  one tenant's knowledge base, timing stage 1 (the dense search) and stage 2 (hybrid re-rank) in
  Qdrant local mode and, when ``qdrant-edge-py`` is installed, in Qdrant's own engine embedded
  (``EdgeShard``: HNSW m 16, ef_construct 200, keyword indexes on tenant and kb). Question embedding
  is timed apart (it is the same for both engines);
- quality: recall@5 and MRR on the labeled question set (``bench/rag_corpus.py``), dense only vs
  hybrid vs re-ranked.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.assertions import expect, run_main
from bench.rag_corpus import build
from functions.rag.retrieval import Mode, RankParams, second_stage
from functions.rag.service import RagService
from functions.rag.settings import RagSettings
from functions.rag.store import ChunkStore, Hit, StoredChunk

DIM = 384
WORDS = ["policy", "team", "error", "server", "badge", "laptop", "travel", "budget", "invoice",
         "payroll", "network", "backup", "office", "meeting", "room", "printer", "vpn", "token",
         "account", "report", "contract", "training", "leave"]


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(xs), p))


def summary(ms: list[float]) -> dict[str, float]:
    return {"p50_ms": round(pct(ms, 50), 2), "p95_ms": round(pct(ms, 95), 2),
            "p99_ms": round(pct(ms, 99), 2)}


# --- ingestion and quality ---

async def ingest_and_quality(tmp: Path, extra_docs: int, reranker: str | None) -> dict[str, Any]:
    svc = RagService(RagSettings(qdrant_path=tmp / "quality", reranker_model=reranker))
    _ = svc.embedder.dim  # load the model before timing
    docs, questions = build()
    rng = np.random.default_rng(1)
    filler = [(f"filler-{i}.md", " ".join(f"## Part {j}\n" + " ".join(rng.choice(WORDS, 120)) + "."
                                          for j in range(4)).encode()) for i in range(extra_docs)]
    started, chunks = time.perf_counter(), 0
    for d in docs:
        chunks += (await svc.ingest("bench", "quality", d.filename, d.text.encode(), doc_id=d.doc_id)
                   ).chunks
    for name, data in filler:
        chunks += (await svc.ingest("bench", "filler", name, data)).chunks
    elapsed = time.perf_counter() - started
    texts = [f"passage {i} " + " ".join(rng.choice(WORDS, 150)) for i in range(256)]
    t0 = time.perf_counter()
    await svc.embedder.embed(texts)
    embed_rate = len(texts) / (time.perf_counter() - t0)
    out: dict[str, Any] = {"ingest": {"documents": len(docs) + extra_docs, "chunks": chunks,
                                      "seconds": round(elapsed, 1),
                                      "chunks_per_s": round(chunks / elapsed, 1),
                                      "embed_only_chunks_per_s": round(embed_rate, 1)}}
    modes: list[Mode] = ["dense", "hybrid"] + (["rerank"] if reranker else [])  # type: ignore[list-item]
    quality: dict[str, Any] = {}
    for mode in modes:
        ranks = []
        for q in questions:
            ps = await svc.retrieve("bench", "quality", q.text, top_k=5, mode=mode, min_score=-1)
            ids = [p.doc_id for p in ps]
            ranks.append(ids.index(q.doc_id) + 1 if q.doc_id in ids else None)
        quality[mode] = {"recall@5": round(sum(r is not None for r in ranks) / len(ranks), 3),
                         "mrr": round(sum(1 / r for r in ranks if r) / len(ranks), 3)}
    out["quality"] = {"questions": len(questions), "documents": len(docs), **quality}
    qt = []
    for q in questions[:50]:
        t0 = time.perf_counter()
        await svc.embedder.embed([q.text])
        qt.append((time.perf_counter() - t0) * 1000)
    out["query_embedding"] = summary(qt)
    await svc.aclose()
    return out


# --- latency at scale ---

def synthetic(n: int, seed: int = 3) -> tuple[np.ndarray[Any, Any], list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    payloads = [{"tenant": f"t{i % 10}", "kb": f"kb{(i // 10) % 2}", "doc_id": f"d{i // 8}",
                 "version": "v1", "title": f"Doc {i // 8}", "chunk": i % 8, "heading": "",
                 "text": " ".join(rng.choice(WORDS, 60)), "text_hash": str(i)} for i in range(n)]
    return vectors, payloads


def queries(vectors: np.ndarray[Any, Any], count: int) -> list[list[float]]:
    rng = np.random.default_rng(5)
    idx = rng.choice(np.arange(0, len(vectors), 20), count)  # points of tenant t0, kb kb0
    q = vectors[idx] + 0.05 * rng.standard_normal((count, DIM), dtype=np.float32)
    return [list(map(float, v / np.linalg.norm(v))) for v in q]


def time_queries(search: Callable[[list[float]], list[Hit]], qs: list[list[float]]
                 ) -> dict[str, Any]:
    params = RankParams(top_k=5, min_score=-1, dedup_threshold=0.95)
    s1, total = [], []
    for q in qs:
        t0 = time.perf_counter()
        hits = search(q)
        t1 = time.perf_counter()
        second_stage("policy team error server", hits, "hybrid", params)
        t2 = time.perf_counter()
        check_candidates(hits)
        s1.append((t1 - t0) * 1000)
        total.append((t2 - t0) * 1000)
    return {"stage1": summary(s1), "stage1+2": summary(total), "queries": len(qs)}


def check_candidates(hits: list[Hit]) -> None:
    """Stage 1 is what the rows name: 64 candidates, with their vectors and payloads, all from the
    filtered tenant's knowledge base."""
    expect(len(hits) == 64, f"stage 1 returned {len(hits)} candidates, not 64")
    wrong = [h.id for h in hits if (h.payload.get("tenant"), h.payload.get("kb")) != ("t0", "kb0")]
    expect(not wrong, f"stage 1 returned {len(wrong)} points outside the filter (t0/kb0)")
    expect(all(len(h.vector or []) == DIM for h in hits), "stage 1 returned hits without vectors")


def local_mode(tmp: Path, vectors: np.ndarray[Any, Any], payloads: list[dict[str, Any]],
               qs: list[list[float]]) -> dict[str, Any]:
    store = ChunkStore(RagSettings(qdrant_path=tmp / f"local-{len(vectors)}"), "bench", DIM)
    t0 = time.perf_counter()
    store._ensure_collection()
    store.upsert([StoredChunk(str(uuid.UUID(int=i)), v.tolist(), p)
                  for i, (v, p) in enumerate(zip(vectors, payloads, strict=True))])
    load_s = time.perf_counter() - t0
    flt = store.filter("t0", "kb0")
    res = time_queries(lambda q: store.search(q, flt, 64), qs)
    store.close()
    return {"load_s": round(load_s, 1), **res}


def edge(tmp: Path, vectors: np.ndarray[Any, Any], payloads: list[dict[str, Any]],
         qs: list[list[float]], exact_ids: list[set[str]]) -> dict[str, Any]:
    import qdrant_edge as qe

    cfg = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=DIM, distance=qe.Distance.Cosine),
                        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=200,
                                                       full_scan_threshold=1000, payload_m=16))
    t0 = time.perf_counter()
    shard = qe.EdgeShard.create(str(tmp / f"edge-{len(vectors)}"), cfg)
    for field in ("tenant", "kb"):
        shard.update(qe.UpdateOperation.create_field_index(field, qe.PayloadSchemaType.Keyword))
    for i in range(0, len(vectors), 2000):
        shard.update(qe.UpdateOperation.upsert_points([
            qe.Point(str(uuid.UUID(int=j)), vectors[j].tolist(), payloads[j])
            for j in range(i, min(i + 2000, len(vectors)))]))
    shard.optimize()  # builds the HNSW graph
    load_s = time.perf_counter() - t0
    flt = qe.Filter(must=[qe.FieldCondition(key="tenant", match=qe.MatchValue("t0")),
                          qe.FieldCondition(key="kb", match=qe.MatchValue("kb0"))])

    def search(q: list[float]) -> list[Hit]:
        pts = shard.query(qe.QueryRequest(limit=64, query=qe.Query.Nearest(q), filter=flt,
                                          with_vector=True, with_payload=True,
                                          params=qe.SearchParams(hnsw_ef=128)))
        return [Hit(str(p.id), p.score, dict(p.payload or {}), list(p.vector or []))  # type: ignore[arg-type]
                for p in pts]

    res = time_queries(search, qs)
    recall = [len({h.id for h in search(q)[:10]} & ids) / 10 for q, ids in zip(qs, exact_ids,
                                                                               strict=True)]
    shard.close()
    return {"load_s": round(load_s, 1), "recall@10_vs_exact": round(statistics.mean(recall), 3),
            **res}


def exact_top10(vectors: np.ndarray[Any, Any], qs: list[list[float]]) -> list[set[str]]:
    mask = np.arange(len(vectors)) % 20 == 0  # t0/kb0: i % 10 == 0 and (i // 10) % 2 == 0
    idx = np.nonzero(mask)[0]
    out = []
    for q in qs:
        scores = vectors[idx] @ np.asarray(q, dtype=np.float32)
        out.append({str(uuid.UUID(int=int(idx[j]))) for j in np.argsort(-scores)[:10]})
    return out


def latency(tmp: Path, sizes: list[int], n_queries: int, local_queries: int, engines: list[str]
            ) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n in sizes:
        vectors, payloads = synthetic(n)
        qs = queries(vectors, n_queries)
        row: dict[str, Any] = {}
        if "local" in engines:  # brute force in Python: fewer questions at large sizes
            row["qdrant-local"] = local_mode(tmp, vectors, payloads,
                                             qs[:local_queries] if n > 20_000 else qs)
            print(f"{n} chunks, local mode: {json.dumps(row['qdrant-local'])}", flush=True)
        if "edge" in engines:
            try:
                row["qdrant-edge"] = edge(tmp, vectors, payloads, qs, exact_top10(vectors, qs))
            except ImportError:
                row["qdrant-edge"] = "not installed (pip install qdrant-edge-py)"
        out[str(n)] = row
        print(f"{n} chunks: {json.dumps(row)}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--local-queries", type=int, default=40,
                    help="questions for Qdrant local mode above 20k chunks (it scans every point)")
    ap.add_argument("--engines", default="local,edge")
    ap.add_argument("--extra-docs", type=int, default=60, help="generated documents for throughput")
    ap.add_argument("--reranker", default=None, help="a CrossEncoder model directory")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("bench/results/rag.json"))
    a = ap.parse_args()
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="llmp-bench-rag-") as d:
        tmp = Path(d)
        if not a.skip_quality:
            results.update(asyncio.run(ingest_and_quality(tmp, a.extra_docs, a.reranker)))
            print(json.dumps(results, indent=1), flush=True)
        results["latency"] = latency(tmp, [int(s) for s in a.sizes.split(",")], a.queries,
                                     a.local_queries, a.engines.split(","))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(results, indent=1))
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    run_main(main)
